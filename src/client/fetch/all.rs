//! Fetching every object a plan needs, one install's worth at once: `auto` decides the small
//! objects (a scrape of the tracker, else a direct download the origin may refuse), the
//! torrents are added together and awaited together, and the HTTP downloads run meanwhile, up
//! to [`HTTP_PARALLEL`] at once. Nothing fetched here is trusted yet: the installer verifies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::http::{self, Crew, Got, WhenBusy};
use super::{torrent, Fetched, Swarm};
use crate::client::config::{Engine, Fetcher, Settings, Why};
use crate::client::plan::{Action, PlanItem};
use crate::client::sources::Origin;
use crate::client::{daemon, Layout, Phase, Reporter};
use crate::daemons::tracker;
use crate::daemons::transmission::Kicker;
use crate::index::record::PackageRecord;
use crate::transfer::in_parallel;

/// How one object of a plan was fetched: what `install --json` reports of it. The plan said
/// what to fetch and, for `auto`'s small objects, only that it would decide; this says what was
/// decided and what happened.
#[derive(Debug, Clone)]
pub struct FetchReport {
    pub fetched: Fetched,
    pub transport: Fetcher,
    /// The BitTorrent engine that fetched it (`None` over HTTP).
    pub engine: Option<Engine>,
    pub why: Why,
    /// From the start of this object's download (a torrent: of all torrents, awaited together).
    pub took: Duration,
}

impl FetchReport {
    /// An object fetched over HTTP (no engine).
    fn http(fetched: Fetched, why: Why, took: Duration) -> FetchReport {
        FetchReport {
            fetched,
            transport: Fetcher::Http,
            engine: None,
            why,
            took,
        }
    }
}

/// Fetches every object the plan marks `Fetch`; the result is keyed by the item's index in
/// `items`. `auto` decides the small objects first: the tracker is asked whether peers hold or
/// fetch each (then the swarm carries it), else the origin is asked for it directly, and a busy
/// origin (503) hands it to the swarm too. Then the torrents are added (after their `.torrent`
/// files were checked against the index, before any daemon starts), the configured HTTP
/// downloads run while they go, and the torrents are awaited together. Both HTTP stages run
/// [`HTTP_PARALLEL`] objects at once; the first error stops the rest and fails the install.
/// The torrents added are recorded in `swarm`, for the caller to take back on failure.
pub(crate) fn fetch_all(
    layout: &Layout,
    settings: &Settings,
    items: &[PlanItem],
    swarm: &mut Swarm,
    report: &dyn Reporter,
) -> Result<BTreeMap<usize, FetchReport>> {
    if !items.iter().any(|i| matches!(i.action, Action::Fetch(_))) {
        return Ok(BTreeMap::new());
    }
    let crew = Crew::limited(settings.download_limit);
    let t = Instant::now();
    let (mut fetched, to_swarm) = decide_small(layout, settings, items, &crew, report)?;
    let configured = |f: Fetcher| -> Vec<(usize, Why)> {
        (0..items.len())
            .filter(|i| items[*i].action == Action::Fetch(f) && items[*i].why != Some(Why::Small))
            .map(|i| (i, items[i].why.unwrap_or(Why::Configured)))
            .collect()
    };
    let mut torrents = configured(Fetcher::Torrent);
    torrents.extend(to_swarm);
    let https = configured(Fetcher::Http);
    let started = start_torrents(layout, settings, items, &torrents, swarm, report)?;
    let downloaded = in_parallel(&https, HTTP_PARALLEL, &crew.abort, |&(i, _)| {
        let rec = &items[i].record;
        let t = Instant::now();
        report.phase(&rec.id(), Phase::Fetch);
        let servers = items[i].origin.repo.servers()?;
        let f = http::fetch_whole(layout, servers, rec, settings.fetch_timeout, &crew, report)?;
        Ok((f, t.elapsed()))
    })?;
    for (&(i, why), (f, took)) in https.iter().zip(downloaded) {
        fetched.insert(i, FetchReport::http(f, why, took));
    }
    if let Some(started) = started {
        let timeout = settings.fetch_timeout;
        let engine = started.engine();
        let results = match started {
            Pending::Transmission(started) => {
                let rpc = swarm.rpc.as_ref().expect("added through it");
                let kicker = Kicker::new(rpc, &layout.daemon_dir().join("kick")).ok();
                torrent::await_all(rpc, started, timeout, kicker, report)?
            }
            Pending::Libtorrent(started) => {
                let lt = swarm.lt.as_ref().expect("added through it");
                lt.await_all(started, timeout, report)?
            }
        };
        for (&(i, why), mut f) in torrents.iter().zip(results) {
            let took = t.elapsed();
            if let Why::Handover { have, .. } = why {
                // The direct download's bytes came from the origin over HTTP, as a web seed's.
                let size = items[i].record.size;
                f.bytes_from_webseed = (f.bytes_from_webseed + have).min(size);
                f.bytes_from_peers = f.bytes_from_peers.min(size - f.bytes_from_webseed);
            }
            fetched.insert(
                i,
                FetchReport {
                    fetched: f,
                    transport: Fetcher::Torrent,
                    engine: Some(engine),
                    why,
                    took,
                },
            );
        }
    }
    Ok(fetched)
}

