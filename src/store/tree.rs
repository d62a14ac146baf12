//! Tree records of unpacked store paths: [`tree_record`] lists every path below a root with its
//! kind, mode, content digest or link target (written beside a store path when it is unpacked),
//! and [`diff_tree`] compares a record with the tree as it is now, for `dist verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, FileType};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::object::{hash_file, shown, ObjectError};

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
            TreeKind::Other {
                file_type: other_type(ft).into(),
            }
        };
        out.push(TreeEntry { path: rel, kind });
    }
    Ok(())
}

/// The name of a file type that is neither a directory, a regular file nor a symlink.
fn other_type(ft: FileType) -> &'static str {
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "file of unknown type"
    }
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
            (Some(a), Some(b)) => diff_kind(&shown_p, a, b, &mut out),
            (None, None) => unreachable!("path comes from one of the records"),
        }
    }
    out
}

/// The differences at one path (`shown_p`, escaped) that is in both records.
fn diff_kind(shown_p: &str, was: &TreeKind, now: &TreeKind, out: &mut Vec<String>) {
    match (was, now) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
