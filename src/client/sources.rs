//! The synced repositories, read together: each repository's verified index (`IndexDir`), in
//! priority order. Every version of a name comes from one repository: the one `install
//! REPO/NAME` asks for, else the one whose `packages:` lists it, else the highest-priority one
//! that has the name at all (issue 25: never a lower one's versions beside it). Only reads.

use std::sync::Arc;

use anyhow::{bail, Result};

use super::config::{Repository, Settings};
use super::Layout;
use crate::format::ids::PackageName;
use crate::index::record::{PackageRecord, Snapshot};

/// Where a package comes from: the repository (its servers) and the trackers its index names.
#[derive(Debug)]
pub struct Origin {
    pub repo: Repository,
    pub trackers: Vec<String>,
}

/// One synced repository.
pub struct Synced {
    pub origin: Arc<Origin>,
    pub snap: Snapshot,
}

/// A version of a package and the repository it is taken from (an index into [`Sources`]).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub record: PackageRecord,
    pub source: usize,
}

/// Every synced repository, the highest priority first.
pub struct Sources {
    list: Vec<Synced>,
    /// Configured repositories that have no local index yet.
    pub unsynced: Vec<String>,
}

impl Sources {
    /// Opens the index of every configured repository that was synced; an error telling the
    /// user to sync when none was.
    pub fn open(layout: &Layout, settings: &Settings) -> Result<Sources> {
        let mut list = Vec::new();
        let mut unsynced = Vec::new();
        for repo in &settings.repositories {
            let idx = layout.index_dir(repo);
            if !idx.exists() {
                unsynced.push(repo.name.to_string());
                continue;
            }
            // Only a copy the trusted key verified is read (store-format.md §5.7); with no key
            // configured at all (read-only use with flags left out), the copy stands as synced.
            if repo.public_key().is_ok() {
                idx.check_copy(&idx.trust(repo)?)?;
            }
            let snap = idx.snapshot()?;
            let trackers = snap
                .distribution()
                .map(|d| d.trackers.clone())
                .unwrap_or_default();
            list.push(Synced {
                origin: Arc::new(Origin {
                    repo: repo.clone(),
                    trackers,
                }),
                snap,
            });
        }
        if list.is_empty() {
            bail!("no package index yet: run `dist sync` first");
        }
        Ok(Sources { list, unsynced })
    }

    pub fn get(&self, source: usize) -> &Synced {
        &self.list[source]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Synced> {
        self.list.iter()
    }

    /// The synced repository called `name`.
    pub fn find(&self, name: &str) -> Result<usize> {
        if let Some(i) = self
            .list
            .iter()
            .position(|s| s.origin.repo.name.as_str() == name)
        {
            return Ok(i);
        }
        if self.unsynced.iter().any(|u| u == name) {
            bail!("repository `{name}` has no index yet: run `dist sync`");
        }
        let names: Vec<&str> = self
            .list
            .iter()
            .map(|s| s.origin.repo.name.as_str())
            .chain(self.unsynced.iter().map(String::as_str))
            .collect();
        bail!("no repository `{name}` (configured: {})", names.join(", "))
    }

    /// Every version of `name`, lowest first: from repository `only` (`install REPO/NAME`), or
    /// else from the one repository [`Sources::owner`] names.
    pub fn versions(&self, name: &PackageName, only: Option<usize>) -> Result<Vec<Candidate>> {
        let Some(source) = only.map_or_else(|| self.owner(name), |o| Ok(Some(o)))? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Candidate> = self.list[source]
            .snap
            .versions(name)?
            .into_iter()
            .map(|record| Candidate { record, source })
            .collect();
        out.sort_by(|a, b| a.record.version.cmp_precedence(&b.record.version));
        Ok(out)
    }

    /// The repository a name comes from unless one is asked for (issue 25, dependency
    /// confusion): the highest-priority one whose `packages:` lists it, else the
    /// highest-priority one whose index has it at all, never a lower one, even when only a
    /// lower one has a version that fits (as uv's first index, apt's pins). `None`: no index
    /// has it.
    pub fn owner(&self, name: &PackageName) -> Result<Option<usize>> {
        if let Some(i) = self
            .list
            .iter()
            .position(|s| s.origin.repo.packages.contains(name))
        {
            return Ok(Some(i));
        }
        for (i, s) in self.list.iter().enumerate() {
            if !s.snap.versions(name)?.is_empty() {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The repository an installed `name@version` stays from when its owner does not have
    /// that version (it was installed as `REPO/NAME`): the highest-priority one that has it.
    /// `None` when the owner has it, no index does, or a `packages:` list gives the name to one
    /// repository (then only that one provides it, installed or not).
    pub fn keeping(&self, name: &PackageName, version: &semver::Version) -> Result<Option<usize>> {
        if self
            .list
            .iter()
            .any(|s| s.origin.repo.packages.contains(name))
        {
            return Ok(None);
        }
        let has = |i: usize| -> Result<bool> {
            Ok(self.list[i]
                .snap
                .versions(name)?
                .iter()
                .any(|r| r.version.cmp_precedence(version).is_eq()))
        };
        if self.owner(name)?.map_or(Ok(false), has)? {
            return Ok(None);
        }
        for i in 0..self.list.len() {
            if has(i)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The repositories other than `owner` that also have `name`, for an explanation that names
    /// both sides of a refusal.
    pub fn shadowed(&self, name: &PackageName, owner: usize) -> Vec<String> {
        self.list
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != owner && s.snap.versions(name).is_ok_and(|v| !v.is_empty()))
            .map(|(_, s)| s.origin.repo.name.to_string())
            .collect()
    }

    /// The names closest to `name` in the indexes (repository `only`, or all).
    pub fn similar(&self, name: &str, only: Option<usize>) -> Vec<String> {
        let mut names = Vec::new();
        for (i, s) in self.list.iter().enumerate() {
            if only.is_none_or(|o| o == i) {
                names.extend(s.snap.names().unwrap_or_default());
            }
        }
        super::suggest::similar(name, names.iter().map(String::as_str))
    }

    /// The serials, for messages: `serial 7`, or `default serial 7, extra serial 2`.
    pub fn describe(&self) -> String {
        match self.list.as_slice() {
            [one] if one.origin.repo.implicit => format!("serial {}", one.snap.serial),
            all => all
                .iter()
                .map(|s| format!("{} serial {}", s.origin.repo.name, s.snap.serial))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Records of every repository, each with the repository's name, highest priority first.
    pub fn each<T>(
        &self,
        mut f: impl FnMut(&Snapshot) -> Result<Vec<T>>,
    ) -> Result<Vec<(T, &str)>> {
        let mut out = Vec::new();
        for s in &self.list {
            let name = s.origin.repo.name.as_str();
            out.extend(f(&s.snap)?.into_iter().map(|t| (t, name)));
        }
        Ok(out)
    }
}
