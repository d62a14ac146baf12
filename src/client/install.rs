//! Executing a [`Plan`], one way through (uv's preparer → installer): fetching returns a
//! report per object ([`FetchReport`]) and never edits the plan; each object is verified
//! exactly once and stored by hard link; new store paths are unpacked; then one
//! [`Transition`] runs the scripts and switches. A failure anywhere before the switch leaves
//! `current` as it was, and the [`Guard`] takes back what this run made (torrents added, store
//! paths unpacked) when it is dropped without `commit`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::config::{Engine, Fetcher, Settings, Why};
pub use super::fetch::all::HTTP_PARALLEL;
use super::fetch::all::{fetch_all, FetchReport};
use super::fetch::{self, Swarm};
use super::generation::Installed;
use super::plan::{Action, Plan, PlanItem};
use super::resolve::Because;
use super::transition::{Cause, Change, Target, Transition};
use super::trees::{self, Clash, MergeError};
use super::{daemon, interrupt, seeder, seeding, Layout, Phase, Reporter};
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
    /// Handing what was fetched to the seeding engine, after the switch.
    Seed,
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
            Stage::Seed => "seed",
        }
    }
}

/// What happened to one package of the plan: the plan's item as planned, how it was fetched,
/// and what the transition did with it.
#[derive(Debug, Clone)]
pub struct Installation {
    pub item: PlanItem,
    pub store_path: PathBuf,
    /// How its object was fetched (`None`: nothing was fetched).
    pub fetched: Option<FetchReport>,
    /// `None`: it was installed already and stays.
    pub change: Option<Change>,
    pub stages: BTreeMap<Stage, Duration>,
}

impl Installation {
    pub fn bytes_from_peers(&self) -> u64 {
        self.fetched
            .as_ref()
            .map_or(0, |f| f.fetched.bytes_from_peers)
    }
    pub fn bytes_from_webseed(&self) -> u64 {
        self.fetched
            .as_ref()
            .map_or(0, |f| f.fetched.bytes_from_webseed)
    }
    /// The transport that fetched it, and why; the plan's when nothing was fetched.
    pub fn transport(&self) -> Option<(Fetcher, Option<Why>)> {
        match &self.fetched {
            Some(f) => Some((f.transport, Some(f.why))),
            None => self.item.action.fetcher().map(|t| (t, self.item.why)),
        }
    }
    /// The version it replaced, if any.
    pub fn old_version(&self) -> Option<&semver::Version> {
        self.item.replaces.as_ref().map(|r| &r.version)
    }
}

pub struct Outcome {
    pub installed: Vec<Installation>,
    /// The generation now current, if anything changed.
    pub generation: Option<u64>,
    /// Configuration files the user had changed: kept, the new version's beside them.
    pub config_kept: Vec<PathBuf>,
    /// Installed packages `--replace` removed because a package of the plan provides one of
    /// their profile paths.
    pub replaced: Vec<Replaced>,
    /// The background process this install started to seed what it fetched (issue 23,
    /// finding 2): `None` when nothing is seeded or the process ran already.
    pub seeding: Option<seeding::Started>,
}

/// An installed package that left for a package of the plan (`--replace`), and the clash.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub package: Installed,
    pub clash: Clash,
}

/// Takes back what a failed install made: the torrents it added (with their data) and the
/// store paths it unpacked anew. Disarmed by [`Guard::commit`] once the switch happened.
struct Guard<'a> {
    layout: &'a Layout,
    report: &'a dyn Reporter,
    swarm: Swarm,
    unpacked: Vec<PathBuf>,
    armed: bool,
}

impl Guard<'_> {
    fn commit(mut self) -> Swarm {
        self.armed = false;
        std::mem::take(&mut self.swarm)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = self.swarm.remove(true) {
            let msg = format!("cannot remove the torrents of the failed install: {e:#}");
            self.report.warn(&msg);
        }
        for path in self.unpacked.iter().rev() {
            // Referenced by no generation: the switch did not happen.
            let gone = crate::store::fsx::remove_tree(path)
                .and_then(|()| remove_if_there(&super::profile::record_path(path)));
            if let Err(e) = gone {
                self.report
                    .warn(&format!("cannot remove {}: {e:#}", path.display()));
            }
        }
    }
}

