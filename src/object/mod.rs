//! Verified objects and safe unpacking: an object file becomes a [`VerifiedObject`] only by
//! re-hashing its bytes, and only a verified object is unpacked, after every header of the archive
//! passed the client rules of store-format.md §2.1. Also records an unpacked tree
//! ([`tree_record`]) and compares two records ([`diff_tree`]) for `dist verify`.
//!
//! The archive is read by a small strict ustar reader of our own rather than the `tar` crate:
//! `tar` resolves GNU long names and PAX headers silently, accepts base-256 numbers, old v7
//! headers and the `prefix` field, and its `unpack_in` skips `..` entries and creates escaping
//! symlinks. Here every byte we interpret is checked, and anything we do not expect is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::format::canon::MAX_FILE_SIZE;
use crate::format::ids::ObjectId;
use crate::format::package::{check_symlink, EntryKind};
use crate::format::ustar::{padded, BLOCK};

/// Bytes read at a time when hashing or copying file contents.
const BUF: usize = 1 << 20;
/// Largest PAX extended header we read into memory (format v1 needs a few hundred bytes).
const MAX_PAX: u64 = 64 * 1024;
/// The entries allowed at the top of a package (store-format.md §1).
const TOP_LEVEL: [&str; 3] = ["assets", "manifest.yaml", "scripts"];
const STRAY: &str =
    "unexpected entry at the package's top level (allowed: manifest.yaml, assets/, scripts/)";

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

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
}

/// Unpacks `obj` into `dest`, an existing empty directory (a staging directory the caller made
/// and will persist or drop).
///
/// The whole archive is checked before anything is written: the entry kinds, every path, the
/// order (each parent is an earlier directory entry, so nothing is ever written through a
/// symlink), duplicates, the package layout and every symlink target. Then a second pass writes
/// directories (0755), files (0644 or 0755) and symlinks, each created exclusively and without
/// following links, while re-hashing the archive; if the bytes no longer match the verified
/// digest, or any write fails, what was created is removed again.
pub fn unpack(obj: &VerifiedObject, dest: &Path) -> Result<UnpackSummary, ObjectError> {
    let is_empty_dir = fs::symlink_metadata(dest)
        .map(|m| m.is_dir())
        .unwrap_or(false)
        && fs::read_dir(dest)
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(false);
    if !is_empty_dir {
        return Err(ObjectError::Dest(dest.to_path_buf()));
    }
    let plan = plan(obj)?;
    let mut created = Vec::new();
    let result = write(obj, &plan, dest, &mut created);
    if result.is_err() {
        // Undo in reverse order: children before their directories. Nothing here follows a
        // link: `remove_file` removes a symlink itself.
        for (path, is_dir) in created.iter().rev() {
            let _ = if *is_dir {
                fs::remove_dir(path)
            } else {
                fs::remove_file(path)
            };
        }
    }
    result
}

/// One checked entry of the archive: its path (no trailing `/`) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    path: String,
    kind: EntryKind,
}

