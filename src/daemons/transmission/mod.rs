//! The only module that speaks to transmission-daemon: it writes the daemon's settings, starts
//! and stops it, and drives it over its JSON RPC (blocking, one keep-alive connection).
//!
//! Written against transmission 3.00 (RPC version 16), whose quirks shape the code: `torrent-get`
//! always gets an explicit field list, the 409 session-id dance is handled in [`Rpc::call`], a
//! port already in use does not make the daemon exit (so it is checked before the start), and a
//! graceful stop pauses every torrent first so the tracker hears "stopped".

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::format::ids::InfoHash;
use crate::store::fsx;

/// How long `start_daemon` waits for the RPC to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stop waits for the "stopped" announces to land before SIGTERM (SIGTERM alone
/// cuts them off and leaves stale peers at the tracker). They take 0.3-1.2 s here: the
/// announcer works on a one-second tick.
const STOP_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const TERM_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of ordinary RPC calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Per-request timeout of the readiness probe.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const SESSION_HEADER: &str = "X-Transmission-Session-Id";

/// Everything `start_daemon` needs to know; [`DaemonConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The daemon's `-g` directory: settings.json, resume files and daemon.log.
    pub config_dir: PathBuf,
    /// Where torrents download unless `add_torrent` names another directory.
    pub download_dir: PathBuf,
    /// Address peer connections and announces are bound to. Needed when several daemons share
    /// one host (a test namespace gives each its own /32); `None` binds every address.
    pub bind_ipv4: Option<Ipv4Addr>,
    pub peer_port: u16,
    /// The RPC always listens on 127.0.0.1 only.
    pub rpc_port: u16,
    /// Upload cap in kB/s (transmission's kB is 1000 bytes); `None` is unlimited.
    pub upload_limit_kbps: Option<u32>,
    /// The program to run; `transmission-daemon` from `PATH` unless changed.
    pub program: PathBuf,
}

impl DaemonConfig {
    pub fn new(
        config_dir: impl Into<PathBuf>,
        download_dir: impl Into<PathBuf>,
        peer_port: u16,
        rpc_port: u16,
    ) -> DaemonConfig {
        DaemonConfig {
            config_dir: config_dir.into(),
            download_dir: download_dir.into(),
            bind_ipv4: None,
            peer_port,
            rpc_port,
            upload_limit_kbps: None,
            program: PathBuf::from("transmission-daemon"),
        }
    }

    /// `http://127.0.0.1:PORT/transmission/rpc`
    pub fn rpc_url(&self) -> String {
        rpc_url(self.rpc_port)
    }

    /// Where the daemon's stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.config_dir.join("daemon.log")
    }
}

/// The RPC URL of a daemon on this host.
pub fn rpc_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/transmission/rpc")
}

/// The settings.json `start_daemon` writes: no DHT, LPD or port forwarding (peers come from the
/// tracker and PEX only), no queues and no ratio or idle limits (a seeder seeds until told
/// otherwise), RPC on 127.0.0.1 without authentication.
pub fn settings(cfg: &DaemonConfig) -> Value {
    let bind = cfg.bind_ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED);
    json!({
        "dht-enabled": false,
        "lpd-enabled": false,
        "port-forwarding-enabled": false,
        "pex-enabled": true,
        "blocklist-enabled": false,
        "bind-address-ipv4": bind.to_string(),
        "peer-port": cfg.peer_port,
        "peer-port-random-on-start": false,
        "rpc-enabled": true,
        "rpc-bind-address": "127.0.0.1",
        "rpc-port": cfg.rpc_port,
        "rpc-authentication-required": false,
        "rpc-whitelist-enabled": true,
        "rpc-whitelist": "127.0.0.1",
        "download-dir": cfg.download_dir.to_string_lossy(),
        "incomplete-dir-enabled": false,
        "watch-dir-enabled": false,
        "start-added-torrents": true,
        "download-queue-enabled": false,
        "seed-queue-enabled": false,
        "queue-stalled-enabled": false,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "speed-limit-down-enabled": false,
        "speed-limit-up-enabled": cfg.upload_limit_kbps.is_some(),
        "speed-limit-up": cfg.upload_limit_kbps.unwrap_or(0),
        "alt-speed-enabled": false,
        "umask": 18,
        "cache-size-mb": 4,
        "message-level": 2,
    })
}

