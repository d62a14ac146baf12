//! The bench's environment that every bench and campaign in a namespace starts from: this
//! tree's release `dist`, a fresh network namespace with the server's and the clients'
//! addresses, a temp dir (`in_namespace` makes and removes them), running `dist` and curl
//! there, and the medians the tables print.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::{Netns, HTTP};
use crate::util;

pub(crate) struct Env {
    pub dist: PathBuf,
    pub ns: Netns,
    pub tmp: PathBuf,
}

impl Env {
    pub fn dist(&self, root: &Path, args: &[&str]) -> Result<(Duration, String)> {
        self.run_with(&self.dist, root, args)
    }

    /// Runs another `dist` binary (a baseline build) in the namespace, timed.
    pub fn run_with(&self, dist: &Path, root: &Path, args: &[&str]) -> Result<(Duration, String)> {
        let t = Instant::now();
        let out = self
            .ns
            .command(dist)
            .arg("--root")
            .arg(root)
            .arg("--quiet")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        let d = t.elapsed();
        if !out.status.success() {
            bail!("dist {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((d, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    pub(crate) fn curl_ok(&self, args: &[&str]) -> bool {
        self.ns
            .command("curl")
            .arg("-sf")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Whether `GET /health` of the server at `http` (HOST:PORT) answers 200 inside the
    /// namespace.
    pub(crate) fn healthy_at(&self, http: &str) -> bool {
        self.ns
            .command("curl")
            .args(["-sf", "--max-time", "2", "-o", "/dev/null"])
            .arg(format!("http://{http}/health"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits until the namespace's server answers `/health` 200 (a minute at most).
    pub fn wait_healthy(&self) -> Result<()> {
        let t = Instant::now();
        while !self.healthy_at(HTTP) {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("server not healthy");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

pub(crate) fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `f` with this tree's release `dist`, a fresh namespace holding the server's and two
/// clients' addresses, and a temp dir; removes both afterwards.
pub(crate) fn in_namespace(what: &str, f: impl FnOnce(&Env) -> Result<()>) -> Result<()> {
    in_namespace_with(what, &["10.77.0.1", "10.77.0.2", "10.77.0.3"], f)
}

/// `in_namespace` with the namespace holding `addrs` (the server's first).
pub(crate) fn in_namespace_with(
    what: &str,
    addrs: &[&str],
    f: impl FnOnce(&Env) -> Result<()>,
) -> Result<()> {
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-bench-{what}-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    let ns = Netns::new(addrs).context("cannot make a network namespace")?;
    let env = Env {
        dist,
        ns,
        tmp: tmp.clone(),
    };
    let r = f(&env);
    drop(env);
    let _ = fs::remove_dir_all(&tmp);
    r
}
