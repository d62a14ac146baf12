//! Moving from one set of installed packages to another: the one rule every command that
//! switches generations goes through (install, upgrade, uninstall, autoremove, rollback, repair).
//!
//! [`Transition::new`] compares the current set with the next one and gives each package that
//! changes a [`Step`]: it arrives, leaves, is upgraded or downgraded (same name, other version)
//! or reinstalled (the same object unpacked again). [`Transition::apply`] then runs, in this
//! order (README "Scripts"; dpkg's maintainer-script order, with one script on each side):
//! 1. `uninstall.sh` of every old version that leaves or is replaced, dependents first
//!    (`DIST_ACTION` `remove`/`purge`, `upgrade`/`downgrade`, or `rollback`);
//! 2. for every new version, dependencies first: its configuration files are settled
//!    (`conffiles`), then its `install.sh` runs (`install`, `upgrade`/`downgrade`,
//!    `reinstall` or `rollback`);
//! 3. one switch of `current`; then a purge removes the state and configuration it names.
//!
//! A failure at any point (a script, the user's Ctrl-C, the switch) undoes what ran, newest
//! first, before the error is returned: a new version whose `install.sh` ran (or failed) gets
//! its `uninstall.sh` with `abort-install` (or `abort-upgrade`), its configuration files are put
//! back, and an old version whose `uninstall.sh` ran gets its `install.sh` with `abort-upgrade`
//! (or `abort-remove`), so it is left as its scripts left it. `current` is not touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::conffiles::{self, Written};
use super::generation::Installed;
use super::scripts::{self, Action, Run, Script};
use super::{trees, Layout, Phase, Reporter};
use crate::format::ids::PackageName;

/// What happens to one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Install,
    Upgrade,
    Downgrade,
    /// The same object unpacked again (`repair`, `install --reinstall`), or the same version
    /// with other bytes.
    Reinstall,
    Remove,
}

impl Change {
    /// `install --json`'s `action`.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Install => "install",
            Change::Upgrade => "upgrade",
            Change::Downgrade => "downgrade",
            Change::Reinstall => "reinstall",
            Change::Remove => "remove",
        }
    }

    /// From the versions on both sides (`None`: absent).
    pub fn between(old: Option<&semver::Version>, new: Option<&semver::Version>) -> Option<Change> {
        Some(match (old, new) {
            (None, None) => return None,
            (None, Some(_)) => Change::Install,
            (Some(_), None) => Change::Remove,
            (Some(o), Some(n)) => match n.cmp_precedence(o) {
                std::cmp::Ordering::Greater => Change::Upgrade,
                std::cmp::Ordering::Less => Change::Downgrade,
                std::cmp::Ordering::Equal => Change::Reinstall,
            },
        })
    }
}

/// Why the set changes: it decides the words the scripts are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// install, upgrade, repair, autoremove, `uninstall` without `--purge`.
    Change,
    /// `uninstall --purge`: what leaves takes its state and configuration along.
    Purge,
    /// `rollback`: what enters or leaves entirely is told `rollback`.
    Rollback,
}

/// One package that changes.
#[derive(Debug, Clone)]
pub struct Step {
    pub change: Change,
    pub old: Option<Installed>,
    pub new: Option<Installed>,
}

impl Step {
    fn name(&self) -> &PackageName {
        match (&self.new, &self.old) {
            (Some(p), _) | (None, Some(p)) => &p.name,
            (None, None) => unreachable!("a step has a side"),
        }
    }
}

/// Where `current` goes.
pub enum Target {
    /// A new generation holding exactly the next set.
    New,
    /// An existing generation (rollback).
    Existing(u64),
}

/// From the current set to the next one.
pub struct Transition {
    next: BTreeMap<PackageName, Installed>,
    /// Old sides in the order their `uninstall.sh` runs (dependents first).
    leaving: Vec<usize>,
    /// New sides in the order their `install.sh` runs (dependencies first).
    entering: Vec<usize>,
    steps: Vec<Step>,
    target: Target,
    cause: Cause,
    /// The next set's merged trees, when the caller computed them already (install does, to
    /// settle clashes); otherwise they are computed before any script runs.
    trees: Option<trees::Merged>,
}

/// What a transition did.
pub struct Switched {
    pub generation: u64,
    /// Each install script's time.
    pub scripts: BTreeMap<PackageName, Duration>,
    /// Configuration files the user had changed: kept, the new version's beside them.
    pub config_kept: Vec<PathBuf>,
}

