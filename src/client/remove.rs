//! Taking packages out of the current set: `uninstall` (refused while installed packages
//! depend on it, unless they go too) and `autoremove` (dependencies nothing requested needs any
//! more). Each removal is one `Transition`, dependents' uninstall scripts first.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

use super::config::Settings;
use super::generation::Installed;
use super::resolve;
use super::sources::Sources;
use super::transition::{Cause, Target, Transition};
use super::{Layout, Reporter};
use crate::format::ids::PackageName;

/// What an `uninstall` or `autoremove` takes out of the current set, decided without changing
/// anything: `--dry-run` prints it, [`Removal::apply`] carries it out.
#[derive(Debug, Clone)]
pub struct Removal {
    packages: BTreeMap<PackageName, Installed>,
    graph: BTreeMap<PackageName, BTreeSet<PackageName>>,
    gone: BTreeSet<PackageName>,
}

impl Removal {
    /// The packages that leave, dependents first (the order their uninstall scripts run).
    pub fn leaving(&self) -> Vec<Installed> {
        resolve::dependents_first(&self.graph, &self.gone)
            .iter()
            .map(|n| self.packages[n].clone())
            .collect()
    }

    /// The current set without them.
    pub fn remaining(&self) -> BTreeMap<PackageName, Installed> {
        let mut next = self.packages.clone();
        next.retain(|n, _| !self.gone.contains(n));
        next
    }

    /// One transition without them, their uninstall scripts dependents first; their holds
    /// are released after the switch. Returns the new generation and what left.
    pub fn apply(
        self,
        layout: &Layout,
        settings: &Settings,
        cause: Cause,
        report: &dyn Reporter,
    ) -> Result<(u64, Vec<Installed>)> {
        let leaving = self.leaving();
        let next = self.remaining();
        let transition =
            Transition::new(&self.packages, next, &BTreeSet::new(), Target::New, cause);
        let switched = transition.apply(layout, settings.script_timeout, report)?;
        // A hold is of an installed package: what left is held no more (issue 25: a held
        // package removed by `--with-dependents` stayed in `holds.json`).
        for name in &self.gone {
            layout.set_hold(name, false)?;
        }
        Ok((switched.generation, leaving))
    }
}

/// Removes `names` from the current set in one transition: their uninstall scripts first (a
/// failure keeps them), then a new generation without them. See [`plan_uninstall`] for what
/// is refused. `purge`: their scripts are told `purge`, and their state (`ROOT/var/<name>`)
/// and configuration (`ROOT/etc/<name>`) go with them.
pub fn uninstall(
    layout: &Layout,
    settings: &Settings,
    names: &[String],
    with_dependents: bool,
    purge: bool,
    report: &dyn Reporter,
) -> Result<(u64, Vec<Installed>)> {
    let cause = if purge { Cause::Purge } else { Cause::Change };
    plan_uninstall(layout, settings, names, with_dependents)?.apply(layout, settings, cause, report)
}

/// What `uninstall names` takes out: a package other installed packages (not being removed)
/// depend on is refused, naming them, unless `with_dependents` (then they go too).
pub fn plan_uninstall(
    layout: &Layout,
    settings: &Settings,
    names: &[String],
    with_dependents: bool,
) -> Result<Removal> {
    let current = layout
        .current()?
        .with_context(|| format!("`{}` is not installed (nothing is)", names.join("`, `")))?;
    let mut asked = BTreeSet::new();
    for name in names {
        if !current.packages.contains_key(name.as_str()) {
            let similar =
                super::suggest::similar(name, current.packages.keys().map(PackageName::as_str));
            bail!(
                "`{name}` is not installed{} (installed: {})",
                super::suggest::hint(&similar),
                current.labels().join(", ")
            );
        }
        asked.insert(PackageName::parse(name)?);
    }
    let graph = installed_graph(layout, settings, &current.packages)?;
    let dependents: BTreeSet<PackageName> = graph
        .edges
        .keys()
        .filter(|n| !asked.contains(*n))
        .filter(|n| {
            let needs = resolve::closure(&graph.edges, [*n]);
            asked.iter().any(|a| needs.contains(a))
        })
        .cloned()
        .collect();
    if !dependents.is_empty() && !with_dependents {
        let list: Vec<String> = dependents
            .iter()
            .map(|n| current.packages[n].id().to_string())
            .collect();
        let what: Vec<String> = asked.iter().map(|n| format!("`{n}`")).collect();
        bail!(
            "{} {} needed by {}: uninstall them first, or all together with --with-dependents",
            what.join(", "),
            if what.len() == 1 { "is" } else { "are" },
            list.join(", ")
        );
    }
    let mut gone = dependents;
    if let Some(blind) = graph
        .unknown
        .iter()
        .find(|n| !gone.contains(*n) && !asked.contains(*n))
    {
        let what: Vec<String> = asked.iter().map(|n| format!("`{n}`")).collect();
        bail!(
            "cannot tell whether {} needs {}: what it depends on was not recorded when it was installed and no synced index has it; `dist sync`, or uninstall it too",
            current.packages[blind].id(),
            what.join(", ")
        );
    }
    gone.extend(asked);
    Ok(Removal {
        packages: current.packages,
        graph: graph.edges,
        gone,
    })
}

