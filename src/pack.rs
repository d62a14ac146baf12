//! The one streaming pass over a package: it emits the canonical tarball while the BLAKE3
//! digest and the SHA-1 piece hashes are computed on their own threads, with memory bounded by
//! a few chunks in flight (never the whole archive).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sha1::{Digest, Sha1};

use crate::canon;
use crate::fsx::{AtomicFile, Durability};
use crate::package::{EntryKind, Package};
use crate::torrent::{self, Info};

/// Bytes handed to the hashers at a time.
const CHUNK: usize = 1 << 20;
/// Chunks each hasher may have queued; bounds memory at about `2 * (DEPTH + 1) * CHUNK`.
const DEPTH: usize = 3;

/// What one pass over a package produced.
#[derive(Debug, Clone)]
pub struct Packed {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub size: u64,
    /// BLAKE3 of the tarball, lowercase hex.
    pub blake3: String,
    pub info: Info,
    pub infohash: String,
}

impl Packed {
    /// The magnet link without trackers or web seeds (those are configuration, added by serve).
    pub fn magnet(&self) -> String {
        torrent::magnet(&self.infohash, &self.info.name, self.size, &[], &[])
    }
}

/// Streams the canonical tarball of `pkg` into `out` and returns its digests.
///
/// The calling thread reads the package into 1 MiB chunks; three threads consume each chunk:
/// one writes it out, one feeds BLAKE3, one computes the SHA-1 pieces. Copying into the page
/// cache and SHA-1 cost about the same, so neither waits on the other.
pub fn pack_to(pkg: &Package, out: &mut (dyn Write + Send)) -> Result<Packed> {
    let size = canon::archive_size(&pkg.entries);
    let piece_length = canon::piece_length(size);
    let (w_tx, w_rx) = sync_channel::<Arc<Vec<u8>>>(DEPTH);
    let (b3_tx, b3_rx) = sync_channel::<Arc<Vec<u8>>>(DEPTH);
    let (sha_tx, sha_rx) = sync_channel::<Arc<Vec<u8>>>(DEPTH);

    let (digest, pieces, written) = std::thread::scope(|s| -> Result<_> {
        let writer = s.spawn(move || write_worker(w_rx, out));
        let b3 = s.spawn(move || blake3_worker(b3_rx));
        let sha = s.spawn(move || piece_worker(sha_rx, piece_length));
        let mut sink = Sink {
            buf: Vec::with_capacity(CHUNK),
            txs: [w_tx, b3_tx, sha_tx],
            in_flight: VecDeque::new(),
            written: 0,
        };
        let produced = produce(pkg, &mut sink).and_then(|()| sink.finish());
        drop(sink);
        let wrote = writer.join().expect("writer thread");
        let digest = b3.join().expect("blake3 thread");
        let pieces = sha.join().expect("sha1 thread");
        wrote.context("cannot write the archive")?;
        let written = produced?;
        Ok((digest, pieces, written))
    })?;
    if written != size {
        bail!(
            "{}: the archive came out at {written} bytes, {size} expected (did the package change while it was packed?)",
            pkg.root.display()
        );
    }
    let m = &pkg.manifest;
    let info = Info {
        name: format!("{}.tar", m.id()),
        length: size,
        piece_length,
        pieces,
    };
    Ok(Packed {
        name: m.name.clone(),
        version: m.version_str.clone(),
        description: m.description.clone(),
        size,
        blake3: digest.to_hex().to_string(),
        infohash: info.infohash(),
        info,
    })
}

/// Packs `pkg` into `dest` and `dest.torrent` (plain torrent, no trackers), both written
/// atomically: on error neither is left behind.
pub fn pack_file(pkg: &Package, dest: &Path, durability: Durability) -> Result<Packed> {
    let mut tar = AtomicFile::create(dest)?;
    let packed =
        pack_to(pkg, &mut tar).with_context(|| format!("cannot pack {}", pkg.root.display()))?;
    tar.set_mode(0o644)?;
    let mut torrent_path = dest.as_os_str().to_owned();
    torrent_path.push(".torrent");
    let mut t = AtomicFile::create(Path::new(&torrent_path))?;
    t.write_all(&packed.info.render(&[], &[]))?;
    t.set_mode(0o644)?;
    tar.commit_with(durability)?;
    t.commit_with(durability)?;
    Ok(packed)
}

