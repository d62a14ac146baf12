//! Executing a [`Plan`], one way through (uv's preparer → installer): fetch every missing
//! object (torrents added together and awaited together, HTTP fetches meanwhile, up to
//! [`HTTP_PARALLEL`] at once), verify each object exactly once, store it by hard link, unpack,
//! then one [`Transition`]. Uninstall and rollback are transitions too. A failure before the
//! switch leaves `current` as it was.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::config::{Fetcher, Settings};
use super::fetch;
use super::fetch::all::fetch_all;
pub use super::fetch::all::HTTP_PARALLEL;
use super::plan::{Action, Plan, PlanItem};
use super::profile::Installed;
use super::resolve::Because;
use super::transition::{Target, Transition};
use super::{daemon, interrupt, Layout, Phase, Reporter};
use crate::format::ids::PackageName;
use crate::object::{self, VerifiedObject};

/// The stages of an install whose time `install --json` reports in `phases_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Resolve,
    Fetch,
    Verify,
    Unpack,
    Scripts,
    Switch,
}

impl Stage {
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Fetch => "fetch",
            Stage::Verify => "verify",
            Stage::Unpack => "unpack",
            Stage::Scripts => "scripts",
            Stage::Switch => "switch",
        }
    }
}

/// What happened to one package of the plan.
#[derive(Debug, Clone)]
pub struct Installation {
    pub item: PlanItem,
    pub store_path: std::path::PathBuf,
    pub bytes_from_peers: u64,
    pub bytes_from_webseed: u64,
    pub stages: BTreeMap<Stage, Duration>,
}

pub struct Outcome {
    pub installed: Vec<Installation>,
    /// The generation now current, if anything changed.
    pub generation: Option<u64>,
}

/// Runs the plan: fetch, verify, unpack, then one transition. On any failure (a refused object,
/// a failing script, an interruption) the torrents this run added are removed from the daemon
/// with their data, so nothing that was not installed is left downloading or seeding.
pub fn install(
    layout: &Layout,
    settings: &Settings,
    plan: Plan,
    report: &dyn Reporter,
) -> Result<Outcome> {
    let removes = plan.removes;
    let mut done: Vec<Installation> = plan
        .items
        .into_iter()
        .map(|item| Installation {
            store_path: layout.store_path(
                &item.record.blake3,
                &item.record.name,
                &item.record.version,
            ),
            item,
            bytes_from_peers: 0,
            bytes_from_webseed: 0,
            stages: BTreeMap::new(),
        })
        .collect();
    let mut swarm = Swarm::default();
    let generation = match run(layout, settings, &removes, &mut done, &mut swarm, report) {
        Ok(g) => g,
        Err(e) => {
            swarm.discard(report);
            return Err(e);
        }
    };
    if !settings.seed {
        // Leech only (`seed: false`): what this install downloaded stops being shared now.
        swarm.stop_sharing(report);
        return Ok(Outcome {
            installed: done,
            generation,
        });
    }
    // Seed what was fetched over HTTP and is now installed, so the swarm grows with its users
    // (best effort).
    for d in done
        .iter()
        .filter(|d| d.item.action == Action::Fetch(Fetcher::Http))
    {
        if let Err(e) = seed(layout, settings, &d.item) {
            let id = d.item.record.id();
            report.warn(&format!("{id}: installed, but cannot seed it: {e:#}"));
        }
    }
    Ok(Outcome {
        installed: done,
        generation,
    })
}

/// The torrents one install added to the daemon, to take back if the install fails.
#[derive(Default)]
pub(crate) struct Swarm {
    pub(crate) rpc: Option<crate::daemons::transmission::Rpc>,
    pub(crate) added: Vec<crate::format::ids::InfoHash>,
}

impl Swarm {
    /// Removes this install's torrents from the daemon, keeping their (installed) data.
    fn stop_sharing(&self, report: &dyn Reporter) {
        if let (Some(rpc), false) = (&self.rpc, self.added.is_empty()) {
            if let Err(e) = rpc.remove(&self.added, false) {
                report.warn(&format!("cannot stop seeding what was installed: {e:#}"));
            }
        }
    }

    fn discard(&self, report: &dyn Reporter) {
        if let (Some(rpc), false) = (&self.rpc, self.added.is_empty()) {
            if let Err(e) = rpc.remove(&self.added, true) {
                report.warn(&format!(
                    "cannot remove the torrents of the failed install: {e:#}"
                ));
            }
        }
    }
}