/// Writes `settings(cfg)` to CONFIG_DIR/settings.json (the daemon rewrites it on start and exit).
pub fn write_settings(cfg: &DaemonConfig) -> Result<()> {
    let path = cfg.config_dir.join("settings.json");
    let mut text = serde_json::to_string_pretty(&settings(cfg))?;
    text.push('\n');
    fsx::write_atomic(&path, text.as_bytes(), 0o600)
}

/// Writes settings.json and starts `transmission-daemon -f -g CONFIG_DIR` in its own process
/// group (so a Ctrl-C of the caller does not reach it), with stdout and stderr in
/// CONFIG_DIR/daemon.log, then waits up to 20 s until its RPC answers.
///
/// The daemon does not exit when a port is taken (it logs and carries on, or another daemon
/// answers the RPC), so the ports are tried first and the answering daemon's config dir is
/// checked; a taken port, a bind address this host does not have, an early exit or a silent RPC
/// are errors that quote the end of daemon.log.
pub fn start_daemon(cfg: &DaemonConfig) -> Result<DaemonHandle> {
    for dir in [&cfg.config_dir, &cfg.download_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let rpc_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, cfg.rpc_port));
    crate::daemons::supervise::ensure_free(rpc_addr, false, "transmission rpc port")?;
    let peer_ip = cfg.bind_ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED);
    crate::daemons::supervise::ensure_free(
        SocketAddr::from((peer_ip, cfg.peer_port)),
        true,
        "transmission peer port",
    )?;
    write_settings(cfg)?;

    let log_path = cfg.log_path();
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot reopen {}", log_path.display()))?;
    let child = Command::new(&cfg.program)
        .arg("-f")
        .arg("-g")
        .arg(&cfg.config_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| {
            crate::daemons::supervise::spawn_error(e, &cfg.program, "transmission-daemon")
        })?;

    // From here on, dropping the handle on an error kills the daemon.
    let mut handle = DaemonHandle {
        pid: child.id(),
        rpc: Rpc::new(&cfg.rpc_url()),
        child: Some(child),
        log: log_path,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = handle.child_mut().try_wait()? {
            bail!(
                "transmission-daemon exited ({status}) before its rpc answered on {rpc_addr}; {}",
                crate::daemons::supervise::log_tail(&handle.log)
            );
        }
        if handle.rpc.ping() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "transmission-daemon (pid {}) did not answer rpc on {rpc_addr} within {:?}; {}",
                handle.pid,
                START_TIMEOUT,
                crate::daemons::supervise::log_tail(&handle.log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_text = std::fs::read_to_string(&handle.log).unwrap_or_default();
    if log_text.contains("Couldn't bind port") {
        bail!(
            "transmission-daemon cannot listen on peer port {}; {}",
            cfg.peer_port,
            crate::daemons::supervise::log_tail(&handle.log)
        );
    }
    let session = handle.rpc.call(
        "session-get",
        json!({ "fields": ["config-dir", "rpc-version"] }),
    )?;
    let reported = PathBuf::from(session["config-dir"].as_str().unwrap_or_default());
    if !same_dir(&reported, &cfg.config_dir) {
        bail!(
            "the transmission rpc on {rpc_addr} belongs to another daemon (config dir {})",
            reported.display()
        );
    }
    Ok(handle)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A running daemon. Dropped without [`DaemonHandle::stop`] or [`DaemonHandle::detach`], a
/// daemon this process started is killed (SIGKILL), so a failing caller leaves nothing behind.
pub struct DaemonHandle {
    pub pid: u32,
    pub rpc: Rpc,
    child: Option<Child>,
    log: PathBuf,
}

impl DaemonHandle {
    fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the daemon handle owns its child")
    }

    /// Graceful stop: pauses every torrent and waits (up to 5 s) until the trackers answered
    /// the "stopped" announces, then SIGTERM, waits up to 10 s, then SIGKILL as a last resort
    /// (reported as an error). The process is reaped either way.
    pub fn stop(mut self) -> Result<()> {
        pause_before_stop(&self.rpc);
        let mut child = self.child.take().expect("the daemon handle owns its child");
        crate::daemons::supervise::terminate(&mut child, "transmission-daemon", TERM_TIMEOUT)
            .with_context(|| format!("see {}", self.log.display()))
    }

    /// Leaves the daemon running after this handle is gone (for `dist daemon start`); returns
    /// its pid, which [`stop_daemon_by_pid`] takes later.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }
}

impl Drop for DaemonHandle {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Pauses every torrent, then waits until each tracker that knew a running torrent has answered
/// its "stopped" announce. Best effort and bounded (a few seconds): a daemon that does not
/// answer is left to SIGTERM.
///
/// A fixed pause is not enough (measured: the stop announce lands 0.3-1.2 s after
/// `torrent-stop`, since the announcer works on a one-second tick). Transmission 3.00 shows no
/// pending event, only per tracker `announceState` (2 queued, 3 in flight) and whole-second
/// `lastAnnounceStartTime`/`lastAnnounceTime`. So the stop:
/// 1. lets queued or running announces finish first (a "completed" just queued would
///    otherwise pass for the stop announce);
/// 2. waits for the next second if an announce started in this one, so that the stop announce
///    is told apart by its start time;
/// 3. sends `torrent-stop` and waits for a start time past the one before, answered.
fn pause_before_stop(rpc: &Rpc) {
    let fields = json!(["hashString", "status", "trackerStats"]);
    let snapshot = || -> Option<Vec<Value>> {
        let mut reply = rpc.call("torrent-get", json!({ "fields": fields })).ok()?;
        let torrents = reply["torrents"].take();
        let torrents = torrents.as_array()?.iter();
        Some(
            torrents
                .filter(|t| t["status"].as_i64() != Some(0))
                .cloned()
                .collect(),
        )
    };
    let busy = |torrents: &[Value]| {
        torrents.iter().any(|t| {
            let mut stats = t["trackerStats"].as_array().into_iter().flatten();
            stats.any(|ts| {
                matches!(
                    ts["announceState"].as_i64(),
                    Some(ANNOUNCE_QUEUED | ANNOUNCE_ACTIVE)
                )
            })
        })
    };
    let Some(mut running) = snapshot() else {
        return;
    };
    let deadline = Instant::now() + STOP_ANNOUNCE_TIMEOUT;
    while busy(&running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        match snapshot() {
            Some(r) => running = r,
            None => return,
        }
    }
    // (infohash, tracker id, lastAnnounceStartTime before the stop)
    let mut watch: Vec<(String, i64, i64)> = Vec::new();
    for t in &running {
        let hash = t["hashString"].as_str().unwrap_or_default();
        for ts in t["trackerStats"].as_array().into_iter().flatten() {
            if ts["hasAnnounced"].as_bool() == Some(true) {
                let id = ts["id"].as_i64().unwrap_or(-1);
                let start = ts["lastAnnounceStartTime"].as_i64().unwrap_or(0);
                watch.push((hash.to_string(), id, start));
            }
        }
    }
    if let Some(latest) = watch.iter().map(|w| w.2).max() {
        while unix_seconds() <= latest && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if rpc.call("torrent-stop", json!({})).is_err() || watch.is_empty() {
        return;
    }
    let hashes: Vec<&str> = watch.iter().map(|(h, _, _)| h.as_str()).collect();
    let deadline = Instant::now() + STOP_ANNOUNCE_TIMEOUT;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(now) = rpc.call("torrent-get", json!({ "ids": hashes, "fields": fields })) else {
            return;
        };
        let torrents = now["torrents"].as_array().cloned().unwrap_or_default();
        let landed = |(hash, id, start0): &(String, i64, i64)| {
            let Some(t) = torrents.iter().find(|t| t["hashString"] == hash.as_str()) else {
                return true;
            };
            let stats = t["trackerStats"].as_array().into_iter().flatten();
            stats.filter(|ts| ts["id"].as_i64() == Some(*id)).all(|ts| {
                let start = ts["lastAnnounceStartTime"].as_i64().unwrap_or(0);
                let done = ts["lastAnnounceTime"].as_i64().unwrap_or(0);
                ts["announceState"].as_i64() != Some(ANNOUNCE_ACTIVE)
                    && start > *start0
                    && done >= start
            })
        };
        if watch.iter().all(landed) {
            return;
        }
    }
}

/// `trackerStats.announceState`: an event waits for the announcer's next tick.
const ANNOUNCE_QUEUED: i64 = 2;
/// `trackerStats.announceState`: an announce is in flight.
const ANNOUNCE_ACTIVE: i64 = 3;

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Stops a daemon known only by its pid and RPC (started by an earlier process): the same
/// graceful sequence as [`DaemonHandle::stop`], then waits for the pid to disappear. A pid that
/// is already gone is not an error; a pid that is not a transmission-daemon is.
pub fn stop_daemon_by_pid(pid: u32, rpc: &Rpc) -> Result<()> {
    if !crate::daemons::supervise::alive(pid) {
        return Ok(());
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    // The kernel truncates command names to 15 bytes.
    if !comm.trim_end().starts_with("transmission-da") {
        bail!(
            "pid {pid} is not a transmission-daemon (it is {:?})",
            comm.trim_end()
        );
    }
    pause_before_stop(rpc);
    crate::daemons::supervise::terminate_pid(pid, "transmission-daemon", TERM_TIMEOUT)
}

/// A transmission RPC client: one keep-alive agent, the session id kept between calls, a
/// timeout on every request.
pub struct Rpc {
    url: String,
    agent: ureq::Agent,
    session_id: Mutex<Option<String>>,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc").field("url", &self.url).finish()
    }
}

/// The fields `torrent-get` asks for; transmission 3.00 rejects the 4.x-only ones, so the
/// request always names exactly what [`TorrentStatus`] decodes.
pub const TORRENT_FIELDS: &[&str] = &[
    "hashString",
    "name",
    "status",
    "percentDone",
    "metadataPercentComplete",
    "haveValid",
    "sizeWhenDone",
    "leftUntilDone",
    "rateDownload",
    "rateUpload",
    "peersConnected",
    "peersSendingToUs",
    "peersGettingFromUs",
    "webseedsSendingToUs",
    "uploadedEver",
    "downloadedEver",
    "corruptEver",
    "error",
    "errorString",
    "downloadDir",
    "peers",
];

impl Rpc {
    /// A client for the RPC at `url` (e.g. `http://127.0.0.1:9091/transmission/rpc`). The host
    /// must be an IP or `localhost`: transmission answers other names with 421.
    pub fn new(url: &str) -> Rpc {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(CALL_TIMEOUT)
            .max_idle_connections_per_host(2)
            .build();
        Rpc {
            url: url.to_string(),
            agent,
            session_id: Mutex::new(None),
        }
    }

    /// A client for the daemon whose RPC listens on 127.0.0.1:`port`.
    pub fn local(port: u16) -> Rpc {
        Rpc::new(&rpc_url(port))
    }

    /// Calls `method` and returns its `arguments`; a `result` other than "success" is an error
    /// carrying that string.
    pub fn call(&self, method: &str, arguments: Value) -> Result<Value> {
        self.call_with_timeout(method, arguments, CALL_TIMEOUT)
    }

    fn call_with_timeout(
        &self,
        method: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value> {
        let body = json!({ "method": method, "arguments": arguments }).to_string();
        // The first call learns the session id from a 409; one more retry covers a daemon
        // that restarted between two calls.
        for _ in 0..3 {
            let id = self.session_id().clone();
            let mut req = self
                .agent
                .post(&self.url)
                .timeout(timeout)
                .set("Content-Type", "application/json");
            if let Some(id) = &id {
                req = req.set(SESSION_HEADER, id);
            }
            match req.send_string(&body) {
                Ok(resp) => {
                    let reply: Value =
                        serde_json::from_reader(resp.into_reader()).with_context(|| {
                            format!("{method}: cannot decode the reply of {}", self.url)
                        })?;
                    return check_result(method, reply);
                }
                Err(ureq::Error::Status(409, resp)) => {
                    let new_id = resp.header(SESSION_HEADER).map(str::to_string);
                    // Read the body so the connection goes back to the pool.
                    let _ = resp.into_string();
                    match new_id {
                        Some(new_id) => *self.session_id() = Some(new_id),
                        None => bail!("{method}: {} answered 409 without a session id", self.url),
                    }
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let text: String = text.chars().take(200).collect();
                    bail!("{method}: {} answered http {code}: {text}", self.url);
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(anyhow!(t)).with_context(|| {
                        format!("{method}: cannot reach transmission rpc at {}", self.url)
                    });
                }
            }
        }
        bail!("{method}: {} keeps changing its session id", self.url)
    }

    fn session_id(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.session_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the daemon answers `session-get` (within 2 s).
    pub fn ping(&self) -> bool {
        self.call_with_timeout(
            "session-get",
            json!({ "fields": ["version"] }),
            PING_TIMEOUT,
        )
        .is_ok()
    }

    /// Adds a torrent from its `.torrent` bytes, with its data in (or downloading to)
    /// `download_dir`; returns the infohash. A torrent the daemon already has is not an error.
    pub fn add_torrent(
        &self,
        metainfo: &[u8],
        download_dir: &Path,
        paused: bool,
    ) -> Result<InfoHash> {
        let args = json!({
            "metainfo": base64(metainfo),
            "download-dir": utf8(download_dir)?,
            "paused": paused,
        });
        let reply = self.call("torrent-add", args)?;
        added_hash(&reply)
    }

    /// Adds a magnet link downloading to `download_dir`; returns the infohash.
    pub fn add_magnet(&self, magnet: &str, download_dir: &Path) -> Result<InfoHash> {
        let args = json!({ "filename": magnet, "download-dir": utf8(download_dir)? });
        let reply = self.call("torrent-add", args)?;
        added_hash(&reply)
    }

    /// The status of the torrents with these infohashes (those the daemon does not have are
    /// simply absent); no hashes means none, not all.
    pub fn get(&self, hashes: &[InfoHash]) -> Result<Vec<TorrentStatus>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        self.torrent_get(json!({ "ids": hashes, "fields": TORRENT_FIELDS }))
    }

    /// The status of every torrent the daemon has.
    pub fn all(&self) -> Result<Vec<TorrentStatus>> {
        self.torrent_get(json!({ "fields": TORRENT_FIELDS }))
    }

    fn torrent_get(&self, args: Value) -> Result<Vec<TorrentStatus>> {
        let mut reply = self.call("torrent-get", args)?;
        serde_json::from_value(reply["torrents"].take())
            .with_context(|| format!("torrent-get: cannot decode the torrents of {}", self.url))
    }

    /// Re-checks the local data of these torrents against their piece hashes.
    pub fn verify(&self, hashes: &[InfoHash]) -> Result<()> {
        self.act("torrent-verify", hashes)
    }

    pub fn start(&self, hashes: &[InfoHash]) -> Result<()> {
        self.act("torrent-start", hashes)
    }

    /// Forgets these torrents; with `delete_local_data` their files go too.
    pub fn remove(&self, hashes: &[InfoHash], delete_local_data: bool) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let args = json!({ "ids": hashes, "delete-local-data": delete_local_data });
        self.call("torrent-remove", args).map(drop)
    }

    /// Runs an action on these torrents; an empty list does nothing (it would mean "all" to
    /// transmission).
    fn act(&self, method: &str, hashes: &[InfoHash]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.call(method, json!({ "ids": hashes })).map(drop)
    }
}

fn check_result(method: &str, mut reply: Value) -> Result<Value> {
    match reply["result"].as_str() {
        Some("success") => Ok(reply["arguments"].take()),
        Some(other) => bail!("transmission refused {method}: {other}"),
        None => bail!("{method}: the reply has no result: {reply}"),
    }
}

fn added_hash(reply: &Value) -> Result<InfoHash> {
    let t = reply
        .get("torrent-added")
        .or_else(|| reply.get("torrent-duplicate"))
        .ok_or_else(|| anyhow!("torrent-add: the reply names no torrent: {reply}"))?;
    let hash = t["hashString"]
        .as_str()
        .ok_or_else(|| anyhow!("torrent-add: the reply has no hashString: {reply}"))?;
    InfoHash::parse(hash).context("torrent-add: the reply's hashString")
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("{}: transmission needs a UTF-8 path", path.display()))
}

/// Standard base64 with padding (RFC 4648), as `torrent-add`'s `metainfo` wants it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What transmission's `status` number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorrentState {
    Stopped,
    CheckWait,
    Verifying,
    DownloadWait,
    Downloading,
    SeedWait,
    Seeding,
    Unknown(i64),
}

