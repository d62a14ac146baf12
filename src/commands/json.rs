//! Every `--json` shape of the CLI, one typed struct each: the output contract has this one
//! home (README "JSON output"). The library's types stay free of output concerns; these are
//! built from them. Fields of shapes that began as `json!` maps are declared in alphabetical
//! order, so the bytes printed are those of earlier versions too.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use dist::client::config::Fetcher;
use dist::client::generation::{Generation, Installed};
use dist::client::install::Installation;
use dist::client::maintain::GcReport;
use dist::client::plan::PlanItem;
use dist::client::resolve::Because;
use dist::client::transition::Change;
use dist::format::ids::{InfoHash, ObjectId, PackageName};
use dist::index::record::PackageRecord;

pub use super::json_status::{Info, InfoVersion, Outdated, Verified};
mod everyday;
mod profile;
pub use everyday::{ConfigSet, RepoCreated, Why};
pub use profile::{FileEntry, Files, FilesNotInstalled, Owner};

/// Prints one value as a line of JSON.
pub fn print<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// `dist add --json`: one per package.
#[derive(Serialize)]
pub struct Added<'a> {
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    pub name: &'a PackageName,
    pub serial: Option<u64>,
    pub size: u64,
    pub status: &'static str,
    pub version: &'a semver::Version,
}

/// `dist pack --json`.
#[derive(Serialize)]
pub struct Packed<'a> {
    pub blake3: ObjectId,
    pub file: &'a PathBuf,
    pub infohash: InfoHash,
    pub magnet: &'a str,
    pub name: &'a PackageName,
    pub piece_length: u64,
    pub size: u64,
    pub torrent: String,
    pub version: &'a semver::Version,
}

/// A rebuilt digest next to the published one.
#[derive(Serialize)]
pub struct Compared<T> {
    pub index: T,
    pub rebuilt: T,
}

/// `dist pack --check --json`.
#[derive(Serialize)]
pub struct Check<'a> {
    pub blake3: Compared<ObjectId>,
    pub infohash: Compared<InfoHash>,
    pub name: &'a PackageName,
    pub reproducible: bool,
    pub version: &'a semver::Version,
}

pub use super::json_keys::*;

/// `dist sync --json`: the library's report as it is (it has no other use than being shown).
pub use dist::client::sync::SyncReport as Sync;

/// `dist sync --json` with `repositories:`: the first (highest-priority) repository's report at
/// the top, as with one repository, and every repository's under `repositories`.
#[derive(Serialize)]
pub struct SyncAll<'a> {
    #[serde(flatten)]
    pub first: Option<&'a Sync>,
    pub repositories: Vec<RepoSync<'a>>,
}

#[derive(Serialize)]
pub struct RepoSync<'a> {
    pub name: &'a str,
    #[serde(flatten)]
    pub report: Option<&'a Sync>,
    /// Why this repository's index could not be brought up to date (it kept its last one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `dist install --dry-run --json`: one per planned package (and, with what running it did,
/// `install --json`: [`Install`]).
#[derive(Serialize)]
pub struct Planned<'a> {
    #[serde(flatten)]
    pub package: Package<'a>,
    /// `installed`, `store` (unpacked already), `cached` (object present) or `fetch`.
    pub source: &'static str,
    pub transport: Option<Fetcher>,
    /// The version it replaces, if any.
    pub replaces: Option<&'a semver::Version>,
    /// Asked for on the command line (false: a dependency of `required_by`).
    pub requested: bool,
    pub required_by: Option<&'a PackageName>,
    /// Why it is in the plan: `requested` or `dependency`.
    pub reason: &'static str,
    /// The repository it is taken from.
    pub repository: &'a str,
    /// Why that transport (null when nothing is fetched); in a dry run, as far as the plan
    /// knows (`auto` decides a small object when it is fetched).
    pub transport_reason: Option<String>,
    /// `install`, `upgrade`, `downgrade` or `reinstall` (the same object unpacked again);
    /// null when it is installed already and stays.
    pub action: Option<&'static str>,
    /// The version it replaces (null: none), as `replaces`.
    pub old_version: Option<&'a semver::Version>,
}

