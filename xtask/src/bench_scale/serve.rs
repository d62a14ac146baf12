//! The `dist serve` a scale run measures: free loopback ports, starting it, waiting until
//! healthy (bounded by `--serve-cap`), its resident memory with its tracker and seeder, and
//! stopping it by SIGTERM; an HTTP GET (ureq) to probe it.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// `GET path` of the server at `addr` (loopback) on a connection of its own, with short
/// timeouts and no redirects followed: the status, whatever it is, and the body.
pub(super) fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(Duration::from_secs(10))
        .redirects(0)
        .build();
    let response = match agent.get(&format!("http://{addr}{path}")).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("GET {path}"))),
    };
    let status = response.status();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body)?;
    Ok((status, body))
}

pub(super) struct Ports {
    pub(super) http: SocketAddr,
    tracker: SocketAddr,
    peer: u16,
    rpc: u16,
}

impl Ports {
    pub(super) fn new() -> Result<Ports> {
        let free = || -> Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        Ok(Ports {
            http: format!("127.0.0.1:{}", free()?).parse()?,
            tracker: format!("127.0.0.1:{}", free()?).parse()?,
            peer: free()?,
            rpc: free()?,
        })
    }
}

/// One `dist serve`, stopped by SIGTERM (its children with it) when dropped.
pub(super) struct Serve {
    child: Option<Child>,
    root: PathBuf,
    http: SocketAddr,
    started: Instant,
}

impl Serve {
    pub(super) fn start(bin: &Path, repo: &Path, p: &Ports, log: PathBuf) -> Result<Serve> {
        let child = dist(bin, repo)
            .arg("serve")
            .args(["--http", &p.http.to_string()])
            .args(["--tracker", &p.tracker.to_string()])
            .args(["--peer-port", &p.peer.to_string()])
            .args(["--rpc-port", &p.rpc.to_string()])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .context("cannot start dist serve")?;
        Ok(Serve {
            child: Some(child),
            root: repo.to_path_buf(),
            http: p.http,
            started: Instant::now(),
        })
    }

    /// Time from the start until `/health` answered 200, or `None` after `cap`.
    pub(super) fn wait_healthy(&mut self, cap: Duration) -> Result<Option<Duration>> {
        while self.started.elapsed() < cap {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!("dist serve exited early ({st})");
                }
            }
            if matches!(http_get(self.http, "/health"), Ok((200, _))) {
                return Ok(Some(self.started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(None)
    }

    /// RSS of serve, its tracker and its seeder (pids from `serve/state.json`), KiB.
    pub(super) fn rss_kib(&self, repo: &Path) -> Result<u64> {
        let state: serde_json::Value =
            serde_json::from_slice(&fs::read(repo.join("serve/state.json"))?)?;
        let pids = [
            self.child.as_ref().map(|c| c.id() as u64),
            state["tracker_pid"].as_u64(),
            state["seeder_pid"].as_u64(),
        ];
        let mut total = 0;
        for pid in pids.into_iter().flatten() {
            let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            total += kib;
        }
        Ok(total)
    }

    /// SIGTERM and the time until it exited; `None` when it was still running after a minute
    /// (then it, its tracker and its seeder are killed).
    pub(super) fn stop(&mut self, repo: &Path) -> Option<Duration> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        let state = fs::read(repo.join("serve/state.json")).unwrap_or_default();
        let state: serde_json::Value = serde_json::from_slice(&state).unwrap_or_default();
        for key in ["tracker_pid", "seeder_pid"] {
            if let Some(pid) = state[key].as_u64() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let root = self.root.clone();
        self.stop(&root);
    }
}

/// `dist --root ROOT` with no standard input.
pub(super) fn dist(bin: &Path, root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root").arg(root).stdin(Stdio::null());
    c
}
