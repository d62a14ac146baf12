//! The timeline of one group of clients (`group`): about once a second while they run, what the
//! origin (and the mirror) sent so far and what the clients hold, so a reader sees when the
//! origin's bytes leave and when the clients begin to get bytes from each other.
//!
//! A client holds the larger of its torrent's `haveValid` (asked of its own transmission-daemon,
//! whose RPC port is in `ROOT/daemon/state.json`) and its HTTP transport's `.http-partial` file,
//! and the whole package once its install exited 0. Every daemon of a sample is asked by one curl
//! inside the namespace (`--next` between the requests), and the origin's class counter is read
//! after them, so "peers→clients ≈ clients hold − origin sent" errs low.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab::campaign as c;
use crate::lab::env::Env;
use crate::util::mib;

/// At most about this many lines per timeline: a longer run prints every k-th second.
const MAX_LINES: usize = 60;
/// Ends each curl answer in its output: `MARK<client> <http code>`.
const MARK: &str = "\n@@timeline ";
const SESSION_HEADER: &str = "X-Transmission-Session-Id";

/// The scenario at one moment.
pub(crate) struct Sample {
    /// Since the release of the clients (when the origin's counter was read).
    at: Duration,
    /// What the origin's class sent since the scenario began (tc: headers included).
    origin: u64,
    /// The same for the mirror's class, in the `mirror` scenario.
    mirror: Option<u64>,
    /// What the clients hold, all together.
    held: u64,
    /// Over the clients' torrents: the peers (the seeders included) and the web seeds sending.
    peers_sending: u64,
    webseeds_sending: u64,
}

