//! The client: configuration, index sync, the store and generations, installs and their
//! transports. Commands in `src/commands/` call into here; nothing here prints (progress goes
//! through `Reporter`).

pub mod apply;
pub mod conffiles;
pub mod config;
pub mod config_file;
pub mod daemon;
mod deltas;
pub mod doctor;
pub(crate) mod fetch;
pub mod generation;
pub mod index_copy;
pub mod install;
pub mod interrupt;
pub mod launcher;
pub mod lockfile;
pub mod maintain;
mod offers;
pub mod offline;
pub mod plan;
pub mod profile;
mod reaper;
pub mod remove;
pub mod request;
pub mod resolve;
pub mod rollback;
pub mod rollout;
pub mod script_log;
pub mod scripts;
pub mod seeder;
pub mod seeding;
pub mod sources;
pub mod suggest;
pub mod sync;
pub mod transition;
pub mod trees;
pub mod trust;
pub mod upgrade;
pub mod why;

/// A server's bytes that are not the object the signed index names (`--json` kind
/// `verification`).
pub use fetch::http::BadObject;

use std::path::{Path, PathBuf};

use crate::format::ids::{InfoHash, PackageId};
use crate::store::objects::ObjectStore;

/// Paths of a client root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }
    /// Verified objects, `objects/ab/cdef…`: the same store type as the repository's.
    pub fn objects(&self) -> ObjectStore {
        ObjectStore::new(self.root.join("objects"))
    }
    /// Where transmission downloads and seeds `<infohash>/<name>-<version>.tar`.
    pub fn download_dir(&self, infohash: &InfoHash) -> PathBuf {
        self.root.join("downloads").join(infohash.to_hex())
    }
}

/// Progress of a download, drawn by the CLI.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes received (over BitTorrent: in verified pieces).
    pub done: u64,
    /// The object's size.
    pub total: u64,
    /// Bytes a second as the transport sees it (transmission's current rate; over HTTP, the
    /// average since the download started). The CLI shows its own current rate, from `done`
    /// over time, the same for both.
    pub rate: u64,
    pub peers: u32,
    pub webseed: bool,
}

/// What a package is going through, as the CLI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Fetch,
    Verify,
    Unpack,
    Script(scripts::Script),
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Fetch => f.write_str("fetch"),
            Phase::Verify => f.write_str("verify"),
            Phase::Unpack => f.write_str("unpack"),
            Phase::Script(s) => write!(f, "{s} script"),
        }
    }
}

/// What the library reports while it works; the CLI draws it, tests ignore it.
pub trait Reporter: Sync {
    fn phase(&self, _package: &PackageId, _phase: Phase) {}
    fn progress(&self, _package: &PackageId, _p: &Progress) {}
    /// One line of what a package's install or uninstall script prints (stdout and stderr
    /// together, as in its log under `ROOT/logs/`), without its line break, while the script
    /// runs. The package's own bytes: control characters are not escaped.
    fn script_output(&self, _package: &PackageId, _line: &str) {}
    fn warn(&self, _message: &str) {}
}

/// A reporter that reports nothing.
pub struct Silent;
impl Reporter for Silent {}
