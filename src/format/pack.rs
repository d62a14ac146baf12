//! The one streaming pass over a package: it emits the canonical tarball while the BLAKE3
//! digest and the SHA-1 piece hashes are computed on their own threads, with memory bounded by
//! a few chunks in flight (never the whole archive).
//!
//! The calling thread reads the package into 1 MiB chunks and hands each one (shared, not
//! copied) to every consumer: one thread writes it out, one feeds BLAKE3, and two to four share
//! the SHA-1 pieces (thread k of n takes pieces k, k + n, ...). SHA-1 is the most expensive
//! consumer (~1.9 GB/s per core with SHA-NI, against ~4.7 GB/s for BLAKE3 on one core): on a
//! single thread it would set the pace, and pieces are independent.
//!
//! One pass over the 762 MiB `cargo xtask bench pack` package on the 2-core VM costs ~0.8 s of
//! CPU (SHA-1 ~0.45 s, BLAKE3 ~0.13 s, page cache to chunk ~0.13 s, chunk to page cache
//! ~0.1 s) in ~0.45 s of wall time. Measured and dropped because they did not help: 256 KiB or
//! 4 MiB chunks, BLAKE3 in the writer or the reader thread, `File::set_len` before writing.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use sha1::{Digest, Sha1};

use crate::format::canon;
use crate::format::ids::{InfoHash, ObjectId, PackageId, PackageName};
use crate::format::package::{EntryKind, Package};
use crate::format::torrent::{self, Info};
use crate::format::ustar;

/// Bytes per chunk. Large enough that per-chunk costs (a channel send per consumer, a syscall)
/// vanish, small enough that the chunks in flight stay in the CPU caches between the reader and
/// the consumers: 4 MiB chunks cost more CPU in the benchmark, 256 KiB ones no less.
const CHUNK: usize = 1 << 20;
/// Bytes per write into the page cache. On this VM (Firecracker with free page reporting:
/// memory that stays free for a few seconds goes back to the host, and its first touch faults on
/// the host) 1 MiB writes were consistently the slowest way to fill fresh page cache: 762 MiB
/// took 1.0-1.8 s of system time, against 0.2-1.1 s in 64-256 KiB writes, most likely because
/// the kernel sizes page cache folios after the write and large folios come from the large free
/// blocks, which are the ones handed back. With recently used memory 256 KiB and 1 MiB writes
/// cost the same (~0.15 s), and 16 KiB writes cost 0.3 s more CPU in the benchmark.
const WRITE: usize = 256 << 10;
/// Chunks each consumer may have queued: enough slack to absorb scheduling jitter.
const DEPTH: usize = 3;
/// Alignment of chunk data in memory, file offsets and lengths that `O_DIRECT` accepts on any
/// common device (the logical block size is 512 or 4096 bytes).
const ALIGN: usize = 4096;
/// Extra bytes the SHA-1 split may keep in flight (see `sha1_threads`).
const SHA1_SPLIT_BYTES: u64 = 16 << 20;

/// What one pass over a package produced.
#[derive(Debug, Clone)]
pub struct Packed {
    pub name: PackageName,
    pub version: semver::Version,
    pub description: Option<String>,
    /// `depends` and `conflicts` of its manifest.
    pub relations: crate::format::relations::Relations,
    /// What it puts into the profile's `bin/`: the names in `assets/bin`, sorted.
    pub executables: Vec<String>,
    pub size: u64,
    /// BLAKE3 of the tarball.
    pub blake3: ObjectId,
    pub info: Info,
    pub infohash: InfoHash,
}

impl Packed {
    /// `name@version`, as messages name it.
    pub fn id(&self) -> PackageId {
        PackageId::new(self.name.clone(), self.version.clone())
    }

    /// The magnet link without trackers or web seeds (those are configuration, added by serve).
    pub fn magnet(&self) -> String {
        torrent::magnet(&self.infohash, &self.info.name, self.size, &[], &[])
    }
}

/// Streams the canonical tarball of `pkg` into `out` and returns its digests.
pub fn pack_to(pkg: &Package, out: &mut (dyn Write + Send)) -> Result<Packed> {
    pack_into(pkg, Dest::Stream(out))
}

/// Packs `pkg` into `file` at the chunks' offsets: through `direct` (the same file opened with
/// `O_DIRECT`) while a write is aligned and the filesystem accepts it, through `file` otherwise.
/// The atomic file around it is the caller's (`store::archive::pack_file`).
pub fn pack_to_file(pkg: &Package, file: &File, direct: Option<File>) -> Result<Packed> {
    pack_into(pkg, Dest::File { file, direct })
}

/// True if an archive of `pkg` is large enough for `O_DIRECT` to pay: only full chunks are
/// written directly, so an archive smaller than one does not need it.
pub fn direct_pays(pkg: &Package) -> bool {
    canon::archive_size(&pkg.entries) >= CHUNK as u64
}