impl Transition {
    /// The steps from `current` to `next`; `reinstall` names packages whose same object is
    /// unpacked again (their `install.sh` runs again). Packages that stay have no step.
    pub fn new(
        current: &BTreeMap<PackageName, Installed>,
        next: BTreeMap<PackageName, Installed>,
        reinstall: &BTreeSet<PackageName>,
        target: Target,
        cause: Cause,
    ) -> Transition {
        let names: BTreeSet<&PackageName> = current.keys().chain(next.keys()).collect();
        let mut steps = Vec::new();
        for name in names {
            let (old, new) = (current.get(name), next.get(name));
            let same = matches!((old, new), (Some(o), Some(n)) if o.blake3 == n.blake3);
            if same && !reinstall.contains(name) {
                continue;
            }
            let change = Change::between(old.map(|p| &p.version), new.map(|p| &p.version))
                .expect("a name from one side");
            steps.push(Step {
                change,
                old: old.cloned(),
                new: new.cloned(),
            });
        }
        let position = |order: Vec<PackageName>, side: fn(&Step) -> bool| -> Vec<usize> {
            order
                .iter()
                .filter_map(|n| steps.iter().position(|s| s.name() == n && side(s)))
                .collect()
        };
        let mut leaving = position(dependencies_first(current), |s| {
            s.old.is_some() && s.change != Change::Reinstall
        });
        leaving.reverse();
        let entering = position(dependencies_first(&next), |s| s.new.is_some());
        Transition {
            next,
            leaving,
            entering,
            steps,
            target,
            cause,
            trees: None,
        }
    }

    /// The next set's trees, as [`trees::merge`] made them of the same `next`.
    pub fn with_trees(mut self, merged: trees::Merged) -> Transition {
        self.trees = Some(merged);
        self
    }

    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Runs the scripts and switches (module docs); undoes what ran if anything fails.
    pub fn apply(
        self,
        layout: &Layout,
        timeout: Duration,
        report: &dyn Reporter,
    ) -> Result<Switched> {
        let mut journal = Journal::default();
        match self.forward(layout, timeout, report, &mut journal) {
            Ok(switched) => {
                self.purge(layout, report);
                Ok(switched)
            }
            Err(e) => {
                self.undo(journal, layout, timeout, report);
                Err(e)
            }
        }
    }

    fn forward(
        &self,
        layout: &Layout,
        timeout: Duration,
        report: &dyn Reporter,
        journal: &mut Journal,
    ) -> Result<Switched> {
        // A clash between two packages' trees is refused before any script runs.
        let computed;
        let merged = match (&self.target, &self.trees) {
            (Target::Existing(_), _) => None,
            (Target::New, Some(m)) => Some(m),
            (Target::New, None) => {
                computed = trees::merge(self.next.values())?;
                Some(&computed)
            }
        };
        for &i in &self.leaving {
            let step = &self.steps[i];
            let old = step.old.as_ref().expect("a leaving side");
            journal.ran.push(Ran::Uninstall(i));
            report.phase(&old.id(), Phase::Script(Script::Uninstall));
            scripts::run(layout, &self.run(step, Script::Uninstall), timeout, report)?;
        }
        let mut switched = Switched {
            generation: 0,
            scripts: BTreeMap::new(),
            config_kept: Vec::new(),
        };
        for &i in &self.entering {
            let step = &self.steps[i];
            let new = step.new.as_ref().expect("an entering side");
            if step.change != Change::Reinstall {
                let kept = conffiles::settle(layout, step.old.as_ref(), new, &mut journal.config);
                switched.config_kept.extend(kept?);
            }
            journal.ran.push(Ran::Install(i));
            report.phase(&new.id(), Phase::Script(Script::Install));
            let t = Instant::now();
            scripts::run(layout, &self.run(step, Script::Install), timeout, report)?;
            switched.scripts.insert(new.name.clone(), t.elapsed());
        }
        switched.generation = match (&self.target, merged) {
            (Target::Existing(n), _) => *n,
            (Target::New, merged) => {
                let merged = merged.expect("merged for a new generation");
                layout.create_generation(self.next.clone(), merged)?.number
            }
        };
        layout.switch_to(switched.generation)?;
        Ok(switched)
    }

