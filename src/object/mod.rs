//! Verified objects: an object file becomes a [`VerifiedObject`] only by re-hashing its bytes
//! ([`verify_file`]), and only a verified object is unpacked ([`unpack`], after every header of
//! the archive passed the client rules of store-format.md §2.1).
//!
//! `reader` is the strict ustar reader over a verified object; `unpack` checks the whole archive
//! (plan), then writes it, and undoes what it wrote if anything fails.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::format::ids::ObjectId;

mod reader;
mod unpack;

pub use unpack::{list, unpack, UnpackSummary};

/// Reads and checks every header of `obj` as [`unpack`] does before writing a byte, and
/// returns how many entries it holds; writes nothing. For the coverage-guided fuzz targets
/// (`fuzz/`), which reach the strict reader without a destination directory.
#[doc(hidden)]
pub fn check_archive(obj: &VerifiedObject) -> Result<usize, ObjectError> {
    unpack::plan(obj).map(|plan| plan.len())
}

/// Bytes read at a time when hashing or copying file contents.
const BUF: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: blake3 mismatch: expected {expected}, found {found}")]
    Mismatch {
        path: PathBuf,
        expected: ObjectId,
        found: ObjectId,
    },
    /// One entry of the archive breaks a rule; `entry` is its path as the header spells it.
    #[error("{archive}: entry `{entry}`: {reason}")]
    Entry {
        archive: PathBuf,
        entry: String,
        reason: String,
    },
    /// The archive as a whole is malformed (truncated, trailing data, changed since verified).
    #[error("{archive}: {reason}")]
    Archive { archive: PathBuf, reason: String },
    #[error("{0}: the unpack destination must be an existing empty directory")]
    Dest(PathBuf),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the {what} is not valid UTF-8")]
    NotUtf8 { path: PathBuf, what: &'static str },
}

/// An object file whose bytes were re-hashed with BLAKE3 and matched the expected digest. Only
/// [`verify_file`] makes one; only a `VerifiedObject` can be unpacked or stored.
///
/// It keeps the file open, so replacing the path after verification changes nothing, and
/// [`unpack`] re-hashes what it reads, so rewriting the file in place is caught as well.
#[derive(Debug)]
pub struct VerifiedObject {
    path: PathBuf,
    id: ObjectId,
    size: u64,
    file: File,
}

impl VerifiedObject {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The BLAKE3 digest of the archive (the object name).
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// Size in bytes of the verified archive.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The verified file itself, still open: what a caller links into a store (through
    /// `/proc/self/fd`) so the bytes it stores are the ones that were hashed.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Re-hashes the file at `path` and returns it as verified if its BLAKE3 digest is `expected`.
pub fn verify_file(path: &Path, expected: &ObjectId) -> Result<VerifiedObject, ObjectError> {
    let read_err = |source| ObjectError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let (found, size) = hash_reader(&file).map_err(read_err)?;
    if found != *expected {
        return Err(ObjectError::Mismatch {
            path: path.to_path_buf(),
            expected: *expected,
            found,
        });
    }
    Ok(VerifiedObject {
        path: path.to_path_buf(),
        id: found,
        size,
        file,
    })
}

/// The BLAKE3 digest of the file at `path`, 64 lowercase hex digits, read in 1 MiB chunks.
pub fn hash_file(path: &Path) -> Result<String, ObjectError> {
    let read_err = |source| ObjectError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    hash_reader(&file)
        .map(|(id, _)| id.to_hex())
        .map_err(read_err)
}

fn hash_reader(mut r: impl Read) -> io::Result<(ObjectId, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((ObjectId::from_bytes(*hasher.finalize().as_bytes()), size))
}

/// A path or name as shown in an error: control characters and backslashes escaped, so a
/// hostile name cannot rewrite the terminal.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\\' {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn shown_bytes(b: &[u8]) -> String {
    shown(&String::from_utf8_lossy(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_control_characters() {
        assert_eq!(shown("a\nb\\c\u{1b}"), "a\\nb\\\\c\\u{1b}");
    }

    #[test]
    fn hash_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("obj");
        std::fs::write(&p, b"hello").unwrap();
        let want = blake3::hash(b"hello").to_hex().to_string();
        assert_eq!(hash_file(&p).unwrap(), want);
        let v = verify_file(&p, &ObjectId::parse(&want.to_uppercase()).unwrap()).unwrap();
        assert_eq!(
            (v.id().to_hex(), v.size(), v.path()),
            (want.clone(), 5, p.as_path())
        );
        let other = blake3::hash(b"other").to_hex().to_string();
        let e = verify_file(&p, &ObjectId::parse(&other).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&want) && e.contains(&other) && e.contains("obj"),
            "{e}"
        );
    }
}
