//! Unpacking a verified object: plan (read every header and check the whole archive against
//! store-format.md §1 and §2.1 before writing a byte), write (re-read, create each entry
//! exclusively without following links, re-hash), and undo what was written if anything fails.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reader::{kind_word, ArchiveEntry, TarReader};
use super::{shown, ObjectError, VerifiedObject};
use crate::format::package::{check_symlink, EntryKind};
use crate::format::ustar::padded;

/// The entries allowed at the top of a package (store-format.md §1).
const TOP_LEVEL: [&str; 3] = ["assets", "manifest.yaml", "scripts"];
const STRAY: &str =
    "unexpected entry at the package's top level (allowed: manifest.yaml, assets/, scripts/)";

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
        undo(&created);
    }
    result
}

/// Removes what `write` created, in reverse order: children before their directories. Nothing
/// here follows a link: `remove_file` removes a symlink itself.
fn undo(created: &[(PathBuf, bool)]) {
    for (path, is_dir) in created.iter().rev() {
        let _ = if *is_dir {
            fs::remove_dir(path)
        } else {
            fs::remove_file(path)
        };
    }
}

/// Every entry of the archive (path without trailing `/`, kind), checked as unpacking checks
/// them, without writing anything: what `dist files` shows of a package not installed.
pub fn list(obj: &VerifiedObject) -> Result<Vec<(String, EntryKind)>, ObjectError> {
    Ok(plan(obj)?.into_iter().map(|e| (e.path, e.kind)).collect())
}

/// First pass: reads every header (skipping file data) and checks the whole archive.
pub(super) fn plan(obj: &VerifiedObject) -> Result<Vec<ArchiveEntry>, ObjectError> {
    let mut r = TarReader::new(obj, false);
    let mut plan: Vec<ArchiveEntry> = Vec::new();
    let mut kinds: BTreeMap<String, EntryKind> = BTreeMap::new();
    while let Some(e) = r.next_entry()? {
        check_place(&e.path, &kinds).map_err(|reason| ObjectError::Entry {
            archive: obj.path.clone(),
            entry: shown(&e.path),
            reason,
        })?;
        if let EntryKind::File { size, .. } = e.kind {
            r.skip(padded(size))?;
        }
        kinds.insert(e.path.clone(), e.kind.clone());
        plan.push(e);
    }
    let bad = |entry: &str, reason: String| ObjectError::Entry {
        archive: obj.path.clone(),
        entry: entry.to_string(),
        reason,
    };
    check_layout(&kinds).map_err(|(path, reason)| bad(path, reason.into()))?;
    let by_path: BTreeMap<&str, &EntryKind> = kinds.iter().map(|(p, k)| (p.as_str(), k)).collect();
    for e in &plan {
        if let EntryKind::Symlink { target } = &e.kind {
            check_symlink(&e.path, target, &by_path)
                .map_err(|reason| bad(&shown(&e.path), reason))?;
        }
    }
    Ok(plan)
}

/// Checks where an entry sits, given the entries before it (`kinds`): under an allowed top-level
/// name, not a duplicate, its parent an earlier directory entry.
fn check_place(path: &str, kinds: &BTreeMap<String, EntryKind>) -> Result<(), String> {
    let top = path.split('/').next().unwrap_or("");
    if !TOP_LEVEL.contains(&top) {
        return Err(STRAY.into());
    }
    if let Some(first) = kinds.get(path) {
        return Err(format!(
            "duplicate entry (an earlier entry is {} with the same path)",
            kind_word(first)
        ));
    }
    if let Some((parent, _)) = path.rsplit_once('/') {
        match kinds.get(parent) {
            Some(EntryKind::Dir) => {}
            Some(other) => {
                return Err(format!(
                    "its parent `{}` is {}, not a directory",
                    shown(parent),
                    kind_word(other)
                ))
            }
            None => {
                return Err(format!(
                    "its parent directory `{}` has no earlier entry",
                    shown(parent)
                ))
            }
        }
    }
    Ok(())
}

/// Checks the package layout (store-format.md §1) once every entry is known; the error names
/// the path that is missing or of the wrong kind.
fn check_layout(kinds: &BTreeMap<String, EntryKind>) -> Result<(), (&'static str, &'static str)> {
    const LAYOUT: &str =
        "missing (a package needs manifest.yaml, assets/, scripts/install.sh and scripts/uninstall.sh)";
    for (path, want_dir) in [
        ("manifest.yaml", false),
        ("assets", true),
        ("scripts/install.sh", false),
        ("scripts/uninstall.sh", false),
    ] {
        match (kinds.get(path), want_dir) {
            (None, _) => return Err((path, LAYOUT)),
            (Some(EntryKind::Dir), true) | (Some(EntryKind::File { .. }), false) => {}
            (Some(_), true) => return Err((path, "must be a directory")),
            (Some(_), false) => return Err((path, "must be a regular file")),
        }
    }
    Ok(())
}

/// Second pass: re-reads the archive, checks each entry is the planned one, writes it, and
/// re-hashes every byte so the tree is made of exactly the verified bytes.
fn write(
    obj: &VerifiedObject,
    plan: &[ArchiveEntry],
    dest: &Path,
    created: &mut Vec<(PathBuf, bool)>,
) -> Result<UnpackSummary, ObjectError> {
    let changed = |what: &str| ObjectError::Archive {
        archive: obj.path.clone(),
        reason: format!("the object changed on disk since it was verified ({what})"),
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
                write_dir(&path, created)?;
                summary.dirs += 1;
            }
            EntryKind::File { size, executable } => {
                write_file(&mut r, &path, *size, *executable, created)?;
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

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ObjectError {
    let path = path.to_path_buf();
    move |source| ObjectError::Write { path, source }
}

/// Creates the directory `path` with mode 0755 exactly.
fn write_dir(path: &Path, created: &mut Vec<(PathBuf, bool)>) -> Result<(), ObjectError> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(write_err(path))?;
    created.push((path.to_path_buf(), true));
    // Set the mode exactly (the umask may have cut it) through a handle opened without
    // following links.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .and_then(|d| d.set_permissions(fs::Permissions::from_mode(0o755)))
        .map_err(write_err(path))
}

/// Creates the file `path` from the next `size` bytes of `r` (then skips the block padding),
/// mode 0755 if `executable`, else 0644.
fn write_file(
    r: &mut TarReader,
    path: &Path,
    size: u64,
    executable: bool,
    created: &mut Vec<(PathBuf, bool)>,
) -> Result<(), ObjectError> {
    // O_EXCL (create_new) never follows or reuses an existing path; O_NOFOLLOW is belt and
    // braces for the last component.
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(write_err(path))?;
    created.push((path.to_path_buf(), false));
    r.copy_to(size, &mut f, path)?;
    r.skip(padded(size) - size)?;
    let mode = if executable { 0o755 } else { 0o644 };
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(write_err(path))
}
