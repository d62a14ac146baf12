//! The local copy of one repository's verified index (store-format.md §5.5): where it lives
//! (`IndexDir`: `ROOT/index` or `ROOT/repos/NAME`), what the client remembers of it
//! (`IndexState` in `state.json`), its trust file, and whether it can be built on. `sync.rs`
//! replaces it; every reader opens it here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::config::Repository;
use super::trust::Trust;
use super::Layout;
use crate::format::ids::Digest;
use crate::index::record::{Snapshot, INDEX_FORMAT};

/// What the client remembers about its copy of the index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexState {
    pub serial: u64,
    pub created: u64,
    pub etag: Option<String>,
    pub fetched_at: u64,
    /// Index format of the local copy (absent, so 0, before format 2).
    #[serde(default)]
    pub format: u32,
    /// Content digest of the local copy (format 2; hex in `state.json`).
    #[serde(default)]
    pub content: Option<Digest>,
    /// The public key (base64) that verified the local copy; absent before it was recorded.
    #[serde(default)]
    pub key: Option<String>,
}

/// Where one repository's verified index lives: `ROOT/index` for the single-repository form
/// (`server_url` + `public_key`), `ROOT/repos/NAME` for an entry of `repositories`.
#[derive(Debug, Clone)]
pub struct IndexDir {
    pub dir: PathBuf,
}

impl Layout {
    pub fn index_dir(&self, repo: &Repository) -> IndexDir {
        IndexDir {
            dir: if repo.implicit {
                self.root.join("index")
            } else {
                self.root.join("repos").join(repo.name.as_str())
            },
        }
    }
}

impl IndexDir {
    pub fn db(&self) -> PathBuf {
        self.dir.join("index.db")
    }
    /// The verified manifest the local index matches, and its signature.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("index.json")
    }
    pub fn sig(&self) -> PathBuf {
        self.dir.join("index.json.minisig")
    }
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The keys trusted for this repository (store-format.md §5.7).
    pub fn trust_path(&self) -> PathBuf {
        self.dir.join("trust.json")
    }

    /// The trust of `repo`, from this directory's `trust.json`.
    pub fn trust(&self, repo: &Repository) -> Result<Trust> {
        Trust::load(&self.trust_path(), repo)
    }

    /// Refuses this copy unless the key `trust` trusts now verified it.
    pub fn check_copy(&self, trust: &Trust) -> Result<()> {
        trust.check_copy(self.state()?.as_ref().and_then(|s| s.key.as_deref()))
    }

    pub fn state(&self) -> Result<Option<IndexState>> {
        let p = self.state_path();
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("{} is corrupt", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Whether this repository was synced.
    pub fn exists(&self) -> bool {
        self.db().exists()
    }

    /// The synced index; an error telling the user to sync when there is none.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let p = self.db();
        if !p.exists() {
            bail!("no package index yet: run `dist sync` first");
        }
        Snapshot::open_local(&p)
    }
}

/// The local index, when it is a format-2 copy whose state and file agree.
pub(crate) fn usable_local(idx: &IndexDir, prev: Option<&IndexState>) -> Option<IndexState> {
    let p = prev.filter(|p| p.format == INDEX_FORMAT && p.content.is_some())?;
    let snap = Snapshot::open_local(&idx.db()).ok()?;
    (snap.format == INDEX_FORMAT && snap.serial == p.serial).then(|| p.clone())
}

/// A sync that failed before it changed anything. Its cause keeps its type, so a caller (the
/// `--json` kind) can still tell a signature from an outage.
#[derive(Debug)]
pub struct IndexUnchanged(pub anyhow::Error);

impl std::fmt::Display for IndexUnchanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}; the local index is unchanged", self.0)
    }
}

impl std::error::Error for IndexUnchanged {}