/// Torrents started in one engine, to await together.
enum Pending<'a> {
    Transmission(Vec<torrent::Started<'a>>),
    Libtorrent(Vec<super::lt::Started<'a>>),
}

impl Pending<'_> {
    fn engine(&self) -> Engine {
        match self {
            Pending::Transmission(_) => Engine::Transmission,
            Pending::Libtorrent(_) => Engine::Libtorrent,
        }
    }
}

/// Adds the torrents of `torrents` (indexes into `items`) to the configured engine, started
/// there together; `None` when there are none.
fn start_torrents<'a>(
    layout: &Layout,
    settings: &Settings,
    items: &'a [PlanItem],
    torrents: &[(usize, Why)],
    swarm: &mut Swarm,
    report: &dyn Reporter,
) -> Result<Option<Pending<'a>>> {
    if torrents.is_empty() {
        return Ok(None);
    }
    let recs: Vec<&PackageRecord> = torrents.iter().map(|(i, _)| &items[*i].record).collect();
    for r in &recs {
        report.phase(&r.id(), Phase::Fetch);
    }
    let origins: Vec<&Arc<Origin>> = torrents.iter().map(|(i, _)| &items[*i].origin).collect();
    let servers = origins
        .iter()
        .map(|o| o.repo.servers())
        .collect::<Result<Vec<_>>>()?;
    let sources = torrent::sources(&servers, settings.http_timeout, &recs, report)?;
    Ok(Some(
        match engine_for(settings.engine, &recs, &sources, report) {
            Engine::Transmission => {
                let rpc = swarm.rpc.insert(daemon::ensure(layout, settings)?);
                Pending::Transmission(torrent::start_all(
                    layout,
                    rpc,
                    &recs,
                    sources,
                    &mut swarm.added,
                )?)
            }
            Engine::Libtorrent => {
                let lt = swarm.lt.insert(super::lt::Downloads::new(settings)?);
                Pending::Libtorrent(lt.start_all(layout, &recs, sources)?)
            }
        },
    ))
}

/// The engine that fetches these torrents: the configured one, except that libtorrent starts
/// only from a `.torrent`, so when a server could not hand one out (the signed magnet link is
/// all there is) this install's torrents go to transmission, which resolves magnets.
fn engine_for(
    configured: Engine,
    recs: &[&PackageRecord],
    sources: &[torrent::Source],
    report: &dyn Reporter,
) -> Engine {
    let magnet = recs
        .iter()
        .zip(sources)
        .find(|(_, s)| matches!(s, torrent::Source::Magnet));
    match (configured, magnet) {
        (Engine::Libtorrent, Some((rec, _))) => {
            report.warn(&format!(
                "{}: only its magnet link is at hand; the transmission engine fetches this install's torrents",
                rec.id()
            ));
            Engine::Transmission
        }
        (engine, _) => engine,
    }
}

/// How long `auto` waits for the tracker's answer about a small object's swarm.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many objects one install fetches over HTTP at once: `auto`'s scrape and direct download
/// of small objects, and the downloads of `transport: http`. Several, so that many small
/// packages do not each wait out the round trips of the ones before them; few, because a crowd
/// of clients each opening many connections to one origin is what issue 11 is about (and the
/// origin admits only `http_slots` whole-object downloads at once: the rest of ours wait for
/// our own, see `fetch::http::Crew`).
pub const HTTP_PARALLEL: usize = 4;

/// What `auto` decided for one small object.
enum Decided {
    /// The origin admitted a direct download: done, in this long.
    Lone(Fetched, Duration),
    /// The origin refused a direct download (503).
    OriginBusy,
    /// The direct download was slow and a swarm formed: the swarm goes on from `have` bytes.
    Handed { peers: u64, have: u64 },
}

