//! Configuration files, as dpkg's conffiles: a package's manifest lists `config:` paths under
//! `assets/`; on first install each is copied to `ROOT/etc/<name>/<path>` and belongs to the
//! user from then on. On a version change a file the user did not change (it still equals the
//! old version's) is replaced by the new version's; a changed one is kept and the new version's
//! is written beside it as `<path>.dist-new`. Every write is atomic and remembered, so a
//! transition that fails puts every file back as it was.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::generation::Installed;
use super::Layout;
use crate::format::manifest::Manifest;
use crate::store::fsx;

/// The suffix of the new version's file written beside a file the user changed.
pub const NEW_SUFFIX: &str = ".dist-new";

/// What a transition wrote into `ROOT/etc/`, with what was there before, to put back.
#[derive(Debug, Default)]
pub struct Written {
    /// Each file written, with what it held before (`None`: it did not exist).
    before: Vec<(PathBuf, Option<Before>)>,
}

/// A file's content and mode before a transition wrote it.
#[derive(Debug)]
struct Before {
    bytes: Vec<u8>,
    mode: u32,
}

impl Written {
    /// Puts every file back as it was, newest write first; what cannot be put back is named.
    pub fn undo(self) -> Vec<String> {
        let mut failed = Vec::new();
        for (path, before) in self.before.into_iter().rev() {
            let r = match before {
                Some(b) => fsx::write_atomic(&path, &b.bytes, b.mode),
                None => std::fs::remove_file(&path)
                    .or_else(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => Ok(()),
                        _ => Err(e),
                    })
                    .with_context(|| format!("cannot remove {}", path.display())),
            };
            if let Err(e) = r {
                failed.push(format!("{e:#}"));
            }
        }
        failed
    }

    fn write(&mut self, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let before = match std::fs::read(path) {
            Ok(bytes) => Some(Before {
                bytes,
                mode: mode_of(path).unwrap_or(0o644),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // Recorded first: a write that fails half-way is put back too.
        self.before.push((path.to_path_buf(), before));
        fsx::write_atomic(path, bytes, mode)
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// The `config:` paths of an unpacked package (its manifest, verified with the object).
pub fn paths(store_path: &Path) -> Result<Vec<String>> {
    Ok(Manifest::load(store_path)
        .with_context(|| format!("cannot read the manifest of {}", store_path.display()))?
        .config)
}

/// A package's shipped copy of a configuration file.
fn shipped(p: &Installed, path: &str) -> PathBuf {
    p.store_path.join("assets").join(path)
}

/// Brings `ROOT/etc/<name>/` to `new`'s configuration files, `old` being the version it
/// replaces (if any). Writes are recorded in `written`; returns the files the user changed
/// and kept, for each of which `<path>.dist-new` now holds the new version's.
pub fn settle(
    layout: &Layout,
    old: Option<&Installed>,
    new: &Installed,
    written: &mut Written,
) -> Result<Vec<PathBuf>> {
    let dir = layout.config_dir(&new.name);
    let old_paths = match old {
        Some(o) => paths(&o.store_path)?,
        None => Vec::new(),
    };
    let mut kept = Vec::new();
    for path in paths(&new.store_path)? {
        let src = shipped(new, &path);
        let fresh =
            std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
        let mode = mode_of(&src).unwrap_or(0o644) | 0o200;
        let dest = dir.join(&path);
        let mine = match std::fs::read(&dest) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                written.write(&dest, &fresh, mode)?;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dest.display())),
        };
        if mine == fresh {
            continue;
        }
        let pristine = match old.filter(|_| old_paths.contains(&path)) {
            Some(o) => std::fs::read(shipped(o, &path)).ok(),
            None => None,
        };
        if pristine.as_deref() == Some(mine.as_slice()) {
            written.write(&dest, &fresh, mode_of(&dest).unwrap_or(mode))?;
        } else {
            let beside = beside(&dest);
            written.write(&beside, &fresh, mode)?;
            kept.push(dest);
        }
    }
    Ok(kept)
}

/// `<path>.dist-new`.
pub fn beside(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(NEW_SUFFIX);
    p.into()
}

/// The configuration files of an installed package that differ from what it ships (changed
/// or removed by the user), as paths under `ROOT/etc/<name>/`.
pub fn changed(layout: &Layout, p: &Installed) -> Result<Vec<String>> {
    let dir = layout.config_dir(&p.name);
    let mut out = Vec::new();
    for path in paths(&p.store_path)? {
        let mine = std::fs::read(dir.join(&path)).ok();
        let theirs = std::fs::read(shipped(p, &path)).ok();
        if mine.is_none() || mine != theirs {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_puts_back_what_was_there_and_removes_what_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("etc/a.conf");
        let b = dir.path().join("etc/sub/b.conf");
        std::fs::create_dir_all(a.parent().unwrap()).unwrap();
        std::fs::write(&a, "mine").unwrap();
        let mut w = Written::default();
        w.write(&a, b"theirs", 0o644).unwrap();
        w.write(&b, b"new", 0o644).unwrap();
        w.write(&a, b"again", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "again");
        assert!(w.undo().is_empty());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "mine");
        assert!(!b.exists());
    }
}
