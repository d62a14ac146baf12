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