impl<'a> From<&'a PlanItem> for Planned<'a> {
    fn from(p: &'a PlanItem) -> Planned<'a> {
        Planned {
            package: (&p.record).into(),
            source: p.action.source(),
            transport: p.action.fetcher(),
            replaces: p.replaces.as_ref().map(|r| &r.version),
            requested: p.because == Because::Requested,
            required_by: required_by(&p.because),
            reason: plan_reason(&p.because),
            repository: p.origin.repo.name.as_str(),
            transport_reason: transport_reason(p),
            action: change(p).map(|c| c.name()),
            old_version: p.replaces.as_ref().map(|r| &r.version),
        }
    }
}

/// What the transition does with a plan's item (`None`: it stays as it is).
fn change(p: &PlanItem) -> Option<Change> {
    if p.reinstall {
        return Some(Change::Reinstall);
    }
    if p.action == dist::client::plan::Action::Installed {
        return None;
    }
    Change::between(
        p.replaces.as_ref().map(|r| &r.version),
        Some(&p.record.version),
    )
}

/// `transport_reason`: why the item is fetched the way it is (null when it is not fetched).
fn transport_reason(p: &PlanItem) -> Option<String> {
    match (p.action.fetcher(), p.why) {
        (Some(f), Some(why)) => Some(why.text(f)),
        _ => None,
    }
}

/// `reason` of `install --json` and `--dry-run --json`: `requested` or `dependency`.
fn plan_reason(b: &Because) -> &'static str {
    match b {
        Because::Requested => "requested",
        Because::Dependency(_) | Because::Installed => "dependency",
    }
}

/// The package that needs a dependency.
fn required_by(b: &Because) -> Option<&PackageName> {
    match b {
        Because::Dependency(by) => Some(by),
        _ => None,
    }
}

/// `dist install --json`: one per package of the plan (requested ones and the dependencies it
/// pulled in): its [`Planned`] entry, with `transport` and `transport_reason` as the fetch
/// decided them, and what running it did.
#[derive(Serialize)]
pub struct Install<'a> {
    #[serde(flatten)]
    pub planned: Planned<'a>,
    /// The BitTorrent engine that fetched it: `libtorrent`, `transmission`, or null (over
    /// HTTP, or nothing fetched).
    pub engine: Option<&'static str>,
    pub bytes_from_peers: u64,
    pub bytes_from_webseed: u64,
    pub store_path: String,
    pub phases_ms: BTreeMap<&'static str, u64>,
}

impl<'a> From<&'a Installation> for Install<'a> {
    fn from(i: &'a Installation) -> Install<'a> {
        let mut planned: Planned<'a> = (&i.item).into();
        if let Some((transport, why)) = i.transport() {
            planned.transport = Some(transport);
            planned.transport_reason = why.map(|w| w.text(transport));
        }
        Install {
            planned,
            engine: i.fetched.as_ref().and_then(|f| f.engine).map(|e| e.name()),
            bytes_from_peers: i.bytes_from_peers(),
            bytes_from_webseed: i.bytes_from_webseed(),
            store_path: i.store_path.display().to_string(),
            phases_ms: i
                .stages
                .iter()
                .map(|(s, d)| (s.name(), d.as_millis() as u64))
                .collect(),
        }
    }
}

/// `dist generations --json`: one per generation.
#[derive(Serialize)]
pub struct GenerationEntry<'a> {
    pub created: u64,
    pub current: bool,
    pub number: u64,
    /// Its packages, as objects like every other verb's (`{name, version, blake3, size}`).
    pub packages: Vec<Package<'a>>,
}

impl<'a> GenerationEntry<'a> {
    pub fn new(g: &'a Generation, current: Option<u64>) -> GenerationEntry<'a> {
        GenerationEntry {
            created: g.created,
            current: Some(g.number) == current,
            number: g.number,
            packages: g.packages.values().map(Into::into).collect(),
        }
    }
}

/// `dist list --installed --json`: one per installed package.
#[derive(Serialize)]
pub struct InstalledEntry<'a> {
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    pub name: &'a PackageName,
    pub store_path: &'a PathBuf,
    pub version: &'a semver::Version,
    pub size: u64,
    /// Installed by name (false: pulled in as a dependency).
    pub requested: bool,
    /// `dist hold` keeps its version.
    pub held: bool,
}