/// Fetch, verify, unpack, switch; the generation now current, if anything changed.
fn run(
    layout: &Layout,
    settings: &Settings,
    removes: &[Installed],
    done: &mut [Installation],
    swarm: &mut Swarm,
    report: &dyn Reporter,
) -> Result<Option<u64>> {
    let verified = fetch_and_verify(layout, settings, done, swarm, report)?;
    for (i, obj) in verified {
        interrupt::check()?;
        let inst = &mut done[i];
        let t = Instant::now();
        report.phase(&inst.item.record.id(), Phase::Unpack);
        if inst.item.reinstall {
            layout.reunpack_to_store(&obj, &inst.store_path)?;
        } else {
            layout.unpack_to_store(&obj, &inst.store_path)?;
        }
        inst.stages.insert(Stage::Unpack, t.elapsed());
    }
    let current = layout.current()?;
    let mut packages = current.map(|g| g.packages).unwrap_or_default();
    // Requested once, requested for good (until uninstalled); a dependency asked for by name
    // becomes requested.
    let requested = |d: &Installation, packages: &BTreeMap<PackageName, Installed>| {
        d.item.because == Because::Requested
            || packages
                .get(d.item.record.name.as_str())
                .is_some_and(|p| p.requested)
    };
    let entering: Vec<Installed> = done
        .iter()
        .filter(|d| d.item.action != Action::Installed)
        .map(|d| Installed {
            requested: requested(d, &packages),
            ..Installed::from_record(&d.item.record, d.store_path.clone())
        })
        .collect();
    let mut marked = false;
    for d in done.iter().filter(|d| d.item.action == Action::Installed) {
        if let Some(p) = packages.get_mut(d.item.record.name.as_str()) {
            if d.item.because == Because::Requested && !p.requested {
                p.requested = true;
                marked = true;
            }
        }
    }
    if entering.is_empty() && !marked && removes.is_empty() {
        return Ok(None);
    }
    // What a package of the plan conflicts with leaves first (`--replace`).
    let mut leaving: Vec<Installed> = removes.to_vec();
    for r in removes {
        packages.remove(&r.name);
    }
    for e in &entering {
        if let Some(old) = packages.insert(e.name.clone(), e.clone()) {
            // The same object unpacked again (`repair`, `--reinstall`) is not leaving: its
            // uninstall script would run after its install script and undo it.
            if old.blake3 != e.blake3 {
                leaving.push(old);
            }
        }
    }
    // A file conflict is found before any script runs.
    super::profile::executables(packages.values())?;
    let t = Instant::now();
    let switched = Transition {
        entering: entering.iter().collect(),
        leaving: leaving.iter().collect(),
        target: Target::New(packages),
        leaving_first: !removes.is_empty(),
        script_timeout: settings.script_timeout,
    }
    .apply(layout, report)?;
    let scripts_total: Duration = switched.scripts.values().sum();
    let switch = t.elapsed().saturating_sub(scripts_total);
    for d in done.iter_mut() {
        if let Some(s) = switched.scripts.get(&d.item.record.name) {
            d.stages.insert(Stage::Scripts, *s);
        }
        d.stages.insert(Stage::Switch, switch);
    }
    Ok(Some(switched.generation))
}

/// Gets every object the plan needs unpacked into a verified object: fetched ones are hashed
/// once, as downloaded, then linked into `objects/` without another pass; cached ones are hashed
/// once from `objects/`. Returns them with their index in `done`.
fn fetch_and_verify(
    layout: &Layout,
    settings: &Settings,
    done: &mut [Installation],
    swarm: &mut Swarm,
    report: &dyn Reporter,
) -> Result<Vec<(usize, VerifiedObject)>> {
    let fetched = fetch_all(layout, settings, done, swarm, report)?;
    let mut out = Vec::new();
    for (i, d) in done.iter_mut().enumerate() {
        let rec = &d.item.record;
        let id = rec.id();
        let (path, what) = match (&d.item.action, fetched.get(&i)) {
            (Action::Fetch(_), Some(f)) => (f.path.clone(), "downloaded"),
            (Action::Unpack, _) => (layout.objects().path(&rec.blake3), "cached"),
            _ => continue,
        };
        let t = Instant::now();
        report.phase(&id, Phase::Verify);
        let obj = match object::verify_file(&path, &rec.blake3) {
            Ok(obj) => obj,
            Err(e) => {
                // Refused bytes are not kept: the next attempt starts from nothing.
                if what == "downloaded" {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(anyhow::Error::new(e).context(format!(
                    "{id}: the {what} object failed verification; nothing was installed"
                )));
            }
        };
        d.stages.insert(Stage::Verify, t.elapsed());
        if what == "downloaded" {
            layout.objects().insert_verified(&obj)?;
        }
        out.push((i, obj));
    }
    Ok(out)
}

/// Hands an object fetched over HTTP to transmission so this client seeds it.
fn seed(layout: &Layout, settings: &Settings, item: &PlanItem) -> Result<()> {
    let rec = &item.record;
    let (bytes, _) =
        fetch::fetch_torrent_any(item.origin.repo.servers()?, settings.http_timeout, rec)?;
    let rpc = daemon::ensure(layout, settings)?;
    rpc.add_torrent(&bytes, &layout.download_dir(&rec.infohash), false)?;
    Ok(())
}

/// Switches to generation `to` (default: the one before current), running the install script
/// of what enters and the uninstall script of what leaves. Returns (from, to).
pub fn rollback(
    layout: &Layout,
    settings: &Settings,
    to: Option<u64>,
    report: &dyn Reporter,
) -> Result<(u64, u64)> {
    let gens = layout.generations()?;
    let cur = layout
        .current_number()?
        .context("nothing to roll back: no generation is current")?;
    let target = match to {
        Some(n) => gens.iter().find(|g| g.number == n).with_context(|| {
            format!(
                "there is no generation {n} (have: {})",
                gens.iter()
                    .map(|g| g.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => gens
            .iter()
            .rev()
            .find(|g| g.number < cur)
            .with_context(|| format!("generation {cur} is the oldest; nothing to roll back to"))?,
    };
    let current = gens
        .iter()
        .find(|g| g.number == cur)
        .context("the current generation is missing")?;
    let differs = |a: &BTreeMap<PackageName, Installed>, p: &Installed| {
        a.get(p.name.as_str()).map(|c| c.blake3) != Some(p.blake3)
    };
    let entering: Vec<&Installed> = target
        .packages
        .values()
        .filter(|p| differs(&current.packages, p))
        .collect();
    if let Some(p) = entering.iter().find(|p| !p.store_path.exists()) {
        bail!(
            "generation {} needs {}, whose store path was collected",
            target.number,
            p.id()
        );
    }
    let leaving: Vec<&Installed> = current
        .packages
        .values()
        .filter(|p| differs(&target.packages, p))
        .collect();
    Transition {
        entering,
        leaving,
        target: Target::Existing(target.number),
        leaving_first: false,
        script_timeout: settings.script_timeout,
    }
    .apply(layout, report)?;
    Ok((cur, target.number))
}
