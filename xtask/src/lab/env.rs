//! The bench's environment that every bench and campaign starts from: this tree's release
//! `dist`, a fresh network namespace with the server's and two clients' addresses, a temp dir
//! (`in_namespace` makes and removes them), running `dist` there, a package of seeded random
//! content, and the medians the tables print.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::{self, Netns, HTTP};
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

    /// Runs `f` while `dist serve` of `repo` runs (healthy first), then stops it with SIGTERM.
    pub fn with_server(&self, repo: &Path, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut serve: Child = netns::serve_command(&self.ns, &self.dist, repo)
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.tmp.join("serve.log"))?)
            .spawn()?;
        let result = self.wait_healthy().and_then(|_| f());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(serve.id().to_string())
            .status();
        let _ = serve.wait();
        result
    }

    pub fn wait_healthy(&self) -> Result<()> {
        let t = Instant::now();
        while !self.curl_ok(&[&format!("http://{HTTP}/health")]) {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("server not healthy");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

pub(crate) fn package(dir: &Path, name: &str, size: usize, seed: u64) -> Result<PathBuf> {
    let d = dir.join(name);
    fs::create_dir_all(d.join("assets"))?;
    fs::create_dir_all(d.join("scripts"))?;
    fs::write(
        d.join("manifest.yaml"),
        format!("name: {name}\nversion: 1.0.0\n"),
    )?;
    let mut s = seed | 1;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    fs::write(d.join("assets/data.bin"), data)?;
    fs::write(d.join("scripts/install.sh"), "#!/bin/sh\n")?;
    fs::write(d.join("scripts/uninstall.sh"), "#!/bin/sh\n")?;
    Ok(d)
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
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-bench-{what}-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    let ns = Netns::new(&["10.77.0.1", "10.77.0.2", "10.77.0.3"])
        .context("cannot make a network namespace")?;
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