fn remove_if_there(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs the plan: fetch, verify, unpack, then one transition (see the module docs for what a
/// failure leaves).
pub fn install(
    layout: &Layout,
    settings: &Settings,
    plan: Plan,
    report: &dyn Reporter,
) -> Result<Outcome> {
    let mut guard = Guard {
        layout,
        report,
        swarm: Swarm::default(),
        unpacked: Vec::new(),
        armed: true,
    };
    let seeding_before =
        match settings.seed && plan.items.iter().any(|i| i.action.fetcher().is_some()) {
            true => seeding::running(layout, settings.upload_limit),
            false => Vec::new(),
        };
    let mut fetched = fetch_all(layout, settings, &plan.items, &mut guard.swarm, report)?;
    let verified = verify_all(layout, &plan.items, &fetched, report)?;
    let mut done: Vec<Installation> = plan
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let fetched = fetched.remove(&i);
            let rec = &item.record;
            Installation {
                store_path: layout.store_path(&rec.blake3, &rec.name, &rec.version),
                stages: fetched.iter().map(|f| (Stage::Fetch, f.took)).collect(),
                fetched,
                change: None,
                item: item.clone(),
            }
        })
        .collect();
    for (i, obj, took) in verified {
        done[i].stages.insert(Stage::Verify, took);
        interrupt::check()?;
        unpack(&mut guard, &mut done[i], &obj, report)?;
    }
    let switched = switch(layout, settings, &plan, &mut done, report)?;
    let swarm = guard.commit();
    let shared = share(layout, settings, &swarm, &mut done, report);
    let (generation, config_kept, replaced) = match switched {
        Some(s) => (Some(s.generation), s.config_kept, s.replaced),
        None => (None, Vec::new(), Vec::new()),
    };
    Ok(Outcome {
        installed: done,
        generation,
        config_kept,
        replaced,
        seeding: seeding::started(layout, settings, &seeding_before, shared),
    })
}

/// Unpacks one verified object into its store path (again, over it, for a reinstall).
fn unpack(
    guard: &mut Guard<'_>,
    d: &mut Installation,
    obj: &VerifiedObject,
    report: &dyn Reporter,
) -> Result<()> {
    let t = Instant::now();
    report.phase(&d.item.record.id(), Phase::Unpack);
    if d.item.reinstall {
        guard.layout.reunpack_to_store(obj, &d.store_path)?;
    } else if !d.store_path.exists() {
        guard.unpacked.push(d.store_path.clone());
        guard.layout.unpack_to_store(obj, &d.store_path)?;
    }
    d.stages.insert(Stage::Unpack, t.elapsed());
    Ok(())
}

/// What [`switch`] did: the generation now current, the configuration files kept, and what
/// `--replace` took out for a clash of trees.
struct Switch {
    generation: u64,
    config_kept: Vec<PathBuf>,
    replaced: Vec<Replaced>,
}

