//! A torrent that does not move (issue 23, finding 7). After [`QUIET`] without a new verified
//! byte, dist looks for itself at where the bytes should come from: the peers the engine has
//! connected, each tracker (scraped: unreachable, or how many peers it knows with and without
//! the object), each web seed (a one-byte ranged GET: its answer, or why there is none). The
//! [`Diagnosis`] says what it found and what to try; the engine's loop reports it once per
//! stall (again every [`AGAIN`] while the stall lasts) and adds it to the error when the wait
//! times out.

use std::fmt;
use std::time::{Duration, Instant};

use crate::client::Reporter;
use crate::daemons::tracker;
use crate::format::bencode::{self, Value};
use crate::format::ids::{InfoHash, PackageId};
use crate::index::record::PackageRecord;
use crate::text::count;

/// How long a transfer may bring nothing before dist says why.
pub const QUIET: Duration = Duration::from_secs(15);
/// How often a stall that lasts is explained again (what dist sees may have changed).
const AGAIN: Duration = Duration::from_secs(60);
/// How long each tracker scrape or web-seed probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a torrent's bytes can come from besides the peers a tracker names: its trackers and
/// its web seeds, from the `.torrent` the engine was given (or the signed magnet link).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub trackers: Vec<String>,
    pub web_seeds: Vec<String>,
}

impl Endpoints {
    /// A `.torrent`'s `announce`, `announce-list` and `url-list` (BEP 12, BEP 19).
    pub fn of_torrent(bytes: &[u8]) -> Endpoints {
        let Ok(v) = bencode::decode(bytes) else {
            return Endpoints::default();
        };
        let text = |v: &Value| {
            v.as_bytes()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_string)
        };
        let list = |v: Option<&Value>| -> Vec<Value> {
            match v {
                Some(Value::List(l)) => l.clone(),
                Some(single @ Value::Bytes(_)) => vec![single.clone()],
                _ => Vec::new(),
            }
        };
        let mut trackers: Vec<String> = v.get("announce").and_then(text).into_iter().collect();
        for tier in list(v.get("announce-list")) {
            for t in list(Some(&tier)).iter().filter_map(text) {
                if !trackers.contains(&t) {
                    trackers.push(t);
                }
            }
        }
        let web_seeds = list(v.get("url-list")).iter().filter_map(text).collect();
        Endpoints {
            trackers,
            web_seeds,
        }
    }

    /// A magnet link's `tr=` and `ws=` parameters.
    pub fn of_magnet(magnet: &str) -> Endpoints {
        let mut out = Endpoints::default();
        let query = magnet.split_once('?').map_or("", |(_, q)| q);
        for pair in query.split('&') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "tr" => out.trackers.push(v),
                "ws" => out.web_seeds.push(v),
                _ => {}
            }
        }
        out
    }
}

/// One transfer's progress over time: when it last moved, and when to explain a stall.
#[derive(Debug)]
pub struct Watch {
    done: u64,
    since: Instant,
    next: Instant,
    /// The last explanation given, for the timeout's error.
    pub last: Option<Diagnosis>,
}

impl Watch {
    pub fn new(now: Instant) -> Watch {
        Watch {
            done: 0,
            since: now,
            next: now + QUIET,
            last: None,
        }
    }

    /// Takes the bytes done at `now`; `Some(quiet for)` when a stall is due to be explained.
    fn observe(&mut self, done: u64, now: Instant) -> Option<Duration> {
        if done != self.done {
            self.done = done;
            self.since = now;
            self.next = now + QUIET;
            self.last = None;
            return None;
        }
        if now < self.next {
            return None;
        }
        self.next = now + AGAIN;
        Some(now.saturating_duration_since(self.since))
    }

    /// One poll of `rec`'s transfer with `done` bytes and `peers` connected: when nothing
    /// arrived for a while, the diagnosis, said as a warning and kept for the timeout's error.
    /// Both engines' await loops call it.
    pub fn explain(
        &mut self,
        rec: &PackageRecord,
        endpoints: &Endpoints,
        (done, peers): (u64, u32),
        report: &dyn Reporter,
    ) {
        let Some(quiet) = self.observe(done, Instant::now()) else {
            return;
        };
        let d = diagnose(
            rec.id(),
            &rec.infohash,
            &super::info_name(rec),
            endpoints,
            peers,
            quiet,
        );
        report.warn(&d.to_string());
        self.last = Some(d);
    }