impl<'a> InstalledEntry<'a> {
    pub fn new(p: &'a Installed, held: bool) -> InstalledEntry<'a> {
        InstalledEntry {
            blake3: p.blake3,
            infohash: p.infohash,
            name: &p.name,
            store_path: &p.store_path,
            version: &p.version,
            size: p.size,
            requested: p.requested,
            held,
        }
    }
}

/// `dist uninstall --json`, `dist autoremove --json`: what left, and the generation now
/// current (null when nothing changed).
#[derive(Serialize)]
pub struct Removed<'a> {
    pub removed: Vec<Package<'a>>,
    pub generation: Option<u64>,
    /// `--dry-run`: `removed` is what would be removed, and nothing changed.
    pub dry_run: bool,
    /// `uninstall`: what the removed packages had pulled in and nothing needs now (what
    /// `autoremove` would remove).
    pub unneeded: Vec<Package<'a>>,
}

/// `dist hold --json` without a name: the held packages.
#[derive(Serialize)]
pub struct Holds<'a> {
    pub held: Vec<Held<'a>>,
}

#[derive(Serialize)]
pub struct Held<'a> {
    pub name: &'a PackageName,
    /// The version it keeps (null: held but not installed).
    pub version: Option<&'a semver::Version>,
}

/// A package by name and version.
#[derive(Serialize)]
pub struct Package<'a> {
    pub name: &'a PackageName,
    pub version: &'a semver::Version,
    pub blake3: ObjectId,
    /// Bytes of its object (0 for a package installed before sizes were recorded).
    pub size: u64,
}

impl<'a> From<&'a PackageRecord> for Package<'a> {
    fn from(r: &'a PackageRecord) -> Package<'a> {
        Package {
            name: &r.name,
            version: &r.version,
            blake3: r.blake3,
            size: r.size,
        }
    }
}

impl<'a> From<&'a Installed> for Package<'a> {
    fn from(p: &'a Installed) -> Package<'a> {
        Package {
            name: &p.name,
            version: &p.version,
            blake3: p.blake3,
            size: p.size,
        }
    }
}

/// `dist repair --json`: what was unpacked again, and the generation now current (null when
/// nothing needed it, or when no new generation was needed).
#[derive(Serialize)]
pub struct Repaired<'a> {
    pub repaired: Vec<Package<'a>>,
    pub generation: Option<u64>,
}

/// `dist init --json`.
#[derive(Serialize)]
pub struct Init<'a> {
    pub path: String,
    pub server_url: &'a str,
    pub public_key: &'a str,
}

/// `dist config show --json`: every setting, its value and where it came from.
#[derive(Serialize)]
pub struct ConfigShow {
    pub root: String,
    pub config_file: String,
    pub settings: BTreeMap<String, Setting>,
}

#[derive(Serialize)]
pub struct Setting {
    pub value: serde_json::Value,
    /// `flag`, `file` (client.yaml), `default`, or `unset`.
    pub source: &'static str,
}

/// A package `upgrade` does not move to its latest version, and why (`upgrade --json`, beside
/// the install entries).
#[derive(Serialize)]
pub struct KeptBack<'a> {
    pub name: &'a PackageName,
    pub installed: &'a semver::Version,
    pub latest: &'a semver::Version,
    pub kept_back: &'a str,
}

impl<'a> From<&'a dist::client::upgrade::KeptBack> for KeptBack<'a> {
    fn from(k: &'a dist::client::upgrade::KeptBack) -> KeptBack<'a> {
        KeptBack {
            name: &k.name,
            installed: &k.installed,
            latest: &k.latest,
            kept_back: &k.reason,
        }
    }
}

/// One entry of `upgrade --json`: what changed (`install --json`'s entry), or what was kept
/// back.
#[derive(Serialize)]
#[serde(untagged)]
pub enum UpgradeEntry<'a> {
    Changed(Install<'a>),
    Planned(Planned<'a>),
    KeptBack(KeptBack<'a>),
}

/// `dist list --json`: every version the index publishes.
#[derive(Serialize)]
pub struct Record<'a> {
    pub name: &'a PackageName,
    pub version: &'a semver::Version,
    pub description: &'a Option<String>,
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    pub size: u64,
    pub magnet: &'a str,
    pub added_at: i64,
    /// The repository whose index has it.
    pub repository: &'a str,
}

impl<'a> Record<'a> {
    pub fn new(p: &'a PackageRecord, repository: &'a str) -> Record<'a> {
        Record {
            repository,
            name: &p.name,
            version: &p.version,
            description: &p.description,
            blake3: p.blake3,
            infohash: p.infohash,
            size: p.size,
            magnet: &p.magnet,
            added_at: p.added_at,
        }
    }
}

