//! Planning an install without doing any of it: each requested package version gets one
//! [`Action`], from what is already on disk (uv's planner). The plan can be printed
//! (`--dry-run`) and is what [`super::install::install`] executes, stage by stage.

use anyhow::{bail, Result};

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::{Fetcher, Settings, Why};
use super::generation::Installed;
use super::request::Request;
use super::resolve::{self, Because, Chosen};
use super::rollout::Policy;
use super::sources::{Origin, Sources};
use super::Layout;
use crate::format::ids::PackageName;
use crate::index::record::PackageRecord;

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
    /// The repository it is taken from: its servers, and the trackers its index names (which
    /// `auto` asks about a small object's swarm).
    pub origin: Arc<Origin>,
    /// Unpacked again over its store path (`repair`, `install --reinstall`).
    pub reinstall: bool,
}

/// The whole plan: dependencies before the packages that need them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
    /// Installed packages that leave because a package of the plan conflicts with them
    /// (`--replace`), or that the set `apply` makes does not hold.
    pub removes: Vec<Installed>,
    /// The next set is exactly this plan (`apply`): each item is requested as planned, instead
    /// of requested once, requested for good.
    pub exact: bool,
    /// `--replace`: an installed package that provides a profile path a package of the plan
    /// provides too leaves (found once unpacked, for the trees the index does not list).
    pub replace: bool,
}

/// Resolves the requests against the index, with their dependencies ([`resolve`]), and decides
/// each package's action from the current generation, the store and the object cache. A
/// dependency already installed at the version chosen is not part of the plan; a requested
/// one is (`Installed`). Reads only.
pub fn plan(
    layout: &Layout,
    settings: &Settings,
    sources: &Sources,
    requests: &[Request],
) -> Result<Plan> {
    plan_with(layout, settings, sources, requests, Options::default())
}

/// How a plan treats what is installed.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Move these to the newest versions allowed (`upgrade`) instead of keeping them.
    pub refresh: std::collections::BTreeSet<PackageName>,
    /// Remove installed packages a package of the plan declares a conflict with (or that
    /// declare one with it), instead of refusing (`--replace`).
    pub replace: bool,
    /// Unpack these again from their verified objects (fetched again when not cached), over
    /// their store paths, even where they are installed already.
    pub reinstall: std::collections::BTreeSet<PackageName>,
    /// Take phased versions whatever this machine's place in their rollout (`--no-phasing`).
    pub no_phasing: bool,
}

/// The index has other bytes for an installed version (issue 25, finding 3): a version's
/// content never changes, so this is refused before anything happens, never taken as a silent
/// reinstall; `install --reinstall NAME` accepts the new bytes.
#[derive(Debug, thiserror::Error)]
#[error(
    "{id} is installed with blake3 {installed}, and the index now has other bytes for the same \
     version (blake3 {index}): refused, a published version must not change; \
     `dist install --reinstall {name}` accepts the new bytes"
)]
pub struct ChangedBytes {
    pub id: crate::format::ids::PackageId,
    pub name: PackageName,
    pub installed: crate::format::ids::ObjectId,
    pub index: crate::format::ids::ObjectId,
}

impl ChangedBytes {
    /// `Some` when `record` is the version `installed` has (build metadata aside) with other
    /// bytes.
    pub fn of(installed: &Installed, record: &PackageRecord) -> Option<ChangedBytes> {
        let same_version = installed.version.cmp_precedence(&record.version).is_eq();
        (same_version && installed.blake3 != record.blake3).then(|| ChangedBytes {
            id: installed.id(),
            name: installed.name.clone(),
            installed: installed.blake3,
            index: record.blake3,
        })
    }
}