impl From<i64> for TorrentState {
    fn from(n: i64) -> TorrentState {
        match n {
            0 => TorrentState::Stopped,
            1 => TorrentState::CheckWait,
            2 => TorrentState::Verifying,
            3 => TorrentState::DownloadWait,
            4 => TorrentState::Downloading,
            5 => TorrentState::SeedWait,
            6 => TorrentState::Seeding,
            n => TorrentState::Unknown(n),
        }
    }
}

/// One torrent as `torrent-get` reports it (the fields of [`TORRENT_FIELDS`]). Rates are in
/// bytes per second, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TorrentStatus {
    pub hash_string: InfoHash,
    pub name: String,
    /// 0 stopped, 1 check-wait, 2 verifying, 3 download-wait, 4 downloading, 5 seed-wait,
    /// 6 seeding; see [`TorrentStatus::state`].
    pub status: i64,
    /// Can read 1.0 before the metadata of a magnet arrived: see [`TorrentStatus::is_complete`].
    pub percent_done: f64,
    pub metadata_percent_complete: f64,
    pub have_valid: u64,
    pub size_when_done: u64,
    pub left_until_done: u64,
    pub rate_download: u64,
    pub rate_upload: u64,
    pub peers_connected: u64,
    pub peers_sending_to_us: u64,
    pub peers_getting_from_us: u64,
    pub webseeds_sending_to_us: u64,
    pub uploaded_ever: u64,
    pub downloaded_ever: u64,
    pub corrupt_ever: u64,
    /// 0 none, 1 tracker warning, 2 tracker error, 3 local error.
    pub error: i64,
    pub error_string: String,
    pub download_dir: String,
    pub peers: Vec<Peer>,
}

