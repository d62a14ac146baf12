//! Small helpers for xtask: running cargo and measuring child processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Builds the release `dist` binary and returns its path.
pub fn release_dist() -> Result<PathBuf> {
    // A prebuilt binary (e.g. to run the demo as another user, without cargo).
    if let Some(bin) = std::env::var_os("DIST_BIN") {
        return Ok(PathBuf::from(bin));
    }
    cargo(&["build", "--release", "--quiet", "--bin", "dist"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    Ok(target.join("release").join("dist"))
}

/// Wall time, CPU time and peak resident set size (KiB) of one child process (its threads
/// and any children it waited for included, as `wait4` reports them).
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    pub max_rss_kib: u64,
}

impl Measured {
    /// User plus system CPU time.
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000)
}

/// Runs `cmd` to completion, measuring its wall time, and its CPU time and peak RSS from
/// `wait4`'s rusage; an error unless it exited 0.
pub fn measure(cmd: &mut Command) -> Result<Measured> {
    match measure_status(cmd)? {
        (m, Some(0)) => Ok(m),
        (_, code) => bail!("{cmd:?} failed (exit {code:?})"),
    }
}

/// [`measure`], whatever the outcome: also its exit code (`None`: killed by a signal).
#[allow(unsafe_code)]
pub fn measure_status(cmd: &mut Command) -> Result<(Measured, Option<i32>)> {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, zero-initialised and filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, reaped exactly once here.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    std::mem::forget(child);
    if r != pid {
        bail!("wait4 failed for {cmd:?}");
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok((
        Measured {
            wall,
            user: timeval(usage.ru_utime),
            sys: timeval(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss as u64,
        },
        code,
    ))
}

/// Clock ticks per second of `/proc/stat` (USER_HZ).
#[allow(unsafe_code)]
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Decompresses the published snapshot `published/<serial>.db.zst` of the repository at `repo`
/// into `dest` with the zstd CLI (what an outside tool sees of it).
pub fn published_snapshot(repo: &Path, serial: u64, dest: &Path) -> Result<()> {
    let src = repo.join(format!("published/{serial}.db.zst"));
    let out = Command::new("zstd")
        .args(["-d", "-q", "-f", "-o"])
        .arg(dest)
        .arg(&src)
        .output()
        .context("cannot run zstd (is the zstd package installed? run .ci/setup)")?;
    if !out.status.success() {
        bail!(
            "zstd -d {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `BIN --root ROOT repo init`: makes the repository a bench publishes into. A `dist` from
/// before `repo init` (a `--baseline`) makes one on first use: its usage error (exit 2) is
/// taken as that.
pub fn repo_init(bin: &Path, root: &Path) -> Result<()> {
    let o = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["repo", "init"])
        .stdin(std::process::Stdio::null())
        .output()?;
    if o.status.success() || o.status.code() == Some(2) {
        return Ok(());
    }
    anyhow::bail!(
        "{} repo init: {}",
        bin.display(),
        String::from_utf8_lossy(&o.stderr)
    )
}
