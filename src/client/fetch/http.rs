//! The HTTP transport: a GET of the object's web-seed URL into a `.part` file, resumed with
//! Range after an interruption, never accepting more bytes than the signed index promises (the
//! download itself is `transfer::download`'s; what is the client's is here: which server, what
//! a busy origin means, progress, the handover to the swarm). An install runs several at once;
//! they share a [`Crew`], so the first failure stops the others and the install's own downloads
//! never count as the origin being busy.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{http_partial_name, info_name, object_url, Fetched};
use crate::client::interrupt::{Abort, Interrupted};
use crate::client::{Layout, Progress, Reporter};
use crate::format::ids::PackageId;
use crate::index::record::PackageRecord;
use crate::net::ServerUrl;
use crate::transfer::{self, Busy, Chunk, Ended, Flow};

/// What to do when the origin refuses a whole-object download because it is busy (`503` with
/// `Retry-After`: its admission control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBusy {
    /// Wait as told and ask again (the transport was chosen: `http`).
    Wait,
    /// Give up at once (one server of several: the next is asked).
    GiveUp,
    /// Wait for a slot when the origin says the object would be in within this long that way
    /// (the wait for its first free slot, `X-Dist-Slot-Free-Ms`, plus the object at the rate a
    /// slot sends, `X-Dist-Slot-Rate`; asked again every [`PATIENT_POLL`] for [`UNTOLD`] when it
    /// does not say), else give up (`auto`: a fast origin serves a crowd one by one sooner than
    /// a swarm gets going; a slow one sends it to the swarm).
    Patient(Duration),
}

/// How often a patient download asks a busy origin again.
const PATIENT_POLL: Duration = Duration::from_millis(100);
/// How long a patient download asks an origin that does not say when a slot frees (its
/// downloads are too young to tell, or it is an older server).
const UNTOLD: Duration = Duration::from_millis(2500);

/// What one download attempt came to.
#[derive(Debug)]
pub enum Got {
    /// The whole object, not yet verified.
    Whole(Fetched),
    /// The origin was busy, and [`WhenBusy`] said to give up.
    Busy,
    /// The handover check said to stop: the first `have` bytes are in the partial file
    /// (`downloads/<infohash>/<name>-<version>.tar.http-partial`), for the swarm to go on from.
    Handed { have: u64 },
}

/// Asked about once a second while an `auto` download runs, with the bytes of the object held
/// so far, the bytes this response brought and the time since it started: true hands the rest
/// to the swarm.
pub type Handover<'a> = &'a (dyn Fn(u64, u64, Duration) -> bool + Sync);

/// What the HTTP downloads one install runs side by side share.
///
/// When one fails, the installer raises [`Crew::abort`], and the others stop at their next read
/// or wait, as on Ctrl-C. And a server's `503` (its whole-object slots are taken) means "busy" only when none of this
/// install's own downloads from that server is in flight: while one is, the refused download
/// waits for one of them to end and asks again, as it would have asked after them when the
/// downloads ran one after another. So a lone client never meets the origin's limit, whatever
/// its `http_slots`, and `auto` sends an object to the swarm only for other clients' load.
#[derive(Debug, Default)]
pub struct Crew {
    pub abort: Abort,
    /// `download_limit`: what all of them together may receive a second.
    pub limit: Option<Throttle>,
    /// Per server: this install's requests in flight there (asking, or downloading).
    servers: Mutex<HashMap<String, Turns>>,
    /// Notified whenever one of them ends.
    ended: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Turns {
    in_flight: usize,
    /// How many admitted downloads (a slot of the server's, possibly) have ended so far.
    freed: u64,
}

impl Crew {
    /// A crew whose downloads share `download_limit` (kB/s, 1000 bytes; `None`: no limit).
    pub fn limited(download_limit: Option<u32>) -> Crew {
        Crew {
            limit: download_limit.map(|k| Throttle::new(u64::from(k) * 1000)),
            ..Crew::default()
        }
    }

    /// Counts one request to `server` until the returned turn is dropped.
    fn ask(&self, server: &str) -> Turn<'_> {
        let mut servers = self.servers.lock().expect("crew lock");
        let t = servers.entry(server.to_string()).or_default();
        t.in_flight += 1;
        Turn {
            crew: self,
            server: server.to_string(),
            freed_before: t.freed,
            admitted: false,
        }
    }