/// First pass: reads every header (skipping file data) and checks the whole archive.
fn plan(obj: &VerifiedObject) -> Result<Vec<Planned>, ObjectError> {
    let mut r = TarReader::new(obj, false);
    let mut plan: Vec<Planned> = Vec::new();
    let mut kinds: BTreeMap<String, EntryKind> = BTreeMap::new();
    while let Some(e) = r.next_entry()? {
        let bad = |reason: String| ObjectError::Entry {
            archive: obj.path.clone(),
            entry: shown(&e.path),
            reason,
        };
        let top = e.path.split('/').next().unwrap_or("");
        if !TOP_LEVEL.contains(&top) {
            return Err(bad(STRAY.into()));
        }
        if let Some(first) = kinds.get(&e.path) {
            return Err(bad(format!(
                "duplicate entry (an earlier entry is {} with the same path)",
                kind_word(first)
            )));
        }
        if let Some((parent, _)) = e.path.rsplit_once('/') {
            match kinds.get(parent) {
                Some(EntryKind::Dir) => {}
                Some(other) => {
                    return Err(bad(format!(
                        "its parent `{}` is {}, not a directory",
                        shown(parent),
                        kind_word(other)
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "its parent directory `{}` has no earlier entry",
                        shown(parent)
                    )))
                }
            }
        }
        if let EntryKind::File { size, .. } = e.kind {
            r.skip(padded(size))?;
        }
        kinds.insert(e.path.clone(), e.kind.clone());
        plan.push(e);
    }

    let bad = |entry: &str, reason: &str| ObjectError::Entry {
        archive: obj.path.clone(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    const LAYOUT: &str =
        "missing (a package needs manifest.yaml, assets/, scripts/install.sh and scripts/uninstall.sh)";
    for (path, want_dir) in [
        ("manifest.yaml", false),
        ("assets", true),
        ("scripts/install.sh", false),
        ("scripts/uninstall.sh", false),
    ] {
        match (kinds.get(path), want_dir) {
            (None, _) => return Err(bad(path, LAYOUT)),
            (Some(EntryKind::Dir), true) | (Some(EntryKind::File { .. }), false) => {}
            (Some(_), true) => return Err(bad(path, "must be a directory")),
            (Some(_), false) => return Err(bad(path, "must be a regular file")),
        }
    }

    let by_path: BTreeMap<&str, &EntryKind> = kinds.iter().map(|(p, k)| (p.as_str(), k)).collect();
    for e in &plan {
        if let EntryKind::Symlink { target } = &e.kind {
            check_symlink(&e.path, target, &by_path)
                .map_err(|reason| bad(&shown(&e.path), &reason))?;
        }
    }
    Ok(plan)
}

/// Second pass: re-reads the archive, checks each entry is the planned one, writes it, and
/// re-hashes every byte so the tree is made of exactly the verified bytes.
fn write(
    obj: &VerifiedObject,
    plan: &[Planned],
    dest: &Path,
    created: &mut Vec<(PathBuf, bool)>,
) -> Result<UnpackSummary, ObjectError> {
    let changed = |what: &str| ObjectError::Archive {
        archive: obj.path.clone(),
        reason: format!("the object changed on disk since it was verified ({what})"),
    };
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ObjectError::Write { path, source }
    };
    let mut r = TarReader::new(obj, true);
    let mut summary = UnpackSummary::default();
    for want in plan {
        let e = r
            .next_entry()?
            .ok_or_else(|| changed("it has fewer entries"))?;
        if e != *want {
            return Err(changed(&format!("entry `{}` differs", shown(&want.path))));
        }
        let path = dest.join(&e.path);
        match &e.kind {
            EntryKind::Dir => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&path)
                    .map_err(write_err(&path))?;
                created.push((path.clone(), true));
                // Set the mode exactly (the umask may have cut it) through a handle opened
                // without following links.
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(&path)
                    .and_then(|d| d.set_permissions(fs::Permissions::from_mode(0o755)))
                    .map_err(write_err(&path))?;
                summary.dirs += 1;
            }
            EntryKind::File { size, executable } => {
                // O_EXCL (create_new) never follows or reuses an existing path; O_NOFOLLOW is
                // belt and braces for the last component.
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path)
                    .map_err(write_err(&path))?;
                created.push((path.clone(), false));
                r.copy_to(*size, &mut f, &path)?;
                r.skip(padded(*size) - size)?;
                let mode = if *executable { 0o755 } else { 0o644 };
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(write_err(&path))?;
                summary.files += 1;
                summary.bytes += size;
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path).map_err(write_err(&path))?;
                created.push((path.clone(), false));
                summary.symlinks += 1;
            }
        }
    }
    if r.next_entry()?.is_some() {
        return Err(changed("it has more entries"));
    }
    let found = r.finish_hash();
    if found != obj.id.to_hex() {
        return Err(changed(&format!("blake3 expected {}, now {found}", obj.id)));
    }
    Ok(summary)
}

/// Positional reads of the object's open file: concurrent unpacks of one object do not share
/// a file offset.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(_) => None,
        };
        self.pos = pos.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// A strict reader of format v1 archives: one logical entry at a time (a PAX header is merged
/// into the entry it precedes), the caller consuming each file's data.
struct TarReader<'a> {
    archive: &'a Path,
    src: BufReader<At<'a>>,
    /// Bytes of the archive consumed so far.
    offset: u64,
    /// Size of the verified archive; nothing past it is read.
    len: u64,
    hasher: Option<blake3::Hasher>,
    /// The last entry read, to say where a truncated archive stops.
    last: Option<String>,
}

