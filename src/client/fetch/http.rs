//! The HTTP transport: a GET of the object's web-seed URL into a `.part` file, resumed with
//! Range after an interruption, never accepting more bytes than the signed index promises. An
//! install runs several at once; they share a [`Crew`], so the first failure stops the others
//! and the install's own downloads never count as the origin being busy.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{http_partial_name, info_name, object_url, Fetched};
use crate::client::interrupt::Abort;
use crate::client::{Layout, Progress, Reporter};
use crate::index::record::PackageRecord;

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
    servers: &[String],
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

/// The BLAKE3 of the first `len` bytes of `part` (the prefix a resumed download goes on from).
fn hash_prefix(part: &std::path::Path, len: u64) -> Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    if len > 0 {
        let file =
            std::fs::File::open(part).with_context(|| format!("cannot read {}", part.display()))?;
        hasher
            .update_reader(file.take(len))
            .with_context(|| format!("cannot read {}", part.display()))?;
    }
    Ok(hasher)
}

/// Downloads the object over HTTP from the server's web-seed URL, resuming a `.part` file. The
/// body is hashed as it arrives: a whole object that is not the signed one is dropped with a
/// [`BadObject`] naming the server (the installer still verifies what it unpacks).
fn fetch(layout: &Layout, get: &Get<'_>, busy: WhenBusy) -> Result<Got> {
    let rec = get.rec;
    let dir = layout.download_dir(&rec.infohash);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(info_name(rec));
    let part = dir.join(http_partial_name(rec));
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > rec.size {
        std::fs::remove_file(&part)?;
        have = 0;
    }
    if have == rec.size && hash_prefix(&part, have)?.finalize().as_bytes() != rec.blake3.as_bytes()
    {
        // A complete `.part` left by an interrupted run that is not the object: start over.
        std::fs::remove_file(&part)?;
        have = 0;
    }
    if have == rec.size {
        // A complete `.part` left by an interrupted run: the installer verifies it like any other.
        std::fs::rename(&part, &dest)?;
        return Ok(Got::Whole(Fetched {
            path: dest,
            bytes_from_peers: 0,
            bytes_from_webseed: 0,
        }));
    }
    // `_turn` counts this download in the crew until its body is in.
    let Some((resp, have, _turn)) = request(get, &part, have, busy)? else {
        return Ok(Got::Busy);
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .with_context(|| format!("cannot write {}", part.display()))?;
    let have = if have > 0 && resp.status() != 206 {
        // The server ignored the range: start over.
        file.set_len(0)?;
        0
    } else {
        have
    };
    let mut hasher = hash_prefix(&part, have)?;
    let done = copy_body(resp, &mut file, (have, &mut hasher), get)?;
    file.sync_all()?;
    if done < rec.size && get.handover.is_some() {
        return Ok(Got::Handed { have: done });
    }
    if done != rec.size {
        bail!("{}: got {done} of {} bytes", get.url, rec.size);
    }
    let found = crate::format::ids::ObjectId::from_bytes(*hasher.finalize().as_bytes());
    if found != rec.blake3 {
        std::fs::remove_file(&part)?;
        return Err(BadObject {
            server: get.server.to_string(),
            package: rec.id().to_string(),
            found,
            expected: rec.blake3,
        }
        .into());
    }
    std::fs::rename(&part, &dest)?;
    Ok(Got::Whole(Fetched {
        path: dest,
        bytes_from_peers: 0,
        bytes_from_webseed: rec.size,
    }))
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

/// The GET, from byte `have` on when there is a partial file; a server that cannot serve that
/// range (416) gets a plain GET and the partial file is dropped. A busy origin (503) is waited
/// for (as its `Retry-After` says, within `timeout`) or given up on, as `busy` says; refused
/// while one of this install's own downloads is in flight there, it asks again after that one
/// (see [`Crew`]). The turn returned with the response counts the download until dropped.
fn request<'a>(
    get: &Get<'a>,
    part: &std::path::Path,
    have: u64,
    busy: WhenBusy,
) -> Result<Option<(ureq::Response, u64, Turn<'a>)>> {
    let (url, timeout, rec, report) = (&get.url, get.timeout, get.rec, get.report);
    let mut started = Instant::now();
    loop {
        let mut turn = get.crew.ask(get.server);
        let mut req = crate::net::agent(url, timeout)?.get(url);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        match req.call() {
            Err(ureq::Error::Status(503, resp)) => {
                if get.crew.ours_in_the_way(turn)? {
                    // Our own download took the slot: not the origin's load, nor its time.
                    started = Instant::now();
                    continue;
                }
                let wait = match busy {
                    WhenBusy::GiveUp => return Ok(None),
                    WhenBusy::Patient(limit) => {
                        match patience(&resp, rec.size, limit, started.elapsed()) {
                            Some(wait) => {
                                sleep_interruptibly(wait, &get.crew.abort)?;
                                continue;
                            }
                            None => return Ok(None),
                        }
                    }
                    WhenBusy::Wait => crate::index::wire::retry_after(
                        &resp,
                        Duration::from_millis(200),
                        MAX_RETRY_AFTER,
                    ),
                };
                if started.elapsed() + wait > timeout {
                    bail!("{url}: the origin stayed busy (503) for {timeout:?}");
                }
                report.warn(&format!(
                    "{}: the origin is busy; asking again in {wait:?}",
                    rec.id()
                ));
                sleep_interruptibly(wait, &get.crew.abort)?;
            }
            other => {
                turn.admitted = true;
                let (resp, have) = first_response(other, url, part, have, timeout)?;
                return Ok(Some((resp, have, turn)));
            }
        }
    }
}

/// How long a patient download waits before asking a busy origin again, or `None` to give up:
/// as long as the origin expects its first slot to free, when that wait and then `size` bytes at
/// a slot's rate come within `limit`; an origin that does not say is asked every
/// [`PATIENT_POLL`] until [`UNTOLD`] has passed.
fn patience(
    resp: &ureq::Response,
    size: u64,
    limit: Duration,
    waited: Duration,
) -> Option<Duration> {
    let number = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
    match (number("x-dist-slot-free-ms"), number("x-dist-slot-rate")) {
        (Some(ms), Some(rate)) => {
            let wait = Duration::from_millis(ms);
            let transfer = Duration::from_secs_f64(size as f64 / rate.max(1) as f64);
            (wait + transfer <= limit)
                .then(|| wait.clamp(Duration::from_millis(10), PATIENT_POLL * 5))
        }
        _ if waited < UNTOLD => Some(PATIENT_POLL),
        _ => None,
    }
}

fn sleep_interruptibly(d: Duration, abort: &Abort) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        abort.check()?;
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    Ok(())
}

