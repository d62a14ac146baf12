//! The watcher: keeps tracker, seeder and HTTP state in step with the newest published serial,
//! and the seeder in step with the hot set. Each tick costs a bounded number of calls whatever
//! the size of the repository: one read of `published/LATEST`, one tracker probe, one
//! `torrent-get` of everything the seeder holds; only a change of the hot set adds or removes
//! torrents (and removals go in one call).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::catalog::Catalog;
use super::hot::{HotSet, Promotion, PIN, SETTLE};
use super::{http, ServeConfig, ServeEvent};
use crate::daemons::tracker::Tracker;
use crate::daemons::transmission::{self, Kicker, Rpc, SeederTorrent, TorrentState};
use crate::format::ids::InfoHash;
use crate::repo::Repo;

/// Pause between two ticks.
const TICK: Duration = Duration::from_millis(300);

pub(super) struct Watcher<'a> {
    pub repo: &'a Repo,
    pub cfg: &'a ServeConfig,
    pub tracker: &'a Tracker,
    pub rpc: &'a Rpc,
    pub shared: &'a http::SharedState,
    pub requests: Receiver<InfoHash>,
    pub catalog: Arc<Catalog>,
    pub hot: HotSet,
    pub healthy: bool,
    /// The torrents a graceful stop paused were started again.
    resumed_once: bool,
    /// The seeder's rechoke kick, once peers came.
    kicker: Option<Kicker>,
}

/// What one reconciliation changed in the seeder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub removed: usize,
    pub repointed: usize,
    pub resumed: usize,
}