/// A parsed PAX extended header: the overrides and the first problem found, reported against
/// the entry that follows so the error can name it.
#[derive(Default)]
struct Pax {
    path: Option<String>,
    linkpath: Option<String>,
    problem: Option<String>,
}

impl<'a> TarReader<'a> {
    fn new(obj: &'a VerifiedObject, hash: bool) -> TarReader<'a> {
        TarReader {
            archive: &obj.path,
            src: BufReader::with_capacity(
                64 * 1024,
                At {
                    file: &obj.file,
                    pos: 0,
                },
            ),
            offset: 0,
            len: obj.size,
            hasher: hash.then(blake3::Hasher::new),
            last: None,
        }
    }

    fn archive_err(&self, reason: String) -> ObjectError {
        ObjectError::Archive {
            archive: self.archive.to_path_buf(),
            reason,
        }
    }

    fn entry_err(&self, entry: &str, reason: String) -> ObjectError {
        ObjectError::Entry {
            archive: self.archive.to_path_buf(),
            entry: entry.to_string(),
            reason,
        }
    }

    fn io_err(&self, e: io::Error) -> ObjectError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.archive_err(
                "the object changed on disk since it was verified (it is shorter now)".into(),
            )
        } else {
            ObjectError::Read {
                path: self.archive.to_path_buf(),
                source: e,
            }
        }
    }

    fn after_last(&self) -> String {
        match &self.last {
            Some(p) => format!("after entry `{p}`"),
            None => "before the first entry".into(),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ObjectError> {
        self.src.read_exact(buf).map_err(|e| self.io_err(e))?;
        if let Some(h) = &mut self.hasher {
            h.update(buf);
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Consumes `n` bytes: hashed when hashing, else skipped with a seek.
    fn skip(&mut self, n: u64) -> Result<(), ObjectError> {
        if self.hasher.is_some() {
            let mut buf = vec![0u8; BUF.min(n as usize)];
            let mut left = n;
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                self.read_exact(&mut buf[..k])?;
                left -= k as u64;
            }
        } else {
            let d =
                i64::try_from(n).map_err(|_| self.io_err(io::ErrorKind::InvalidInput.into()))?;
            self.src.seek_relative(d).map_err(|e| self.io_err(e))?;
            self.offset += n;
        }
        Ok(())
    }

    /// Copies `n` bytes of file data into `out` (the hasher sees them too).
    fn copy_to(&mut self, n: u64, out: &mut File, path: &Path) -> Result<(), ObjectError> {
        let mut buf = vec![0u8; BUF.min(n as usize)];
        let mut left = n;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..k])?;
            out.write_all(&buf[..k])
                .map_err(|source| ObjectError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
            left -= k as u64;
        }
        Ok(())
    }

    fn finish_hash(&mut self) -> String {
        self.hasher
            .take()
            .map(|h| h.finalize().to_hex().to_string())
            .unwrap_or_default()
    }

    fn read_block(&mut self) -> Result<[u8; BLOCK], ObjectError> {
        if self.offset + BLOCK as u64 > self.len {
            return Err(self.archive_err(format!(
                "the archive is truncated: it ends at byte {} {}, without its two end-of-archive blocks",
                self.len,
                self.after_last()
            )));
        }
        let mut b = [0u8; BLOCK];
        self.read_exact(&mut b)?;
        Ok(b)
    }

    /// The next entry with its PAX overrides applied and every field checked, or `None` at the
    /// end of the archive (two zero blocks, then nothing). File data is left to the caller.
    fn next_entry(&mut self) -> Result<Option<Planned>, ObjectError> {
        let mut pax: Option<Pax> = None;
        loop {
            let at = self.offset;
            let b = self.read_block()?;
            if b.iter().all(|&x| x == 0) {
                if pax.is_some() {
                    return Err(self.entry_err(
                        "././@PaxHeader",
                        "a PAX header is followed by the end of the archive".into(),
                    ));
                }
                let second = self.read_block()?;
                if second.iter().any(|&x| x != 0) {
                    return Err(self.archive_err(format!(
                        "a lone zero block at byte {at} {} (an archive ends with two)",
                        self.after_last()
                    )));
                }
                if self.offset != self.len {
                    return Err(self.archive_err(format!(
                        "{} bytes follow the end-of-archive blocks",
                        self.len - self.offset
                    )));
                }
                return Ok(None);
            }

            let name = shown_bytes(cstr(&b[..100]));
            // The entry is named by its PAX path when there is one.
            let named = pax
                .as_ref()
                .and_then(|p| p.path.as_deref())
                .map(shown)
                .unwrap_or_else(|| name.clone());
            let bad = |reason: String| self.entry_err(&named, reason);

            let stored = octal(&b[148..156]);
            let computed: u64 = b[..148]
                .iter()
                .chain(&[b' '; 8])
                .chain(&b[156..])
                .map(|&x| x as u64)
                .sum();
            if stored != Some(computed) {
                return Err(bad(format!(
                    "header checksum mismatch at byte {at} (in octal, the header says {}, the bytes sum to {computed:o})",
                    stored.map_or("nothing readable".to_string(), |s| format!("{s:o}"))
                )));
            }
            if &b[257..263] != b"ustar\0" || &b[263..265] != b"00" {
                return Err(bad(format!(
                    "not a POSIX ustar header (magic {:?})",
                    String::from_utf8_lossy(&b[257..265])
                )));
            }
            let size = octal(&b[124..136])
                .ok_or_else(|| bad("the size field is not an octal number".into()))?;
            let typeflag = b[156];

            if typeflag == b'x' {
                if pax.is_some() {
                    return Err(bad("two PAX headers in a row".into()));
                }
                if size > MAX_PAX {
                    return Err(bad(format!(
                        "a PAX header of {size} bytes (at most {MAX_PAX} are read)"
                    )));
                }
                self.check_data_fits(&named, size)?;
                let mut data = vec![0u8; padded(size) as usize];
                self.read_exact(&mut data)?;
                pax = Some(parse_pax(&data[..size as usize]));
                continue;
            }
            let what = match typeflag {
                b'0' | 0 | b'5' | b'2' => None,
                b'1' => Some(format!(
                    "a hard link (to `{}`)",
                    shown_bytes(cstr(&b[157..257]))
                )),
                b'3' => Some("a character device".into()),
                b'4' => Some("a block device".into()),
                b'6' => Some("a FIFO".into()),
                b'7' => Some("a contiguous file".into()),
                b'g' => Some("a global PAX header".into()),
                b'L' => Some("a GNU long name header".into()),
                b'K' => Some("a GNU long link name header".into()),
                b'S' => Some("a GNU sparse file".into()),
                c => Some(format!("an entry of unknown type {:?}", c as char)),
            };
            if let Some(what) = what {
                return Err(bad(format!(
                    "{what} is refused (format v1 has only regular files, directories and symlinks)"
                )));
            }
            let pax = pax.take().unwrap_or_default();
            if let Some(problem) = pax.problem {
                return Err(bad(problem));
            }
            if b[345..500].iter().any(|&x| x != 0) {
                return Err(bad(
                    "the header uses the ustar prefix field (format v1 never does)".into(),
                ));
            }
            let mode = octal(&b[100..108])
                .ok_or_else(|| bad("the mode field is not an octal number".into()))?;
            let raw_path = match pax.path {
                Some(p) => p,
                None => String::from_utf8(cstr(&b[..100]).to_vec())
                    .map_err(|_| bad("the path is not valid UTF-8".into()))?,
            };
            let link = match pax.linkpath {
                Some(l) => Some(l),
                None => {
                    let l = cstr(&b[157..257]);
                    if l.is_empty() {
                        None
                    } else {
                        Some(
                            String::from_utf8(l.to_vec())
                                .map_err(|_| bad("the link target is not valid UTF-8".into()))?,
                        )
                    }
                }
            };

            let (path, kind) = if typeflag == b'5' {
                let path = raw_path.strip_suffix('/').unwrap_or(&raw_path).to_string();
                if size != 0 {
                    return Err(bad(format!(
                        "a directory entry with a size of {size} bytes"
                    )));
                }
                (path, EntryKind::Dir)
            } else {
                if raw_path.ends_with('/') {
                    return Err(bad("the path of a file or symlink ends with `/`".into()));
                }
                if typeflag == b'2' {
                    if size != 0 {
                        return Err(bad(format!("a symlink entry with a size of {size} bytes")));
                    }
                    let target = link.clone().unwrap_or_default();
                    if target.contains('\0') {
                        return Err(bad("the symlink target contains a NUL byte".into()));
                    }
                    (raw_path, EntryKind::Symlink { target })
                } else {
                    if size > MAX_FILE_SIZE {
                        return Err(bad(format!(
                            "a file of {size} bytes (format v1 stores at most {MAX_FILE_SIZE})"
                        )));
                    }
                    (
                        raw_path,
                        EntryKind::File {
                            size,
                            executable: mode & 0o100 != 0,
                        },
                    )
                }
            };
            if link.is_some() && !matches!(kind, EntryKind::Symlink { .. }) {
                return Err(bad(format!("{} carries a link target", kind_word(&kind))));
            }
            check_path(&path).map_err(|reason| self.entry_err(&shown(&path), reason))?;
            if let EntryKind::File { size, .. } = kind {
                self.check_data_fits(&shown(&path), size)?;
            }
            self.last = Some(shown(&path));
            return Ok(Some(Planned { path, kind }));
        }
    }

    /// Refuses an entry (`shown` already) whose data, padded to a block, runs past the end.
    fn check_data_fits(&self, entry: &str, size: u64) -> Result<(), ObjectError> {
        let left = self.len - self.offset;
        if padded(size) > left {
            return Err(self.entry_err(
                entry,
                format!(
                    "the archive is truncated: the entry announces {size} bytes of data, {left} bytes are left"
                ),
            ));
        }
        Ok(())
    }
}

