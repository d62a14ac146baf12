//! The only module that runs opentracker: it writes the whitelist of infohashes the tracker
//! serves, starts and stops the tracker, reloads the whitelist, and asks the tracker over HTTP
//! whether it accepts an infohash and how many peers it knows.
//!
//! Facts about Debian 12's opentracker (2021-08-23 build) that shape this code:
//! - it serves only whitelisted infohashes, and reads the whitelist as `nobody` after chrooting
//!   into the state dir, so the dir must be 0755 and the file 0644;
//! - it binds with SO_REUSEPORT, so a second instance on a taken port starts "fine" and the
//!   kernel splits the requests between the two: the port is checked before the start;
//! - a scrape answers the same (nothing) for an unknown and for a refused infohash, and an
//!   announce with `event=stopped` is never refused, so [`Tracker::authorizes`] announces a
//!   peer on port 0 and withdraws it at once.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::format::bencode::{self, Value};
use crate::format::ids::InfoHash;
use crate::format::torrent::percent_encode;
use crate::process::{self, Signal};
use crate::store::fsx;

/// How long `start_tracker` waits for the tracker to answer HTTP.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whitelist change may take to show after SIGHUP.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the tracker gets to exit after SIGTERM before SIGKILL.
const TERM_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// The whitelist's path inside the chroot.
const WHITELIST: &str = "whitelist.txt";
/// The peer id of `authorizes` probes (20 bytes, like every peer id).
const PROBE_PEER_ID: &str = "-DI0000-authz-probe-";

/// Where the tracker keeps its state and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// State dir holding whitelist.txt; opentracker chroots into it. Made mode 0755. Its parents
    /// need no particular mode: the chroot happens before the tracker drops to `nobody`.
    pub dir: PathBuf,
    /// IPv4 address and port for both HTTP (TCP) and UDP announces.
    pub listen: SocketAddr,
    /// The program to run; `opentracker` from `PATH` unless changed.
    pub program: PathBuf,
}

impl TrackerConfig {
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr) -> TrackerConfig {
        TrackerConfig {
            dir: dir.into(),
            listen,
            program: PathBuf::from("opentracker"),
        }
    }

    /// The tracker's output: `DIR.log` beside the state dir (outside the chroot).
    pub fn log_path(&self) -> PathBuf {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tracker".into());
        self.dir.with_file_name(format!("{name}.log"))
    }
}

/// Swarm counts from a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swarm {
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
    /// Completed downloads ever reported.
    pub downloaded: u64,
}

