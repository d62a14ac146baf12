//! Moving from one set of installed packages to another, the one way install, uninstall and
//! rollback all do it: install scripts of what enters (a failure switches nothing), one switch of
//! `current`, then uninstall scripts of what leaves.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::profile::Installed;
use super::{Layout, Phase, Reporter};
use crate::format::ids::PackageName;

/// A package's lifecycle scripts (store-format.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Install,
    Uninstall,
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Script::Install => "install",
            Script::Uninstall => "uninstall",
        })
    }
}

/// Where `current` goes.
pub enum Target {
    /// A new generation holding exactly these packages.
    New(BTreeMap<PackageName, Installed>),
    /// An existing generation (rollback).
    Existing(u64),
}

/// What changes, and when the uninstall scripts run.
pub struct Transition<'a> {
    pub entering: Vec<&'a Installed>,
    pub leaving: Vec<&'a Installed>,
    pub target: Target,
    /// `dist uninstall NAME`: the user asked for exactly this removal, so its script runs before
    /// the switch and a failure keeps the package (README "Packages"). Otherwise what leaves is
    /// a side effect of an install or rollback: its script runs after the switch and a failure
    /// is a warning.
    pub leaving_first: bool,
}

/// What a transition did: the generation now current, and each install script's time.
pub struct Switched {
    pub generation: u64,
    pub scripts: BTreeMap<PackageName, Duration>,
}

impl Transition<'_> {
    pub fn apply(self, layout: &Layout, report: &dyn Reporter) -> Result<Switched> {
        if self.leaving_first {
            for l in &self.leaving {
                report.phase(&l.id(), Phase::Script(Script::Uninstall));
                run_script(layout, l, Script::Uninstall)?;
            }
        }
        let mut scripts = BTreeMap::new();
        for e in &self.entering {
            report.phase(&e.id(), Phase::Script(Script::Install));
            let t = Instant::now();
            run_script(layout, e, Script::Install)?;
            scripts.insert(e.name.clone(), t.elapsed());
        }
        let generation = match self.target {
            Target::New(packages) => layout.create_generation(packages)?.number,
            Target::Existing(n) => n,
        };
        layout.switch_to(generation)?;
        if !self.leaving_first {
            for l in &self.leaving {
                if let Err(e) = run_script(layout, l, Script::Uninstall) {
                    report.warn(&format!("{e:#}"));
                }
            }
        }
        Ok(Switched {
            generation,
            scripts,
        })
    }
}

/// Runs `scripts/<which>.sh` of an installed package with `/bin/sh`, in its store path, with
/// the documented environment (README "Scripts").
fn run_script(layout: &Layout, p: &Installed, which: Script) -> Result<()> {
    let script = p.store_path.join(format!("scripts/{which}.sh"));
    let out = std::process::Command::new("/bin/sh")
        .arg(&script)
        .current_dir(&p.store_path)
        .env("DIST_ROOT", &layout.root)
        .env("DIST_PACKAGE", p.name.as_str())
        .env("DIST_VERSION", p.version.to_string())
        .env("DIST_STORE_PATH", &p.store_path)
        .env("DIST_PROFILE", layout.current_link())
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{which} script of {} failed ({}){}",
            p.id(),
            out.status,
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        );
    }
    Ok(())
}