/// Checks a package-relative path: relative, no empty, `.` or `..` component, no backslash or
/// control character.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.starts_with('/') {
        return Err("absolute path (entries must be relative to the package root)".into());
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err("the path contains a backslash or a control character".into());
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err("the path has an empty component".into()),
            "." => return Err("the path has a `.` component".into()),
            ".." => return Err("the path has a `..` component (it would leave the package)".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Parses PAX records `"<len> <key>=<value>\n"`; only `path` and `linkpath` are allowed, once.
fn parse_pax(mut rest: &[u8]) -> Pax {
    let mut pax = Pax::default();
    let malformed = |why: &str| Some(format!("malformed PAX record ({why})"));
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&c| c == b' ') else {
            pax.problem = malformed("no length");
            return pax;
        };
        let len = std::str::from_utf8(&rest[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok());
        let Some(len) = len.filter(|&l| l > sp + 1 && l <= rest.len()) else {
            pax.problem = malformed("bad length");
            return pax;
        };
        let record = &rest[sp + 1..len];
        let Some(body) = record.strip_suffix(b"\n") else {
            pax.problem = malformed("no trailing newline");
            return pax;
        };
        let Some(eq) = body.iter().position(|&c| c == b'=') else {
            pax.problem = malformed("no `=`");
            return pax;
        };
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        let slot = match key {
            b"path" => &mut pax.path,
            b"linkpath" => &mut pax.linkpath,
            _ => {
                pax.problem = Some(format!(
                    "the PAX header carries the key `{}` (only `path` and `linkpath` are allowed)",
                    shown_bytes(key)
                ));
                return pax;
            }
        };
        if slot.is_some() {
            pax.problem = Some(format!("the PAX key `{}` appears twice", shown_bytes(key)));
            return pax;
        }
        match String::from_utf8(value.to_vec()) {
            Ok(v) => *slot = Some(v),
            Err(_) => {
                pax.problem = Some(format!(
                    "the PAX `{}` value is not valid UTF-8",
                    shown_bytes(key)
                ));
                return pax;
            }
        }
        rest = &rest[len..];
    }
    pax
}