impl<'a> Watcher<'a> {
    pub fn new(
        repo: &'a Repo,
        cfg: &'a ServeConfig,
        tracker: &'a Tracker,
        rpc: &'a Rpc,
        shared: &'a http::SharedState,
        requests: Receiver<InfoHash>,
        catalog: Arc<Catalog>,
    ) -> Watcher<'a> {
        let mut hot = HotSet::new(cfg.hot_set, PIN);
        hot.set_baseline(catalog.newest());
        Watcher {
            repo,
            cfg,
            tracker,
            rpc,
            shared,
            requests,
            catalog,
            hot,
            healthy: false,
            resumed_once: false,
            kicker: None,
        }
    }

    /// Ticks until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool, report: &(dyn Fn(ServeEvent) + Sync)) {
        let mut last_problem = String::new();
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = self.tick(stop, report) {
                let msg = format!("{e:#}");
                if msg != last_problem {
                    report(ServeEvent::Problem(msg.clone()));
                    last_problem.clone_from(&msg);
                }
                self.shared.write().expect("state lock").health = Err(msg);
                if self.healthy {
                    report(ServeEvent::Unhealthy("see the warning above".into()));
                }
                self.healthy = false;
            }
            std::thread::sleep(TICK);
        }
    }

    fn tick(&mut self, stop: &AtomicBool, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
        let latest = self.repo.latest_serial()?;
        if latest != self.catalog.serial {
            self.follow(latest, report)?;
        }
        self.take_requests(report);
        let seeder = self.seeder_state()?;
        self.kick(&seeder);
        let changes = self.reconcile(&seeder, stop)?;
        self.resumed_once = true;
        if changes != Changes::default() {
            report(ServeEvent::Seeder {
                hot: self.hot.len(),
                added: changes.added,
                removed: changes.removed,
                repointed: changes.repointed,
                resumed: changes.resumed,
            });
        }
        let health = self.check_health(&seeder);
        let ok = health.is_ok();
        if let (Err(why), true) = (&health, self.healthy) {
            report(ServeEvent::Unhealthy(why.clone()));
        }
        self.shared.write().expect("state lock").health = health;
        if ok && !self.healthy {
            report(ServeEvent::Healthy {
                seeding: self.hot.len(),
            });
        }
        self.healthy = ok;
        Ok(())
    }

    /// A new serial: reads the master index once, whitelists every infohash (one file and one
    /// SIGHUP), and moves the hot set's baseline.
    fn follow(&mut self, latest: Option<u64>, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
        let records = self.repo.records()?;
        let catalog =
            Arc::new(Catalog::new(latest, &records).with_distribution(self.repo.distribution()?));
        drop(records);
        if catalog.len() != self.catalog.len() {
            self.tracker.set_whitelist(&catalog.infohashes())?;
        }
        self.hot.set_baseline(catalog.newest());
        self.hot.retain_promoted(|h| catalog.object(h).is_some());
        {
            let mut shared = self.shared.write().expect("state lock");
            shared.catalog = catalog.clone();
            shared.serial = latest;
            // The verdict of the previous serial does not hold for this one: until this tick's
            // check, `/health` must not say 200 while what was just added is not seeded and
            // announced yet (a client sent there would announce before the seeder, and
            // transmission refuses for good a peer the tracker listed as a seed).
            shared.health = Err(format!(
                "serial {}: bringing the seeder in step",
                latest.unwrap_or(0)
            ));
        }
        if let Some(serial) = latest {
            report(ServeEvent::Published {
                serial,
                packages: catalog.len(),
            });
        }
        self.catalog = catalog;
        Ok(())
    }

    /// Promotes what clients asked for since the last tick.
    fn take_requests(&mut self, report: &(dyn Fn(ServeEvent) + Sync)) {
        let now = Instant::now();
        while let Ok(hash) = self.requests.try_recv() {
            if self.catalog.object(&hash).is_none() {
                continue;
            }
            if let Promotion::Promoted { evicted } = self.hot.request(hash, now) {
                report(ServeEvent::Promoted {
                    infohash: hash,
                    evicted,
                });
            }
        }
    }

    /// Everything the seeder holds, by infohash (one `torrent-get`), but the kick's dummy.
    fn seeder_state(&self) -> Result<HashMap<InfoHash, SeederTorrent>> {
        let torrents = self
            .rpc
            .seeder_state()
            .context("transmission does not answer")?;
        Ok(torrents
            .into_iter()
            .filter(|t| !Kicker::is_dummy(&t.hash_string))
            .map(|t| (t.hash_string, t))
            .collect())
    }

    /// While peers are connected, makes the seeder rechoke now rather than on its 10 s timer
    /// (`Kicker`), so a new leecher is unchoked within a tick. Best effort: the swarm works
    /// without it, only later.
    fn kick(&mut self, seeder: &HashMap<InfoHash, SeederTorrent>) {
        if !seeder.values().any(|t| t.peers_connected > 0) {
            return;
        }
        if self.kicker.is_none() {
            let dir = seed_dir(self.repo).with_file_name("kick");
            self.kicker = Kicker::new(self.rpc, &dir).ok();
        }
        if let Some(k) = self.kicker.as_mut() {
            if k.kick(self.rpc).is_err() {
                self.kicker = None;
            }
        }
    }

    /// Makes the seeder hold the hot set: removes what is no longer wanted (one call), re-points
    /// torrents added with another announce URL (one call), and adds what is missing (one
    /// `torrent-add` each; transmission verifies a new torrent's data by itself). What it
    /// already has stays, unverified again.
    fn reconcile(
        &mut self,
        seeder: &HashMap<InfoHash, SeederTorrent>,
        stop: &AtomicBool,
    ) -> Result<Changes> {
        let wanted = self.hot.wanted();
        let mut changes = Changes::default();
        let extra: Vec<InfoHash> = seeder
            .keys()
            .filter(|h| !wanted.contains(*h))
            .copied()
            .collect();
        if !extra.is_empty() {
            self.rpc.remove(&extra, false)?;
            for h in &extra {
                let _ = crate::store::fsx::remove_tree(&seed_dir(self.repo).join(h.to_hex()));
            }
            changes.removed = extra.len();
        }
        let trackers = self.catalog.trackers(&self.cfg.announce_url);
        let (repoint, readd): (Vec<&SeederTorrent>, Vec<&SeederTorrent>) = seeder
            .values()
            .filter(|t| wanted.contains(&t.hash_string) && t.announce_urls() != trackers)
            .partition(|t| t.tracker_stats.len() == 1 && trackers.len() == 1);
        if !repoint.is_empty() {
            let hashes: Vec<InfoHash> = repoint.iter().map(|t| t.hash_string).collect();
            self.rpc
                .replace_first_tracker(&hashes, &self.cfg.announce_url)?;
            changes.repointed = hashes.len();
        }
        // A graceful stop pauses every torrent (so the tracker hears "stopped"), and the
        // seeder keeps them paused in its resume files: start them again, in one call, once
        // (later, a torrent reads "stopped" for a moment after its verification).
        let paused: Vec<InfoHash> = seeder
            .values()
            .filter(|t| wanted.contains(&t.hash_string) && t.state() == TorrentState::Stopped)
            .map(|t| t.hash_string)
            .collect();
        if !paused.is_empty() && !self.resumed_once {
            self.rpc.start(&paused)?;
            changes.resumed = paused.len();
        }
        // A torrent with other trackers than these, which one call cannot re-point: add it
        // again.
        let readd: Vec<InfoHash> = readd.iter().map(|t| t.hash_string).collect();
        self.rpc.remove(&readd, false)?;
        let mut missing: Vec<InfoHash> = wanted
            .iter()
            .filter(|h| !seeder.contains_key(*h) || readd.contains(h))
            .copied()
            .collect();
        // The default hot set's order first (newest first), so what clients most likely want
        // is seeded soonest; then promotions.
        let rank: HashMap<&InfoHash, usize> = self
            .catalog
            .newest()
            .iter()
            .enumerate()
            .map(|(i, h)| (h, i))
            .collect();
        missing.sort_by_key(|h| (rank.get(h).copied().unwrap_or(usize::MAX), *h));
        for h in missing {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            self.add(&h)?;
            changes.added += 1;
        }
        Ok(changes)
    }

    /// Adds one indexed object to the seeder, its data a hard link to the object.
    fn add(&self, hash: &InfoHash) -> Result<()> {
        let (rendered, dir) = seed_copy(self.repo, &self.catalog, self.cfg, hash)?;
        let added = self.rpc.add_torrent(&rendered, &dir, false)?;
        if added != *hash {
            bail!("transmission reports infohash {added} for {hash}");
        }
        Ok(())
    }

    /// Healthy: the newest serial is the one served, the tracker authorizes the newest
    /// infohash (so the reloaded whitelist is in effect), and every torrent of the hot set is
    /// seeding and has announced to this configuration's tracker (a promotion from its
    /// [`SETTLE`] time on).
    fn check_health(&self, seeder: &HashMap<InfoHash, SeederTorrent>) -> Result<(), String> {
        if self.catalog.serial.is_none() {
            return Err("nothing published yet".into());
        }
        // Packages published since the last tick are not seeded yet.
        match self.repo.latest_serial() {
            Ok(s) if s == self.catalog.serial => {}
            Ok(s) => return Err(format!("catching up with index serial {}", s.unwrap_or(0))),
            Err(e) => return Err(format!("{e:#}")),
        }
        if let Some(h) = self.catalog.latest() {
            match self.tracker.authorizes(&h) {
                Ok(true) => {}
                Ok(false) => return Err(format!("the tracker does not authorize {h} yet")),
                Err(e) => return Err(format!("the tracker does not answer: {e:#}")),
            }
        }
        // A client that announces before the seeder has is listed to the seeder as a seed (a
        // magnet client reports left=0 until it has the metadata), and transmission then refuses
        // it as "another seed" for good. So healthy also means the seeder's announce went through.
        let wanted: HashSet<InfoHash> = self.hot.settled(Instant::now(), SETTLE);
        let announce = self.cfg.announce_url.as_str();
        let (mut absent, mut unseeded, mut unannounced) = (0, 0, 0);
        let mut example = None;
        for h in &wanted {
            match seeder.get(h) {
                None => absent += 1,
                Some(t) if !t.is_seeding() => unseeded += 1,
                Some(t) if !t.announced_to(announce) => unannounced += 1,
                Some(_) => continue,
            }
            example.get_or_insert(*h);
        }
        if let Some(h) = example {
            let ready = wanted.len() - absent - unseeded - unannounced;
            return Err(format!(
                "hot set: {ready} of {} torrents seeding and announced ({absent} not added yet, \
                 {unseeded} not seeding yet, {unannounced} not announced yet; e.g. {h})",
                wanted.len()
            ));
        }
        Ok(())
    }
}

