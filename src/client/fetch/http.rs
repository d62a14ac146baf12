//! The HTTP transport: a GET of the object's web-seed URL into a `.part` file, resumed with
//! Range after an interruption, never accepting more bytes than the signed index promises.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{http_partial_name, info_name, object_url, Fetched};
use crate::client::{interrupt, Layout, Progress, Reporter};
use crate::repo::index::PackageRecord;

/// What to do when the origin refuses a whole-object download because it is busy (`503` with
/// `Retry-After`: its admission control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBusy {
    /// Wait as told and ask again (the transport was chosen: `http`).
    Wait,
    /// Give up at once (`auto`: the swarm carries it instead).
    GiveUp,
}

/// Downloads the object from the first of `servers` (the repository's origin and mirrors) that
/// admits the download; a failing server is skipped with a warning. When every one is busy,
/// `busy` decides: wait for the first busy one, or give up (`None`).
pub fn fetch_any(
    layout: &Layout,
    servers: &[String],
    rec: &PackageRecord,
    timeout: Duration,
    busy: WhenBusy,
    report: &dyn Reporter,
) -> Result<Option<Fetched>> {
    let mut first_busy = None;
    let mut last_err = None;
    for s in servers {
        match fetch(layout, s, rec, timeout, WhenBusy::GiveUp, report) {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {
                first_busy.get_or_insert(s);
            }
            Err(e) if servers.len() > 1 => {
                report.warn(&format!("{}: {e:#}; trying the next server", rec.id()));
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (first_busy, busy) {
        (Some(s), WhenBusy::Wait) => fetch(layout, s, rec, timeout, WhenBusy::Wait, report),
        (Some(_), WhenBusy::GiveUp) => Ok(None),
        (None, _) => Err(last_err.expect("no server admitted and none was busy")),
    }
}

/// Downloads the object over HTTP from the server's web-seed URL, resuming a `.part` file.
/// `None`: the origin was busy and `busy` said to give up.
pub fn fetch(
    layout: &Layout,
    server: &str,
    rec: &PackageRecord,
    timeout: Duration,
    busy: WhenBusy,
    report: &dyn Reporter,
) -> Result<Option<Fetched>> {
    let dir = layout.download_dir(&rec.infohash);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(info_name(rec));
    let part = dir.join(http_partial_name(rec));
    let url = object_url(server, &rec.blake3);
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > rec.size {
        std::fs::remove_file(&part)?;
        have = 0;
    }
    if have == rec.size {
        // A complete `.part` left by an interrupted run: the installer verifies it like any other.
        std::fs::rename(&part, &dest)?;
        return Ok(Some(Fetched {
            path: dest,
            bytes_from_peers: 0,
            bytes_from_webseed: 0,
        }));
    }
    let Some((resp, have)) = request(&url, &part, have, timeout, busy, report, rec)? else {
        return Ok(None);
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
    let done = copy_body(resp, &mut file, rec, have, &url, report)?;
    file.sync_all()?;
    if done != rec.size {
        bail!("{url}: got {done} of {} bytes", rec.size);
    }
    std::fs::rename(&part, &dest)?;
    Ok(Some(Fetched {
        path: dest,
        bytes_from_peers: 0,
        bytes_from_webseed: rec.size,
    }))
}

/// The longest `Retry-After` honoured at once (a server asking for more is asked again then).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The GET, from byte `have` on when there is a partial file; a server that cannot serve that
/// range (416) gets a plain GET and the partial file is dropped. A busy origin (503) is waited
/// for (as its `Retry-After` says, within `timeout`) or given up on, as `busy` says.
fn request(
    url: &str,
    part: &std::path::Path,
    have: u64,
    timeout: Duration,
    busy: WhenBusy,
    report: &dyn Reporter,
    rec: &PackageRecord,
) -> Result<Option<(ureq::Response, u64)>> {
    let started = Instant::now();
    loop {
        let mut req = ureq::get(url).timeout(timeout);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        if busy == WhenBusy::GiveUp {
            // A 503 is no loss to this caller (the swarm or another server takes over): the
            // origin may then refuse it when another client is fetching the same object.
            req = req.set(crate::server::http::CAN_SWARM, "1");
        }
        match req.call() {
            Err(ureq::Error::Status(503, resp)) => {
                if busy == WhenBusy::GiveUp {
                    return Ok(None);
                }
                let wait = resp
                    .header("Retry-After")
                    .and_then(|s| s.trim().parse().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(200), MAX_RETRY_AFTER);
                if started.elapsed() + wait > timeout {
                    bail!("{url}: the origin stayed busy (503) for {timeout:?}");
                }
                report.warn(&format!(
                    "{}: the origin is busy; asking again in {wait:?}",
                    rec.id()
                ));
                sleep_interruptibly(wait)?;
            }
            other => return first_response(other, url, part, have, timeout).map(Some),
        }
    }
}

fn sleep_interruptibly(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        interrupt::check()?;
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
            let resp = ureq::get(url)
                .timeout(timeout)
                .call()
                .with_context(|| format!("cannot fetch {url}"))?;
            Ok((resp, 0))
        }
        r => Ok((r.with_context(|| format!("cannot fetch {url}"))?, have)),
    }
}

/// Appends the body to `file`, reporting progress; more bytes than the index promises is an
/// error. Returns the size of the file now.
fn copy_body(
    resp: ureq::Response,
    file: &mut std::fs::File,
    rec: &PackageRecord,
    have: u64,
    url: &str,
    report: &dyn Reporter,
) -> Result<u64> {
    let id = rec.id();
    let start = Instant::now();
    let mut reader = resp.into_reader().take(rec.size - have + 1);
    let mut buf = vec![0u8; 256 << 10];
    let mut done = have;
    loop {
        interrupt::check()?;
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