/// What the sampler watches.
pub(crate) struct Watch<'a> {
    pub env: &'a Env,
    pub roots: &'a [PathBuf],
    pub infohash: &'a str,
    pub size: u64,
    /// (tc class, its counter at the start of the scenario): the origin's, and the mirror's.
    pub origin: (&'a str, u64),
    pub mirror: Option<(&'a str, u64)>,
    /// Set by the scenario's waiting loop when a client's install has exited 0.
    pub finished: &'a [AtomicBool],
}

/// Samples at 1 s, 2 s, ... after `start` until `stop` says so or hangs up, then once more.
pub(crate) fn record(w: &Watch, start: Instant, stop: Receiver<()>) -> Vec<Sample> {
    let mut clients = Clients::new(w.roots.len());
    let mut last_origin = (0, w.mirror.map(|_| 0));
    let mut samples = Vec::new();
    let mut next = 1;
    loop {
        let tick = start + Duration::from_secs(next);
        match stop.recv_timeout(tick.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
        samples.push(sample(w, start, &mut clients, &mut last_origin));
        // A slow sample skips the ticks it overran instead of bunching the next ones up.
        next = start.elapsed().as_secs() + 1;
    }
    samples.push(sample(w, start, &mut clients, &mut last_origin));
    samples
}

fn sample(
    w: &Watch,
    start: Instant,
    clients: &mut Clients,
    last: &mut (u64, Option<u64>),
) -> Sample {
    let held = clients.sample(w);
    // A counter that cannot be read this time keeps its last value.
    let sent = |(class, before): (&str, u64)| {
        c::class_sent(w.env, class)
            .ok()
            .map(|b| b.saturating_sub(before))
    };
    if let Some(o) = sent(w.origin) {
        last.0 = o;
    }
    if let Some(m) = w.mirror.and_then(sent) {
        last.1 = Some(m);
    }
    Sample {
        at: start.elapsed(),
        origin: last.0,
        mirror: last.1,
        held: held.iter().map(|h| h.bytes).sum(),
        peers_sending: held.iter().map(|h| h.peers).sum(),
        webseeds_sending: held.iter().map(|h| h.webseeds).sum(),
    }
}

/// One client's holding.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    bytes: u64,
    peers: u64,
    webseeds: u64,
}

/// A daemon's answer about the torrent.
enum Reply {
    Torrent(Held),
    /// The daemon runs but has no such torrent (not added yet, or an HTTP client).
    NoTorrent,
    /// 409: the session id was missing or stale (and is now learnt).
    Conflict,
    /// No answer, or one that could not be read.
    Failed,
}

/// What the sampler remembers of the clients between samples.
struct Clients {
    /// Each client's daemon's RPC session id, once learnt.
    sids: Vec<Option<String>>,
    /// Each client's last holding (kept while its daemon does not answer).
    last: Vec<Held>,
}

impl Clients {
    fn new(n: usize) -> Clients {
        Clients {
            sids: vec![None; n],
            last: vec![Held::default(); n],
        }
    }

    /// Every client's holding now.
    fn sample(&mut self, w: &Watch) -> Vec<Held> {
        let running: Vec<usize> = (0..w.roots.len())
            .filter(|&i| !w.finished[i].load(Ordering::Relaxed))
            .collect();
        let ports: Vec<(usize, u16)> = running
            .iter()
            .filter_map(|&i| Some((i, rpc_port(&w.roots[i])?)))
            .collect();
        let mut replies = self.ask(w, &ports);
        // A daemon asked for the first time answers 409 with its session id: once more for those.
        let again: Vec<(usize, u16)> = ports
            .iter()
            .filter(|(i, _)| matches!(replies.get(i), Some(Reply::Conflict)))
            .copied()
            .collect();
        replies.extend(self.ask(w, &again));
        for i in 0..w.roots.len() {
            if !running.contains(&i) {
                self.last[i] = Held {
                    bytes: w.size,
                    ..Held::default()
                };
                continue;
            }
            let (partial, whole) = http_files(&w.roots[i]);
            let reply = match replies.remove(&i) {
                Some(r) => r,
                // A daemon that did not answer at all (curl failed).
                None if ports.iter().any(|(j, _)| *j == i) => Reply::Failed,
                None => Reply::NoTorrent,
            };
            let held = match reply {
                Reply::Torrent(h) => Held {
                    bytes: h.bytes.max(partial),
                    ..h
                },
                // No torrent (or no daemon yet): an HTTP client, whose finished download is
                // `NAME.tar` until the installer takes it.
                Reply::NoTorrent => Held {
                    bytes: partial.max(whole),
                    ..Held::default()
                },
                Reply::Conflict | Reply::Failed => Held {
                    bytes: self.last[i].bytes.max(partial),
                    ..self.last[i]
                },
            };
            self.last[i] = Held {
                bytes: held.bytes.min(w.size),
                ..held
            };
        }
        self.last.clone()
    }

    /// Asks each (client, RPC port) for the torrent, all in one curl.
    fn ask(&mut self, w: &Watch, who: &[(usize, u16)]) -> HashMap<usize, Reply> {
        let mut replies = HashMap::new();
        if who.is_empty() {
            return replies;
        }
        let body = format!(
            r#"{{"method":"torrent-get","arguments":{{"ids":["{}"],"fields":["haveValid","peersSendingToUs","webseedsSendingToUs"]}}}}"#,
            w.infohash
        );
        let mut cmd = w.env.ns.command("curl");
        for (k, (i, port)) in who.iter().enumerate() {
            if k > 0 {
                cmd.arg("--next");
            }
            cmd.args(["-s", "-i", "--connect-timeout", "1", "--max-time", "2"])
                .arg("-w")
                .arg(format!("{MARK}{i} %{{http_code}}\n"));
            if let Some(sid) = &self.sids[*i] {
                cmd.arg("-H").arg(format!("{SESSION_HEADER}: {sid}"));
            }
            cmd.args(["-d", &body])
                .arg(format!("http://127.0.0.1:{port}/transmission/rpc"));
        }
        let Ok(out) = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() else {
            return replies;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rest: &str = &text;
        while let Some(at) = rest.find(MARK) {
            let answer = &rest[..at];
            let tail = &rest[at + MARK.len()..];
            let end = tail.find('\n').unwrap_or(tail.len());
            let mut tag = tail[..end].split_whitespace();
            rest = tail.get(end + 1..).unwrap_or("");
            let (Some(Ok(i)), Some(code)) = (tag.next().map(str::parse::<usize>), tag.next())
            else {
                continue;
            };
            if i >= self.sids.len() {
                continue;
            }
            let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
            if let Some(sid) = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(SESSION_HEADER)
                    .then(|| v.trim().to_string())
            }) {
                self.sids[i] = Some(sid);
            }
            let reply = match code {
                "409" => Reply::Conflict,
                "200" => torrent(json),
                _ => Reply::Failed,
            };
            replies.insert(i, reply);
        }
        replies
    }
}