/// Removes what nothing requested needs any more (installed as a dependency, no longer one).
/// `None` when there is nothing to remove.
pub fn autoremove(
    layout: &Layout,
    settings: &Settings,
    report: &dyn Reporter,
) -> Result<Option<(u64, Vec<Installed>)>> {
    match plan_autoremove(layout, settings)? {
        Some(r) => r.apply(layout, settings, Cause::Change, report).map(Some),
        None => Ok(None),
    }
}

/// What `autoremove` takes out: the installed packages that neither a requested nor a held
/// one needs. `None` when that is nothing.
pub fn plan_autoremove(layout: &Layout, settings: &Settings) -> Result<Option<Removal>> {
    let Some(current) = layout.current()? else {
        return Ok(None);
    };
    let graph = installed_graph(layout, settings, &current.packages)?;
    let held = layout.holds()?;
    let keep = resolve::closure(
        &graph.edges,
        current
            .packages
            .values()
            .filter(|p| p.requested || held.contains(&p.name))
            .map(|p| &p.name),
    );
    let gone: BTreeSet<PackageName> = current
        .packages
        .keys()
        .filter(|n| !keep.contains(*n))
        .cloned()
        .collect();
    // A package that stays and whose dependencies nobody can tell may need any of the rest.
    if gone.is_empty() || keep.iter().any(|n| graph.unknown.contains(n)) {
        return Ok(None);
    }
    Ok(Some(Removal {
        packages: current.packages,
        graph: graph.edges,
        gone,
    }))
}

/// Whether `name` is not installed (any more) but left state or configuration behind (a plain
/// `uninstall` earlier, or a purge killed after its switch): what [`purge_leftovers`] removes.
pub fn has_leftovers(layout: &Layout, name: &str) -> Result<bool> {
    let Ok(name) = PackageName::parse(name) else {
        return Ok(false);
    };
    let installed = layout
        .current()?
        .is_some_and(|g| g.packages.contains_key(&name));
    let dirs = [layout.state_dir(&name), layout.config_dir(&name)];
    Ok(!installed && dirs.iter().any(|d| std::fs::symlink_metadata(d).is_ok()))
}

/// `uninstall --purge NAME` of a package that [`has_leftovers`]: removes `ROOT/var/NAME` and
/// `ROOT/etc/NAME`. False when `name` is installed or left nothing.
pub fn purge_leftovers(layout: &Layout, name: &str) -> Result<bool> {
    if !has_leftovers(layout, name)? {
        return Ok(false);
    }
    let name = PackageName::parse(name)?;
    for d in [layout.state_dir(&name), layout.config_dir(&name)] {
        super::transition::purge_dir(&d)?;
    }
    Ok(true)
}

/// The installed dependency graph, and the packages whose dependencies nobody can tell.
struct Graph {
    edges: BTreeMap<PackageName, BTreeSet<PackageName>>,
    /// Neither recorded (a generation written before dependencies were) nor in a synced index.
    unknown: BTreeSet<PackageName>,
}

/// The installed dependency graph: what each package depends on as recorded when it was
/// installed (red team, issue 25: never rebuilt from whatever index is synced now, which may be
/// another repository's, or none); only for a package of a generation written before that was
/// recorded, from the synced indexes' row of its installed bytes.
fn installed_graph(
    layout: &Layout,
    settings: &Settings,
    packages: &BTreeMap<PackageName, Installed>,
) -> Result<Graph> {
    let mut edges = resolve::recorded_graph(packages);
    let mut unknown: BTreeSet<PackageName> = packages
        .values()
        .filter(|p| p.depends.is_none())
        .map(|p| p.name.clone())
        .collect();
    let synced = settings
        .repositories
        .iter()
        .any(|r| layout.index_dir(r).exists());
    if !unknown.is_empty() && synced {
        let sources = Sources::open(layout, settings)?;
        for (name, deps) in resolve::index_graph(&sources, packages, &unknown)? {
            unknown.remove(&name);
            edges.insert(name, deps);
        }
    }
    Ok(Graph { edges, unknown })
}
