//! Planning an install without doing any of it: each requested package version gets one
//! [`Action`], from what is already on disk (uv's planner). The plan can be printed
//! (`--dry-run`) and is what [`super::install::install`] executes, stage by stage.

use anyhow::{bail, Result};

use super::config::{Fetcher, Settings, Why};
use super::profile::Installed;
use super::request::Request;
use super::Layout;
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
    pub action: Action,
    /// What it replaces in the current generation (another version or other bytes), if any.
    pub replaces: Option<Installed>,
    /// Why it is fetched the way it is (`Fetch` only).
    pub why: Option<Why>,
}

/// The whole plan, in request order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
    /// The index's trackers, which `auto` asks about a small object's swarm.
    pub trackers: Vec<String>,
}

/// Resolves every request against the index and decides its action from the current generation,
/// the store and the object cache. Reads only; a request that resolves to a package requested
/// twice is an error.
pub fn plan(
    layout: &Layout,
    settings: &Settings,
    snap: &Snapshot,
    requests: &[Request],
) -> Result<Plan> {
    let current = layout.current()?;
    let mut items: Vec<PlanItem> = Vec::new();
    for r in requests {
        let record = r.resolve(snap)?;
        if items.iter().any(|i| i.record.name == record.name) {
            bail!("`{}` is requested twice", record.name);
        }
        let installed = current
            .as_ref()
            .and_then(|g| g.packages.get(record.name.as_str()));
        let mut why = None;
        let action = if installed.is_some_and(|i| i.blake3 == record.blake3) {
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
            action,
            why,
        });
    }
    check_known_conflicts(
        layout,
        current.map(|g| g.packages).unwrap_or_default(),
        &items,
    )?;
    Ok(Plan {
        items,
        trackers: snap
            .distribution()
            .map(|d| d.trackers.clone())
            .unwrap_or_default(),
    })
}

/// The file conflicts (two packages providing the same `bin/` command) that can be seen before
/// fetching anything: among what stays installed and what enters from an unpacked store path.
/// What still has to be fetched is checked again once unpacked, before any script runs.
fn check_known_conflicts(
    layout: &Layout,
    mut next: std::collections::BTreeMap<crate::format::ids::PackageName, Installed>,
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
