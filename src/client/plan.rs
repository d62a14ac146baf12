//! Planning an install without doing any of it: each requested package version gets one
//! [`Action`], from what is already on disk (uv's planner). The plan can be printed
//! (`--dry-run`) and is what [`super::install::install`] executes, stage by stage.

use anyhow::{bail, Result};

use std::collections::BTreeMap;

use super::config::{Fetcher, Settings, Why};
use super::profile::Installed;
use super::request::Request;
use super::resolve::{self, Because};
use super::Layout;
use crate::format::ids::PackageName;
use crate::repo::index::{PackageRecord, Snapshot};

/// What has to happen for one package version to be in the next generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The current generation already has exactly this object: nothing to do.
    Installed,
    /// Its store path is unpacked already: only link it into the new generation.
    Link,
    /// Its object is in `objects/`: verify, unpack, link.
    Unpack,
    /// Nothing is here: fetch it with this transport, then verify, unpack, link.
    Fetch(Fetcher),
}

impl Action {
    /// The word `install --dry-run --json` prints as `source`.
    pub fn source(&self) -> &'static str {
        match self {
            Action::Installed => "installed",
            Action::Link => "store",
            Action::Unpack => "cached",
            Action::Fetch(_) => "fetch",
        }
    }

    pub fn fetcher(&self) -> Option<Fetcher> {
        match self {
            Action::Fetch(f) => Some(*f),
            _ => None,
        }
    }
}

/// One package of a plan.
#[derive(Debug, Clone)]
pub struct PlanItem {
    pub record: PackageRecord,
    /// Requested, or needed by another package of the plan (or of the installed set).
    pub because: Because,
    pub action: Action,
    /// What it replaces in the current generation (another version or other bytes), if any.
    pub replaces: Option<Installed>,
    /// Why it is fetched the way it is (`Fetch` only).
    pub why: Option<Why>,
}

/// The whole plan: dependencies before the packages that need them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
    /// The index's trackers, which `auto` asks about a small object's swarm.
    pub trackers: Vec<String>,
}

/// Resolves the requests against the index, with their dependencies ([`resolve`]), and decides
/// each package's action from the current generation, the store and the object cache. A
/// dependency already installed at the version chosen is not part of the plan; a requested
/// one is (`Installed`). Reads only.
pub fn plan(
    layout: &Layout,
    settings: &Settings,
    snap: &Snapshot,
    requests: &[Request],
) -> Result<Plan> {
    plan_with(layout, settings, snap, requests, Default::default())
}

/// [`plan`], moving the packages of `refresh` to the newest versions allowed (`upgrade`)
/// instead of keeping their installed versions.
pub fn plan_with(
    layout: &Layout,
    settings: &Settings,
    snap: &Snapshot,
    requests: &[Request],
    refresh: std::collections::BTreeSet<PackageName>,
) -> Result<Plan> {
    let current = layout.current()?;
    let packages = current
        .as_ref()
        .map(|g| g.packages.clone())
        .unwrap_or_default();
    let on_machine = resolve::Installed {
        versions: packages
            .iter()
            .map(|(n, i)| (n.clone(), i.version.clone()))
            .collect(),
        held: layout.holds()?,
        refresh,
    };
    // A request the index cannot satisfy at all gets the plain message first (no such package,
    // no such version, only pre-releases).
    for r in requests {
        r.resolve(snap)?;
    }
    let resolution = resolve::resolve(snap, requests, &on_machine)?;
    check_declared_conflicts(&resolution)?;
    let mut items: Vec<PlanItem> = Vec::new();
    for (record, because) in resolution.packages {
        let installed = packages.get(record.name.as_str());
        let same = installed.is_some_and(|i| i.blake3 == record.blake3);
        if same && because != Because::Requested {
            continue;
        }
        let mut why = None;
        let action = if same {
            Action::Installed
        } else if layout
            .store_path(&record.blake3, &record.name, &record.version)
            .exists()
        {
            Action::Link
        } else if layout.objects().contains(&record.blake3) {
            Action::Unpack
        } else {
            let (fetcher, reason) = settings.fetcher_for(record.size);
            why = Some(reason);
            Action::Fetch(fetcher)
        };
        items.push(PlanItem {
            replaces: installed.filter(|i| i.blake3 != record.blake3).cloned(),
            record,
            because,
            action,
            why,
        });
    }
    check_known_conflicts(layout, packages, &items)?;
    Ok(Plan {
        items,
        trackers: snap
            .distribution()
            .map(|d| d.trackers.clone())
            .unwrap_or_default(),
    })
}

/// Declared `conflicts` between packages of the result, before anything happens.
fn check_declared_conflicts(resolution: &resolve::Resolution) -> Result<()> {
    let names: BTreeMap<&PackageName, &PackageRecord> = resolution
        .packages
        .iter()
        .map(|(r, _)| (&r.name, r))
        .collect();
    for (r, _) in &resolution.packages {
        if let Some(other) = r.relations.conflicts.iter().find_map(|c| names.get(c)) {
            bail!(
                "{} conflicts with {} (its manifest says so); they cannot be installed together",
                r.id(),
                other.id()
            );
        }
    }
    Ok(())
}

/// The file conflicts (two packages providing the same `bin/` command) that can be seen before
/// fetching anything: among what stays installed and what enters from an unpacked store path.
/// What still has to be fetched is checked again once unpacked, before any script runs.
fn check_known_conflicts(
    layout: &Layout,
    mut next: BTreeMap<PackageName, Installed>,
    items: &[PlanItem],
) -> Result<()> {
    for i in items {
        let r = &i.record;
        let store_path = layout.store_path(&r.blake3, &r.name, &r.version);
        match i.action {
            Action::Installed | Action::Link => {
                next.insert(r.name.clone(), Installed::from_record(r, store_path));
            }
            // Its files are not known yet; what it replaces leaves either way.
            Action::Unpack | Action::Fetch(_) => {
                next.remove(r.name.as_str());
            }
        }
    }
    super::profile::executables(next.values()).map(drop)
}