/// `dist search TERM --json`: one per matching version.
#[derive(Serialize)]
pub struct SearchHit<'a> {
    pub blake3: ObjectId,
    pub description: &'a Option<String>,
    pub name: &'a PackageName,
    pub size: u64,
    pub version: &'a semver::Version,
    pub repository: &'a str,
}

impl<'a> SearchHit<'a> {
    pub fn new(p: &'a PackageRecord, repository: &'a str) -> SearchHit<'a> {
        SearchHit {
            repository,
            blake3: p.blake3,
            description: &p.description,
            name: &p.name,
            size: p.size,
            version: &p.version,
        }
    }
}

/// `dist daemon status --json`.
#[derive(Serialize)]
pub struct DaemonStatus {
    /// `transmission` or `libtorrent`: whose daemon this is.
    pub engine: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_port: Option<u16>,
    pub running: bool,
    pub torrents: Vec<DaemonTorrent>,
    /// Its upload cap in kB/s (1000 bytes), 0 for none; absent when it does not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u32>,
}

impl DaemonStatus {
    /// No process of `engine` runs for this root.
    pub fn not_running(engine: dist::client::config::Engine) -> DaemonStatus {
        DaemonStatus {
            engine: engine.name(),
            peer_port: None,
            pid: None,
            rpc_port: None,
            running: false,
            torrents: Vec::new(),
            upload_limit: None,
        }
    }
}

#[derive(Serialize)]
pub struct DaemonTorrent {
    pub infohash: InfoHash,
    pub name: String,
    pub peers: Vec<String>,
    pub percent_done: f64,
    /// transmission's number (kept for earlier readers); `state` names it. Absent for the
    /// libtorrent seeder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// `stopped`, `check_wait`, `verifying`, `download_wait`, `downloading`, `seed_wait`,
    /// `seeding` or `unknown`.
    pub state: &'static str,
    pub uploaded: u64,
}

/// `dist gc --json`.
#[derive(Serialize)]
pub struct Gc<'a> {
    /// Packages removed first because nothing requested needs them (what `autoremove` does).
    pub autoremoved: Vec<Package<'a>>,
    pub generations_removed: &'a [u64],
    pub store_paths_removed: &'a [String],
    pub objects_removed: Vec<ObjectId>,
    pub bytes_freed: u64,
    /// `--dry-run`: what would be removed and freed; nothing changed.
    pub dry_run: bool,
}

impl<'a> From<&'a GcReport> for Gc<'a> {
    fn from(r: &'a GcReport) -> Gc<'a> {
        Gc {
            dry_run: false,
            autoremoved: Vec::new(),
            generations_removed: &r.generations_removed,
            store_paths_removed: &r.store_paths_removed,
            objects_removed: r.objects_removed.clone(),
            bytes_freed: r.bytes_freed,
        }
    }
}

/// `dist rollback --json`.
#[derive(Serialize)]
pub struct Rollback {
    pub from: u64,
    pub to: u64,
}

/// `dist daemon stop --json`: whether a daemon was running and was stopped.
#[derive(Serialize)]
pub struct DaemonStop {
    pub stopped: bool,
}

/// `dist hold --json`, `dist unhold --json`.
#[derive(Serialize)]
pub struct Hold<'a> {
    pub name: &'a PackageName,
    pub held: bool,
    /// Whether this call changed it.
    pub changed: bool,
}

/// `dist doctor --json`.
#[derive(Serialize)]
pub struct Doctor<'a> {
    pub checks: Vec<DoctorCheck<'a>>,
}

#[derive(Serialize)]
pub struct DoctorCheck<'a> {
    pub name: &'a str,
    pub ok: bool,
    pub detail: &'a str,
}

impl<'a> From<&'a dist::client::doctor::Check> for DoctorCheck<'a> {
    fn from(c: &'a dist::client::doctor::Check) -> DoctorCheck<'a> {
        DoctorCheck {
            name: c.name,
            ok: c.ok,
            detail: &c.detail,
        }
    }
}

/// Any command's failure with `--json`: `{"error": {"message", "kind"}}` on standard output
/// (README, "Errors"; `kind` from `error_kind`).
#[derive(Serialize)]
pub struct Failure<'a> {
    pub error: FailureBody<'a>,
}

#[derive(Serialize)]
pub struct FailureBody<'a> {
    pub message: &'a str,
    pub kind: &'a str,
}
