//! Moving from one set of installed packages to another, the one way install, uninstall and
//! rollback all do it: install scripts of what enters (a failure switches nothing), one switch of
//! `current`, then uninstall scripts of what leaves.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::profile::Installed;
use super::{interrupt, Layout, Phase, Reporter};
use crate::daemons::supervise::{self, Signal};
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
    /// How long one script may run.
    pub script_timeout: Duration,
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
                run_script(layout, l, Script::Uninstall, self.script_timeout)?;
            }
        }
        let mut scripts = BTreeMap::new();
        for e in &self.entering {
            report.phase(&e.id(), Phase::Script(Script::Install));
            let t = Instant::now();
            run_script(layout, e, Script::Install, self.script_timeout)?;
            scripts.insert(e.name.clone(), t.elapsed());
        }
        let generation = match self.target {
            Target::New(packages) => layout.create_generation(packages)?.number,
            Target::Existing(n) => n,
        };
        layout.switch_to(generation)?;
        if !self.leaving_first {
            for l in &self.leaving {
                if let Err(e) = run_script(layout, l, Script::Uninstall, self.script_timeout) {
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

/// The environment a script gets, and nothing else (README "Scripts"): the five documented
/// `DIST_*` variables, a standard `PATH`, `HOME` and `LANG`. The caller's environment (tokens,
/// proxies, ...) is not passed on.
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `scripts/<which>.sh` of an installed package with `/bin/sh`, in its store path, in its
/// own process group, its output in `ROOT/logs/<name>-<version>-<which>.log`. It fails if the
/// script fails, runs longer than `timeout` (its whole process group is killed) or the user
/// interrupts. A background child the script leaves running (a service) does not hold it up:
/// nothing waits on its output.
fn run_script(layout: &Layout, p: &Installed, which: Script, timeout: Duration) -> Result<()> {
    let script = p.store_path.join(format!("scripts/{which}.sh"));
    let log = layout.script_log(p, which)?;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg(&script)
        .current_dir(&p.store_path)
        .env_clear()
        .env("PATH", SCRIPT_PATH)
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
        )
        .env("LANG", "C.UTF-8")
        .env("DIST_ROOT", &layout.root)
        .env("DIST_PACKAGE", p.name.as_str())
        .env("DIST_VERSION", p.version.to_string())
        .env("DIST_STORE_PATH", &p.store_path)
        .env("DIST_PROFILE", layout.current_link());
    let mut child = supervise::spawn_logged(&mut cmd, &log, Path::new("/bin/sh"), "dash")
        .with_context(|| format!("cannot run {}", script.display()))?;
    let start = Instant::now();
    // Most scripts are done in a few milliseconds: poll often at first, then every 20 ms (a
    // fixed 20 ms was most of a lone small install's time).
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let stop = if start.elapsed() > timeout {
            Some(format!(
                "timed out after {}s (script_timeout)",
                timeout.as_secs()
            ))
        } else {
            interrupt::check().err().map(|e| e.to_string())
        };
        if let Some(why) = stop {
            let _ = supervise::signal_group(child.id(), Signal::Kill);
            let _ = child.wait();
            bail!(
                "{which} script of {} {why}; its processes were killed (log: {})",
                p.id(),
                log.display()
            );
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    if !status.success() {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{which} script of {} failed ({status}){}",
            p.id(),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.join("\n").trim())
            }
        );
    }
    Ok(())
}

impl Layout {
    /// `ROOT/logs/<name>-<version>-<which>.log`, created empty for a new run.
    fn script_log(&self, p: &Installed, which: Script) -> Result<PathBuf> {
        let dir = self.root.join("logs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir.join(format!("{}-{}-{which}.log", p.name, p.version)))
    }
}