/// The torrent in a `torrent-get` answer.
fn torrent(json: &str) -> Reply {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return Reply::Failed;
    };
    let Some(torrents) = v["arguments"]["torrents"].as_array() else {
        return Reply::Failed;
    };
    match torrents.first() {
        None => Reply::NoTorrent,
        Some(t) => Reply::Torrent(Held {
            bytes: t["haveValid"].as_u64().unwrap_or(0),
            peers: t["peersSendingToUs"].as_u64().unwrap_or(0),
            webseeds: t["webseedsSendingToUs"].as_u64().unwrap_or(0),
        }),
    }
}

/// The RPC port of the client's private daemon (`ROOT/daemon/state.json`), once it has one.
fn rpc_port(root: &Path) -> Option<u16> {
    let state: Value =
        serde_json::from_slice(&fs::read(root.join("daemon/state.json")).ok()?).ok()?;
    state["rpc_port"].as_u64()?.try_into().ok()
}

/// The sizes of the HTTP transport's files under `ROOT/downloads/*/`: its `.http-partial` and a
/// finished `NAME.tar` (the largest of each).
fn http_files(root: &Path) -> (u64, u64) {
    let (mut partial, mut whole) = (0, 0);
    let Ok(dirs) = fs::read_dir(root.join("downloads")) else {
        return (0, 0);
    };
    for dir in dirs.flatten() {
        let Ok(files) = fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let name = name.to_string_lossy();
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if name.ends_with(".http-partial") {
                partial = partial.max(len);
            } else if name.ends_with(".tar") {
                whole = whole.max(len);
            }
        }
    }
    (partial, whole)
}

/// The timeline under a scenario's outcome: one line a second (every k-th for long runs), and
/// the last sample, taken once every client was done.
pub(crate) fn print(samples: &[Sample], clients: usize, size: u64) {
    let Some(last) = samples.len().checked_sub(1) else {
        return;
    };
    let every = samples.len().div_ceil(MAX_LINES).max(1);
    let mirrored = samples.iter().any(|s| s.mirror.is_some());
    println!(
        "  timeline, t from the release of the clients{}; N × size = {:.1} MiB:",
        if every > 1 {
            format!(", every {every} s")
        } else {
            String::new()
        },
        mib(clients as u64 * size)
    );
    println!(
        "    origin{}: bytes sent so far (tc, headers included), (+) since the line above; clients hold: verified torrent pieces (haveValid) or an HTTP client's partial file, the whole package once its install exited 0; peers→clients ≈ clients hold − {}sent (an estimate, low by the headers); sending: peers (seeders included) / web seeds sending to the clients' torrents",
        if mirrored { ", mirror" } else { "" },
        if mirrored { "origin and mirror " } else { "origin " },
    );
    let mut prev: Option<&Sample> = None;
    for (k, s) in samples.iter().enumerate() {
        if k != last && (k + 1) % every != 0 {
            continue;
        }
        let delta = |now: u64, before: Option<u64>| mib(now.saturating_sub(before.unwrap_or(0)));
        let when = if k == last {
            format!("t={:.1}s (end)", s.at.as_secs_f64())
        } else {
            format!("t={}s", s.at.as_secs_f64().round())
        };
        let mut line = format!(
            "  {when} origin {:.1} MiB (+{:.1})",
            mib(s.origin),
            delta(s.origin, prev.map(|p| p.origin))
        );
        if let Some(m) = s.mirror {
            line.push_str(&format!(
                " mirror {:.1} MiB (+{:.1})",
                mib(m),
                delta(m, prev.and_then(|p| p.mirror))
            ));
        }
        let servers = s.origin + s.mirror.unwrap_or(0);
        line.push_str(&format!(
            " | clients hold {:.1} MiB | peers→clients ≈ {:.1} MiB | sending: peers {} / web seeds {}",
            mib(s.held),
            mib(s.held.saturating_sub(servers)),
            s.peers_sending,
            s.webseeds_sending
        ));
        println!("{line}");
        prev = Some(s);
    }
}
