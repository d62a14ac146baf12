//! A real `dist serve` inside a test's network namespace, for the end-to-end tests: started on
//! fixed addresses of that namespace, stopped with SIGTERM (and reaped) on drop.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::common::{dist_bin, wait_until};
use crate::netns::Netns;

#[allow(unused_imports)]
pub use crate::netns::{serve_command, HTTP, SERVER_IP, TRACKER};

pub struct Server {
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts `dist --root ROOT serve` in `ns` without waiting for it to be ready.
    pub fn spawn(ns: &Netns, root: &Path, log: PathBuf) -> Server {
        Server::spawn_command(serve_command(ns, &dist_bin(), root), log)
    }

    /// Starts a `dist serve` command of the caller's (other addresses, other flags).
    pub fn spawn_command(mut cmd: Command, log: PathBuf) -> Server {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dist serve");
        Server {
            child: Some(child),
            log,
        }
    }

    /// Starts it and waits until `/health` answers 200.
    pub fn start(ns: &Netns, root: &Path, log: PathBuf) -> Server {
        let s = Server::spawn(ns, root, log);
        s.wait_healthy(ns);
        s
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits (bounded) until `/health` answers 200, failing with the last answer and the log.
    pub fn wait_healthy(&self, ns: &Netns) {
        wait_until("GET /health = 200", Duration::from_secs(60), || {
            let (code, body) = http_get(ns, &format!("http://{HTTP}/health"), None);
            if code == 200 {
                Ok(())
            } else {
                Err(format!(
                    "{code} {}\nserve log:\n{}",
                    String::from_utf8_lossy(&body),
                    self.log()
                ))
            }
        });
    }

    /// SIGTERM, then a bounded wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        wait_until("dist serve to exit", Duration::from_secs(30), || {
            child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| self.log())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let stopped = (0..300).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !stopped {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Waits until the server's `/index.json` names `serial`.
pub fn wait_served(ns: &Netns, serial: u64) {
    wait_until(
        &format!("/index.json at serial {serial}"),
        Duration::from_secs(30),
        || {
            let (code, body) = http_get(ns, &format!("http://{HTTP}/index.json"), None);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if code == 200 && v["serial"] == serial {
                Ok(())
            } else {
                Err(format!("{code} {}", String::from_utf8_lossy(&body)))
            }
        },
    );
}

/// GET inside the namespace with curl; returns (status, body). With `out`, the body goes to
/// that file instead.
pub fn http_get(ns: &Netns, url: &str, out: Option<&Path>) -> (u16, Vec<u8>) {
    let mut c = ns.command("curl");
    c.args(["-s", "-o"]);
    match out {
        Some(p) => c.arg(p),
        None => c.arg("-"),
    };
    c.args(["-w", "\n%{http_code}", url]);
    let o = c.output().expect("curl");
    let mut body = o.stdout;
    let pos = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[pos..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(pos);
    (code, body)
}

/// How many seeds (`complete`) the tracker at `announce` knows for `hash`: a BEP 48 scrape with
/// curl inside the namespace; 0 when it does not answer.
pub fn seeds(ns: &Netns, announce: &str, hash: &dist::format::ids::InfoHash) -> u64 {
    scrape_count(ns, announce, hash, "8:completei")
}

/// How many peers fetching it (`incomplete`) the tracker knows for `hash`, as [`seeds`].
pub fn leechers(ns: &Netns, announce: &str, hash: &dist::format::ids::InfoHash) -> u64 {
    scrape_count(ns, announce, hash, "10:incompletei")
}

fn scrape_count(ns: &Netns, announce: &str, hash: &dist::format::ids::InfoHash, key: &str) -> u64 {
    let base = announce.strip_suffix("/announce").expect("an announce URL");
    let escaped: String = hash
        .as_bytes()
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let reply = ns
        .command("curl")
        .args(["-s", &format!("{base}/scrape?info_hash={escaped}")])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    // Bencoded: `8:completei<N>e`, `10:incompletei<N>e`.
    String::from_utf8_lossy(&reply)
        .split_once(key)
        .and_then(|(_, rest)| rest.split_once('e'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}