/// `auto`'s decision for each small object ([`Why::Small`]): to the swarm when the tracker knows
/// peers besides the servers (origin and mirrors), else a direct download the origin may refuse
/// when busy (then to the swarm). [`HTTP_PARALLEL`] objects are decided at once. Returns the
/// direct downloads that succeeded, and the objects handed to the swarm with why.
#[allow(clippy::type_complexity)]
fn decide_small(
    layout: &Layout,
    settings: &Settings,
    items: &[PlanItem],
    crew: &Crew,
    report: &dyn Reporter,
) -> Result<(BTreeMap<usize, FetchReport>, Vec<(usize, Why)>)> {
    let small: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].why == Some(Why::Small))
        .collect();
    let decided = in_parallel(&small, HTTP_PARALLEL, &crew.abort, |&i| {
        decide_one(layout, settings, &items[i], crew, report)
    })?;
    let mut fetched = BTreeMap::new();
    let mut to_swarm = Vec::new();
    for (i, decided) in small.into_iter().zip(decided) {
        match decided {
            Decided::Lone(f, took) => {
                fetched.insert(i, FetchReport::http(f, Why::Lone, took));
            }
            Decided::OriginBusy => to_swarm.push((i, Why::OriginBusy)),
            Decided::Handed { peers, have } => to_swarm.push((i, Why::Handover { peers, have })),
        }
    }
    Ok((fetched, to_swarm))
}

/// How soon a busy origin must be able to deliver the object over HTTP (the wait for its next
/// free slot, then the object at a slot's rate) for `auto` to wait for it rather than take the
/// swarm: about what a swarm needs to get going and deliver. Measured (`cargo xtask bench
/// transport`): 8 × 128 MiB at 1 gbit/s one by one over HTTP beat transmission's swarm; 8 × 16
/// MiB at 64 mbit/s did not.
const BUSY_PATIENCE: Duration = Duration::from_secs(5);

/// A direct download handed to the swarm must have at least this much time left at its rate
/// (the swarm then carries more of it than the engine costs to start).
const HANDOVER_LEFT: Duration = Duration::from_millis(1500);

/// What the tracker knows of `rec`'s swarm: (peers fetching it now, seeds besides the servers).
/// The servers seed what they serve (the origin, and each mirror in `server_urls`): they are no
/// crowd. Nothing known when the tracker does not answer.
fn swarm_of(item: &PlanItem, servers: usize) -> (u64, u64) {
    let rec = &item.record;
    item.origin
        .trackers
        .iter()
        .find_map(|t| tracker::scrape(t, &rec.infohash, SCRAPE_TIMEOUT).ok())
        .map(|s| (s.incomplete, s.complete.saturating_sub(servers as u64)))
        .unwrap_or((0, 0))
}

/// One object `auto` decides: a direct download from the origin, which waits for a busy
/// origin's slot when the origin says the object would be in soon that way (else the swarm),
/// and is handed to the swarm midway when it is slow (more than [`HANDOVER_LEFT`] to go) while
/// the tracker knows peers, fetching or seeding. The tracker's counts alone do not decide: a
/// lone client of a fast origin is fastest over HTTP, and the tracker lists peers that are gone
/// for up to its peer timeout (measured: leftover leechers sent lone 16 MiB installs to the
/// swarm, 17.6 s instead of 0.5 s); a crowd shows at the origin, as its busy slots.
fn decide_one(
    layout: &Layout,
    settings: &Settings,
    item: &PlanItem,
    crew: &Crew,
    report: &dyn Reporter,
) -> Result<Decided> {
    let rec = &item.record;
    let servers = item.origin.repo.servers()?;
    crew.abort.check()?;
    let t = Instant::now();
    report.phase(&rec.id(), Phase::Fetch);
    let seen = AtomicU64::new(0);
    let slow = |done: u64, got: u64, took: Duration| -> bool {
        let rate = got as f64 / took.as_secs_f64().max(0.001);
        let left = (rec.size - done) as f64 / rate.max(1.0);
        if left < HANDOVER_LEFT.as_secs_f64() {
            return false;
        }
        let (fetching, seeds) = swarm_of(item, servers.len());
        seen.store(fetching + seeds, Ordering::Relaxed);
        fetching + seeds > 0
    };
    let direct = http::fetch_any(
        layout,
        servers,
        rec,
        settings.fetch_timeout,
        WhenBusy::Patient(BUSY_PATIENCE),
        Some(&slow),
        crew,
        report,
    )?;
    Ok(match direct {
        Got::Whole(f) => Decided::Lone(f, t.elapsed()),
        Got::Busy => Decided::OriginBusy,
        Got::Handed { have } => Decided::Handed {
            peers: seen.load(Ordering::Relaxed),
            have,
        },
    })
}