    /// What the last explanation found of the trackers and web seeds, and its advice, for
    /// the timeout's error; nothing when none was given.
    pub fn suffix(&self) -> String {
        match &self.last {
            Some(d) => format!("; {}; {}", d.sources().join("; "), d.advice()),
            None => String::new(),
        }
    }
}

/// What a tracker said about the torrent's swarm.
#[derive(Debug, Clone)]
pub enum TrackerSeen {
    /// It answered a scrape: peers with the whole object, peers fetching it (this one too).
    Swarm {
        seeds: u64,
        fetching: u64,
    },
    /// Not an HTTP tracker with a scrape URL: not asked.
    NotAsked,
    Unreachable(String),
}

/// Why a transfer does not move, as far as dist can see it.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub package: PackageId,
    pub quiet: Duration,
    /// Peers the engine is connected to (web seeds not counted).
    pub peers: u32,
    pub trackers: Vec<(String, TrackerSeen)>,
    /// Each web seed, and its answer to a one-byte request: `Ok(status)` or why none came.
    pub web_seeds: Vec<(String, Result<u16, String>)>,
}

/// Looks at the trackers and web seeds of the torrent `infohash` (its file called `name`) of
/// `package`, quiet for `quiet` with `peers` connected.
fn diagnose(
    package: PackageId,
    infohash: &InfoHash,
    name: &str,
    endpoints: &Endpoints,
    peers: u32,
    quiet: Duration,
) -> Diagnosis {
    let trackers = endpoints
        .trackers
        .iter()
        .map(|t| {
            let seen = if !t.starts_with("http") || !t.ends_with("/announce") {
                TrackerSeen::NotAsked
            } else {
                match tracker::scrape(t, infohash, PROBE_TIMEOUT) {
                    Ok(s) => TrackerSeen::Swarm {
                        seeds: s.complete,
                        fetching: s.incomplete,
                    },
                    Err(e) => TrackerSeen::Unreachable(e.root_cause().to_string()),
                }
            };
            (t.clone(), seen)
        })
        .collect();
    let web_seeds = endpoints
        .web_seeds
        .iter()
        .map(|w| {
            // BEP 19: a URL ending in `/` is a directory holding the file.
            let url = match w.ends_with('/') {
                true => format!("{w}{name}"),
                false => w.clone(),
            };
            (url.clone(), probe(&url))
        })
        .collect();
    Diagnosis {
        package,
        quiet,
        peers,
        trackers,
        web_seeds,
    }
}