/// The next set from the current one and the plan, then one transition to it. `None` when
/// nothing changes.
fn switch(
    layout: &Layout,
    settings: &Settings,
    plan: &Plan,
    done: &mut [Installation],
    report: &dyn Reporter,
) -> Result<Option<Switch>> {
    let current = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let mut next = current.clone();
    for r in &plan.removes {
        next.remove(&r.name);
    }
    let mut marked = false;
    for d in done.iter() {
        let rec = &d.item.record;
        // Requested once, requested for good (until uninstalled); `apply` says which exactly.
        let was = current.get(rec.name.as_str()).is_some_and(|p| p.requested);
        let requested = d.item.because == Because::Requested || (was && !plan.exact);
        match next.get_mut(rec.name.as_str()) {
            Some(p) if p.blake3 == rec.blake3 => {
                marked |= requested != p.requested;
                p.requested = requested;
            }
            _ => {
                let entry = Installed::from_record(rec, d.store_path.clone());
                next.insert(rec.name.clone(), Installed { requested, ..entry });
            }
        }
    }
    let reinstall: BTreeSet<PackageName> = plan
        .items
        .iter()
        .filter(|i| i.reinstall)
        .map(|i| i.record.name.clone())
        .collect();
    // The switch's time includes merging the trees; a clash is settled before any script runs.
    let t = Instant::now();
    let (merged, replaced) = settle_trees(layout, plan, &current, &mut next)?;
    let transition =
        Transition::new(&current, next, &reinstall, Target::New, Cause::Change).with_trees(merged);
    if transition.is_empty() && !marked {
        return Ok(None);
    }
    for step in transition.steps() {
        let Some(new) = &step.new else { continue };
        if let Some(d) = done.iter_mut().find(|d| d.item.record.name == new.name) {
            d.change = Some(step.change);
        }
    }
    let switched = transition.apply(layout, settings.script_timeout, report)?;
    let scripts_total: Duration = switched.scripts.values().sum();
    let took = t.elapsed().saturating_sub(scripts_total);
    for d in done.iter_mut() {
        if let Some(s) = switched.scripts.get(&d.item.record.name) {
            d.stages.insert(Stage::Scripts, *s);
        }
        d.stages.insert(Stage::Switch, took);
    }
    Ok(Some(Switch {
        generation: switched.generation,
        config_kept: switched.config_kept,
        replaced,
    }))
}

/// Merges the next set's trees; a clash between a package of the plan and an installed one
/// that stays is settled by taking the installed one out (`--replace`), else refused naming
/// both. Returns the merged trees of what remains and what was taken out.
fn settle_trees(
    layout: &Layout,
    plan: &Plan,
    current: &BTreeMap<PackageName, Installed>,
    next: &mut BTreeMap<PackageName, Installed>,
) -> Result<(trees::Merged, Vec<Replaced>)> {
    let mut replaced = Vec::new();
    loop {
        let clash = match trees::merge(next.values()) {
            Ok(merged) => return Ok((merged, replaced)),
            Err(MergeError::Io(e)) => return Err(e),
            Err(MergeError::Clash(c)) => c,
        };
        let staying = |n: &PackageName| {
            !plan.items.iter().any(|i| i.record.name == *n)
                && current
                    .get(n.as_str())
                    .is_some_and(|p| next.get(n.as_str()).is_some_and(|q| q.blake3 == p.blake3))
        };
        let victim = [&clash.first, &clash.second]
            .into_iter()
            .find(|n| staying(n))
            .cloned();
        match victim {
            Some(v) if plan.replace => {
                super::plan::may_replace(layout, next.values(), &v, &clash.to_string())?;
                let package = next.remove(&v).expect("a staying package is in the next set");
                replaced.push(Replaced { package, clash });
            }
            Some(v) => bail!(
                "{clash}: they cannot be installed together; pass --replace to remove {v} in the same step"
            ),
            None => bail!("{clash}: they cannot be installed together"),
        }
    }
}

/// Every object the plan unpacks, verified once: a fetched one as downloaded (then linked into
/// `objects/` without another pass), a cached one from `objects/`. Refused downloaded bytes are
/// removed, so the next attempt starts from nothing. Returns each with its index in the plan.
fn verify_all(
    layout: &Layout,
    items: &[PlanItem],
    fetched: &BTreeMap<usize, FetchReport>,
    report: &dyn Reporter,
) -> Result<Vec<(usize, VerifiedObject, Duration)>> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rec = &item.record;
        let (path, downloaded) = match (&item.action, fetched.get(&i)) {
            (Action::Fetch(_), Some(f)) => (f.fetched.path.clone(), true),
            (Action::Unpack, _) => (layout.objects().path(&rec.blake3), false),
            _ => continue,
        };
        let t = Instant::now();
        report.phase(&rec.id(), Phase::Verify);
        let obj = object::verify_file(&path, &rec.blake3).map_err(|e| {
            if downloaded {
                let _ = std::fs::remove_file(&path);
            }
            let what = if downloaded { "downloaded" } else { "cached" };
            anyhow::Error::new(e).context(format!(
                "{}: the {what} object failed verification; nothing was installed",
                rec.id()
            ))
        })?;
        if downloaded {
            layout.objects().insert_verified(&obj)?;
        }
        out.push((i, obj, t.elapsed()));
    }
    Ok(out)
}

