//! The `--json` shapes that say what the index says of a version beyond its bytes (issue 22:
//! yanked, phased) and the installed set as a file: `info`, `outdated`, `verify`, `yank`,
//! `unyank`, `phase`, `export` and `apply` (README "JSON output"). `json.rs` re-exports the
//! shapes that lived there before; fields keep their earlier order, new ones come last.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use dist::client::generation::Installed;
use dist::client::lockfile::{InstalledSet, SetEntry};
use dist::client::maintain::VerifyEntry;
use dist::format::ids::{InfoHash, ObjectId, PackageName};
use dist::index::record::PackageRecord;
use dist::repo::status_edit::StatusChange;

use super::json::{Install, Package, Planned};

/// `dist outdated --json`: one per installed package with a newer version, or whose installed
/// version is yanked.
#[derive(Serialize)]
pub struct Outdated<'a> {
    pub name: &'a PackageName,
    pub installed: &'a semver::Version,
    /// The newest version `upgrade` considers (the installed one when only a yank lists it).
    pub newest: &'a semver::Version,
    /// The same as `newest` (the kept-back entries' key).
    pub latest: &'a semver::Version,
    pub held: bool,
    /// Why `upgrade` would not move it (`held`, `deferred by phased rollout (20 %)`,
    /// `kept back: …`); null when it would.
    pub kept_back: Option<&'a str>,
    /// The installed version is yanked: the publisher's reason (null: it is not).
    pub yanked: Option<&'a str>,
    /// The index's BLAKE3 for the installed version when it is not the installed object's
    /// (issue 25; null otherwise).
    pub changed_blake3: Option<dist::format::ids::ObjectId>,
}

impl<'a> From<&'a dist::client::upgrade::Outdated> for Outdated<'a> {
    fn from(o: &'a dist::client::upgrade::Outdated) -> Outdated<'a> {
        Outdated {
            name: &o.name,
            installed: &o.installed,
            newest: &o.newest,
            latest: &o.newest,
            held: o.held,
            kept_back: o.kept_back.as_deref(),
            yanked: o.yanked.as_deref(),
            changed_blake3: o.changed,
        }
    }
}

/// `dist info NAME --json`.
#[derive(Serialize)]
pub struct Info<'a> {
    pub description: Option<&'a str>,
    pub installed: Option<&'a semver::Version>,
    pub name: &'a str,
    pub versions: Vec<InfoVersion<'a>>,
}

#[derive(Serialize)]
pub struct InfoVersion<'a> {
    pub added_at: i64,
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    pub installed: bool,
    pub magnet: &'a str,
    pub size: u64,
    pub version: &'a semver::Version,
    pub repository: &'a str,
    /// Why the publisher withdrew it (null: not yanked).
    pub yanked: Option<&'a str>,
    /// The share of machines its rollout reaches, 0 to 100 (null: not phased, all of them).
    pub phase: Option<u8>,
    /// Its `depends`: name → SemVer requirement.
    pub depends: BTreeMap<&'a str, String>,
    /// Its `conflicts`.
    pub conflicts: Vec<&'a str>,
    /// The commands it puts into the profile's `bin/` (the index's `executables`; null when
    /// the index does not say).
    pub commands: Option<&'a [String]>,
    pub description: Option<&'a str>,
}

impl<'a> InfoVersion<'a> {
    pub fn new(v: &'a PackageRecord, repository: &'a str, installed: bool) -> InfoVersion<'a> {
        InfoVersion {
            repository,
            added_at: v.added_at,
            blake3: v.blake3,
            infohash: v.infohash,
            installed,
            magnet: &v.magnet,
            size: v.size,
            version: &v.version,
            yanked: v.yanked.as_ref().map(|r| r.as_str()),
            phase: v.phase.map(|p| p.percent()),
            depends: v
                .relations
                .depends
                .iter()
                .map(|(n, r)| (n.as_str(), r.to_string()))
                .collect(),
            conflicts: v.relations.conflicts.iter().map(|n| n.as_str()).collect(),
            commands: v.executables.as_deref(),
            description: v.description.as_deref(),
        }
    }
}

/// `dist verify --json`: one per store path.
#[derive(Serialize)]
pub struct Verified<'a> {
    pub name: &'a PackageName,
    pub version: &'a semver::Version,
    pub store_path: &'a PathBuf,
    /// The store path matches its install record (changed configuration files do not count).
    pub ok: bool,
    pub differences: &'a [String],
    /// Configuration files (under `ROOT/etc/<name>/`) that differ from what the version ships.
    pub config_changed: &'a [String],
    /// The synced index yanks this installed version: the reason (null: it does not).
    pub yanked: Option<&'a str>,
}

