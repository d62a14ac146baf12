//! The `--json` shapes of what is installed, file by file, in the store and in the profile:
//! `dist files`, `dist owner`.

use std::path::PathBuf;

use serde::Serialize;

use super::Package;

/// `dist files NAME --json`.
#[derive(Serialize)]
pub struct Files<'a> {
    #[serde(flatten)]
    pub package: Package<'a>,
    pub store_path: &'a PathBuf,
    /// Every path of the store path (absolute), with its kind (`dir`, `file`, `symlink`).
    pub files: Vec<FileEntry>,
    pub installed: bool,
}

/// `dist files NAME --json` for a package that is not installed: the index's newest version,
/// and what is known of its files without installing it.
#[derive(Serialize)]
pub struct FilesNotInstalled<'a> {
    #[serde(flatten)]
    pub package: Package<'a>,
    /// Always null: nothing is unpacked.
    pub store_path: Option<&'a PathBuf>,
    /// Paths relative to the package (`assets/bin/tool`); `profile` is where each would appear.
    pub files: Vec<FileEntry>,
    pub installed: bool,
    /// `object`: every path, read from its object in the local store; `index`: only the
    /// commands the index lists (the object is not here).
    pub source: &'static str,
}

#[derive(Serialize)]
pub struct FileEntry {
    pub path: String,
    pub kind: &'static str,
    /// Where it appears in the profile (`ROOT/current/lib/libjq.so.1`), for a path of the
    /// merged trees; null for the rest.
    pub profile: Option<String>,
}

/// `dist owner PATH --json`.
#[derive(Serialize)]
pub struct Owner<'a> {
    pub path: String,
    #[serde(flatten)]
    pub package: Package<'a>,
    pub store_path: &'a PathBuf,
}
