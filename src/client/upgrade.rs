//! `upgrade` and `outdated`, from one computation so they agree: the upgrade plan (the named
//! installed packages move to the newest versions their constraints and holds allow) and, for
//! every package that has a newer version than the plan gives it, why it is kept back (held,
//! deferred by a phased rollout, or which package's requirement excludes the newer version),
//! as apt says "kept back". A yanked version is never "newer": nothing moves to it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::config::Settings;
use super::generation::Installed;
use super::plan::{self, Action, Plan};
use super::request::{Request, Spec};
use super::rollout::{Policy, Withheld};
use super::sources::Sources;
use super::Layout;
use crate::format::ids::PackageName;
use crate::index::record::PackageRecord;

/// A package with a newer version than it gets.
#[derive(Debug, Clone)]
pub struct KeptBack {
    pub name: PackageName,
    pub installed: semver::Version,
    pub latest: semver::Version,
    /// `held`, `deferred by phased rollout (20 %)`, or
    /// `kept back: rainbow 1.4.0 requires libcolor ^1.2`.
    pub reason: String,
}

/// The plan of `dist upgrade NAME...` (`names`: installed packages; the requested ones stay
/// requested, dependencies move with them), without what stays as it is, and what is kept back.
/// `no_phasing`: phased versions are taken whatever this machine's place in their rollout.
pub fn plan(
    layout: &Layout,
    settings: &Settings,
    sources: &Sources,
    names: &BTreeSet<PackageName>,
    no_phasing: bool,
) -> Result<(Plan, Vec<KeptBack>)> {
    let installed = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let reqs: Vec<Request> = names
        .iter()
        .filter(|n| installed.get(*n).is_some_and(|p| p.requested))
        .map(|n| Request {
            name: n.clone(),
            spec: Spec::Latest,
            repo: None,
        })
        .collect();
    let options = plan::Options {
        refresh: names.clone(),
        no_phasing,
        ..Default::default()
    };
    let mut plan = plan::plan_with(layout, settings, sources, &reqs, options)?;
    plan.items.retain(|i| i.action != Action::Installed);
    let policy = Policy::for_root(layout, no_phasing)?;
    let kept = kept_back(layout, sources, &installed, &plan, (names, &policy))?;
    Ok((plan, kept))
}

/// The newest version of an installed package that `upgrade` would consider: the
/// highest-priority repository's newest that is not yanked, a pre-release only when a
/// pre-release is installed.
pub fn newest(sources: &Sources, p: &Installed) -> Result<Option<PackageRecord>> {
    Ok(sources
        .versions(&p.name, None)?
        .into_iter()
        .filter(|c| c.record.version.pre.is_empty() || !p.version.pre.is_empty())
        .filter(|c| c.record.yanked.is_none())
        .max_by(|a, b| {
            b.source
                .cmp(&a.source)
                .then_with(|| a.record.version.cmp_precedence(&b.record.version))
        })
        .map(|c| c.record))
}

/// Every package of `names` whose newest version is newer than what the plan leaves it at.
fn kept_back(
    layout: &Layout,
    sources: &Sources,
    installed: &BTreeMap<PackageName, Installed>,
    plan: &Plan,
    (names, policy): (&BTreeSet<PackageName>, &Policy),
) -> Result<Vec<KeptBack>> {
    // The next set, as records: the plan's, then what stays installed (from the index).
    let mut next: BTreeMap<PackageName, PackageRecord> = BTreeMap::new();
    for i in &plan.items {
        next.insert(i.record.name.clone(), i.record.clone());
    }
    for p in installed.values() {
        if next.contains_key(&p.name) {
            continue;
        }
        let versions = sources.versions(&p.name, None)?;
        if let Some(c) = versions.into_iter().find(|c| c.record.blake3 == p.blake3) {
            next.insert(p.name.clone(), c.record);
        }
    }
    let held = layout.holds()?;
    let mut out = Vec::new();
    for p in installed.values().filter(|p| names.contains(&p.name)) {
        let Some(latest) = newest(sources, p)? else {
            continue;
        };
        let gets = next.get(&p.name).map_or(&p.version, |r| &r.version);
        if latest.version.cmp_precedence(gets).is_le() {
            continue;
        }
        let reason = match policy.withheld(&latest) {
            _ if held.contains(&p.name) => "held".to_string(),
            Some(why @ Withheld::Deferred(_)) => why.to_string(),
            _ => blocker(&next, &latest),
        };
        out.push(KeptBack {
            name: p.name.clone(),
            installed: p.version.clone(),
            latest: latest.version,
            reason,
        });
    }
    Ok(out)
}