/// [`plan`] with [`Options`].
pub fn plan_with(
    layout: &Layout,
    settings: &Settings,
    sources: &Sources,
    requests: &[Request],
    options: Options,
) -> Result<Plan> {
    let current = layout.current()?;
    let packages = current
        .as_ref()
        .map(|g| g.packages.clone())
        .unwrap_or_default();
    let policy = Policy::for_root(layout, options.no_phasing)?;
    // A request the index cannot satisfy at all gets the plain message first (no such package,
    // no such version, only pre-releases, only withheld versions).
    for r in requests {
        let installed = packages.get(&r.name).map(|p| &p.version);
        r.resolve(sources, &policy, installed)?;
    }
    let mut on_machine = resolve::Installed {
        versions: packages
            .iter()
            .map(|(n, i)| (n.clone(), i.version.clone()))
            .collect(),
        held: layout.holds()?,
        refresh: options.refresh,
        policy,
    };
    let limits = resolve::Limits::with_timeout(settings.resolve_timeout);
    let (resolution, removes) = resolve_without_conflicts(
        sources,
        requests,
        &mut on_machine,
        &packages,
        options.replace,
        &limits,
    )?;
    let reinstall = options.reinstall;
    let mut items: Vec<PlanItem> = Vec::new();
    for Chosen {
        record,
        because,
        source,
    } in resolution.packages
    {
        let installed = packages.get(record.name.as_str());
        let again = reinstall.contains(&record.name);
        if let Some(changed) = installed.and_then(|i| ChangedBytes::of(i, &record)) {
            if !again {
                return Err(changed.into());
            }
        }
        let same = installed.is_some_and(|i| i.blake3 == record.blake3) && !again;
        if same && because != Because::Requested {
            continue;
        }
        let (action, why) = action_for(layout, settings, &record, same, again);
        items.push(PlanItem {
            replaces: installed.filter(|i| i.blake3 != record.blake3).cloned(),
            record,
            because,
            action,
            why,
            origin: sources.get(source).origin.clone(),
            reinstall: again,
        });
    }
    let mut removes = removes;
    let mut staying = packages;
    for r in &removes {
        staying.remove(&r.name);
    }
    while let Some(other) = check_known_conflicts(layout, &staying, &items, options.replace)? {
        removes.extend(staying.remove(&other));
    }
    Ok(Plan {
        items,
        removes,
        exact: false,
        replace: options.replace,
    })
}

/// What one package version needs to be in the next generation: nothing (`same`: installed
/// already, not `again`), a link, an unpack, or a fetch (with why that transport).
pub(crate) fn action_for(
    layout: &Layout,
    settings: &Settings,
    record: &PackageRecord,
    same: bool,
    again: bool,
) -> (Action, Option<Why>) {
    if same {
        (Action::Installed, None)
    } else if !again
        && layout
            .store_path(&record.blake3, &record.name, &record.version)
            .exists()
    {
        (Action::Link, None)
    } else if layout.objects().contains(&record.blake3) {
        (Action::Unpack, None)
    } else {
        let (fetcher, reason) = settings.fetcher_for(record.size);
        (Action::Fetch(fetcher), Some(reason))
    }
}

/// Refuses to take `victim` out of `next` for `why` (`--replace`) when it is held or another
/// package of `next` depends on it.
pub(crate) fn may_replace<'a>(
    layout: &Layout,
    next: impl IntoIterator<Item = &'a Installed>,
    victim: &PackageName,
    why: &str,
) -> Result<()> {
    if layout.holds()?.contains(victim) {
        bail!("{why}, and {victim} is held: `dist unhold {victim}` first");
    }
    let needing: Vec<&str> = next
        .into_iter()
        .filter(|p| p.depends.as_ref().is_some_and(|d| d.contains(victim)))
        .map(|p| p.name.as_str())
        .collect();
    if !needing.is_empty() {
        bail!(
            "{why}; --replace cannot remove {victim}: {} depend{} on it",
            needing.join(", "),
            if needing.len() == 1 { "s" } else { "" }
        );
    }
    Ok(())
}