    /// The forward run of one script of a step.
    fn run<'a>(&self, step: &'a Step, script: Script) -> Run<'a> {
        let package = match script {
            Script::Install => step.new.as_ref(),
            Script::Uninstall => step.old.as_ref(),
        }
        .expect("the side the script belongs to");
        let action = match (step.change, self.cause) {
            (Change::Install | Change::Remove, Cause::Rollback) => Action::Rollback,
            (Change::Install, _) => Action::Install,
            (Change::Remove, Cause::Purge) => Action::Purge,
            (Change::Remove, _) => Action::Remove,
            (Change::Upgrade, _) => Action::Upgrade,
            (Change::Downgrade, _) => Action::Downgrade,
            (Change::Reinstall, _) => Action::Reinstall,
        };
        Run {
            package,
            script,
            action,
            old_version: step.old.as_ref().map(|p| &p.version),
            new_version: step.new.as_ref().map(|p| &p.version),
            interruptible: true,
        }
    }

    /// Undoes what `forward` ran, newest first (module docs). Failures here are warnings: the
    /// error that made the transition fail is the one returned.
    fn undo(&self, journal: Journal, layout: &Layout, timeout: Duration, report: &dyn Reporter) {
        let Journal { ran, config } = journal;
        let mut config = Some(config);
        for r in ran.into_iter().rev() {
            let (i, script) = match r {
                Ran::Install(i) => (i, Script::Uninstall),
                Ran::Uninstall(i) => (i, Script::Install),
            };
            let step = &self.steps[i];
            if script == Script::Install {
                // Every new version's configuration was settled after every old version's
                // uninstall script ran: put it back before the old versions' install scripts.
                for failed in config.take().map(Written::undo).unwrap_or_default() {
                    report.warn(&failed);
                }
            }
            let Some(run) = undo_run(step, script) else {
                continue;
            };
            report.phase(&run.package.id(), Phase::Script(script));
            if let Err(e) = scripts::run(layout, &run, timeout, report) {
                report.warn(&format!("while undoing: {e:#}"));
            }
        }
        for failed in config.map(Written::undo).unwrap_or_default() {
            report.warn(&failed);
        }
    }

    /// After the switch: what `uninstall --purge` removed takes its state and configuration.
    fn purge(&self, layout: &Layout, report: &dyn Reporter) {
        if self.cause != Cause::Purge {
            return;
        }
        for step in self.steps.iter().filter(|s| s.change == Change::Remove) {
            let name = step.name();
            for dir in [layout.state_dir(name), layout.config_dir(name)] {
                if let Err(e) = purge_dir(&dir) {
                    report.warn(&format!("{name}: cannot purge {}: {e:#}", dir.display()));
                }
            }
        }
    }
}

/// Removes a package's state or configuration directory, if there is one.
pub fn purge_dir(dir: &std::path::Path) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_ok() {
        crate::store::fsx::remove_tree(dir)?;
    }
    Ok(())
}

/// The script that undoes one that ran: the new version's `uninstall.sh` for an install script
/// (`abort-install`, or `abort-upgrade` when it replaced a version), the old version's
/// `install.sh` for an uninstall script (`abort-upgrade`, or `abort-remove` when it was
/// leaving). A reinstall has nothing to undo.
fn undo_run(step: &Step, script: Script) -> Option<Run<'_>> {
    let (package, action) = match (script, step.change) {
        (_, Change::Reinstall) => return None,
        (Script::Uninstall, Change::Install) => (step.new.as_ref()?, Action::AbortInstall),
        (Script::Uninstall, _) => (step.new.as_ref()?, Action::AbortUpgrade),
        (Script::Install, Change::Remove) => (step.old.as_ref()?, Action::AbortRemove),
        (Script::Install, _) => (step.old.as_ref()?, Action::AbortUpgrade),
    };
    Some(Run {
        package,
        script,
        action,
        old_version: step.old.as_ref().map(|p| &p.version),
        new_version: step.new.as_ref().map(|p| &p.version),
        interruptible: false,
    })
}

/// What `forward` started, in order: a script is recorded before it runs, so the one that
/// failed is undone too (dpkg runs `abort-install` after a failed `preinst install`).
#[derive(Default)]
struct Journal {
    ran: Vec<Ran>,
    config: Written,
}

enum Ran {
    Uninstall(usize),
    Install(usize),
}