/// Writes DIR/whitelist.txt and starts
/// `opentracker -i IP -p PORT -P PORT -d DIR -w /whitelist.txt -A 127.0.0.1` in its own process
/// group, output in [`TrackerConfig::log_path`]; waits up to 10 s until it answers HTTP and, if
/// the list is not empty, accepts its first infohash (which catches an unreadable whitelist).
pub fn start_tracker(cfg: &TrackerConfig, infohashes: &[InfoHash]) -> Result<Tracker> {
    let hashes = normalize_all(infohashes);
    let ip = match cfg.listen.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => bail!("opentracker here serves IPv4 only, not {}", cfg.listen),
    };
    std::fs::create_dir_all(&cfg.dir)
        .with_context(|| format!("cannot create directory {}", cfg.dir.display()))?;
    std::fs::set_permissions(&cfg.dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot set mode of {}", cfg.dir.display()))?;
    write_whitelist(&cfg.dir, &hashes)?;
    process::ensure_free(cfg.listen, true, "tracker port")?;

    let log_path = cfg.log_path();
    let port = cfg.listen.port().to_string();
    let child = process::spawn_logged(
        Command::new(&cfg.program)
            .arg("-i")
            .arg(ip.to_string())
            .args(["-p", &port, "-P", &port, "-d"])
            .arg(&cfg.dir)
            .arg("-w")
            .arg(format!("/{WHITELIST}"))
            .args(["-A", "127.0.0.1"]),
        &log_path,
        &cfg.program,
        "opentracker",
    )?;

    // From here on, dropping the tracker on an error kills the process.
    let mut tracker = Tracker {
        pid: child.id(),
        child: Some(child),
        listen: cfg.listen,
        dir: cfg.dir.clone(),
        log: log_path,
        agent: ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(HTTP_TIMEOUT)
            .build(),
        whitelist: Mutex::new(hashes.clone()),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = tracker.child_mut().try_wait()? {
            bail!(
                "opentracker exited ({status}) before it answered on {}; {}",
                cfg.listen,
                process::log_tail(&tracker.log)
            );
        }
        if tracker.swarm(&InfoHash::from_bytes([0; 20])).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "opentracker (pid {}) did not answer http on {} within {START_TIMEOUT:?}; {}",
                tracker.pid,
                cfg.listen,
                process::log_tail(&tracker.log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(first) = hashes.first() {
        tracker.wait_for_verdict(first, true)?;
    }
    Ok(tracker)
}

/// A running opentracker. Dropped without [`Tracker::stop`], it is killed (SIGKILL).
pub struct Tracker {
    pid: u32,
    child: Option<Child>,
    listen: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    agent: ureq::Agent,
    /// The list last written, to tell which change to wait for on a reload.
    whitelist: Mutex<Vec<InfoHash>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("pid", &self.pid)
            .field("listen", &self.listen)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Tracker {
    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the tracker owns its child")
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `http://IP:PORT/announce`
    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.listen)
    }

    /// Replaces the whitelist (atomically, mode 0644), makes the tracker reload it (SIGHUP) and
    /// waits up to 5 s until the change shows. The reload swaps the whole list at once, so
    /// probing one changed infohash tells that the new list is active.
    pub fn set_whitelist(&self, infohashes: &[InfoHash]) -> Result<()> {
        let hashes = normalize_all(infohashes);
        let probe = {
            // Both lists are sorted (`normalize_all`): binary searches, so 100,000 hashes
            // cost milliseconds, not a quadratic scan.
            let old = self.whitelist.lock().unwrap_or_else(|e| e.into_inner());
            let added = hashes.iter().find(|h| old.binary_search(h).is_err());
            let removed = old.iter().find(|h| hashes.binary_search(h).is_err());
            match (added, removed) {
                (Some(h), _) => Some((*h, true)),
                (None, Some(h)) => Some((*h, false)),
                (None, None) => None,
            }
        };
        write_whitelist(&self.dir, &hashes)?;
        *self.whitelist.lock().unwrap_or_else(|e| e.into_inner()) = hashes;
        process::signal(self.pid, Signal::Hup)
            .with_context(|| format!("cannot make opentracker (pid {}) reload", self.pid))?;
        if let Some((hash, accepted)) = probe {
            self.wait_for_verdict(&hash, accepted)?;
        }
        Ok(())
    }

    fn wait_for_verdict(&self, infohash: &InfoHash, accepted: bool) -> Result<()> {
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            if self.authorizes(infohash)? == accepted {
                return Ok(());
            }
            if Instant::now() > deadline {
                let how = if accepted { "accept" } else { "refuse" };
                bail!(
                    "opentracker on {} does not {how} {infohash} from {} after {RELOAD_TIMEOUT:?} \
                     (it reads the file as nobody: it must be mode 0644 in a 0755 dir); {}",
                    self.listen,
                    self.dir.join(WHITELIST).display(),
                    process::log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the tracker accepts announces for `infohash` now. Asks with an announce of a peer
    /// on port 0 (which no client connects to) wanting no peers, then withdraws it with
    /// `event=stopped`, so no peer is left behind. A scrape cannot tell: it answers with no
    /// files for an unknown infohash, whitelisted or not.
    pub fn authorizes(&self, infohash: &InfoHash) -> Result<bool> {
        let hash = infohash.to_hex();
        let reply = self.get(&self.probe_url(infohash, ""))?;
        if let Some(reason) = reply.get("failure reason") {
            let reason = String::from_utf8_lossy(reason.as_bytes().unwrap_or_default());
            if reason.contains("not authorized") {
                return Ok(false);
            }
            bail!("opentracker on {} refused {hash}: {reason}", self.listen);
        }
        if reply.get("interval").is_none() {
            bail!(
                "opentracker on {} answered an announce of {hash} without an interval",
                self.listen
            );
        }
        self.get(&self.probe_url(infohash, "&event=stopped"))?;
        Ok(true)
    }

    fn probe_url(&self, hash: &InfoHash, event: &str) -> String {
        format!(
            "http://{}/announce?info_hash={}&peer_id={}&port=0&uploaded=0&downloaded=0&left=1&numwant=0&compact=1{event}",
            self.listen,
            encode_hash(hash),
            percent_encode(PROBE_PEER_ID)
        )
    }

    /// The seeders, leechers and completed downloads the tracker knows for `infohash` (all zero
    /// when it knows none, whether or not it is whitelisted).
    pub fn swarm(&self, infohash: &InfoHash) -> Result<Swarm> {
        let url = format!(
            "http://{}/scrape?info_hash={}",
            self.listen,
            encode_hash(infohash)
        );
        let reply = self.get(&url)?;
        swarm_of(&reply, infohash)
            .with_context(|| format!("opentracker on {} sent a scrape without files", self.listen))
    }

    fn get(&self, url: &str) -> Result<Value> {
        let resp = self
            .agent
            .get(url)
            .call()
            .with_context(|| format!("cannot reach opentracker on {}", self.listen))?;
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .with_context(|| format!("cannot read the reply of opentracker on {}", self.listen))?;
        bencode::decode(&body).map_err(|e| {
            anyhow!(
                "opentracker on {} sent no bencoding ({e}): {}",
                self.listen,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })
    }

    /// SIGTERM, up to 5 s, SIGKILL as a last resort (reported as an error); always reaps.
    pub fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().expect("the tracker owns its child");
        process::terminate(&mut child, "opentracker", TERM_TIMEOUT)
            .with_context(|| format!("see {}", self.log.display()))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lowercase hex, each hash once, in a stable order.
fn normalize_all(infohashes: &[InfoHash]) -> Vec<InfoHash> {
    let set: std::collections::BTreeSet<InfoHash> = infohashes.iter().copied().collect();
    set.into_iter().collect()
}

/// The 20 raw bytes of an infohash, percent-encoded for a query string.
/// The counts of `infohash` in a scrape reply (BEP 48); zeros when the tracker lists none.
fn swarm_of(reply: &Value, infohash: &InfoHash) -> Result<Swarm> {
    let raw = infohash.as_bytes().to_vec();
    let entry = match reply.get("files") {
        Some(Value::Dict(files)) => files.get(&raw),
        _ => bail!("a scrape reply without `files`"),
    };
    let count = |k: &str| {
        entry
            .and_then(|e| e.get(k))
            .and_then(Value::as_int)
            .unwrap_or(0)
            .max(0) as u64
    };
    Ok(Swarm {
        complete: count("complete"),
        incomplete: count("incomplete"),
        downloaded: count("downloaded"),
    })
}

/// Scrapes any tracker whose announce URL ends in `/announce` (the BEP 48 convention: the same
/// URL with `/scrape`) for one infohash, within `timeout`. A client asks this before choosing a
/// transport: how many peers hold or fetch the object now.
pub fn scrape(announce_url: &str, infohash: &InfoHash, timeout: Duration) -> Result<Swarm> {
    let swarms = scrape_many(announce_url, std::slice::from_ref(infohash), timeout)?;
    Ok(swarms[0])
}

/// How many infohashes one scrape request names: opentracker answers at most 64
/// (`OT_MAXMULTISCRAPE_COUNT`) and ignores the rest.
const SCRAPE_BATCH: usize = 64;

/// [`scrape`] for several infohashes, in one request per 64 of them (BEP 48 lets a scrape
/// name several); the swarms in the order of `infohashes`.
pub fn scrape_many(
    announce_url: &str,
    infohashes: &[InfoHash],
    timeout: Duration,
) -> Result<Vec<Swarm>> {
    let Some(base) = announce_url.strip_suffix("/announce") else {
        bail!("{announce_url} does not end in /announce: no scrape URL (BEP 48)");
    };
    let mut out = Vec::with_capacity(infohashes.len());
    for batch in infohashes.chunks(SCRAPE_BATCH) {
        let query: Vec<String> = batch
            .iter()
            .map(|h| format!("info_hash={}", encode_hash(h)))
            .collect();
        let url = format!("{base}/scrape?{}", query.join("&"));
        let resp = crate::net::agent(&url, timeout)?
            .get(&url)
            .call()
            .with_context(|| format!("cannot scrape {url}"))?;
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .with_context(|| format!("cannot read the scrape of {url}"))?;
        let reply = bencode::decode(&body).map_err(|e| anyhow!("{url}: not bencoded ({e})"))?;
        for h in batch {
            out.push(swarm_of(&reply, h).with_context(|| url.clone())?);
        }
    }
    Ok(out)
}

fn encode_hash(hash: &InfoHash) -> String {
    hash.as_bytes()
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect()
}

fn whitelist_text(hashes: &[InfoHash]) -> String {
    hashes.iter().map(|h| format!("{h}\n")).collect()
}

/// DIR/whitelist.txt, written atomically with mode 0644 (opentracker reads it as `nobody`).
fn write_whitelist(dir: &Path, hashes: &[InfoHash]) -> Result<()> {
    fsx::write_atomic(
        &dir.join(WHITELIST),
        whitelist_text(hashes).as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_is_one_lowercase_hash_a_line() {
        let ids: Vec<InfoHash> = ["cd".repeat(20), "AB".repeat(20), "ab".repeat(20)]
            .iter()
            .map(|h| InfoHash::parse(h).unwrap())
            .collect();
        let hashes = normalize_all(&ids);
        assert_eq!(
            whitelist_text(&hashes),
            format!("{}\n{}\n", "ab".repeat(20), "cd".repeat(20))
        );
    }

    #[test]
    fn infohash_is_sent_as_raw_bytes() {
        let h = InfoHash::parse(&"0a".repeat(20)).unwrap();
        assert_eq!(encode_hash(&h), "%0A".repeat(20));
    }

    #[test]
    fn log_sits_beside_the_chroot() {
        let c = TrackerConfig::new("/srv/dist/tracker", "127.0.0.1:6969".parse().unwrap());
        assert_eq!(c.log_path(), Path::new("/srv/dist/tracker.log"));
    }

    #[test]
    fn a_missing_binary_names_the_package() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = TrackerConfig::new(tmp.path().join("t"), "127.0.0.1:0".parse().unwrap());
        c.program = tmp.path().join("opentracker");
        let e = start_tracker(&c, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} not found: install the Debian package opentracker",
                c.program.display()
            )
        );
    }
}
