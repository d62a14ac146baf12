//! The BitTorrent transport: every torrent of an install is added to transmission at once and
//! awaited together, so several packages download side by side. The `.torrent` comes from the
//! server and must agree with the signed index; when the server cannot hand it out, the signed
//! magnet link names the same infohash and the swarm supplies the metadata.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::stall::{Endpoints, Watch};
use super::{adopt_http_partial, fetch_torrent_first, info_name, Fetched, TorrentFile};
use crate::client::{interrupt, Layout, Progress, Reporter};
use crate::daemons::transmission::{Kicker, Rpc, TorrentStatus};
use crate::format::ids::InfoHash;
use crate::index::record::PackageRecord;
use crate::net::ServerUrl;
use crate::text::count;

/// Where transmission gets a torrent's metadata from.
pub enum Source {
    /// The server's `.torrent`, checked against the signed index.
    Metainfo(TorrentFile),
    /// The signed magnet link (the server could not hand out the `.torrent`).
    Magnet,
}

/// The metadata source of each record, in order, without touching transmission: a `.torrent`
/// that contradicts the signed index (infohash or length) is an attack, said with the server
/// that sent it; the next server is asked, and it is an error when none sends a good one.
/// `servers[i]` are the servers of the repository `recs[i]` comes from.
pub fn sources(
    servers: &[&[ServerUrl]],
    timeout: Duration,
    recs: &[&PackageRecord],
    report: &dyn Reporter,
) -> Result<Vec<Source>> {
    let mut out = Vec::with_capacity(recs.len());
    for (rec, servers) in recs.iter().zip(servers) {
        let (got, passed) = fetch_torrent_first(servers, timeout, rec);
        for e in passed.iter().filter(|e| e.is_attack()) {
            report.warn(&format!(
                "{e}; bad data from that server, trying the next one"
            ));
        }
        match got {
            Ok(t) => out.push(Source::Metainfo(t)),
            Err(e) if e.is_attack() => return Err(e.into()),
            Err(e) => {
                report.warn(&format!("{e}; falling back to the magnet link"));
                out.push(Source::Magnet);
            }
        }
    }
    Ok(out)
}

/// A torrent added to transmission and not yet complete.
pub struct Started<'a> {
    rec: &'a PackageRecord,
    dir: PathBuf,
    estimate: WebseedEstimate,
    done: Option<Fetched>,
    /// Its trackers and web seeds, and how long it has not moved (issue 23, finding 7).
    endpoints: Endpoints,
    watch: Watch,
}

/// Adds every torrent (downloading into `downloads/<infohash>/`), records it in `added` (what
/// the caller removes again if the install fails), and checks that transmission took each under
/// the infohash the signed index names. A torrent the daemon still has from an earlier attempt
/// without its metadata (a magnet that never resolved) is replaced when the `.torrent` is at
/// hand, and one stopped by a crash is started again.
pub fn start_all<'a>(
    layout: &Layout,
    rpc: &Rpc,
    recs: &[&'a PackageRecord],
    sources: Vec<Source>,
    added: &mut Vec<InfoHash>,
) -> Result<Vec<Started<'a>>> {
    let mut started = Vec::with_capacity(recs.len());
    for (rec, source) in recs.iter().zip(sources) {
        let dir = layout.download_dir(&rec.infohash);
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let before = rpc.get(&[rec.infohash])?;
        if let (Some(t), Source::Metainfo(_)) = (before.first(), &source) {
            if t.metadata_percent_complete < 1.0 {
                rpc.remove(&[rec.infohash], true)?;
            }
        }
        added.push(rec.infohash);
        // transmission keeps an incomplete file as `NAME.part` (`rename-partial-files`).
        let partial =
            matches!(source, Source::Metainfo(_)) && adopt_http_partial(&dir, rec, ".part")?;
        let endpoints = match &source {
            Source::Metainfo(t) => Endpoints::of_torrent(&t.bytes),
            Source::Magnet => Endpoints::of_magnet(&rec.magnet),
        };
        let hash = match source {
            Source::Metainfo(t) => rpc.add_torrent(&t.bytes, &dir, partial)?,
            Source::Magnet => rpc.add_magnet(&rec.magnet, &dir)?,
        };
        if partial {
            // The bytes a direct download brought are checked piece by piece, not fetched again.
            rpc.verify(&[hash])?;
        }
        if hash != rec.infohash {
            bail!(
                "transmission reports infohash {hash}, the signed index says {} for {}",
                rec.infohash,
                rec.id()
            );
        }
        // A torrent left stopped (a daemon killed mid-download, a paused leftover) resumes.
        rpc.start(&[hash])?;
        started.push(Started {
            rec,
            dir,
            estimate: WebseedEstimate::default(),
            done: None,
            endpoints,
            watch: Watch::new(Instant::now()),
        });
    }
    Ok(started)
}

