//! `dist serve` in the lab's namespace, written once: a [`Server`] that can be started from any
//! serve command (the origin on the namespace's server addresses, a bench's origin with its
//! seeder's RPC on a known port, a mirror), waited for until `/health` is 200, killed by a
//! campaign and started again, and stopped by SIGTERM; and [`with_server`], a server for the
//! length of one closure.
//!
//! **Invariant:** every `dist serve` a bench or campaign starts in the namespace goes through
//! [`Server::start`]; the benches' (not the campaigns') get the extra flags of
//! `DIST_BENCH_SERVE_ARGS`. `bench scale` runs on loopback without a namespace and keeps its
//! own (`bench_scale/serve.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::lab::campaign::{tail, wait_for};
use crate::lab::env::Env;
use crate::netns::{self, HTTP};

/// The origin seeder's RPC port inside the namespace (fixed, so the benches can ask it).
pub(crate) const SEEDER_RPC_PORT: u16 = 9091;

/// A `dist serve` in the namespace that can be killed and started again; its stderr (not
/// quiet: the "ready" lines tell phases apart) is `log`.
pub(crate) struct Server {
    pub child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

impl Server {
    /// Starts `cmd` (a `dist serve` command in the namespace), its stderr in `log`.
    pub fn start(mut cmd: Command, log: &Path) -> Result<Server> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("cannot start dist serve (log {})", log.display()))?;
        Ok(Server {
            child,
            log: log.to_path_buf(),
            started: Instant::now(),
        })
    }

    /// `dist serve` of `repo` on the namespace's server addresses.
    pub fn spawn(env: &Env, repo: &Path, log: &Path) -> Result<Server> {
        Server::start(netns::serve_command(&env.ns, &env.dist, repo), log)
    }

    /// A bench's origin: `dist serve` of `repo` on the namespace's server addresses, with its
    /// seeder's RPC on `SEEDER_RPC_PORT`, `extra` flags, and its stderr in `TMP/log`.
    pub fn bench_origin(env: &Env, repo: &Path, extra: &[&str], log: &str) -> Result<Server> {
        let mut cmd = netns::serve_command(&env.ns, &env.dist, repo);
        cmd.arg("--rpc-port")
            .arg(SEEDER_RPC_PORT.to_string())
            .args(extra);
        Server::bench(env, cmd, log)
    }

    /// Starts a bench's `dist serve` command, with the extra flags of `DIST_BENCH_SERVE_ARGS`
    /// (to compare server settings, e.g. `--webseed-slots 1`; a mirror gets them too) and its
    /// stderr in `TMP/log`.
    pub fn bench(env: &Env, mut cmd: Command, log: &str) -> Result<Server> {
        cmd.args(
            std::env::var("DIST_BENCH_SERVE_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        );
        Server::start(cmd, &env.tmp.join(log))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/health` is 200; an exit or `limit` is an error quoting the log.
    pub fn wait_healthy(&mut self, env: &Env, limit: Duration) -> Result<Duration> {
        self.wait_healthy_at(env, HTTP, limit)
    }

    /// `wait_healthy` for a server listening on `http` (HOST:PORT) instead of the namespace's
    /// server address (a mirror).
    pub fn wait_healthy_at(&mut self, env: &Env, http: &str, limit: Duration) -> Result<Duration> {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                bail!(
                    "dist serve exited ({s}) before /health was 200:\n{}",
                    tail(&self.log, 6)
                );
            }
            if env.healthy_at(http) {
                return Ok(t.elapsed());
            }
            if t.elapsed() > limit {
                bail!("/health not 200 within {limit:?}:\n{}", tail(&self.log, 6));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM by pid and a bounded wait (SIGKILL after 30 s); the exit status.
    pub fn stop(mut self) -> Result<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
        match wait_for(&mut self.child, Duration::from_secs(30))? {
            Some(s) => Ok(s),
            None => {
                let _ = self.child.kill();
                self.child.wait()?;
                bail!("dist serve did not exit within 30 s of SIGTERM")
            }
        }
    }
}

/// Runs `f` while `dist serve` of `repo` runs (healthy first, within a minute; its stderr in
/// `TMP/serve.log`), then stops it with SIGTERM.
pub(crate) fn with_server(env: &Env, repo: &Path, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let mut serve = Server::spawn(env, repo, &env.tmp.join("serve.log"))?;
    let result = serve
        .wait_healthy(env, Duration::from_secs(60))
        .and_then(|_| f());
    let stopped = serve.stop();
    result.and(stopped.map(drop))
}
