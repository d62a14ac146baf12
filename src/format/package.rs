//! Reading a package directory: checks its layout and every entry, and lists the entries in
//! canonical order (byte order of the UTF-8 path) without reading file contents.
//! The symlink rule ("relative, resolving inside the package") is shared with unpacking.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::format::manifest::{Manifest, ManifestError};

/// What one archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file with its size and whether the owner may execute it.
    File {
        size: u64,
        executable: bool,
    },
    /// A relative symlink whose target resolves inside the package.
    Symlink {
        target: String,
    },
}

/// One entry of a package: a path relative to the package root, `/`-separated, no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

/// A checked package: its manifest and its entries in canonical order.
#[derive(Debug, Clone)]
pub struct Package {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{0} is not a package directory (it does not exist or is not a directory)")]
    NotADir(PathBuf),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: missing (a package needs manifest.yaml, assets/, scripts/install.sh and scripts/uninstall.sh)")]
    Missing { path: PathBuf },
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const TOP_LEVEL: [&str; 3] = ["assets", "manifest.yaml", "scripts"];

impl Package {
    /// The names it puts into the profile's `bin/`: the entries directly in `assets/bin`,
    /// sorted (entries are in canonical order, which may differ from byte order).
    pub fn executables(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .filter_map(|e| e.path.strip_prefix("assets/bin/"))
            .filter(|n| !n.contains('/'))
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Reads and checks the package at `root`.
    pub fn load(root: &Path) -> Result<Package, PackageError> {
        if !root.is_dir() {
            return Err(PackageError::NotADir(root.to_path_buf()));
        }
        let manifest = Manifest::load(root)?;
        let mut entries = Vec::new();
        walk(root, root, &mut entries)?;
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));

