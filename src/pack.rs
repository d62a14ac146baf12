//! The one streaming pass over a package: it emits the canonical tarball while the BLAKE3
//! digest and the SHA-1 piece hashes are computed on their own threads, with memory bounded by
//! a few chunks in flight (never the whole archive).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sha1::{Digest, Sha1};

use crate::canon;
use crate::fsx::{AtomicFile, Durability};
use crate::package::{EntryKind, Package};
use crate::torrent::{self, Info};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn chunk_size() -> usize {
    knob("PACK_CHUNK_KIB", 1024) << 10
}
/// Chunks each consumer may have queued.
const DEPTH: usize = 3;
const ALIGN: usize = 4096;

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

struct Chunk {
    buf: Vec<u8>,
    start: usize,
    len: usize,
    offset: u64,
}

impl Chunk {
    fn new(cap: usize) -> Chunk {
        let buf = vec![0u8; cap + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Chunk {
            buf,
            start,
            len: 0,
            offset: 0,
        }
    }
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

enum Out<'a> {
    Stream(&'a mut (dyn Write + Send)),
    File {
        file: &'a File,
        direct: Option<File>,
    },
}

impl Out<'_> {
    fn write(&mut self, c: &Chunk) -> std::io::Result<()> {
        match self {
            Out::Stream(w) => w.write_all(c.data()),
            Out::File { file, direct } => {
                if let Some(d) = direct {
                    if c.len % ALIGN == 0 {
                        match d.write_all_at(c.data(), c.offset) {
                            Ok(()) => return Ok(()),
                            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => *direct = None,
                            Err(e) => return Err(e),
                        }
                    }
                }
                file.write_all_at(c.data(), c.offset)
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Stream(w) => w.flush(),
            Out::File { .. } => Ok(()),
        }
    }
}

/// Streams the canonical tarball of `pkg` into `out` and returns its digests.
pub fn pack_to(pkg: &Package, out: &mut (dyn Write + Send)) -> Result<Packed> {
    pack_out(pkg, Out::Stream(out))
}

fn pack_out(pkg: &Package, out: Out<'_>) -> Result<Packed> {
    let size = canon::archive_size(&pkg.entries);
    let piece_length = canon::piece_length(size);
    let chunk = chunk_size();
    let n_sha = knob("PACK_SHA", 2).max(1);
    let b3_mode = knob("PACK_B3", 0); // 0 thread, 1 writer, 2 reader
    let sha_depth = DEPTH + (n_sha - 1) * (piece_length as usize).div_ceil(chunk);
    let (w_tx, w_rx) = sync_channel::<Arc<Chunk>>(DEPTH);
    let mut txs = vec![w_tx];
    let mut b3_rx = None;
    if b3_mode == 0 {
        let (t, r) = sync_channel::<Arc<Chunk>>(DEPTH);
        txs.push(t);
        b3_rx = Some(r);
    }
    let mut sha_rxs = Vec::new();
    for _ in 0..n_sha {
        let (t, r) = sync_channel::<Arc<Chunk>>(sha_depth);
        txs.push(t);
        sha_rxs.push(r);
    }

    let (digest, pieces, written) = std::thread::scope(|s| -> Result<_> {
        let writer = s.spawn(move || write_worker(w_rx, out, b3_mode == 1));
        let b3 = b3_rx.map(|r| s.spawn(move || blake3_worker(r)));
        let shas: Vec<_> = sha_rxs
            .into_iter()
            .enumerate()
            .map(|(k, r)| s.spawn(move || piece_worker(r, piece_length, k as u64, n_sha as u64)))
            .collect();
        let mut sink = Sink {
            cur: Chunk::new(chunk),
            cap: chunk,
            txs,
            in_flight: VecDeque::new(),
            written: 0,
            b3: (b3_mode == 2).then(blake3::Hasher::new),
        };
        let produced = produce(pkg, &mut sink).and_then(|()| sink.finish());
        let reader_b3 = sink.b3.take();
        drop(sink);
        let wrote = writer.join().expect("writer thread");
        let digest = match (b3, reader_b3) {
            (Some(t), _) => t.join().expect("blake3 thread"),
            (None, Some(h)) => h.finalize(),
            (None, None) => wrote
                .as_ref()
                .ok()
                .and_then(|h| *h)
                .unwrap_or(blake3::hash(b"")),
        };
        let per: Vec<Vec<[u8; 20]>> = shas
            .into_iter()
            .map(|t| t.join().expect("sha1 thread"))
            .collect();
        wrote.context("cannot write the archive")?;
        let written = produced?;
        let total: usize = per.iter().map(Vec::len).sum();
        let mut pieces = Vec::with_capacity(total * 20);
        for p in 0..total {
            pieces.extend_from_slice(&per[p % n_sha][p / n_sha]);
        }
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
    let direct = if knob("PACK_DIRECT", 0) == 1 {
        File::options()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(tar.path())
            .ok()
    } else {
        None
    };
    if knob("PACK_SETLEN", 0) == 1 {
        tar.file()
            .set_len(canon::archive_size(&pkg.entries))
            .context("set_len")?;
    }
    let packed = pack_out(
        pkg,
        Out::File {
            file: tar.file(),
            direct,
        },
    )
    .with_context(|| format!("cannot pack {}", pkg.root.display()))?;
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
    cur: Chunk,
    cap: usize,
    txs: Vec<SyncSender<Arc<Chunk>>>,
    in_flight: VecDeque<Arc<Chunk>>,
    written: u64,
    b3: Option<blake3::Hasher>,
}

impl Sink {
    fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let c = &mut self.cur;
            let n = (self.cap - c.len).min(bytes.len());
            let at = c.start + c.len;
            c.buf[at..at + n].copy_from_slice(&bytes[..n]);
            c.len += n;
            bytes = &bytes[n..];
            if c.len == self.cap {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn copy_from(&mut self, file: &mut File, size: u64, path: &Path) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let c = &mut self.cur;
            let want = ((self.cap - c.len) as u64).min(left) as usize;
            let at = c.start + c.len;
            let n = file
                .read(&mut c.buf[at..at + want])
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                bail!("{}: the file shrank while it was packed", path.display());
            }
            c.len += n;
            left -= n as u64;
            if c.len == self.cap {
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
        if self.cur.len == 0 {
            return Ok(());
        }
        let next = self.recycled().unwrap_or_else(|| Chunk::new(self.cap));
        let mut chunk = std::mem::replace(&mut self.cur, next);
        chunk.offset = self.written;
        self.written += chunk.len as u64;
        let chunk = Arc::new(chunk);
        self.in_flight.push_back(Arc::clone(&chunk));
        for tx in &self.txs {
            if tx.send(Arc::clone(&chunk)).is_err() {
                bail!("the archive writer stopped");
            }
        }
        if let Some(h) = &mut self.b3 {
            h.update(chunk.data());
        }
        Ok(())
    }

    fn recycled(&mut self) -> Option<Chunk> {
        let free = self
            .in_flight
            .front()
            .is_some_and(|c| Arc::strong_count(c) == 1);
        if !free {
            return None;
        }
        let mut c = Arc::try_unwrap(self.in_flight.pop_front()?).ok()?;
        c.len = 0;
        Some(c)
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

fn write_worker(
    rx: Receiver<Arc<Chunk>>,
    mut out: Out<'_>,
    hash: bool,
) -> std::io::Result<Option<blake3::Hash>> {
    let mut h = hash.then(blake3::Hasher::new);
    for chunk in rx {
        out.write(&chunk)?;
        if let Some(h) = &mut h {
            h.update(chunk.data());
        }
    }
    out.flush()?;
    Ok(h.map(|h| h.finalize()))
}

fn blake3_worker(rx: Receiver<Arc<Chunk>>) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for chunk in rx {
        h.update(chunk.data());
    }
    h.finalize()
}

fn piece_worker(rx: Receiver<Arc<Chunk>>, piece_length: u64, k: u64, n: u64) -> Vec<[u8; 20]> {
    let mut pieces = Vec::new();
    let mut h = Sha1::new();
    let mut in_piece = 0u64;
    for chunk in rx {
        let data = chunk.data();
        let end = chunk.offset + data.len() as u64;
        let mut pos = chunk.offset;
        while pos < end {
            let piece = pos / piece_length;
            let piece_end = ((piece + 1) * piece_length).min(end);
            if piece % n == k {
                h.update(&data[(pos - chunk.offset) as usize..(piece_end - chunk.offset) as usize]);
                in_piece += piece_end - pos;
                if in_piece == piece_length {
                    pieces.push(h.finalize_reset().into());
                    in_piece = 0;
                }
            }
            pos = piece_end;
        }
    }
    if in_piece > 0 {
        pieces.push(h.finalize().into());
    }
    pieces
}
