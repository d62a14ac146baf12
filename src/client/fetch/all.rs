//! Fetching every object a plan needs, one install's worth at once: `auto` decides the small
//! objects (a scrape of the tracker, else a direct download the origin may refuse), the
//! torrents are added together and awaited together, and the HTTP downloads run meanwhile, up
//! to [`HTTP_PARALLEL`] at once. Nothing fetched here is trusted yet: the installer verifies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::http::{Crew, WhenBusy};
use super::{torrent, Fetched};
use crate::client::config::{Fetcher, Settings, Why};
use crate::client::install::{Installation, Stage, Swarm};
use crate::client::interrupt::Abort;
use crate::client::plan::Action;
use crate::client::sources::Origin;
use crate::client::{daemon, Layout, Phase, Reporter};
use crate::daemons::tracker;
use crate::repo::index::PackageRecord;

/// Fetches every object the plan marks `Fetch`. `auto` decides the small objects first: the
/// tracker is asked whether peers hold or fetch each (then the swarm carries it), else the
/// origin is asked for it directly, and a busy origin (503) hands it to the swarm too. Then the
/// torrents are added (after their `.torrent` files were checked against the index, before any
/// daemon starts), the configured HTTP downloads run while they go, and the torrents are
/// awaited together. Both HTTP stages run [`HTTP_PARALLEL`] objects at once; the first error
/// stops the rest and fails the install.
pub(crate) fn fetch_all(
    layout: &Layout,
    settings: &Settings,
    done: &mut [Installation],
    swarm: &mut Swarm,
    report: &dyn Reporter,
) -> Result<BTreeMap<usize, Fetched>> {
    if !done
        .iter()
        .any(|d| matches!(d.item.action, Action::Fetch(_)))
    {
        return Ok(BTreeMap::new());
    }
    let crew = Crew::default();
    let t = Instant::now();
    let mut fetched = decide_small(layout, settings, done, &crew, report)?;
    let by = |done: &[Installation], f: Fetcher| -> Vec<usize> {
        (0..done.len())
            .filter(|i| done[*i].item.action == Action::Fetch(f) && !fetched.contains_key(i))
            .collect()
    };
    let (torrents, https) = (by(done, Fetcher::Torrent), by(done, Fetcher::Http));
    // The torrents in flight borrow their records while the HTTP results are written into `done`.
    let torrent_recs: Vec<PackageRecord> = torrents
        .iter()
        .map(|i| done[*i].item.record.clone())
        .collect();
    let torrent_origins: Vec<Arc<Origin>> = torrents
        .iter()
        .map(|i| done[*i].item.origin.clone())
        .collect();
    let started = if torrents.is_empty() {
        None
    } else {
        let recs: Vec<&PackageRecord> = torrent_recs.iter().collect();
        for r in &recs {
            report.phase(&r.id(), Phase::Fetch);
        }
        let servers = torrent_origins
            .iter()
            .map(|o| o.repo.servers())
            .collect::<Result<Vec<_>>>()?;
        let sources = torrent::sources(&servers, settings.http_timeout, &recs, report)?;
        let rpc = swarm.rpc.insert(daemon::ensure(layout, settings)?);
        Some(torrent::start_all(
            layout,
            rpc,
            &recs,
            sources,
            &mut swarm.added,
        )?)
    };
    let shared: &[Installation] = done;
    let downloaded = in_parallel(&https, &crew.abort, |&i| {
        let rec = &shared[i].item.record;
        let t = Instant::now();
        report.phase(&rec.id(), Phase::Fetch);
        let f = super::http::fetch_any(
            layout,
            shared[i].item.origin.repo.servers()?,
            rec,
            settings.fetch_timeout,
            WhenBusy::Wait,
            &crew,
            report,
        )?
        .expect("a busy origin is waited for");
        Ok((f, t.elapsed()))
    })?;
    for (&i, (f, took)) in https.iter().zip(downloaded) {
        done[i].stages.insert(Stage::Fetch, took);
        fetched.insert(i, f);
    }
    if let Some(started) = started {
        let rpc = swarm
            .rpc
            .as_ref()
            .expect("the torrents were added through it");
        let results = torrent::await_all(rpc, started, settings.fetch_timeout, report)?;
        for (&i, f) in torrents.iter().zip(results) {
            done[i].stages.insert(Stage::Fetch, t.elapsed());
            fetched.insert(i, f);
        }
    }
    for (i, f) in &fetched {
        done[*i].bytes_from_peers = f.bytes_from_peers;
        done[*i].bytes_from_webseed = f.bytes_from_webseed;
    }
    Ok(fetched)
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
    /// The tracker knows this many peers besides the servers.
    Swarm(u64),
    /// The origin admitted a direct download: done, in this long.
    Lone(Fetched, Duration),
    /// The origin refused a direct download (503).
    OriginBusy,
}

