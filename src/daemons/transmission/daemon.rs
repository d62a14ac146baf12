//! The transmission-daemon process: its settings.json, its start (checked ports, readiness,
//! ownership of the RPC that answers) and its graceful stop, which pauses every torrent first so
//! the trackers hear "stopped" before SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::rpc::{rpc_url, Rpc};
use super::types::{TorrentState, TorrentTrackers};
use crate::format::ids::InfoHash;
use crate::process;
use crate::store::fsx;

/// How long `start_daemon` waits for the RPC to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long each phase of a stop waits for the "stopped" announces to land before SIGTERM (SIGTERM alone
/// cuts them off and leaves stale peers at the tracker). They take 0.3-1.2 s here: the
/// announcer works on a one-second tick.
const STOP_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const TERM_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Download cap in kB/s, likewise.
    pub download_limit_kbps: Option<u32>,
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
            download_limit_kbps: None,
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
        "speed-limit-down-enabled": cfg.download_limit_kbps.is_some(),
        "speed-limit-down": cfg.download_limit_kbps.unwrap_or(0),
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
    process::ensure_free(rpc_addr, false, "transmission rpc port")?;
    let peer_ip = cfg.bind_ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED);
    process::ensure_free(
        SocketAddr::from((peer_ip, cfg.peer_port)),
        true,
        "transmission peer port",
    )?;
    write_settings(cfg)?;
    // From here on, dropping the handle on an error kills the daemon.
    let mut handle = spawn(cfg)?;
    handle.wait_for_rpc(rpc_addr)?;
    let log_text = std::fs::read_to_string(&handle.log).unwrap_or_default();
    if log_text.contains("Couldn't bind port") {
        bail!(
            "transmission-daemon cannot listen on peer port {}; {}",
            cfg.peer_port,
            process::log_tail(&handle.log)
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

/// Starts the program with its output in [`DaemonConfig::log_path`].
fn spawn(cfg: &DaemonConfig) -> Result<DaemonHandle> {
    let log_path = cfg.log_path();
    let child = process::spawn_logged(
        Command::new(&cfg.program)
            .arg("-f")
            .arg("-g")
            .arg(&cfg.config_dir),
        &log_path,
        &cfg.program,
        "transmission-daemon",
    )?;
    Ok(DaemonHandle {
        pid: child.id(),
        rpc: Rpc::new(&cfg.rpc_url()),
        child: Some(child),
        log: log_path,
    })
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

    /// Waits up to [`START_TIMEOUT`] until the RPC answers; an exit meanwhile is an error.
    fn wait_for_rpc(&mut self, rpc_addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait()? {
                bail!(
                    "transmission-daemon exited ({status}) before its rpc answered on {rpc_addr}; {}",
                    process::log_tail(&self.log)
                );
            }
            if self.rpc.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "transmission-daemon (pid {}) did not answer rpc on {rpc_addr} within {:?}; {}",
                    self.pid,
                    START_TIMEOUT,
                    process::log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Graceful stop: pauses every torrent and waits (up to 5 s) until the trackers answered
    /// the "stopped" announces, then SIGTERM, waits up to 10 s, then SIGKILL as a last resort
    /// (reported as an error). The process is reaped either way.
    pub fn stop(self) -> Result<()> {
        self.stop_within(2 * STOP_ANNOUNCE_TIMEOUT)
    }

    /// [`DaemonHandle::stop`] giving the "stopped" announces at most `budget` in all. A seeder
    /// of a thousand torrents cannot get them all out in a few seconds (transmission 3.00
    /// announces 48 at a time, once a second), and a server stopping its own tracker right
    /// after has no use for them: `dist serve` stops within a couple of seconds instead.
    pub fn stop_within(mut self, budget: Duration) -> Result<()> {
        pause_before_stop(&self.rpc, budget);
        let mut child = self.child.take().expect("the daemon handle owns its child");
        process::terminate(&mut child, "transmission-daemon", TERM_TIMEOUT)
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

/// Stops a daemon known only by its pid and RPC (started by an earlier process): the same
/// graceful sequence as [`DaemonHandle::stop`], then waits for the pid to disappear. A pid that
/// is already gone is not an error; a pid that is not a transmission-daemon is.
pub fn stop_daemon_by_pid(pid: u32, rpc: &Rpc) -> Result<()> {
    if !process::alive(pid) {
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
    pause_before_stop(rpc, 2 * STOP_ANNOUNCE_TIMEOUT);
    process::terminate_pid(pid, "transmission-daemon", TERM_TIMEOUT)
}

/// A tracker that had heard from a running torrent, and when its last announce started.
struct Watched {
    hash: InfoHash,
    tracker_id: i64,
    start: i64,
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
fn pause_before_stop(rpc: &Rpc, budget: Duration) {
    let deadline = Instant::now() + budget;
    let Some(running) = running_torrents(rpc) else {
        return;
    };
    let Some(running) = wait_until_idle(rpc, running, deadline) else {
        return;
    };
    let watch: Vec<Watched> = running
        .iter()
        .flat_map(|t| {
            let announced = t.tracker_stats.iter().filter(|s| s.has_announced);
            announced.map(|s| Watched {
                hash: t.hash_string,
                tracker_id: s.id,
                start: s.last_announce_start_time,
            })
        })
        .collect();
    if let Some(latest) = watch.iter().map(|w| w.start).max() {
        while unix_seconds() <= latest && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if rpc.stop_all().is_err() || watch.is_empty() {
        return;
    }
    wait_for_stop_announces(rpc, &watch, deadline);
}

/// The torrents that are not stopped, with their trackers; `None` when the RPC fails.
fn running_torrents(rpc: &Rpc) -> Option<Vec<TorrentTrackers>> {
    let all = rpc.all_trackers().ok()?;
    let running = all
        .into_iter()
        .filter(|t| t.state() != TorrentState::Stopped);
    Some(running.collect())
}

/// Step 1: polls until no tracker of a running torrent has an announce queued or in flight (or
/// until `deadline`); `None` when the RPC fails.
fn wait_until_idle(
    rpc: &Rpc,
    mut running: Vec<TorrentTrackers>,
    deadline: Instant,
) -> Option<Vec<TorrentTrackers>> {
    let busy = |torrents: &[TorrentTrackers]| {
        let mut stats = torrents.iter().flat_map(|t| &t.tracker_stats);
        stats.any(|s| s.is_busy())
    };
    while busy(&running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        running = running_torrents(rpc)?;
    }
    Some(running)
}

/// Step 3: polls (until `deadline`) until every watched tracker finished an
/// announce that started after the one it had before the stop. A torrent gone from the daemon
/// counts as done; an RPC failure ends the wait.
fn wait_for_stop_announces(rpc: &Rpc, watch: &[Watched], deadline: Instant) {
    let hashes: Vec<InfoHash> = watch.iter().map(|w| w.hash).collect();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(torrents) = rpc.trackers(&hashes) else {
            return;
        };
        let landed = |w: &Watched| {
            let Some(t) = torrents.iter().find(|t| t.hash_string == w.hash) else {
                return true;
            };
            let mut stats = t.tracker_stats.iter().filter(|s| s.id == w.tracker_id);
            stats.all(|s| {
                !s.is_announcing()
                    && s.last_announce_start_time > w.start
                    && s.last_announce_time >= s.last_announce_start_time
            })
        };
        if watch.iter().all(landed) {
            return;
        }
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