/// A connected peer of a torrent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub address: String,
    pub port: u16,
    pub client_name: String,
    /// Bytes per second from this peer to us.
    pub rate_to_client: u64,
    /// Bytes per second from us to this peer.
    pub rate_to_peer: u64,
    /// How much of the torrent the peer has, 0.0 to 1.0.
    pub progress: f64,
}

impl TorrentStatus {
    pub fn state(&self) -> TorrentState {
        TorrentState::from(self.status)
    }

    /// Every byte is here and checked: metadata complete, 100 %, nothing left. ("Transmission
    /// says 100 %" is not verification of the content; the caller still re-hashes it.)
    pub fn is_complete(&self) -> bool {
        self.metadata_percent_complete >= 1.0
            && self.percent_done >= 1.0
            && self.left_until_done == 0
    }

    /// Complete and offering the data to peers.
    pub fn is_seeding(&self) -> bool {
        self.is_complete() && self.state() == TorrentState::Seeding
    }
}

impl Rpc {
    /// The torrents among `hashes` whose last announce to some tracker succeeded.
    pub fn announced(&self, hashes: &[InfoHash]) -> Result<std::collections::BTreeSet<InfoHash>> {
        if hashes.is_empty() {
            return Ok(Default::default());
        }
        let v = self.call(
            "torrent-get",
            json!({ "ids": hashes, "fields": ["hashString", "trackerStats"] }),
        )?;
        let mut out = std::collections::BTreeSet::new();
        for t in v["torrents"].as_array().into_iter().flatten() {
            let ok = t["trackerStats"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["lastAnnounceSucceeded"].as_bool() == Some(true));
            if ok {
                if let Some(h) = t["hashString"]
                    .as_str()
                    .and_then(|h| InfoHash::parse(h).ok())
                {
                    out.insert(h);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DaemonConfig {
        let mut c = DaemonConfig::new("/var/lib/dist/daemon", "/var/lib/dist/objects", 51413, 9091);
        c.bind_ipv4 = Some(Ipv4Addr::new(10, 77, 0, 2));
        c.upload_limit_kbps = Some(4000);
        c
    }

    #[test]
    fn settings_have_what_the_swarm_needs() {
        let s = settings(&cfg());
        for off in [
            "dht-enabled",
            "lpd-enabled",
            "port-forwarding-enabled",
            "download-queue-enabled",
            "seed-queue-enabled",
            "queue-stalled-enabled",
            "ratio-limit-enabled",
            "idle-seeding-limit-enabled",
            "rpc-authentication-required",
        ] {
            assert_eq!(s[off], false, "{off}");
        }
        assert_eq!(s["pex-enabled"], true);
        assert_eq!(s["rpc-enabled"], true);
        assert_eq!(s["rpc-bind-address"], "127.0.0.1");
        assert_eq!(s["rpc-whitelist"], "127.0.0.1");
        assert_eq!(s["bind-address-ipv4"], "10.77.0.2");
        assert_eq!(s["peer-port"], 51413);
        assert_eq!(s["rpc-port"], 9091);
        assert_eq!(s["download-dir"], "/var/lib/dist/objects");
        assert_eq!(s["speed-limit-up"], 4000);
        assert_eq!(s["speed-limit-up-enabled"], true);
        assert_eq!(s["umask"], 18);
        assert!(s["cache-size-mb"].as_u64().unwrap() <= 8);
    }

    #[test]
    fn unlimited_upload_and_any_address_by_default() {
        let s = settings(&DaemonConfig::new("/c", "/d", 1, 2));
        assert_eq!(s["speed-limit-up-enabled"], false);
        assert_eq!(s["bind-address-ipv4"], "0.0.0.0");
    }

    /// A reply of transmission 3.00 to `torrent-get` with `TORRENT_FIELDS`.
    const SAMPLE: &str = r#"{"arguments":{"torrents":[{"corruptEver":0,
        "downloadDir":"/tmp/leech","downloadedEver":10240,"error":0,"errorString":"",
        "hashString":"0b5d8ef0e8d5b3c8ea1b33e1c3cbb7b1f1a3a5b2","haveValid":10240,
        "leftUntilDone":0,"metadataPercentComplete":1,"name":"hello-1.0.0.tar",
        "peers":[{"address":"10.77.0.2","clientIsChoked":false,"clientIsInterested":false,
        "clientName":"Transmission 3.00","flagStr":"TE","isDownloadingFrom":false,
        "isEncrypted":true,"isIncoming":false,"isUTP":true,"isUploadingTo":false,
        "peerIsChoked":true,"peerIsInterested":false,"port":51413,"progress":1,
        "rateToClient":0,"rateToPeer":0}],
        "peersConnected":1,"peersGettingFromUs":0,"peersSendingToUs":0,"percentDone":1,
        "rateDownload":0,"rateUpload":0,"sizeWhenDone":10240,"status":6,"uploadedEver":0,
        "webseedsSendingToUs":0}]},"result":"success"}"#;