/// A header string field: the bytes before the first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

/// An octal number field: optional leading spaces, octal digits, then NULs or spaces.
fn octal(field: &[u8]) -> Option<u64> {
    let s = field.iter().skip_while(|&&c| c == b' ');
    let digits: Vec<u8> = s
        .clone()
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    let rest_ok = s.skip(digits.len()).all(|&c| c == 0 || c == b' ');
    if digits.is_empty() || !rest_ok || digits.len() > 21 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let d = (d as char).to_digit(8)? as u64;
        acc.checked_mul(8)?.checked_add(d)
    })
}

/// A path or name as shown in an error: control characters and backslashes escaped, so a
/// hostile name cannot rewrite the terminal.
fn shown(s: &str) -> String {
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

fn kind_word(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::Dir => "a directory",
        EntryKind::File { .. } => "a regular file",
        EntryKind::Symlink { .. } => "a symlink",
    }
}

/// One path of an unpacked tree, as recorded for `dist verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Relative to the tree's root, `/`-separated.
    pub path: String,
    #[serde(flatten)]
    pub kind: TreeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TreeKind {
    Dir,
    /// A regular file: its size, whether the owner may execute it, the BLAKE3 of its content.
    File {
        size: u64,
        executable: bool,
        blake3: String,
    },
    Symlink {
        target: String,
    },
    /// Something a package never contains (a FIFO, a socket, a device), named.
    Other {
        file_type: String,
    },
}