        let bad = |rel: &str, reason: &str| PackageError::Bad {
            path: root.join(rel),
            reason: reason.to_string(),
        };
        let kinds: BTreeMap<&str, &EntryKind> =
            entries.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
        for e in &entries {
            let top = e.path.split('/').next().unwrap_or("");
            if !TOP_LEVEL.contains(&top) {
                return Err(bad(
                    &e.path,
                    "unexpected entry at the package's top level (allowed: manifest.yaml, assets/, scripts/)",
                ));
            }
        }
        match kinds.get("manifest.yaml") {
            Some(EntryKind::File { .. }) => {}
            _ => return Err(bad("manifest.yaml", "must be a regular file")),
        }
        match kinds.get("assets") {
            Some(EntryKind::Dir) => {}
            None => {
                return Err(PackageError::Missing {
                    path: root.join("assets"),
                })
            }
            Some(_) => return Err(bad("assets", "must be a directory")),
        }
        for script in ["scripts/install.sh", "scripts/uninstall.sh"] {
            match kinds.get(script) {
                Some(EntryKind::File { .. }) => {}
                None => {
                    return Err(PackageError::Missing {
                        path: root.join(script),
                    })
                }
                Some(_) => return Err(bad(script, "must be a regular file")),
            }
        }
        for c in &manifest.config {
            let rel = format!("assets/{c}");
            if !matches!(kinds.get(rel.as_str()), Some(EntryKind::File { .. })) {
                return Err(PackageError::Bad {
                    path: root.join("manifest.yaml"),
                    reason: format!(
                        "field `config`: `{}` names {rel}, which is not a regular file of the package",
                        c.escape_default()
                    ),
                });
            }
        }
        for e in &entries {
            if let EntryKind::Symlink { target } = &e.kind {
                if let Err(reason) = check_symlink(&e.path, target, &kinds) {
                    return Err(bad(&e.path, &reason));
                }
            }
        }
        Ok(Package {
            root: root.to_path_buf(),
            manifest,
            entries,
        })
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) -> Result<(), PackageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::Io { path, source }
    };
    let rd = fs::read_dir(dir).map_err(io(dir))?;
    for item in rd {
        let item = item.map_err(io(dir))?;
        let path = item.path();
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        let rel = path
            .strip_prefix(root)
            .expect("walk stays below root")
            .to_str()
            .ok_or_else(|| PackageError::Bad {
                path: path.clone(),
                reason: "the path is not valid UTF-8".into(),
            })?
            .to_string();
        if rel.contains('\\') || rel.chars().any(|c| c.is_control()) {
            return Err(PackageError::Bad {
                path: path.clone(),
                reason: "the path contains a backslash or a control character".into(),
            });
        }
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File {
                size: meta.len(),
                executable: meta.mode() & 0o100 != 0,
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io(&path))?;
            let target = target.to_str().ok_or_else(|| PackageError::Bad {
                path: path.clone(),
                reason: "the symlink target is not valid UTF-8".into(),
            })?;
            EntryKind::Symlink {
                target: target.to_string(),
            }
        } else {
            let what = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_block_device() {
                "a block device"
            } else if ft.is_char_device() {
                "a character device"
            } else {
                "an unsupported file type"
            };
            return Err(PackageError::Bad {
                path,
                reason: format!("{what} cannot be packaged (only regular files, directories and relative symlinks inside the package)"),
            });
        };
        let is_dir = kind == EntryKind::Dir;
        out.push(Entry { path: rel, kind });
        if is_dir {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// Checks that the symlink at `link` (package-relative) with `target` resolves inside the
/// package, following symlinks of the package itself (`kinds`) on the way.
pub fn check_symlink(
    link: &str,
    target: &str,
    kinds: &BTreeMap<&str, &EntryKind>,
) -> Result<(), String> {
    if target.is_empty() {
        return Err("the symlink has an empty target".into());
    }
    if target.starts_with('/') {
        return Err(format!(
            "absolute symlink to `{target}` (only relative links inside the package are allowed)"
        ));
    }
    let mut stack = Walked::default();
    if let Some((dir, _)) = link.rsplit_once('/') {
        dir.split('/').for_each(|c| stack.push(c));
    }
    let mut budget = 40;
    resolve(&mut stack, target, kinds, &mut budget)
        .map_err(|e| format!("symlink to `{target}` {e}"))
}

/// Where a resolution stands: the package-relative path walked so far, kept joined (with where
/// each component starts) so that each step costs the component, not the whole path. Joining
/// the components at every step made a target of many components (a 64 KiB PAX `linkpath` of
/// `a/a/a/...`) cost quadratic time: a minute per symlink in a debug build.
#[derive(Default)]
struct Walked {
    path: String,
    starts: Vec<usize>,
}

impl Walked {
    fn push(&mut self, name: &str) {
        self.starts.push(self.path.len());
        if !self.path.is_empty() {
            self.path.push('/');
        }
        self.path.push_str(name);
    }

    fn pop(&mut self) -> Option<()> {
        self.path.truncate(self.starts.pop()?);
        Some(())
    }
}

fn resolve(
    stack: &mut Walked,
    target: &str,
    kinds: &BTreeMap<&str, &EntryKind>,
    budget: &mut u32,
) -> Result<(), String> {
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Err("points outside the package".into());
                }
            }
            name => {
                stack.push(name);
                if let Some(EntryKind::Symlink { target: inner }) = kinds.get(stack.path.as_str()) {
                    if *budget == 0 {
                        return Err("has too many levels of symbolic links".into());
                    }
                    *budget -= 1;
                    if inner.starts_with('/') {
                        return Err("goes through an absolute symlink".into());
                    }
                    stack.pop();
                    let inner = inner.clone();
                    resolve(stack, &inner, kinds, budget)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(link: &str, target: &str, others: &[(&str, &str)]) -> Result<(), String> {
        let kinds_owned: Vec<(String, EntryKind)> = others
            .iter()
            .map(|(p, t)| {
                (
                    p.to_string(),
                    EntryKind::Symlink {
                        target: t.to_string(),
                    },
                )
            })
            .collect();
        let kinds = kinds_owned.iter().map(|(p, k)| (p.as_str(), k)).collect();
        check_symlink(link, target, &kinds)
    }

    #[test]
    fn symlink_rules() {
        assert!(check("assets/a", "b", &[]).is_ok());
        assert!(check("assets/x/a", "../b", &[]).is_ok());
        assert!(check("assets/a", "../manifest.yaml", &[]).is_ok());
        assert!(check("assets/a", "../../etc", &[]).is_err());
        assert!(check("assets/a", "/etc/passwd", &[]).is_err());
        assert!(check("assets/a", "", &[]).is_err());
        // `x` points at the package root, so `x/..` leaves it even though it looks harmless.
        assert!(check("y", "x/..", &[("x", ".")]).is_err());
        // A loop is refused rather than followed forever.
        assert!(check("assets/a", "b/c", &[("assets/b", "b")]).is_err());
    }
}
