//! `dist apply FILE` (issue 22): the plan that makes the installed set exactly the one a file
//! names ([`InstalledSet`]), for the same [`install`](super::install::install) and
//! [`Transition`](super::transition::Transition) as every other command: each package is
//! looked up in its repository's signed index (its BLAKE3 must be the index's), the set must
//! hold its own dependencies and no declared conflict, held packages keep their versions, and
//! everything installed that the set does not name leaves. Reads only; any refusal changes
//! nothing. Yanks and phased rollouts do not apply: the file names exact versions.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use super::config::Settings;
use super::generation::Installed;
use super::lockfile::InstalledSet;
use super::plan::{self, Plan, PlanItem};
use super::resolve::{self, Because};
use super::sources::Sources;
use super::Layout;
use crate::format::ids::PackageName;
use crate::index::record::PackageRecord;

/// The plan from the current set to `set` (see the module docs).
pub fn plan(
    layout: &Layout,
    settings: &Settings,
    sources: &Sources,
    set: &InstalledSet,
) -> Result<Plan> {
    let current = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let mut records: BTreeMap<PackageName, (PackageRecord, usize)> = BTreeMap::new();
    for e in set.entries.values() {
        let source = sources.find(e.repository.as_str())?;
        let versions = sources.versions(&e.name, Some(source))?;
        let Some(c) = versions
            .into_iter()
            .find(|c| c.record.version.cmp_precedence(&e.version).is_eq())
        else {
            bail!(
                "{}@{} is not in the index of repository `{}` (serial {}): nothing was changed",
                e.name,
                e.version,
                e.repository,
                sources.get(source).snap.serial
            );
        };
        if c.record.blake3 != e.blake3 {
            bail!(
                "{}: the set says blake3 {}, the signed index of repository `{}` says {}: refusing the set (nothing was changed)",
                c.record.id(),
                e.blake3,
                e.repository,
                c.record.blake3
            );
        }
        records.insert(e.name.clone(), (c.record, source));
    }
    check_closed(&records)?;
    check_holds(layout, &current, &records)?;
    let items = items(layout, settings, sources, set, &current, &records);
    let removes: Vec<Installed> = current
        .values()
        .filter(|p| !records.contains_key(&p.name))
        .cloned()
        .collect();
    let staying = current
        .into_iter()
        .filter(|(n, _)| records.contains_key(n))
        .collect();
    // Without `replace`, a clash is an error, never a package to remove.
    plan::check_known_conflicts(layout, &staying, &items, false)?;
    Ok(Plan {
        items,
        removes,
        exact: true,
        replace: false,
    })
}

/// Every package of the set, dependencies first, with its action and why it is there.
fn items(
    layout: &Layout,
    settings: &Settings,
    sources: &Sources,
    set: &InstalledSet,
    current: &BTreeMap<PackageName, Installed>,
    records: &BTreeMap<PackageName, (PackageRecord, usize)>,
) -> Vec<PlanItem> {
    let graph: BTreeMap<PackageName, BTreeSet<PackageName>> = records
        .iter()
        .map(|(n, (r, _))| (n.clone(), r.relations.depends.keys().cloned().collect()))
        .collect();
    let names: BTreeSet<PackageName> = records.keys().cloned().collect();
    let mut order = resolve::dependents_first(&graph, &names);
    order.reverse();
    order
        .into_iter()
        .map(|name| {
            let (record, source) = records[&name].clone();
            let installed = current.get(&name);
            let same = installed.is_some_and(|i| i.blake3 == record.blake3);
            let (action, why) = plan::action_for(layout, settings, &record, same, false);
            let because = if set.entries[&name].requested {
                Because::Requested
            } else {
                match records
                    .values()
                    .find(|(r, _)| r.relations.depends.contains_key(&name))
                {
                    Some((by, _)) => Because::Dependency(by.name.clone()),
                    None => Because::Installed,
                }
            };
            PlanItem {
                replaces: installed.filter(|i| i.blake3 != record.blake3).cloned(),
                record,
                because,
                action,
                why,
                origin: sources.get(source).origin.clone(),
                reinstall: false,
            }
        })
        .collect()
}

/// The set holds what its packages depend on, in versions their requirements allow, and no two
/// packages of it that declare a conflict.
fn check_closed(records: &BTreeMap<PackageName, (PackageRecord, usize)>) -> Result<()> {
    let mut problems = Vec::new();
    for (r, _) in records.values() {
        for (dep, req) in &r.relations.depends {
            match records.get(dep) {
                None => problems.push(format!(
                    "{} depends on {dep} {req}, which the set does not hold",
                    r.id()
                )),
                Some((d, _)) if !req.matches(&d.version) => problems.push(format!(
                    "{} depends on {dep} {req}, and the set holds {}",
                    r.id(),
                    d.version
                )),
                Some(_) => {}
            }
        }
        for c in &r.relations.conflicts {
            if let Some((other, _)) = records.get(c) {
                problems.push(format!("{} conflicts with {}", r.id(), other.id()));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "the set cannot be installed as it is: {} (nothing was changed)",
            problems.join("; ")
        );
    }
    Ok(())
}

/// A held package stays at its installed version: the set must name it at that version.
fn check_holds(
    layout: &Layout,
    current: &BTreeMap<PackageName, Installed>,
    records: &BTreeMap<PackageName, (PackageRecord, usize)>,
) -> Result<()> {
    for name in layout.holds()? {
        let Some(p) = current.get(&name) else {
            continue;
        };
        let wants = records.get(&name).map(|(r, _)| &r.version);
        if wants != Some(&p.version) {
            let says = match wants {
                Some(v) => format!("names {v}"),
                None => "does not hold it".into(),
            };
            bail!(
                "{} is held, and the set {says}: `dist unhold {name}` first (nothing was changed)",
                p.id()
            );
        }
    }
    Ok(())
}