    /// After `server` refused `turn` (503): whether to ask again because one of this install's
    /// downloads there ended since `turn` asked, or ended while this waited for it; `false` when
    /// none of them is in flight there: the server is busy with other clients.
    fn ours_in_the_way(&self, turn: Turn<'_>) -> Result<bool> {
        let freed_before = turn.freed_before;
        let server = turn.server.clone();
        drop(turn);
        let mut servers = self.servers.lock().expect("crew lock");
        loop {
            let t = servers.get(&server).copied().unwrap_or_default();
            if t.freed != freed_before {
                return Ok(true);
            }
            if t.in_flight == 0 {
                return Ok(false);
            }
            // Polled, like every waiting loop, for a Ctrl-C or a failed fellow download.
            servers = self
                .ended
                .wait_timeout(servers, Duration::from_millis(50))
                .expect("crew lock")
                .0;
            self.abort.check()?;
        }
    }
}

/// A rate the downloads sharing it keep under together (`download_limit`): after each read,
/// a download sleeps until the bytes received since the first read are no more than the rate
/// allows for the time passed.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    since: Mutex<Option<(Instant, u64)>>,
}

impl Throttle {
    fn new(bytes_per_sec: u64) -> Throttle {
        Throttle {
            bytes_per_sec: bytes_per_sec.max(1),
            since: Mutex::new(None),
        }
    }

    /// A read size that keeps the pauses short (a tenth of a second's worth, at least 4 KiB).
    fn chunk(&self) -> usize {
        (self.bytes_per_sec / 10).clamp(4 << 10, 256 << 10) as usize
    }

    /// Counts `n` bytes received and waits (polling `abort`) until the rate allows them.
    fn take(&self, n: u64, abort: &Abort) -> Result<()> {
        let due = {
            let mut since = self.since.lock().expect("throttle lock");
            let (start, total) = since.get_or_insert((Instant::now(), 0));
            *total += n;
            *start + Duration::from_secs_f64(*total as f64 / self.bytes_per_sec as f64)
        };
        loop {
            abort.check()?;
            let now = Instant::now();
            if now >= due {
                return Ok(());
            }
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
        }
    }
}

/// One request of this install to one server, counted in its [`Crew`] until dropped.
struct Turn<'a> {
    crew: &'a Crew,
    server: String,
    freed_before: u64,
    /// The server answered with something other than `503`: the download may hold a slot.
    admitted: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut servers = self.crew.servers.lock().expect("crew lock");
        if let Some(t) = servers.get_mut(&self.server) {
            t.in_flight -= 1;
            if self.admitted {
                t.freed += 1;
            }
        }
        self.crew.ended.notify_all();
    }
}