/// A one-byte ranged GET: the status of an answer (any), or why there was none.
fn probe(url: &str) -> Result<u16, String> {
    let agent = crate::net::agent(url, PROBE_TIMEOUT).map_err(|e| format!("{e:#}"))?;
    match agent.get(url).set("Range", "bytes=0-0").call() {
        Ok(r) => Ok(r.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(ureq::Error::Transport(t)) => Err(crate::net::transport_cause(&t)),
    }
}

impl Diagnosis {
    fn web_seed_ok(&self) -> bool {
        self.web_seeds
            .iter()
            .any(|(_, r)| matches!(r, Ok(200 | 206)))
    }

    /// What dist found: peers, each tracker, each web seed.
    pub fn findings(&self) -> String {
        let mut parts = vec![format!(
            "{} connected",
            count(u64::from(self.peers), "peer")
        )];
        parts.extend(self.sources());
        parts.join("; ")
    }

    /// What each tracker and web seed said.
    fn sources(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if self.trackers.is_empty() {
            parts.push("no tracker is known for it".into());
        }
        for (url, seen) in &self.trackers {
            parts.push(match seen {
                TrackerSeen::Swarm { seeds, fetching } => format!(
                    "tracker {url} answers: {} with the whole object, {fetching} fetching it (this one included)",
                    count(*seeds, "peer")
                ),
                TrackerSeen::NotAsked => format!("tracker {url}: not checked (not an HTTP tracker)"),
                TrackerSeen::Unreachable(why) => format!("tracker {url} unreachable: {why}"),
            });
        }
        if self.web_seeds.is_empty() {
            parts.push("no web seed is known for it".into());
        }
        for (url, r) in &self.web_seeds {
            parts.push(match r {
                Ok(200 | 206) => format!("web seed {url} answers"),
                Ok(code) => format!("web seed {url} fails: HTTP {code}"),
                Err(why) => format!("web seed {url} unreachable: {why}"),
            });
        }
        parts
    }

    /// What to try, from what was found.
    pub fn advice(&self) -> String {
        let seeds: Option<u64> = self
            .trackers
            .iter()
            .filter_map(|(_, s)| match s {
                TrackerSeen::Swarm { seeds, .. } => Some(*seeds),
                _ => None,
            })
            .reduce(|a, b| a + b);
        let web_answers = self.web_seeds.iter().any(|(_, r)| r.is_ok());
        if self.trackers.is_empty() && self.web_seeds.is_empty() {
            "its torrent names no tracker and no web seed, so no peer can be found: `--transport http` fetches straight from the server".into()
        } else if seeds.is_none() && !web_answers {
            "the repository's servers do not answer: check the network and the server (`dist doctor`), or try again later".into()
        } else if self.peers == 0 && seeds.is_some_and(|n| n > 0) {
            format!(
                "the tracker knows {} with it but none is connected: a firewall or NAT may stand between them and this machine (check bind_address), or they just left",
                count(seeds.unwrap_or(0), "peer")
            )
        } else if !self.web_seed_ok() {
            let who = match seeds {
                Some(_) => "nobody seeds it",
                None => "no peer is known (no tracker answers)",
            };
            format!("{who} and no web seed serves it: the server may not have this object (yet); check it with `dist doctor`, or try again later")
        } else {
            "the web seed answers but nothing arrives: `--transport http` fetches straight from the server".into()
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: nothing received for {} s ({}); {}",
            self.package,
            self.quiet.as_secs(),
            self.findings(),
            self.advice()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::torrent::Info;

    #[test]
    fn endpoints_come_from_the_torrent_or_the_magnet() {
        let info = Info {
            name: "x-1.0.0.tar".into(),
            length: 3,
            piece_length: 16384,
            pieces: vec![1; 20],
        };
        let trackers = ["http://a/announce".to_string(), "http://b/announce".into()];
        let seeds = ["http://w/objects/ab/cd".to_string()];
        let e = Endpoints::of_torrent(&info.render(&trackers, &seeds));
        assert_eq!(e.trackers, trackers);
        assert_eq!(e.web_seeds, seeds);
        let m = crate::format::torrent::magnet(&info.infohash(), "x", 3, &trackers, &seeds);
        assert_eq!(Endpoints::of_magnet(&m), e);
    }

    #[test]
    fn the_advice_follows_what_was_found() {
        let d = |trackers, web_seeds| Diagnosis {
            package: crate::format::ids::PackageId::new(
                crate::format::ids::PackageName::parse("x").unwrap(),
                semver::Version::new(1, 0, 0),
            ),
            quiet: QUIET,
            peers: 0,
            trackers,
            web_seeds,
        };
        let t = |seen| vec![("http://t/announce".to_string(), seen)];
        let w = |r| vec![("http://w/o".to_string(), r)];
        assert!(d(vec![], vec![]).advice().contains("names no tracker"));
        let down = d(
            t(TrackerSeen::Unreachable("refused".into())),
            w(Err("refused".into())),
        );
        assert!(down.advice().contains("do not answer"));
        let nobody = d(
            t(TrackerSeen::Swarm {
                seeds: 0,
                fetching: 1,
            }),
            w(Ok(404)),
        );
        assert!(nobody.advice().starts_with("nobody seeds it"));
        let walled = d(
            t(TrackerSeen::Swarm {
                seeds: 2,
                fetching: 1,
            }),
            w(Ok(404)),
        );
        assert!(walled.advice().contains("knows 2 peers with it"));
        let web = d(
            t(TrackerSeen::Swarm {
                seeds: 0,
                fetching: 1,
            }),
            w(Ok(206)),
        );
        assert!(web.advice().contains("--transport http"));
        assert!(web
            .to_string()
            .starts_with("x@1.0.0: nothing received for 15 s (0 peers connected; "));
    }

    #[test]
    fn a_stall_is_explained_after_quiet_then_every_minute_until_bytes_move() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        assert_eq!(w.observe(0, t0 + Duration::from_secs(14)), None);
        assert_eq!(w.observe(0, t0 + QUIET), Some(QUIET));
        assert_eq!(w.observe(0, t0 + Duration::from_secs(30)), None);
        assert!(w.observe(0, t0 + QUIET + AGAIN).is_some());
        // Bytes moved: quiet again from there.
        assert_eq!(w.observe(5, t0 + Duration::from_secs(100)), None);
        assert_eq!(w.observe(5, t0 + Duration::from_secs(110)), None);
        assert!(w.observe(5, t0 + Duration::from_secs(115)).is_some());
    }
}