/// Resolves, then refuses a declared conflict between packages of the result, or, with
/// `replace`, takes the installed side out and resolves again; returns the resolution and the
/// installed packages that leave for it.
fn resolve_without_conflicts(
    sources: &Sources,
    requests: &[Request],
    on_machine: &mut resolve::Installed,
    packages: &BTreeMap<PackageName, Installed>,
    replace: bool,
    limits: &resolve::Limits,
) -> Result<(resolve::Resolution, Vec<Installed>)> {
    let mut removes: Vec<Installed> = Vec::new();
    loop {
        let resolution = resolve::resolve(sources, requests, on_machine, limits)?;
        match declared_conflict(&resolution, on_machine) {
            None => return Ok((resolution, removes)),
            Some((a, b, Some(installed))) if replace => {
                if on_machine.held.contains(&installed) {
                    bail!("{a} conflicts with {b}, and {installed} is held: `dist unhold {installed}` first");
                }
                on_machine.versions.remove(&installed);
                removes.extend(packages.get(&installed).cloned());
            }
            Some((a, b, Some(installed))) => bail!(
                "{a} conflicts with {b} (a manifest says so); they cannot be installed together: pass --replace to remove {installed} in the same step"
            ),
            Some((a, b, None)) => bail!(
                "{a} conflicts with {b} (a manifest says so); they cannot be installed together"
            ),
        }
    }
}

/// The first declared conflict between packages of the result (either side may declare it):
/// the two, and which of them is installed and not changed by the plan, if one is.
fn declared_conflict(
    resolution: &resolve::Resolution,
    on_machine: &resolve::Installed,
) -> Option<(String, String, Option<PackageName>)> {
    let names: BTreeMap<&PackageName, &PackageRecord> = resolution
        .packages
        .iter()
        .map(|c| (&c.record.name, &c.record))
        .collect();
    let kept = |r: &PackageRecord, b: &Because| {
        *b != Because::Requested && on_machine.versions.get(&r.name) == Some(&r.version)
    };
    for Chosen {
        record: r, because, ..
    } in &resolution.packages
    {
        for c in &r.relations.conflicts {
            let Some(other) = names.get(c) else { continue };
            let other_because = &resolution
                .packages
                .iter()
                .find(|x| x.record.name == other.name)
                .expect("in the result")
                .because;
            let installed = if kept(other, other_because) {
                Some(other.name.clone())
            } else if kept(r, because) {
                Some(r.name.clone())
            } else {
                None
            };
            return Some((r.id().to_string(), other.id().to_string(), installed));
        }
    }
    None
}

/// The file conflicts (two packages providing the same `bin/` command) that can be seen before
/// fetching anything: among what stays installed and what enters, from its unpacked store path
/// or from the `executables` its index row names. What the index does not say (a package added
/// before index format 4, and every other tree) is checked again once unpacked, before any
/// script runs. With `replace`, a clash with an installed package that stays returns its name
/// (to be removed) instead of an error.
pub(crate) fn check_known_conflicts(
    layout: &Layout,
    staying: &BTreeMap<PackageName, Installed>,
    items: &[PlanItem],
    replace: bool,
) -> Result<Option<PackageName>> {
    let mut next = staying.clone();
    let mut listed: Vec<(&PackageName, &[String])> = Vec::new();
    let mut arriving = Vec::new();
    for i in items {
        let r = &i.record;
        let store_path = layout.store_path(&r.blake3, &r.name, &r.version);
        match i.action {
            Action::Installed | Action::Link => {
                next.insert(r.name.clone(), Installed::from_record(r, store_path));
            }
            // Its files are not on disk yet; what it replaces leaves either way.
            Action::Unpack | Action::Fetch(_) => {
                next.remove(r.name.as_str());
                arriving.push(Installed::from_record(r, store_path));
                if let Some(exes) = &r.executables {
                    listed.push((&r.name, exes));
                }
            }
        }
    }
    let mut exes = super::profile::executables(next.values())?;
    for (name, list) in listed {
        for exe in list {
            let Some(other) = exes.insert(exe.clone(), name.clone()) else {
                continue;
            };
            if other == *name {
                continue;
            }
            let why = format!("both {other} and {name} provide bin/{exe}");
            let installed =
                staying.contains_key(&other) && !items.iter().any(|i| i.record.name == other);
            if installed && replace {
                may_replace(layout, next.values().chain(&arriving), &other, &why)?;
                return Ok(Some(other));
            }
            if installed {
                bail!("{why}: they cannot be installed together; pass --replace to remove {other} in the same step");
            }
            bail!("{why}: they cannot be installed together");
        }
    }
    Ok(None)
}