impl TreeKind {
    fn word(&self) -> String {
        match self {
            TreeKind::Dir => "a directory".into(),
            TreeKind::File { .. } => "a regular file".into(),
            TreeKind::Symlink { .. } => "a symlink".into(),
            TreeKind::Other { file_type } => format!("a {file_type}"),
        }
    }
}

/// Lists every path below `root` (not `root` itself, not following symlinks), sorted by the
/// byte order of the path.
pub fn tree_record(root: &Path) -> Result<Vec<TreeEntry>, ObjectError> {
    let mut out = Vec::new();
    record_dir(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(out)
}

fn record_dir(root: &Path, dir: &Path, out: &mut Vec<TreeEntry>) -> Result<(), ObjectError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ObjectError::Read { path, source }
    };
    for item in fs::read_dir(dir).map_err(read_err(dir))? {
        let path = item.map_err(read_err(dir))?.path();
        let rel = path
            .strip_prefix(root)
            .expect("read_dir stays below root")
            .to_str()
            .ok_or_else(|| ObjectError::NotUtf8 {
                path: path.clone(),
                what: "path",
            })?
            .to_string();
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            record_dir(root, &path, out)?;
            TreeKind::Dir
        } else if ft.is_file() {
            TreeKind::File {
                size: meta.len(),
                executable: meta.mode() & 0o100 != 0,
                blake3: hash_file(&path)?,
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(read_err(&path))?;
            TreeKind::Symlink {
                target: target
                    .to_str()
                    .ok_or_else(|| ObjectError::NotUtf8 {
                        path: path.clone(),
                        what: "symlink target",
                    })?
                    .to_string(),
            }
        } else {
            let file_type = if ft.is_fifo() {
                "FIFO"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_char_device() {
                "character device"
            } else {
                "file of unknown type"
            };
            TreeKind::Other {
                file_type: file_type.into(),
            }
        };
        out.push(TreeEntry { path: rel, kind });
    }
    Ok(())
}

