//! The strict reader of format v1 archives over a [`VerifiedObject`]: one logical entry at a
//! time (a PAX header merged into the entry it follows), every header field checked against
//! store-format.md §2 and §2.1, the field layout taken from `format::ustar`.
//!
//! This is our own reader rather than the `tar` crate: `tar` resolves GNU long names and PAX
//! headers silently, accepts base-256 numbers, old v7 headers and the `prefix` field, and its
//! `unpack_in` skips `..` entries and creates escaping symlinks. Here every byte we interpret is
//! checked, and anything we do not expect is refused.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{shown, shown_bytes, ObjectError, VerifiedObject, BUF};
use crate::format::canon::MAX_FILE_SIZE;
use crate::format::package::EntryKind;
use crate::format::ustar::{self, padded, BLOCK};

/// Largest PAX extended header we read into memory (format v1 needs a few hundred bytes).
const MAX_PAX: u64 = 64 * 1024;

/// One checked entry of the archive: its path (no trailing `/`) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ArchiveEntry {
    pub path: String,
    pub kind: EntryKind,
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

/// A strict reader of format v1 archives: one logical entry at a time, the caller consuming
/// each file's data ([`TarReader::skip`] or [`TarReader::copy_to`]).
pub(super) struct TarReader<'a> {
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
    /// A reader at the start of `obj`; with `hash`, every byte consumed is re-hashed
    /// ([`TarReader::finish_hash`]).
    pub(super) fn new(obj: &'a VerifiedObject, hash: bool) -> TarReader<'a> {
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
    pub(super) fn skip(&mut self, n: u64) -> Result<(), ObjectError> {
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
    pub(super) fn copy_to(
        &mut self,
        n: u64,
        out: &mut File,
        path: &Path,
    ) -> Result<(), ObjectError> {
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

    /// The BLAKE3 of every byte consumed, as lowercase hex (empty when not hashing).
    pub(super) fn finish_hash(&mut self) -> String {
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
    pub(super) fn next_entry(&mut self) -> Result<Option<ArchiveEntry>, ObjectError> {
        let mut pax: Option<Pax> = None;
        loop {
            let at = self.offset;
            let b = self.read_block()?;
            if b.iter().all(|&x| x == 0) {
                self.end_of_archive(at, pax.is_some())?;
                return Ok(None);
            }
            // The entry is named by its PAX path when there is one.
            let named = match pax.as_ref().and_then(|p| p.path.as_deref()) {
                Some(p) => shown(p),
                None => shown_bytes(ustar::cstr(&b[ustar::NAME])),
            };
            let size = check_header(&b, at).map_err(|r| self.entry_err(&named, r))?;
            if b[ustar::TYPEFLAG] == ustar::TYPE_PAX {
                pax = Some(self.read_pax(&named, size, pax.is_some())?);
                continue;
            }
            let e = decode(&b, size, pax.take().unwrap_or_default())
                .map_err(|r| self.entry_err(&named, r))?;
            let path = shown(&e.path);
            check_path(&e.path).map_err(|r| self.entry_err(&path, r))?;
            if let EntryKind::File { size, .. } = e.kind {
                self.check_data_fits(&path, size)?;
            }
            self.last = Some(path);
            return Ok(Some(e));
        }
    }

    /// After a zero block at `at`: the second one, then nothing. `pending_pax` says a PAX header
    /// came just before, which then has no entry to apply to.
    fn end_of_archive(&mut self, at: u64, pending_pax: bool) -> Result<(), ObjectError> {
        if pending_pax {
            return Err(self.entry_err(
                ustar::PAX_NAME,
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
        Ok(())
    }

    /// Reads the `size` bytes of data of a PAX header (`named` as the entry it applies to) and
    /// parses them; `pending` says another PAX header came just before.
    fn read_pax(&mut self, named: &str, size: u64, pending: bool) -> Result<Pax, ObjectError> {
        if pending {
            return Err(self.entry_err(named, "two PAX headers in a row".into()));
        }
        if size > MAX_PAX {
            return Err(self.entry_err(
                named,
                format!("a PAX header of {size} bytes (at most {MAX_PAX} are read)"),
            ));
        }
        self.check_data_fits(named, size)?;
        let mut data = vec![0u8; padded(size) as usize];
        self.read_exact(&mut data)?;
        Ok(parse_pax(&data[..size as usize]))
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

/// Checks what every header must have, PAX ones included: the checksum (`at` is the header's
/// offset, for the message), the ustar magic and a readable size, which it returns.
fn check_header(b: &[u8; BLOCK], at: u64) -> Result<u64, String> {
    let stored = ustar::decode_octal(&b[ustar::CHKSUM]);
    let computed = ustar::checksum(b);
    if stored != Some(computed) {
        return Err(format!(
            "header checksum mismatch at byte {at} (in octal, the header says {}, the bytes sum to {computed:o})",
            stored.map_or("nothing readable".to_string(), |s| format!("{s:o}"))
        ));
    }
    if b[ustar::MAGIC] != *ustar::USTAR_MAGIC || b[ustar::VERSION] != *ustar::USTAR_VERSION {
        return Err(format!(
            "not a POSIX ustar header (magic {:?})",
            String::from_utf8_lossy(&b[ustar::MAGIC.start..ustar::VERSION.end])
        ));
    }
    ustar::decode_octal(&b[ustar::SIZE])
        .ok_or_else(|| "the size field is not an octal number".into())
}

/// The entry a checked, non-PAX header describes, with the PAX overrides applied. Errors are
/// reasons against the entry as the header names it.
fn decode(b: &[u8; BLOCK], size: u64, pax: Pax) -> Result<ArchiveEntry, String> {
    let typeflag = b[ustar::TYPEFLAG];
    if let Some(what) = refused_type(typeflag, &b[ustar::LINKNAME]) {
        return Err(format!(
            "{what} is refused (format v1 has only regular files, directories and symlinks)"
        ));
    }
    if let Some(problem) = pax.problem {
        return Err(problem);
    }
    if b[ustar::PREFIX].iter().any(|&x| x != 0) {
        return Err("the header uses the ustar prefix field (format v1 never does)".into());
    }
    let mode =
        ustar::decode_octal(&b[ustar::MODE]).ok_or("the mode field is not an octal number")?;
    let path = match pax.path {
        Some(p) => p,
        None => utf8(ustar::cstr(&b[ustar::NAME])).ok_or("the path is not valid UTF-8")?,
    };
    let link = match (pax.linkpath, ustar::cstr(&b[ustar::LINKNAME])) {
        (Some(l), _) => Some(l),
        (None, []) => None,
        (None, l) => Some(utf8(l).ok_or("the link target is not valid UTF-8")?),
    };
    let entry = match typeflag {
        ustar::TYPE_DIR => {
            if size != 0 {
                return Err(format!("a directory entry with a size of {size} bytes"));
            }
            let path = path.strip_suffix('/').unwrap_or(&path).to_string();
            ArchiveEntry {
                path,
                kind: EntryKind::Dir,
            }
        }
        _ if path.ends_with('/') => {
            return Err("the path of a file or symlink ends with `/`".into());
        }
        ustar::TYPE_SYMLINK => symlink_entry(path, size, link.clone())?,
        _ => file_entry(path, size, mode)?,
    };
    if link.is_some() && !matches!(entry.kind, EntryKind::Symlink { .. }) {
        return Err(format!("{} carries a link target", kind_word(&entry.kind)));
    }
    Ok(entry)
}

fn symlink_entry(path: String, size: u64, link: Option<String>) -> Result<ArchiveEntry, String> {
    if size != 0 {
        return Err(format!("a symlink entry with a size of {size} bytes"));
    }
    let target = link.unwrap_or_default();
    if target.contains('\0') {
        return Err("the symlink target contains a NUL byte".into());
    }
    Ok(ArchiveEntry {
        path,
        kind: EntryKind::Symlink { target },
    })
}

fn file_entry(path: String, size: u64, mode: u64) -> Result<ArchiveEntry, String> {
    if size > MAX_FILE_SIZE {
        return Err(format!(
            "a file of {size} bytes (format v1 stores at most {MAX_FILE_SIZE})"
        ));
    }
    Ok(ArchiveEntry {
        path,
        kind: EntryKind::File {
            size,
            executable: mode & 0o100 != 0,
        },
    })
}

fn utf8(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// What an entry with this typeflag is, if format v1 refuses it (`link` is the header's link
/// field, named for hard links). NUL is an old-style regular file and accepted.
fn refused_type(typeflag: u8, link: &[u8]) -> Option<String> {
    match typeflag {
        ustar::TYPE_FILE | 0 | ustar::TYPE_DIR | ustar::TYPE_SYMLINK => None,
        b'1' => Some(format!(
            "a hard link (to `{}`)",
            shown_bytes(ustar::cstr(link))
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
    }
}

/// "a directory", "a regular file" or "a symlink", for messages.
pub(super) fn kind_word(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::Dir => "a directory",
        EntryKind::File { .. } => "a regular file",
        EntryKind::Symlink { .. } => "a symlink",
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

/// Applies format v1's rule to PAX records (store-format.md §2.1): only `path` and `linkpath`,
/// each at most once, UTF-8 values. The first problem is kept, not raised, so the error can
/// name the entry the header applies to.
fn parse_pax(data: &[u8]) -> Pax {
    let mut pax = Pax::default();
    for record in ustar::pax_records(data) {
        if let Err(problem) = pax_override(&mut pax, record) {
            pax.problem = Some(problem);
            break;
        }
    }
    pax
}

fn pax_override(
    pax: &mut Pax,
    record: Result<(&[u8], &[u8]), ustar::MalformedPax>,
) -> Result<(), String> {
    let (key, value) = record.map_err(|m| m.to_string())?;
    let slot = match key {
        b"path" => &mut pax.path,
        b"linkpath" => &mut pax.linkpath,
        _ => {
            return Err(format!(
                "the PAX header carries the key `{}` (only `path` and `linkpath` are allowed)",
                shown_bytes(key)
            ))
        }
    };
    if slot.is_some() {
        return Err(format!("the PAX key `{}` appears twice", shown_bytes(key)));
    }
    let value = utf8(value)
        .ok_or_else(|| format!("the PAX `{}` value is not valid UTF-8", shown_bytes(key)))?;
    *slot = Some(value);
    Ok(())
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
}
