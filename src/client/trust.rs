//! Which key a client trusts for each repository (store-format.md §5.7), and the binding of a
//! local index copy to the key that verified it.
//!
//! The configured key (`public_key` in client.yaml) is where trust starts. A rotation followed
//! by `dist sync` is recorded beside the index in `trust.json` (with the configured key it
//! started from): while client.yaml still names that key, the rotated key is the trusted one;
//! once the user configures another key, that one is. Revoked keys are kept for good: no
//! configuration makes them trusted again. An index copy records the key that verified it
//! (`state.json` `key`); when it is not the trusted key, nothing reads that copy until a sync
//! verified it again with the trusted one.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::config::Repository;
use crate::index::keys::{refuse, Followed, PublicKey};
use crate::index::sign::RepositoryId;
use crate::store::fsx;

/// `trust.json` as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TrustFile {
    /// The configured key the rotations started from (base64).
    configured: Option<String>,
    /// The key reached by rotation (base64).
    current: Option<String>,
    /// Keys never to be accepted again (base64).
    #[serde(default)]
    revoked: Vec<String>,
    /// Every rotation followed: key ids and when.
    #[serde(default)]
    rotations: Vec<RotationRecord>,
    /// The repository the first sync since `configured` was configured found the index to be
    /// of (`repository=` of its signature); later indexes must be of it too (issue 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repository: Option<RepositoryId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RotationRecord {
    from: String,
    to: String,
    at: u64,
}

/// The trust of one repository: the configured key, the key trusted now, the revoked keys.
#[derive(Debug, Clone)]
pub struct Trust {
    repo: String,
    configured: PublicKey,
    current: PublicKey,
    revoked: BTreeSet<PublicKey>,
    /// The repository recorded for the configured key, if any.
    repository: Option<RepositoryId>,
    file: TrustFile,
}

impl Trust {
    /// The trust of `repo`: its configured key, moved on by the rotations recorded for that
    /// key in `path` (the repository's `trust.json`). A revoked key is refused here, whether
    /// configured or reached by rotation.
    pub fn load(path: &Path, repo: &Repository) -> Result<Trust> {
        let configured = repo.public_key()?.clone();
        let file: TrustFile = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is corrupt", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TrustFile::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let parse =
            |k: &str| PublicKey::parse(k).with_context(|| format!("{} is corrupt", path.display()));
        let revoked = file
            .revoked
            .iter()
            .map(|k| parse(k))
            .collect::<Result<BTreeSet<_>>>()?;
        // What was recorded for another configured key is another history: it starts afresh.
        let same_history = match &file.configured {
            Some(c) => parse(c)? == configured,
            None => false,
        };
        let current = match &file.current {
            Some(cur) if same_history => parse(cur)?,
            _ => configured.clone(),
        };
        let trust = Trust {
            repo: repo.name.to_string(),
            configured,
            current,
            revoked,
            repository: file.repository.filter(|_| same_history),
            file,
        };
        if trust.revoked.contains(&trust.current) {
            refuse!(
                "the key {} trusted for repository `{}` has been revoked by the repository: configure its current key (`dist key show` on the repository) as public_key",
                trust.current,
                trust.repo
            );
        }
        Ok(trust)
    }

    /// The key an index must be signed with now.
    pub fn key(&self) -> &PublicKey {
        &self.current
    }

    pub fn revoked(&self) -> &BTreeSet<PublicKey> {
        &self.revoked
    }

    /// The repository recorded at the first sync, which every index must name (store-format.md
    /// §5.3); `None` until a sync recorded one.
    pub fn repository(&self) -> Option<RepositoryId> {
        self.repository
    }

    /// The name errors give this repository.
    pub fn name(&self) -> String {
        format!("repository `{}`", self.repo)
    }

    /// Records what a sync learned: the key it verified with (reached from this trust by
    /// `followed`'s rotations), every revoked key, and the repository its index names (the
    /// first one seen). Nothing is written when nothing changed.
    pub fn record(
        &self,
        path: &Path,
        followed: &Followed,
        repository: Option<RepositoryId>,
    ) -> Result<()> {
        let learned = self.repository.is_none() && repository.is_some();
        if followed.key == self.current && followed.revoked == self.revoked && !learned {
            return Ok(());
        }
        let mut file = self.file.clone();
        if learned {
            file.repository = repository;
        }
        file.configured = Some(self.configured.base64().to_string());
        file.current = Some(followed.key.base64().to_string());
        file.revoked = followed
            .revoked
            .iter()
            .map(|k| k.base64().to_string())
            .collect();
        let at = crate::clock::now_unix();
        file.rotations
            .extend(followed.rotations.iter().map(|(from, to)| RotationRecord {
                from: from.id().to_string(),
                to: to.id().to_string(),
                at,
            }));
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        fsx::write_atomic(path, &bytes, 0o644)
    }

    /// Refuses a local index copy that the trusted key did not verify; `verified` is the key
    /// its state records (`None`: none recorded).
    pub fn check_copy(&self, verified: Option<&str>) -> Result<()> {
        if verified == Some(self.current.base64()) {
            return Ok(());
        }
        let by = match verified.map(PublicKey::parse) {
            Some(Ok(k)) => format!("key {k}"),
            _ => "a key it did not record".to_string(),
        };
        refuse!(
            "the local index of repository `{}` was verified with {by}, but the trusted key is now {}: run `dist sync` to verify it with that key (nothing installs from it until then)",
            self.repo,
            self.current
        )
    }
}