/// Downloads the object from the first of `servers` (the repository's origin and mirrors) that
/// admits the download; a failing server is skipped with a warning. When every one is busy,
/// `busy` decides: wait for the first busy one, or give up (`None`).
#[allow(clippy::too_many_arguments)]
pub fn fetch_any(
    layout: &Layout,
    servers: &[ServerUrl],
    rec: &PackageRecord,
    timeout: Duration,
    busy: WhenBusy,
    handover: Option<Handover<'_>>,
    crew: &Crew,
    report: &dyn Reporter,
) -> Result<Got> {
    let mut first_busy = None;
    let mut last_err = None;
    let get = |s: &str, busy: WhenBusy| -> Result<Got> {
        let g = Get {
            server: s,
            url: object_url(s, &rec.blake3),
            rec,
            timeout,
            crew,
            handover,
            report,
        };
        fetch(layout, &g, busy)
    };
    for s in servers {
        match get(s, WhenBusy::GiveUp) {
            Ok(Got::Busy) => {
                first_busy.get_or_insert(s);
            }
            Ok(got) => return Ok(got),
            Err(e) if servers.len() > 1 => {
                report.warn(&format!("{}: {e:#}; trying the next server", rec.id()));
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (first_busy, busy) {
        (Some(_), WhenBusy::GiveUp) => Ok(Got::Busy),
        (Some(s), busy) => get(s, busy),
        (None, _) => Err(last_err.unwrap_or_else(|| {
            anyhow::anyhow!("{}: no server is configured to fetch it from", rec.id())
        })),
    }
}

/// The whole object from the first of `servers` that admits it, a busy origin waited for (as
/// `transport: http` and `dist bundle` fetch).
pub fn fetch_whole(
    layout: &Layout,
    servers: &[ServerUrl],
    rec: &PackageRecord,
    timeout: Duration,
    crew: &Crew,
    report: &dyn Reporter,
) -> Result<Fetched> {
    match fetch_any(
        layout,
        servers,
        rec,
        timeout,
        WhenBusy::Wait,
        None,
        crew,
        report,
    )? {
        Got::Whole(f) => Ok(f),
        got => unreachable!("a busy origin is waited for, and nothing hands over: {got:?}"),
    }
}

/// A server sent bytes that are not the object the signed index names (issue 25, finding 4):
/// the download is dropped and the next server asked.
#[derive(Debug, thiserror::Error)]
#[error(
    "{server} sent bad data for {package}: blake3 {found}, the signed index says {expected}; \
     its download was dropped"
)]
pub struct BadObject {
    pub server: String,
    pub package: String,
    pub found: crate::format::ids::ObjectId,
    pub expected: crate::format::ids::ObjectId,
}

/// Downloads the object over HTTP from the server's web-seed URL into a partial file, resumed
/// after an interruption, through [`transfer::download`]. The body is hashed as it arrives: a
/// whole object that is not the signed one is dropped with a [`BadObject`] naming the server
/// (the installer still verifies what it unpacks).
fn fetch(layout: &Layout, get: &Get<'_>, busy: WhenBusy) -> Result<Got> {
    let rec = get.rec;
    let dir = layout.download_dir(&rec.infohash);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(info_name(rec));
    let part = dir.join(http_partial_name(rec));
    let target = transfer::Target {
        url: &get.url,
        part: &part,
        size: rec.size,
        blake3: rec.blake3,
        pieces: false,
    };
    let agent = crate::net::agent(&get.url, get.timeout)?;
    let mut attempt = Attempt::new(get, busy);
    let received = match transfer::download(&agent, &target, &mut attempt) {
        Ok(Ended::Whole { received, .. }) => received,
        Ok(Ended::Paused { have }) => return Ok(Got::Handed { have }),
        Err(e) => return failed(e, get, busy),
    };
    // A complete partial file left by an interrupted run brought nothing now.
    let bytes_from_webseed = if received == 0 { 0 } else { rec.size };
    std::fs::rename(&part, &dest)?;
    Ok(Got::Whole(Fetched {
        path: dest,
        bytes_from_peers: 0,
        bytes_from_webseed,
    }))
}

/// What a download that ended in `e` comes to: a busy origin given up on is [`Got::Busy`]
/// (waited for in vain, an error); a body that ended early, what an `auto` download hands to the
/// swarm; bytes that are not the object, a [`BadObject`] naming the server; a stop, Ctrl-C's
/// [`Interrupted`].
fn failed(e: transfer::Error, get: &Get<'_>, busy: WhenBusy) -> Result<Got> {
    match e {
        transfer::Error::Busy { .. } if busy == WhenBusy::Wait => bail!(
            "{}: the origin stayed busy (503) for {:?}",
            get.url,
            get.timeout
        ),
        transfer::Error::Busy { .. } => Ok(Got::Busy),
        transfer::Error::Short { got, .. } if get.handover.is_some() => {
            Ok(Got::Handed { have: got })
        }
        transfer::Error::HashMismatch {
            found, expected, ..
        } => Err(BadObject {
            server: get.server.to_string(),
            package: get.rec.id().to_string(),
            found,
            expected,
        }
        .into()),
        transfer::Error::Stopped { .. } => Err(Interrupted.into()),
        e => Err(e.into()),
    }
}

/// How often the handover check of an `auto` download is asked.
const HANDOVER_EVERY: Duration = Duration::from_millis(500);

/// The longest `Retry-After` honoured at once (a server asking for more is asked again then).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// One object from one server: what every attempt at it needs.
struct Get<'a> {
    server: &'a str,
    url: String,
    rec: &'a PackageRecord,
    timeout: Duration,
    crew: &'a Crew,
    handover: Option<Handover<'a>>,
    report: &'a dyn Reporter,
}