/// How many threads share the SHA-1 pieces. Each one beyond the first needs the reader to run
/// a piece further ahead of the slowest one (see `pack_into`), so large pieces get fewer threads:
/// at most `SHA1_SPLIT_BYTES` of extra chunks are in flight, whatever the package size.
/// An archive of one piece (most packages are a few KiB) gets one thread.
fn sha1_threads(size: u64, piece_length: u64) -> usize {
    let pieces = size.div_ceil(piece_length) as usize;
    if pieces <= 1 {
        return 1;
    }
    // available_parallelism reads the cgroup CPU limits each time: ask once per process.
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores =
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    let by_memory = 1 + (SHA1_SPLIT_BYTES / piece_length) as usize;
    // Two even on one or two cores: the scheduler balances two SHA-1 threads against the
    // reader, writer and BLAKE3 threads better than one long one.
    cores.clamp(2, 4).min(by_memory).min(pieces)
}

fn pack_into(pkg: &Package, dest: Dest<'_>) -> Result<Packed> {
    let size = canon::archive_size(&pkg.entries);
    let piece_length = canon::piece_length(size);
    let n_sha = sha1_threads(size, piece_length);
    // SHA-1 thread k hashes pieces k, k + n, ...: for thread n - 1 to work on its piece while
    // thread 0 is still on the first one, the reader must be able to run (n - 1) pieces ahead.
    // Chunks alive stay below the deepest queue plus three (the one its consumer holds, the one
    // being sent, the one being filled): at most DEPTH + SHA1_SPLIT_BYTES / CHUNK + 3 = 22 MiB.
    let sha_depth = DEPTH + (n_sha - 1) * (piece_length as usize).div_ceil(CHUNK);
    let (w_tx, w_rx) = sync_channel::<Arc<Chunk>>(DEPTH);
    let (b3_tx, b3_rx) = sync_channel::<Arc<Chunk>>(DEPTH);
    let mut txs = vec![w_tx, b3_tx];
    let mut sha_rxs = Vec::new();
    for _ in 0..n_sha {
        let (tx, rx) = sync_channel::<Arc<Chunk>>(sha_depth);
        txs.push(tx);
        sha_rxs.push(rx);
    }

    let (digest, pieces, written) = std::thread::scope(|s| -> Result<_> {
        let writer = s.spawn(move || write_worker(w_rx, dest));
        let b3 = s.spawn(move || blake3_worker(b3_rx));
        let shas: Vec<_> = sha_rxs
            .into_iter()
            .enumerate()
            .map(|(k, rx)| s.spawn(move || piece_worker(rx, piece_length, k, n_sha)))
            .collect();
        let mut sink = Sink {
            // A package smaller than a chunk (most are a few KiB) gets buffers of its size.
            cap: CHUNK.min(size as usize),
            chunk: Chunk::new(CHUNK.min(size as usize)),
            txs,
            in_flight: VecDeque::new(),
            written: 0,
        };
        let produced = produce(pkg, &mut sink).and_then(|()| sink.finish());
        drop(sink);
        let wrote = writer.join().expect("writer thread");
        let digest = b3.join().expect("blake3 thread");
        let per_thread: Vec<Vec<[u8; 20]>> = shas
            .into_iter()
            .map(|t| t.join().expect("sha1 thread"))
            .collect();
        wrote.context("cannot write the archive")?;
        let written = produced?;
        // Piece p is entry p / n of thread p % n.
        let count: usize = per_thread.iter().map(Vec::len).sum();
        let mut pieces = Vec::with_capacity(count * 20);
        for p in 0..count {
            pieces.extend_from_slice(&per_thread[p % n_sha][p / n_sha]);
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
        version: m.version.clone(),
        description: m.description.clone(),
        relations: m.relations.clone(),
        executables: pkg.executables(),
        size,
        blake3: ObjectId::from_bytes(*digest.as_bytes()),
        infohash: info.infohash(),
        info,
    })
}

/// One chunk of the archive and where it starts in it.
struct Chunk {
    /// `cap + ALIGN` bytes, zeroed once when the chunk is made; recycled chunks are filled
    /// over, so no pass zeroes or faults in memory per chunk.
    buf: Vec<u8>,
    /// Where the data starts in `buf`: the first `ALIGN`-aligned address, for `O_DIRECT`.
    start: usize,
    /// Bytes the chunk holds when full: `CHUNK`, or less for a package smaller than that.
    cap: usize,
    len: usize,
    /// Position of the first byte in the archive.
    offset: u64,
}

impl Chunk {
    fn new(cap: usize) -> Chunk {
        let buf = vec![0u8; cap + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Chunk {
            buf,
            start,
            cap,
            len: 0,
            offset: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// The unfilled part, at most `max` bytes.
    fn spare(&mut self, max: usize) -> &mut [u8] {
        let at = self.start + self.len;
        let n = (self.cap - self.len).min(max);
        &mut self.buf[at..at + n]
    }
}

/// Where the archive goes.
enum Dest<'a> {
    Stream(&'a mut (dyn Write + Send)),
    /// A file written at the chunks' offsets; through `direct` (the same file opened with
    /// `O_DIRECT`) while the write is aligned and the filesystem accepts it.
    File {
        file: &'a File,
        direct: Option<File>,
    },
}

impl Dest<'_> {
    fn write(&mut self, c: &Chunk) -> std::io::Result<()> {
        match self {
            Dest::Stream(w) => {
                for part in c.data().chunks(WRITE) {
                    w.write_all(part)?;
                }
                Ok(())
            }
            Dest::File { file, direct } => {
                // Every chunk but the last is CHUNK bytes at a multiple of CHUNK, so aligned;
                // the last one (a multiple of 512 bytes) goes through the page cache.
                if let Some(d) = direct.as_ref().filter(|_| c.len == CHUNK) {
                    match d.write_all_at(c.data(), c.offset) {
                        Ok(()) => return Ok(()),
                        // A device that wants more alignment: no more direct writes. Anything
                        // written so far is in the file; this chunk is written again below.
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => *direct = None,
                        Err(e) => return Err(e),
                    }
                }
                let mut offset = c.offset;
                for part in c.data().chunks(WRITE) {
                    file.write_all_at(part, offset)?;
                    offset += part.len() as u64;
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Dest::Stream(w) => w.flush(),
            Dest::File { .. } => Ok(()),
        }
    }
}

struct Sink {
    /// Capacity of new chunks.
    cap: usize,
    chunk: Chunk,
    txs: Vec<SyncSender<Arc<Chunk>>>,
    /// Chunks handed out, oldest first; reused once every consumer has dropped its reference,
    /// so the pass touches a fixed set of buffers instead of faulting in fresh pages per chunk.
    in_flight: VecDeque<Arc<Chunk>>,
    written: u64,
}

impl Sink {
    fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let spare = self.chunk.spare(bytes.len());
            let n = spare.len();
            spare.copy_from_slice(&bytes[..n]);
            self.chunk.len += n;
            bytes = &bytes[n..];
            if self.chunk.is_full() {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Reads exactly `size` bytes of `file` straight into the chunks.
    fn copy_from(&mut self, file: &mut File, size: u64, path: &Path) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let spare = self.chunk.spare(left.min(CHUNK as u64) as usize);
            let n = file
                .read(spare)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                bail!("{}: the file shrank while it was packed", path.display());
            }
            self.chunk.len += n;
            left -= n as u64;
            if self.chunk.is_full() {
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
        if self.chunk.len == 0 {
            return Ok(());
        }
        let cap = self.cap;
        let next = self.recycled().unwrap_or_else(|| Chunk::new(cap));
        let mut chunk = std::mem::replace(&mut self.chunk, next);
        chunk.offset = self.written;
        self.written += chunk.len as u64;
        let chunk = Arc::new(chunk);
        self.in_flight.push_back(Arc::clone(&chunk));
        for tx in &self.txs {
            if tx.send(Arc::clone(&chunk)).is_err() {
                // Only the writer hangs up early (on a write error, which its join reports).
                bail!("the archive writer stopped");
            }
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
            sink.push(&[0u8; ustar::BLOCK][..ustar::padding(size)])?;
        }
    }
    sink.push(&[0u8; 2 * ustar::BLOCK])
}

fn write_worker(rx: Receiver<Arc<Chunk>>, mut dest: Dest<'_>) -> std::io::Result<()> {
    for chunk in rx {
        dest.write(&chunk)?;
    }
    dest.flush()
}

fn blake3_worker(rx: Receiver<Arc<Chunk>>) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for chunk in rx {
        h.update(chunk.data());
    }
    h.finalize()
}

/// Hashes pieces `k`, `k + n`, `k + 2n`, ... of the chunks it is sent, in order, and skips the
/// bytes of the other pieces.
fn piece_worker(rx: Receiver<Arc<Chunk>>, piece_length: u64, k: usize, n: usize) -> Vec<[u8; 20]> {
    let (k, n) = (k as u64, n as u64);
    let mut pieces = Vec::new();
    let mut h = Sha1::new();
    let mut in_piece = 0u64;
    for chunk in rx {
        let data = chunk.data();
        let end = chunk.offset + data.len() as u64;
        let mut pos = chunk.offset;
        while pos < end {
            let piece = pos / piece_length;
            let upto = ((piece + 1) * piece_length).min(end);
            if piece % n == k {
                let from = (pos - chunk.offset) as usize;
                h.update(&data[from..from + (upto - pos) as usize]);
                in_piece += upto - pos;
                if in_piece == piece_length {
                    pieces.push(h.finalize_reset().into());
                    in_piece = 0;
                }
            }
            pos = upto;
        }
    }
    // The last piece is short unless the archive fills it exactly.
    if in_piece > 0 {
        pieces.push(h.finalize().into());
    }
    pieces
}