/// The names of a set, each after what it depends on (the recorded graph), by name among
/// equals; a cycle is broken by name order.
pub fn dependencies_first(set: &BTreeMap<PackageName, Installed>) -> Vec<PackageName> {
    let names: BTreeSet<PackageName> = set.keys().cloned().collect();
    let mut order = super::resolve::dependents_first(&super::resolve::recorded_graph(set), &names);
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ids::ObjectId;

    fn pkg(name: &str, version: &str, byte: u8, depends: &[&str]) -> Installed {
        Installed {
            name: PackageName::parse(name).unwrap(),
            version: semver::Version::parse(version).unwrap(),
            blake3: ObjectId::from_bytes([byte; 32]),
            infohash: crate::format::ids::InfoHash::from_bytes([byte; 20]),
            store_path: PathBuf::from(format!("/store/{name}-{version}")),
            requested: true,
            size: 1,
            depends: Some(
                depends
                    .iter()
                    .map(|d| PackageName::parse(d).unwrap())
                    .collect(),
            ),
        }
    }

    fn set(pkgs: &[Installed]) -> BTreeMap<PackageName, Installed> {
        pkgs.iter().map(|p| (p.name.clone(), p.clone())).collect()
    }

    #[test]
    fn each_package_gets_one_change() {
        let current = set(&[
            pkg("a", "1.0.0", 1, &[]),
            pkg("b", "2.0.0", 2, &[]),
            pkg("c", "1.0.0", 3, &[]),
            pkg("d", "1.0.0", 4, &[]),
            pkg("e", "1.0.0", 5, &[]),
        ]);
        let next = set(&[
            pkg("a", "1.1.0", 6, &[]),
            pkg("b", "1.0.0", 7, &[]),
            pkg("c", "1.0.0", 3, &[]),
            pkg("d", "1.0.0", 4, &[]),
            pkg("f", "1.0.0", 8, &[]),
        ]);
        let again = [PackageName::parse("d").unwrap()].into();
        let t = Transition::new(&current, next, &again, Target::New, Cause::Change);
        let got: Vec<(String, Change)> = t
            .steps()
            .iter()
            .map(|s| (s.name().to_string(), s.change))
            .collect();
        let want = [
            ("a", Change::Upgrade),
            ("b", Change::Downgrade),
            ("d", Change::Reinstall),
            ("e", Change::Remove),
            ("f", Change::Install),
        ];
        let want: Vec<(String, Change)> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        assert_eq!(got, want);
        // A reinstall runs no uninstall script.
        assert!(t
            .leaving
            .iter()
            .all(|&i| t.steps[i].change != Change::Reinstall));
    }

    #[test]
    fn dependents_leave_first_and_dependencies_enter_first() {
        let current = set(&[
            pkg("app", "1.0.0", 1, &["lib"]),
            pkg("lib", "1.0.0", 2, &[]),
        ]);
        let next = set(&[
            pkg("app", "2.0.0", 3, &["lib"]),
            pkg("lib", "2.0.0", 4, &[]),
        ]);
        let t = Transition::new(&current, next, &BTreeSet::new(), Target::New, Cause::Change);
        let names = |order: &[usize]| -> Vec<String> {
            order
                .iter()
                .map(|&i| t.steps[i].name().to_string())
                .collect()
        };
        assert_eq!(names(&t.leaving), ["app", "lib"]);
        assert_eq!(names(&t.entering), ["lib", "app"]);
    }

    #[test]
    fn scripts_are_told_what_happens() {
        let current = set(&[pkg("svc", "1.0.0", 1, &[]), pkg("old", "1.0.0", 2, &[])]);
        let next = set(&[pkg("svc", "0.9.0", 3, &[]), pkg("new", "1.0.0", 4, &[])]);
        for (cause, gone, came) in [
            (Cause::Change, Action::Remove, Action::Install),
            (Cause::Purge, Action::Purge, Action::Install),
            (Cause::Rollback, Action::Rollback, Action::Rollback),
        ] {
            let t = Transition::new(&current, next.clone(), &BTreeSet::new(), Target::New, cause);
            let action = |name: &str, script| {
                let step = t.steps().iter().find(|s| s.name() == name).unwrap();
                t.run(step, script).action
            };
            assert_eq!(action("svc", Script::Uninstall), Action::Downgrade);
            assert_eq!(action("svc", Script::Install), Action::Downgrade);
            assert_eq!(action("old", Script::Uninstall), gone);
            assert_eq!(action("new", Script::Install), came);
        }
        let step = Step {
            change: Change::Upgrade,
            old: Some(pkg("svc", "1.0.0", 1, &[])),
            new: Some(pkg("svc", "1.1.0", 2, &[])),
        };
        let undo = undo_run(&step, Script::Install).unwrap();
        assert_eq!(
            (undo.action, undo.package.version.minor),
            (Action::AbortUpgrade, 0)
        );
        let undo = undo_run(&step, Script::Uninstall).unwrap();
        assert_eq!(
            (undo.action, undo.package.version.minor),
            (Action::AbortUpgrade, 1)
        );
    }
}