fn first_response(
    r: Result<ureq::Response, ureq::Error>,
    url: &str,
    part: &std::path::Path,
    have: u64,
    timeout: Duration,
) -> Result<(ureq::Response, u64)> {
    match r {
        Err(ureq::Error::Status(416, _)) => {
            std::fs::remove_file(part)?;
            let resp = crate::net::agent(url, timeout)?
                .get(url)
                .call()
                .map_err(|e| crate::index::wire::http_error(url, e))?;
            Ok((resp, 0))
        }
        r => Ok((r.map_err(|e| crate::index::wire::http_error(url, e))?, have)),
    }
}

/// Appends the body to `file`, reporting progress; more bytes than the index promises is an
/// error. Returns the size of the file now.
fn copy_body(
    resp: ureq::Response,
    file: &mut std::fs::File,
    (have, hasher): (u64, &mut blake3::Hasher),
    get: &Get<'_>,
) -> Result<u64> {
    let (rec, url, report) = (get.rec, &get.url, get.report);
    let id = rec.id();
    let start = Instant::now();
    let mut reader = resp.into_reader().take(rec.size - have + 1);
    let mut buf = vec![0u8; get.crew.limit.as_ref().map_or(256 << 10, Throttle::chunk)];
    let mut done = have;
    let mut asked = Instant::now();
    loop {
        get.crew.abort.check()?;
        if let Some(h) = get.handover.filter(|_| asked.elapsed() >= HANDOVER_EVERY) {
            asked = Instant::now();
            if h(done, done - have, start.elapsed()) {
                return Ok(done);
            }
        }
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("download of {url} was interrupted"))?;
        if n == 0 {
            return Ok(done);
        }
        done += n as u64;
        if done > rec.size {
            bail!(
                "{url} sent more than the {} bytes the index promises",
                rec.size
            );
        }
        file.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        if let Some(t) = &get.crew.limit {
            t.take(n as u64, &get.crew.abort)?;
        }
        let secs = start.elapsed().as_secs_f64().max(0.001);
        report.progress(
            &id,
            &Progress {
                done,
                total: rec.size,
                rate: ((done - have) as f64 / secs) as u64,
                peers: 0,
                webseed: true,
            },
        );
    }
}