/// The client's policy for one download ([`transfer::Watch`]): each request counted in the
/// [`Crew`] while in flight; a `503` while one of this install's own downloads is in flight there
/// asked again after that one; else a busy origin waited for (as its `Retry-After` says, within
/// `timeout`) or given up on, as [`WhenBusy`] says; the crew's rate limit, progress, and the
/// handover check of an `auto` download.
struct Attempt<'a, 'g> {
    get: &'g Get<'a>,
    id: PackageId,
    busy: WhenBusy,
    /// This request's turn in the crew, held until the download ends.
    turn: Option<Turn<'a>>,
    /// Since the origin was first asked (and not refused because of our own download).
    started: Instant,
    /// When the handover check was last asked.
    asked: Instant,
}

impl<'a, 'g> Attempt<'a, 'g> {
    fn new(get: &'g Get<'a>, busy: WhenBusy) -> Self {
        Attempt {
            get,
            id: get.rec.id(),
            busy,
            turn: None,
            started: Instant::now(),
            asked: Instant::now(),
        }
    }
}

impl transfer::Watch for Attempt<'_, '_> {
    fn stopped(&self) -> bool {
        self.get.crew.abort.check().is_err()
    }

    fn asking(&mut self) {
        self.turn = Some(self.get.crew.ask(self.get.server));
    }

    fn busy(&mut self, busy: &Busy) -> Option<Duration> {
        let (get, turn) = (self.get, self.turn.take().expect("asked before"));
        match get.crew.ours_in_the_way(turn) {
            // Our own download took the slot: not the origin's load, nor its time.
            Ok(true) => {
                self.started = Instant::now();
                return Some(Duration::ZERO);
            }
            Ok(false) => {}
            // Interrupted: the wait sees it at once.
            Err(_) => return Some(Duration::ZERO),
        }
        let wait = match self.busy {
            WhenBusy::GiveUp => return None,
            WhenBusy::Patient(limit) => {
                return patience(busy, get.rec.size, limit, self.started.elapsed())
            }
            WhenBusy::Wait => busy.wait(Duration::from_millis(200), MAX_RETRY_AFTER),
        };
        if self.started.elapsed() + wait > get.timeout {
            return None;
        }
        get.report.warn(&format!(
            "{}: the origin is busy; asking again in {wait:?}",
            self.id
        ));
        Some(wait)
    }

    fn admitted(&mut self) {
        if let Some(turn) = &mut self.turn {
            turn.admitted = true;
        }
        self.asked = Instant::now();
    }

    fn chunk(&mut self, at: &Chunk) -> Flow {
        let get = self.get;
        if let Some(t) = &get.crew.limit {
            if t.take(at.read, &get.crew.abort).is_err() {
                return Flow::Stop;
            }
        }
        let secs = at.took.as_secs_f64().max(0.001);
        get.report.progress(
            &self.id,
            &Progress {
                done: at.done,
                total: get.rec.size,
                rate: (at.new as f64 / secs) as u64,
                peers: 0,
                webseed: true,
            },
        );
        match get.handover {
            Some(h) if self.asked.elapsed() >= HANDOVER_EVERY => {
                self.asked = Instant::now();
                if h(at.done, at.new, at.took) {
                    return Flow::Pause;
                }
                Flow::Go
            }
            _ => Flow::Go,
        }
    }

    fn read_size(&self) -> usize {
        self.get
            .crew
            .limit
            .as_ref()
            .map_or(256 << 10, Throttle::chunk)
    }
}

/// How long a patient download waits before asking a busy origin again, or `None` to give up:
/// as long as the origin expects its first slot to free, when that wait and then `size` bytes at
/// a slot's rate come within `limit`; an origin that does not say is asked every
/// [`PATIENT_POLL`] until [`UNTOLD`] has passed.
fn patience(busy: &Busy, size: u64, limit: Duration, waited: Duration) -> Option<Duration> {
    match (busy.slot_free, busy.slot_rate) {
        (Some(wait), Some(rate)) => {
            let transfer = Duration::from_secs_f64(size as f64 / rate.max(1) as f64);
            (wait + transfer <= limit)
                .then(|| wait.clamp(Duration::from_millis(10), PATIENT_POLL * 5))
        }
        _ if waited < UNTOLD => Some(PATIENT_POLL),
        _ => None,
    }
}