/// The seeder's copy of an indexed torrent and the directory holding its data (a hard link to
/// the object under the torrent's name, as transmission wants it): `serve/seed/<infohash>/`.
/// The copy names this configuration's tracker (and a mirror's upstream's): the seeder has the
/// data, it needs no web seed.
fn seed_copy(
    repo: &Repo,
    catalog: &Catalog,
    cfg: &ServeConfig,
    hash: &InfoHash,
) -> Result<(Vec<u8>, PathBuf)> {
    let object = catalog
        .object(hash)
        .with_context(|| format!("{hash} is not in the index"))?;
    let info = repo
        .torrent_info(hash)?
        .with_context(|| format!("the index has no torrent info for {hash}"))?;
    let rendered = info.render(&catalog.trackers(&cfg.announce_url), &[]);
    let dir = seed_dir(repo).join(hash.to_hex());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let link = dir.join(&info.name);
    if !link.exists() {
        std::fs::hard_link(repo.objects().path(&object), &link)
            .with_context(|| format!("cannot link {} for seeding", link.display()))?;
    }
    Ok((rendered, dir))
}

fn seed_dir(repo: &Repo) -> PathBuf {
    repo.root.join("serve").join("seed")
}

/// Before the seeder starts: its stored torrents that are not in the default hot set are
/// forgotten, and the hot set's missing ones are preloaded as complete (no verification, see
/// `transmission::preload`), so the daemon seeds the whole default hot set as it starts.
/// Returns (preloaded, forgotten). Stops early when `stop` is set.
pub(super) fn prepare_seeder(
    repo: &Repo,
    catalog: &Catalog,
    cfg: &ServeConfig,
    config_dir: &std::path::Path,
    stop: &AtomicBool,
) -> Result<(usize, usize)> {
    let stored = transmission::stored_torrents(config_dir)?;
    let mut hot = HotSet::new(cfg.hot_set, PIN);
    hot.set_baseline(catalog.newest());
    let wanted = hot.wanted();
    let mut forgotten = 0;
    // A kept torrent whose data link is gone would never seed: forget it, it is preloaded anew.
    let has_data = |h: &InfoHash| {
        std::fs::read_dir(seed_dir(repo).join(h.to_hex())).is_ok_and(|mut d| d.next().is_some())
    };
    let stored: HashSet<InfoHash> = stored
        .into_iter()
        .filter(|h| {
            let keep = !wanted.contains(h) || has_data(h);
            if !keep {
                let _ = transmission::forget(config_dir, h);
            }
            keep
        })
        .collect();
    for h in stored.iter().filter(|h| !wanted.contains(*h)) {
        transmission::forget(config_dir, h)?;
        let _ = crate::store::fsx::remove_tree(&seed_dir(repo).join(h.to_hex()));
        forgotten += 1;
    }
    // Data links of torrents the seeder no longer has (an older server linked every object).
    if let Ok(entries) = std::fs::read_dir(seed_dir(repo)) {
        for e in entries.flatten() {
            let name = e.file_name();
            let hash = name.to_str().and_then(|n| InfoHash::parse(n).ok());
            if hash.is_some_and(|h| !wanted.contains(&h)) {
                let _ = crate::store::fsx::remove_tree(&e.path());
            }
        }
    }
    let missing = catalog
        .newest()
        .iter()
        .filter(|h| wanted.contains(*h) && !stored.contains(*h));
    let mut copies = Vec::new();
    for h in missing {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (rendered, dir) = seed_copy(repo, catalog, cfg, h)?;
        copies.push((*h, rendered, dir));
    }
    let preloads: Vec<transmission::Preload<'_>> = copies
        .iter()
        .map(|(h, rendered, dir)| transmission::Preload {
            infohash: *h,
            metainfo: rendered,
            download_dir: dir,
        })
        .collect();
    // Checked "now": every object was hashed (BLAKE3) when `dist add` stored it, before now.
    transmission::preload(config_dir, &preloads, crate::clock::now_unix() as i64)?;
    Ok((preloads.len(), forgotten))
}
