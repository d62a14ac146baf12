//! The demo's stage: its namespace, where its repository and client live, and how it runs
//! `dist` there (both parts of the story use it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::{Netns, HTTP};

pub(crate) const CLIENT_IP: &str = "10.77.0.2";

pub(crate) struct Demo {
    pub(crate) dist: PathBuf,
    pub(crate) ns: Netns,
    pub(crate) tmp: PathBuf,
}

impl Demo {
    pub(crate) fn repo(&self) -> PathBuf {
        self.tmp.join("repo")
    }
    pub(crate) fn client(&self) -> PathBuf {
        self.tmp.join("client")
    }

    /// Runs `dist --root ROOT ARGS` inside the namespace, echoing the command and its output.
    pub(crate) fn dist(&self, root: &Path, args: &[&str]) -> Result<String> {
        let who = if root == self.repo() {
            "publisher"
        } else {
            "client"
        };
        println!("\n{who}$ dist {}", args.join(" "));
        let out = self
            .ns
            .command(&self.dist)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run dist")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // Progress (stderr) came first when it ran.
        print!("{}", String::from_utf8_lossy(&out.stderr));
        print!("{stdout}");
        if !out.status.success() {
            bail!("dist {} failed ({})", args.join(" "), out.status);
        }
        Ok(stdout)
    }

    pub(crate) fn hello(&self) -> Result<()> {
        let bin = self.client().join("current/bin/hello");
        println!("\nclient$ $ROOT/current/bin/hello");
        let out = Command::new(&bin)
            .output()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(())
    }

    pub(crate) fn wait_healthy(&self, serve_log: &Path) -> Result<()> {
        let start = Instant::now();
        loop {
            let ok = self
                .ns
                .command("curl")
                .args(["-sf", &format!("http://{HTTP}/health")])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the server did not become healthy:\n{}",
                    fs::read_to_string(serve_log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