/// Polls transmission until every started torrent is complete, or `timeout` has passed since
/// the wait began; returns what each fetched, in the order started.
pub fn await_all(
    rpc: &Rpc,
    mut started: Vec<Started<'_>>,
    timeout: Duration,
    mut kicker: Option<Kicker>,
    report: &dyn Reporter,
) -> Result<Vec<Fetched>> {
    let start = Instant::now();
    loop {
        // Best effort: without it, the daemon only trades after its 10 s rechoke timer.
        if let Some(k) = kicker.as_mut() {
            if k.kick(rpc).is_err() {
                kicker = None;
            }
        }
        let pending: Vec<InfoHash> = started
            .iter()
            .filter(|s| s.done.is_none())
            .map(|s| s.rec.infohash)
            .collect();
        if pending.is_empty() {
            return Ok(started.into_iter().filter_map(|s| s.done).collect());
        }
        interrupt::check()?;
        let status = rpc.get(&pending)?;
        for s in started.iter_mut().filter(|s| s.done.is_none()) {
            let t = status
                .iter()
                .find(|t| t.hash_string == s.rec.infohash)
                .ok_or_else(|| {
                    anyhow::anyhow!("transmission lost the torrent of {}", s.rec.id())
                })?;
            s.observe(t, report)?;
            if s.done.is_some() {
                continue;
            }
            s.explain_stall(t, report);
            if start.elapsed() > timeout {
                bail!(
                    "timed out after {} s downloading {}: {:.0}% done, {} connected, web seed {}{}",
                    timeout.as_secs(),
                    s.rec.id(),
                    t.percent_done * 100.0,
                    count(t.peers_connected, "peer"),
                    if t.webseeds_sending_to_us > 0 {
                        "active"
                    } else {
                        "idle"
                    },
                    s.watch.suffix()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Started<'_> {
    /// Says why nothing arrives, when it has not for a while ([`stall`]).
    fn explain_stall(&mut self, t: &TorrentStatus, report: &dyn Reporter) {
        let peers = u32::try_from(t.peers_connected).unwrap_or(u32::MAX);
        self.watch
            .explain(self.rec, &self.endpoints, (t.have_valid, peers), report);
    }

    /// Takes one status poll: reports progress, fails on a transmission error, and records the
    /// result once the data is complete.
    fn observe(&mut self, t: &TorrentStatus, report: &dyn Reporter) -> Result<()> {
        let id = self.rec.id();
        if t.error != 0 {
            bail!("transmission reports an error for {id}: {}", t.error_string);
        }
        self.estimate.observe(t);
        report.progress(
            &id,
            &Progress {
                done: t.have_valid,
                total: self.rec.size,
                rate: t.rate_download,
                peers: t.peers_sending_to_us as u32,
                webseed: t.webseeds_sending_to_us > 0,
            },
        );
        if t.is_complete() {
            let webseed = self.estimate.webseed_share(self.rec.size);
            self.done = Some(Fetched {
                path: complete_file(&self.dir, &info_name(self.rec)),
                bytes_from_peers: self.rec.size - webseed,
                bytes_from_webseed: webseed,
            });
        }
        Ok(())
    }
}

/// The data of a complete torrent: `NAME`, or `NAME.part` when transmission was killed before
/// it renamed its partial file (`rename-partial-files`) and found the data whole on restart.
fn complete_file(dir: &std::path::Path, name: &str) -> PathBuf {
    let whole = dir.join(name);
    let part = dir.join(format!("{name}.part"));
    if !whole.exists() && part.exists() {
        part
    } else {
        whole
    }
}

/// transmission 3.00 does not split received bytes by source; the web seed's share is estimated
/// from the rate not accounted for by peers, integrated over the polls.
#[derive(Debug)]
struct WebseedEstimate {
    last: Instant,
    webseed_bytes: f64,
    peers_sent: bool,
    webseed_sent: bool,
}

impl Default for WebseedEstimate {
    fn default() -> Self {
        WebseedEstimate {
            last: Instant::now(),
            webseed_bytes: 0.0,
            peers_sent: false,
            webseed_sent: false,
        }
    }
}

impl WebseedEstimate {
    fn observe(&mut self, t: &TorrentStatus) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let from_peers: u64 = t.peers.iter().map(|p| p.rate_to_client).sum();
        self.peers_sent |= t.peers_sending_to_us > 0 || from_peers > 0;
        self.webseed_sent |= t.webseeds_sending_to_us > 0;
        self.webseed_bytes += t.rate_download.saturating_sub(from_peers) as f64 * dt;
    }

    /// When only one source was ever seen sending, it sent everything; otherwise the estimate.
    fn webseed_share(&self, size: u64) -> u64 {
        match (self.peers_sent, self.webseed_sent) {
            (false, true) => size,
            (true, false) => 0,
            _ => (self.webseed_bytes as u64).min(size),
        }
    }
}