/// The differences between a recorded tree and the tree as it is now, one line per problem,
/// sorted by path: `missing`, `unexpected`, a changed kind, content, mode or link target.
pub fn diff_tree(recorded: &[TreeEntry], actual: &[TreeEntry]) -> Vec<String> {
    let was: BTreeMap<&str, &TreeKind> = recorded
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let now: BTreeMap<&str, &TreeKind> =
        actual.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
    let paths: BTreeSet<&str> = was.keys().chain(now.keys()).copied().collect();
    let mut out = Vec::new();
    for p in paths {
        let shown_p = shown(p);
        match (was.get(p), now.get(p)) {
            (Some(_), None) => out.push(format!("{shown_p}: missing")),
            (None, Some(_)) => out.push(format!("{shown_p}: unexpected")),
            (Some(a), Some(b)) => match (a, b) {
                (
                    TreeKind::File {
                        size: sa,
                        executable: xa,
                        blake3: ha,
                    },
                    TreeKind::File {
                        size: sb,
                        executable: xb,
                        blake3: hb,
                    },
                ) => {
                    if ha != hb {
                        out.push(format!(
                            "{shown_p}: content changed (blake3 {ha}, now {hb})"
                        ));
                    } else if sa != sb {
                        out.push(format!("{shown_p}: size changed ({sa} bytes, now {sb})"));
                    }
                    if xa != xb {
                        let word = |x: &bool| if *x { "executable" } else { "not executable" };
                        out.push(format!(
                            "{shown_p}: mode changed (was {}, now {})",
                            word(xa),
                            word(xb)
                        ));
                    }
                }
                (TreeKind::Symlink { target: ta }, TreeKind::Symlink { target: tb }) => {
                    if ta != tb {
                        out.push(format!(
                            "{shown_p}: link target changed (`{}`, now `{}`)",
                            shown(ta),
                            shown(tb)
                        ));
                    }
                }
                (a, b) if a == b => {}
                (a, b) => out.push(format!("{shown_p}: was {}, now {}", a.word(), b.word())),
            },
            (None, None) => unreachable!("path comes from one of the records"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert!(check_path("assets/a/b").is_ok());
        assert!(check_path("manifest.yaml").is_ok());
        for (p, want) in [
            ("", "empty"),
            ("/tmp/evil", "absolute"),
            ("../evil", "`..`"),
            ("assets/../../evil", "`..`"),
            ("assets//x", "empty component"),
            ("assets/./x", "`.`"),
            ("assets/a\\b", "backslash"),
            ("assets/a\nb", "control"),
        ] {
            let e = check_path(p).unwrap_err();
            assert!(e.contains(want), "{p:?}: {e}");
        }
    }

    #[test]
    fn octal_fields() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"  755 \0"), Some(0o755));
        assert_eq!(octal(b"00000000005\0"), Some(5));
        assert_eq!(octal(b"\0\0\0\0"), None);
        assert_eq!(octal(b"0008\0"), None);
        assert_eq!(octal(b"12x4\0"), None);
        assert_eq!(octal(&[0x80, 0, 0, 0, 0, 0, 0, 1]), None); // base-256 is refused
    }

    #[test]
    fn pax_records() {
        let p = parse_pax(b"22 path=assets/abcdef\n17 linkpath=../x\n");
        assert_eq!(p.path.as_deref(), Some("assets/abcdef"));
        assert_eq!(p.linkpath.as_deref(), Some("../x"));
        assert!(p.problem.is_none());
        let p = parse_pax(b"12 uid=1000\n");
        assert!(p.problem.unwrap().contains("key `uid`"));
        let p = parse_pax(b"99 path=x\n");
        assert!(p.problem.unwrap().contains("malformed"));
        let p = parse_pax(b"11 path=ab\n11 path=cd\n");
        assert!(p.problem.unwrap().contains("twice"));
    }

    #[test]
    fn shown_escapes_control_characters() {
        assert_eq!(shown("a\nb\\c\u{1b}"), "a\\nb\\\\c\\u{1b}");
    }

    #[test]
    fn hash_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("obj");
        fs::write(&p, b"hello").unwrap();
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

    #[test]
    fn tree_entry_json_round_trip() {
        let entries = vec![
            TreeEntry {
                path: "assets".into(),
                kind: TreeKind::Dir,
            },
            TreeEntry {
                path: "assets/x".into(),
                kind: TreeKind::File {
                    size: 3,
                    executable: true,
                    blake3: "ab".into(),
                },
            },
            TreeEntry {
                path: "assets/l".into(),
                kind: TreeKind::Symlink { target: "x".into() },
            },
        ];
        let json = serde_json::to_string(&entries).unwrap();
        assert!(
            json.contains(r#"{"path":"assets/x","kind":"file","size":3"#),
            "{json}"
        );
        let back: Vec<TreeEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entries);
    }

    #[test]
    fn diff_reports_kind_changes_and_nothing_for_equal_trees() {
        let a = vec![TreeEntry {
            path: "assets/x".into(),
            kind: TreeKind::Dir,
        }];
        let b = vec![TreeEntry {
            path: "assets/x".into(),
            kind: TreeKind::Other {
                file_type: "FIFO".into(),
            },
        }];
        assert!(diff_tree(&a, &a).is_empty());
        assert_eq!(diff_tree(&a, &b), ["assets/x: was a directory, now a FIFO"]);
    }
}