/// Why `latest` is not taken: the first package of the next set whose requirement on it
/// excludes it, else its own dependencies.
fn blocker(next: &BTreeMap<PackageName, PackageRecord>, latest: &PackageRecord) -> String {
    for r in next.values() {
        if let Some(req) = r.relations.depends.get(&latest.name) {
            if !req.matches(&latest.version) {
                return format!(
                    "kept back: {} {} requires {} {req}",
                    r.name, r.version, latest.name
                );
            }
        }
    }
    format!(
        "kept back: {} cannot be installed with the rest (its dependencies or conflicts)",
        latest.id()
    )
}

/// An installed package with a newer version in the index.
#[derive(Debug, Clone)]
pub struct Outdated {
    pub name: PackageName,
    pub installed: semver::Version,
    pub newest: semver::Version,
    pub held: bool,
    /// Why `upgrade` would not move it to `newest` (`None`: it would).
    pub kept_back: Option<String>,
    /// The installed version is yanked, and why (it stays installed).
    pub yanked: Option<String>,
    /// The index has other bytes for the installed version (their BLAKE3): every plan refuses
    /// until `install --reinstall NAME` accepts them (issue 25).
    pub changed: Option<crate::format::ids::ObjectId>,
}

/// Every installed package whose index has a newer version, each with why `upgrade` would not
/// take it, if it would not (the same computation as `upgrade`'s), and every installed version
/// the index yanks (`newest` is then the installed version when there is no newer one).
pub fn outdated(layout: &Layout, settings: &Settings, no_phasing: bool) -> Result<Vec<Outdated>> {
    let Some(current) = layout.current()? else {
        return Ok(Vec::new());
    };
    let sources = Sources::open(layout, settings)?;
    let held = layout.holds()?;
    let all: BTreeSet<PackageName> = current.packages.keys().cloned().collect();
    // A set that cannot be upgraded at all still has its outdated packages listed.
    let planned = plan(layout, settings, &sources, &all, no_phasing);
    let kept: BTreeMap<PackageName, String> = match planned {
        Ok((_, kept)) => kept.into_iter().map(|k| (k.name, k.reason)).collect(),
        Err(e) => all
            .iter()
            .map(|n| (n.clone(), format!("kept back: {e:#}")))
            .collect(),
    };
    let mut out = Vec::new();
    for p in current.packages.values() {
        let yanked = yank_of(&sources, p)?;
        let changed = changed_bytes(&sources, p)?;
        let newer = newest(&sources, p)?
            .map(|n| n.version)
            .filter(|v| v.cmp_precedence(&p.version).is_gt());
        if newer.is_none() && yanked.is_none() && changed.is_none() {
            continue;
        }
        out.push(Outdated {
            name: p.name.clone(),
            installed: p.version.clone(),
            kept_back: newer.as_ref().and_then(|_| kept.get(&p.name).cloned()),
            newest: newer.unwrap_or_else(|| p.version.clone()),
            held: held.contains(&p.name),
            yanked,
            changed,
        });
    }
    Ok(out)
}

/// The reason the index gives for yanking the installed object `p` (`None`: not yanked, or
/// no synced index has it).
pub fn yank_of(sources: &Sources, p: &Installed) -> Result<Option<String>> {
    Ok(sources
        .versions(&p.name, None)?
        .into_iter()
        .find(|c| c.record.blake3 == p.blake3)
        .and_then(|c| c.record.yanked)
        .map(|r| r.as_str().to_string()))
}

/// The BLAKE3 the highest-priority index that lists the installed version of `p` gives it,
/// when that is not the installed object's (`plan::ChangedBytes`).
pub fn changed_bytes(
    sources: &Sources,
    p: &Installed,
) -> Result<Option<crate::format::ids::ObjectId>> {
    Ok(sources
        .versions(&p.name, None)?
        .into_iter()
        .filter(|c| c.record.version.cmp_precedence(&p.version).is_eq())
        .min_by_key(|c| c.source)
        .and_then(|c| plan::ChangedBytes::of(p, &c.record))
        .map(|c| c.index))
}
