//! The partial file and the body that goes into it: what of the file is kept, the hashes over
//! its prefix and every byte the body adds, the bound on the body, the check at its end.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use super::{Chunk, Ended, Error, Flow, Target, Watch};
use crate::format::ids::ObjectId;
use crate::format::torrent::PieceHasher;

/// An object's hashes as its bytes pass: BLAKE3 and, when asked, the torrent's pieces. A
/// `Write`, so a stored file can be hashed the same way with `std::io::copy`.
pub struct Hashes {
    blake3: blake3::Hasher,
    pieces: Option<PieceHasher>,
}

impl Hashes {
    /// For an object of `size` bytes (which decides the piece length).
    pub fn new(size: u64, pieces: bool) -> Hashes {
        Hashes {
            blake3: blake3::Hasher::new(),
            pieces: pieces.then(|| PieceHasher::new(size)),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        if let Some(p) = &mut self.pieces {
            p.update(bytes);
        }
    }

    /// The BLAKE3 of the bytes so far.
    pub fn blake3(&self) -> ObjectId {
        ObjectId::from_bytes(*self.blake3.finalize().as_bytes())
    }

    /// The BLAKE3 of every byte, and the pieces' hasher when asked for.
    pub fn finish(self) -> (ObjectId, Option<PieceHasher>) {
        (self.blake3(), self.pieces)
    }
}

impl Write for Hashes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn disk(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    let path = path.to_path_buf();
    Error::Disk {
        action,
        path,
        source,
    }
}

/// The bytes of the partial file to go on from: none when there is no file, and a file longer
/// than the object is removed.
pub(super) fn kept(target: &Target<'_>) -> Result<u64, Error> {
    let have = std::fs::metadata(target.part).map_or(0, |m| m.len());
    if have > target.size {
        remove(target.part)?;
        return Ok(0);
    }
    Ok(have)
}

pub(super) fn remove(part: &Path) -> Result<(), Error> {
    match std::fs::remove_file(part) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(disk("remove", part, e)),
        _ => Ok(()),
    }
}

/// The hashes of the first `len` bytes of the partial file (the prefix a download goes on from).
pub(super) fn hash_prefix(target: &Target<'_>, len: u64) -> Result<Hashes, Error> {
    let mut hashes = Hashes::new(target.size, target.pieces);
    if len > 0 {
        let file = File::open(target.part).map_err(|e| disk("read", target.part, e))?;
        std::io::copy(&mut file.take(len), &mut hashes)
            .map_err(|e| disk("read", target.part, e))?;
    }
    Ok(hashes)
}

/// Appends the body of `resp` (from byte `have` on, or the whole object when the server did not
/// answer the range with `206`) to the partial file, hashing every byte, telling `watch` after
/// each chunk; then checks the object is whole and is the one named.
pub(super) fn receive(
    resp: ureq::Response,
    target: &Target<'_>,
    have: u64,
    watch: &mut dyn Watch,
) -> Result<Ended, Error> {
    let (url, part, size) = (target.url, target.part, target.size);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .map_err(|e| disk("write", part, e))?;
    let have = if have > 0 && resp.status() != 206 {
        // The server ignored the range: start over.
        file.set_len(0).map_err(|e| disk("write", part, e))?;
        0
    } else {
        have
    };
    let mut hashes = hash_prefix(target, have)?;
    let stopped = || Error::Stopped {
        url: url.to_string(),
        waiting: false,
    };
    let start = Instant::now();
    let mut reader = resp.into_reader().take(size - have + 1);
    let mut buf = vec![0u8; watch.read_size().max(1)];
    let mut done = have;
    loop {
        if watch.stopped() {
            return Err(stopped());
        }
        let n = reader.read(&mut buf).map_err(|source| Error::Cut {
            url: url.to_string(),
            source,
        })?;
        if n == 0 {
            break;
        }
        done += n as u64;
        hashes.update(&buf[..n]);
        if done > size {
            let (url, found) = (url.to_string(), hashes.blake3());
            return Err(Error::TooLarge { url, size, found });
        }
        file.write_all(&buf[..n])
            .map_err(|e| disk("write", part, e))?;
        let at = Chunk {
            done,
            new: done - have,
            read: n as u64,
            took: start.elapsed(),
        };
        match watch.chunk(&at) {
            Flow::Go => {}
            Flow::Pause if done < size => {
                file.sync_all().map_err(|e| disk("fsync", part, e))?;
                return Ok(Ended::Paused { have: done });
            }
            Flow::Pause => break,
            Flow::Stop => return Err(stopped()),
        }
    }
    file.sync_all().map_err(|e| disk("fsync", part, e))?;
    check(target, done, done - have, hashes)
}

/// The end of a body: the whole object, or the typed error of what arrived instead (a partial
/// file whose `size` bytes are not the object is removed).
fn check(target: &Target<'_>, done: u64, received: u64, hashes: Hashes) -> Result<Ended, Error> {
    let url = target.url.to_string();
    let (found, pieces) = hashes.finish();
    if done < target.size {
        let size = target.size;
        return Err(Error::Short {
            url,
            got: done,
            size,
            found,
        });
    }
    if found != target.blake3 {
        remove(target.part)?;
        let expected = target.blake3;
        return Err(Error::HashMismatch {
            url,
            found,
            expected,
        });
    }
    Ok(Ended::Whole { received, pieces })
}