/// After a successful install: with `seed: false` what the swarm brought stops being shared;
/// otherwise what was fetched is seeded, so the swarm grows with its users (best effort: a
/// failure is a warning): transmission seeds what it downloaded and is handed what came over
/// HTTP; with libtorrent, the root's seeder is offered everything fetched. Returns the
/// packages now seeded.
fn share(
    layout: &Layout,
    settings: &Settings,
    swarm: &Swarm,
    done: &mut [Installation],
    report: &dyn Reporter,
) -> Vec<crate::format::ids::PackageId> {
    // What transmission fetched stays there to seed (it is the engine's own daemon); what the
    // installing process's libtorrent session fetched goes to the root's seeder.
    let shared = match (&swarm.lt, settings.seed) {
        (_, false) => swarm.remove(false),
        (Some(lt), true) => lt.remove(false),
        (None, true) => Ok(()),
    };
    if let Err(e) = shared {
        report.warn(&format!("cannot stop seeding what was installed: {e:#}"));
    }
    if !settings.seed {
        return Vec::new();
    }
    // A seeder killed since the last install starts again (and seeds without hashing).
    if settings.engine == Engine::Libtorrent && seeder::has_offers(layout) {
        if let Err(e) = seeder::ensure(layout, settings) {
            report.warn(&format!("cannot start the libtorrent seeder: {e:#}"));
        }
    }
    let mut seeded_ids = Vec::new();
    for d in done.iter_mut() {
        let Some(f) = &d.fetched else { continue };
        let t = Instant::now();
        // Over HTTP (no engine), the configured engine seeds it.
        let seeded = match f.engine.unwrap_or(settings.engine) {
            Engine::Transmission if f.engine.is_none() => seed(layout, settings, &d.item),
            Engine::Transmission => Ok(()),
            Engine::Libtorrent => offer(layout, settings, swarm, &d.item),
        };
        match seeded {
            Ok(()) => seeded_ids.push(d.item.record.id()),
            Err(e) => {
                let id = d.item.record.id();
                report.warn(&format!("{id}: installed, but cannot seed it: {e:#}"));
            }
        }
        d.stages.insert(Stage::Seed, t.elapsed());
    }
    seeded_ids
}

/// Hands an object fetched over HTTP to transmission so this client seeds it.
fn seed(layout: &Layout, settings: &Settings, item: &PlanItem) -> Result<()> {
    let rec = &item.record;
    let t = fetch::fetch_torrent_any(item.origin.repo.servers()?, settings.http_timeout, rec)?;
    let rpc = daemon::ensure(layout, settings)?;
    rpc.add_torrent(&t.bytes, &layout.download_dir(&rec.infohash), false)?;
    Ok(())
}

/// Offers an installed object to the libtorrent seeder (its `.torrent` from this install's
/// session, else from the server).
fn offer(layout: &Layout, settings: &Settings, swarm: &Swarm, item: &PlanItem) -> Result<()> {
    let rec = &item.record;
    let torrent = match swarm.lt.as_ref().and_then(|l| l.torrent(&rec.infohash)) {
        Some(b) => b.to_vec(),
        None => {
            let servers = item.origin.repo.servers()?;
            fetch::fetch_torrent_any(servers, settings.http_timeout, rec)?.bytes
        }
    };
    let offer = seeder::Offer {
        infohash: rec.infohash,
        blake3: rec.blake3,
        file: fetch::info_name(rec),
        torrent: hex::encode(torrent),
    };
    seeder::offer(layout, settings, &offer)
}