struct Sink {
    buf: Vec<u8>,
    txs: [SyncSender<Arc<Vec<u8>>>; 3],
    /// Chunks handed out, oldest first; reused once every consumer has dropped its reference,
    /// so the pass touches a fixed set of buffers instead of faulting in fresh pages per chunk.
    in_flight: VecDeque<Arc<Vec<u8>>>,
    written: u64,
}

impl Sink {
    fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = CHUNK - self.buf.len();
            let n = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Reads exactly `size` bytes of `file` straight into the chunk buffer.
    fn copy_from(&mut self, file: &mut File, size: u64, path: &Path) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let room = (CHUNK - self.buf.len()) as u64;
            let want = room.min(left) as usize;
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            let mut filled = 0;
            while filled < want {
                let n = file
                    .read(&mut self.buf[start + filled..start + want])
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if n == 0 {
                    bail!("{}: the file shrank while it was packed", path.display());
                }
                filled += n;
            }
            left -= want as u64;
            if self.buf.len() == CHUNK {
                self.flush()?;
            }
        }
        let mut probe = [0u8; 1];
        if file
            .read(&mut probe)
            .with_context(|| format!("cannot read {}", path.display()))?
            != 0
        {
            bail!("{}: the file grew while it was packed", path.display());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.recycled().unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let chunk = Arc::new(std::mem::replace(&mut self.buf, next));
        self.in_flight.push_back(Arc::clone(&chunk));
        self.written += chunk.len() as u64;
        for tx in &self.txs {
            if tx.send(Arc::clone(&chunk)).is_err() {
                // Only the writer hangs up early (on a write error, which its join reports).
                bail!("the archive writer stopped");
            }
        }
        Ok(())
    }

    fn recycled(&mut self) -> Option<Vec<u8>> {
        let free = self
            .in_flight
            .front()
            .is_some_and(|c| Arc::strong_count(c) == 1);
        if !free {
            return None;
        }
        let mut v = Arc::try_unwrap(self.in_flight.pop_front()?).ok()?;
        v.clear();
        Some(v)
    }

    fn finish(&mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.written)
    }
}

fn produce(pkg: &Package, sink: &mut Sink) -> Result<()> {
    for e in &pkg.entries {
        sink.push(&canon::header(e))?;
        if let EntryKind::File { size, .. } = e.kind {
            let path = pkg.root.join(&e.path);
            if size > canon::MAX_FILE_SIZE {
                bail!(
                    "{}: larger than the 8 GiB a format v1 entry can hold",
                    path.display()
                );
            }
            let mut f = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            sink.copy_from(&mut f, size, &path)?;
            sink.push(&[0u8; canon::BLOCK][..canon::padding(size)])?;
        }
    }
    sink.push(&[0u8; 2 * canon::BLOCK])
}

fn write_worker(rx: Receiver<Arc<Vec<u8>>>, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
    for chunk in rx {
        out.write_all(&chunk)?;
    }
    out.flush()
}

fn blake3_worker(rx: Receiver<Arc<Vec<u8>>>) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for chunk in rx {
        h.update(&chunk);
    }
    h.finalize()
}

fn piece_worker(rx: Receiver<Arc<Vec<u8>>>, piece_length: u64) -> Vec<u8> {
    let piece_length = piece_length as usize;
    let mut pieces = Vec::new();
    let mut h = Sha1::new();
    let mut in_piece = 0usize;
    for chunk in rx {
        let mut bytes = &chunk[..];
        while !bytes.is_empty() {
            let n = (piece_length - in_piece).min(bytes.len());
            h.update(&bytes[..n]);
            in_piece += n;
            bytes = &bytes[n..];
            if in_piece == piece_length {
                pieces.extend_from_slice(&h.finalize_reset());
                in_piece = 0;
            }
        }
    }
    if in_piece > 0 {
        pieces.extend_from_slice(&h.finalize());
    }
    pieces
}