impl<'a> Verified<'a> {
    pub fn new(e: &'a VerifyEntry, yanked: Option<&'a str>) -> Verified<'a> {
        Verified {
            name: &e.name,
            version: &e.version,
            store_path: &e.store_path,
            ok: e.ok,
            differences: &e.differences,
            config_changed: &e.config_changed,
            yanked,
        }
    }
}

/// `dist yank --json`, `dist unyank --json`, `dist phase --json`: the version's status now.
#[derive(Serialize)]
pub struct Status<'a> {
    pub name: &'a PackageName,
    pub version: &'a semver::Version,
    /// The reason it is withdrawn (null: it is not).
    pub yanked: Option<&'a str>,
    /// Its rollout in percent (null: not phased).
    pub phase: Option<u8>,
    /// Whether this call changed it (false: it was so already, nothing was published).
    pub changed: bool,
    /// The serial now published.
    pub serial: Option<u64>,
}

impl<'a> From<&'a StatusChange> for Status<'a> {
    fn from(c: &'a StatusChange) -> Status<'a> {
        Status {
            name: &c.id.name,
            version: &c.id.version,
            yanked: c.yanked.as_ref().map(|r| r.as_str()),
            phase: c.phase.map(|p| p.percent()),
            changed: c.changed,
            serial: c.serial,
        }
    }
}

/// `dist export --json`: the set, and the file it was written to (null: none).
#[derive(Serialize)]
pub struct Export<'a> {
    /// The file format (`dist-set 1`).
    pub format: u32,
    pub file: Option<String>,
    pub packages: Vec<SetPackage<'a>>,
}

#[derive(Serialize)]
pub struct SetPackage<'a> {
    pub name: &'a PackageName,
    pub version: &'a semver::Version,
    pub repository: &'a str,
    pub blake3: ObjectId,
    /// Asked for by name (false: installed as a dependency).
    pub requested: bool,
}

impl<'a> Export<'a> {
    pub fn new(set: &'a InstalledSet, file: Option<String>) -> Export<'a> {
        let entry = |e: &'a SetEntry| SetPackage {
            name: &e.name,
            version: &e.version,
            repository: e.repository.as_str(),
            blake3: e.blake3,
            requested: e.requested,
        };
        Export {
            format: 1,
            file,
            packages: set.entries.values().map(entry).collect(),
        }
    }
}

/// One entry of `dist apply --json` (and `--dry-run --json`): a package of the set, as
/// `install --json` (or `install --dry-run --json`) has it, or one that leaves.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ApplyEntry<'a> {
    Changed(Install<'a>),
    Planned(Planned<'a>),
    Removed(Removal<'a>),
}

/// An installed package the set does not hold, with the keys of an install entry: `action`
/// `remove`, the version that leaves as `version` and `old_version`, nothing fetched.
#[derive(Serialize)]
pub struct Removal<'a> {
    #[serde(flatten)]
    pub package: Package<'a>,
    pub source: &'static str,
    pub transport: Option<&'static str>,
    pub replaces: Option<&'a semver::Version>,
    pub requested: bool,
    pub required_by: Option<&'a PackageName>,
    pub reason: &'static str,
    pub repository: Option<&'a str>,
    pub transport_reason: Option<String>,
    pub action: &'static str,
    pub old_version: Option<&'a semver::Version>,
    /// After a run (not `--dry-run`): what `install --json` adds.
    #[serde(flatten)]
    pub done: Option<Removed>,
}

/// The keys an `install --json` entry has beyond the plan's, for a removal.
#[derive(Serialize)]
pub struct Removed {
    pub engine: Option<&'static str>,
    pub bytes_from_peers: u64,
    pub bytes_from_webseed: u64,
    pub store_path: String,
    pub phases_ms: BTreeMap<&'static str, u64>,
}

impl<'a> Removal<'a> {
    pub fn new(p: &'a Installed, done: bool) -> Removal<'a> {
        Removal {
            package: p.into(),
            source: "installed",
            transport: None,
            replaces: None,
            requested: p.requested,
            required_by: None,
            reason: if p.requested {
                "requested"
            } else {
                "dependency"
            },
            repository: None,
            transport_reason: None,
            action: "remove",
            old_version: Some(&p.version),
            done: done.then(|| Removed {
                engine: None,
                bytes_from_peers: 0,
                bytes_from_webseed: 0,
                store_path: p.store_path.display().to_string(),
                phases_ms: BTreeMap::new(),
            }),
        }
    }
}