/// `auto`'s decision for each small object ([`Why::Small`]): to the swarm when the tracker knows
/// peers besides the servers (origin and mirrors), else a direct download the origin may refuse when busy (then to
/// the swarm). [`HTTP_PARALLEL`] objects are decided at once. Returns the direct downloads that
/// succeeded.
fn decide_small(
    layout: &Layout,
    settings: &Settings,
    done: &mut [Installation],
    crew: &Crew,
    report: &dyn Reporter,
) -> Result<BTreeMap<usize, Fetched>> {
    let small: Vec<usize> = (0..done.len())
        .filter(|&i| done[i].item.why == Some(Why::Small))
        .collect();
    let shared: &[Installation] = done;
    let decided = in_parallel(&small, &crew.abort, |&i| {
        let rec = &shared[i].item.record;
        let origin = &shared[i].item.origin;
        let servers = origin.repo.servers()?;
        // The servers seed what they serve (the origin, and each mirror in `server_urls`):
        // they count as complete peers, and a swarm of servers alone is no crowd to join.
        let peers = origin
            .trackers
            .iter()
            .find_map(|t| tracker::scrape(t, &rec.infohash, SCRAPE_TIMEOUT).ok())
            .map(|s| s.incomplete + s.complete.saturating_sub(servers.len() as u64))
            .unwrap_or(0);
        if peers > 0 {
            return Ok(Decided::Swarm(peers));
        }
        crew.abort.check()?;
        let t = Instant::now();
        report.phase(&rec.id(), Phase::Fetch);
        Ok(
            match super::http::fetch_any(
                layout,
                servers,
                rec,
                settings.fetch_timeout,
                WhenBusy::GiveUp,
                crew,
                report,
            )? {
                Some(f) => Decided::Lone(f, t.elapsed()),
                None => Decided::OriginBusy,
            },
        )
    })?;
    let mut fetched = BTreeMap::new();
    for (i, decided) in small.into_iter().zip(decided) {
        let d = &mut done[i];
        match decided {
            Decided::Swarm(peers) => {
                d.item.action = Action::Fetch(Fetcher::Torrent);
                d.item.why = Some(Why::Swarm { peers });
            }
            Decided::Lone(f, took) => {
                d.item.why = Some(Why::Lone);
                d.stages.insert(Stage::Fetch, took);
                fetched.insert(i, f);
            }
            Decided::OriginBusy => {
                d.item.action = Action::Fetch(Fetcher::Torrent);
                d.item.why = Some(Why::OriginBusy);
            }
        }
    }
    Ok(fetched)
}

/// Runs `work` on each of `items`, at most [`HTTP_PARALLEL`] at once, on scoped threads; the
/// results come back in the order of `items`. The first error is the result: it raises `abort`,
/// so the other workers take no further item and stop at their next check (between reads of a
/// download, or while waiting), as they do on Ctrl-C.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    abort: &Abort,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let worker = || {
        let mut out = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(k) else {
                return out;
            };
            match abort
                .check()
                .map_err(anyhow::Error::from)
                .and_then(|()| work(item))
            {
                Ok(r) => out.push((k, r)),
                Err(e) => {
                    // Recorded before the others are told, so their "interrupted" comes second.
                    first_error.lock().expect("error slot").get_or_insert(e);
                    abort.raise();
                    return out;
                }
            }
        }
    };
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..HTTP_PARALLEL.min(items.len()))
            .map(|_| s.spawn(worker))
            .collect();
        for w in workers {
            let out = w
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (k, r) in out {
                results[k] = Some(r);
            }
        }
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every item ran: no worker failed"))
        .collect())
}