    #[test]
    fn status_decodes_from_a_real_reply() {
        let reply: Value = serde_json::from_str(SAMPLE).unwrap();
        let mut args = check_result("torrent-get", reply).unwrap();
        let ts: Vec<TorrentStatus> = serde_json::from_value(args["torrents"].take()).unwrap();
        let t = &ts[0];
        assert_eq!(t.name, "hello-1.0.0.tar");
        assert_eq!(t.state(), TorrentState::Seeding);
        assert!(t.is_complete() && t.is_seeding());
        assert_eq!(t.size_when_done, 10240);
        assert_eq!(t.peers[0].address, "10.77.0.2");
        assert_eq!(t.peers[0].client_name, "Transmission 3.00");
        assert_eq!(t.peers[0].port, 51413);
    }

    #[test]
    fn percent_done_alone_is_not_complete() {
        let reply: Value = serde_json::from_str(SAMPLE).unwrap();
        let mut args = check_result("torrent-get", reply).unwrap();
        let mut t: Vec<TorrentStatus> = serde_json::from_value(args["torrents"].take()).unwrap();
        t[0].metadata_percent_complete = 0.0;
        t[0].status = 4;
        assert!(!t[0].is_complete() && !t[0].is_seeding());
    }

    #[test]
    fn the_field_list_is_exactly_what_the_status_decodes() {
        // Every requested field present (with a neutral value) must decode, so the list and
        // the struct cannot drift apart.
        let mut obj = serde_json::Map::new();
        for f in TORRENT_FIELDS {
            let v = match *f {
                "hashString" => json!("ab".repeat(20)),
                "name" | "errorString" | "downloadDir" => json!(""),
                "peers" => json!([]),
                _ => json!(0),
            };
            obj.insert(f.to_string(), v);
        }
        let t: TorrentStatus = serde_json::from_value(Value::Object(obj.clone())).unwrap();
        assert_eq!(t.state(), TorrentState::Stopped);
        for f in TORRENT_FIELDS {
            let mut fewer = obj.clone();
            fewer.remove(*f);
            assert!(
                serde_json::from_value::<TorrentStatus>(Value::Object(fewer)).is_err(),
                "{f} is requested but not decoded"
            );
        }
    }

    #[test]
    fn refused_calls_carry_the_result_string() {
        let reply = json!({"result": "duplicate torrent", "arguments": {}});
        let e = check_result("torrent-add", reply).unwrap_err();
        assert_eq!(
            e.to_string(),
            "transmission refused torrent-add: duplicate torrent"
        );
    }

    #[test]
    fn duplicates_count_as_added() {
        let ab = "ab".repeat(20);
        let reply = json!({"torrent-duplicate": {"hashString": ab, "id": 1, "name": "x"}});
        assert_eq!(added_hash(&reply).unwrap().to_hex(), ab);
        let bad = json!({"torrent-added": {"hashString": "../x", "id": 1, "name": "x"}});
        assert!(added_hash(&bad).is_err());
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn a_missing_binary_names_the_package() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = DaemonConfig::new(tmp.path().join("c"), tmp.path().join("d"), 0, 0);
        c.program = tmp.path().join("transmission-daemon");
        let e = start_daemon(&c).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "{} not found: install the Debian package transmission-daemon",
                c.program.display()
            )
        );
    }

    #[test]
    fn a_bind_address_this_host_lacks_is_an_error() {
        // Transmission would start and then fail every announce silently.
        let tmp = tempfile::tempdir().unwrap();
        let mut c = DaemonConfig::new(tmp.path().join("c"), tmp.path().join("d"), 0, 0);
        c.bind_ipv4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        let e = start_daemon(&c).err().unwrap();
        assert_eq!(
            e.to_string(),
            "transmission peer port 192.0.2.1:0: 192.0.2.1 is not an address of this host"
        );
    }

    #[test]
    fn a_taken_rpc_port_is_reported_before_the_start() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let tmp = tempfile::tempdir().unwrap();
        let c = DaemonConfig::new(tmp.path().join("c"), tmp.path().join("d"), 0, port);
        let e = start_daemon(&c).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!("transmission rpc port 127.0.0.1:{port} is already in use (tcp)")
        );
    }
}
