//! `cargo xtask campaign kill [N] [--seed S] | load [ROUNDS]`: long-running campaigns against the real
//! server and daemons in a private network namespace (`main.rs` dispatches to `campaign_kill` and
//! `campaign_load`). This module holds what both (and the benches) share: a seeded random
//! source, the bandwidth caps of the origin (and a mirror) and their counters, running and
//! killing `dist` inside the namespace, processes, percentiles and resident memory (`dist
//! serve` itself: `server.rs`).

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::lab::env::Env;
use crate::netns::{self, HTTP};

/// The address of the clients' transmission-daemons (`in_namespace` makes 10.77.0.1-3).
pub(crate) const CLIENT_IP: &str = "10.77.0.2";

/// xorshift64*: reproducible from the seed the campaign prints.
pub(crate) struct Rng(u64);

impl Rng {
    /// `--seed S` when given, else one from the clock.
    pub fn new(seed: Option<u64>) -> (Rng, u64) {
        let seed = seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.map(|d| d.as_nanos() as u64).unwrap_or(1) ^ u64::from(std::process::id())
        });
        (Rng(seed.max(1)), seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The HTB class that caps the origin (`shape_origin`); 1:20 is the uncapped default.
pub(crate) const ORIGIN_CLASS: &str = "1:10";

/// Caps everything 10.77.0.1 sends (HTTP, web seed, BitTorrent, tracker) at `mbit` with an HTB
/// class on the namespace's `lo` (field notes), so fetches last long enough to be interrupted.
pub(crate) fn shape_origin(env: &Env, mbit: u32) -> Result<()> {
    shape(env, mbit, &[(netns::SERVER_IP, ORIGIN_CLASS)])
}

/// Caps everything each of `capped` (address, HTB class id other than 1:20) sends at `mbit`,
/// each address in its own class (so their counters tell them apart); everything else goes
/// through the uncapped default class 1:20.
pub(crate) fn shape(env: &Env, mbit: u32, capped: &[(&str, &str)]) -> Result<()> {
    let rate = format!("{mbit}mbit");
    let tc = |args: &[&str]| -> Result<()> {
        let mut argv = vec!["tc"];
        argv.extend_from_slice(args);
        env.ns
            .run(&argv)
            .map(drop)
            .context("cannot shape the namespace's lo with tc")
    };
    tc(&[
        "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "20",
    ])?;
    tc(&[
        "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit",
    ])?;
    for (ip, class) in capped {
        tc(&[
            "class", "add", "dev", "lo", "parent", "1:", "classid", class, "htb", "rate", &rate,
            "ceil", &rate,
        ])?;
        let src = format!("{ip}/32");
        tc(&[
            "filter", "add", "dev", "lo", "protocol", "ip", "parent", "1:", "prio", "1", "u32",
            "match", "ip", "src", &src, "flowid", class,
        ])?;
    }
    Ok(())
}

/// `Sent N bytes` of the HTB class `class` on the namespace's `lo` (headers included).
pub(crate) fn class_sent(env: &Env, class: &str) -> Result<u64> {
    let out = env.ns.run(&["tc", "-s", "class", "show", "dev", "lo"])?;
    let head = format!("class htb {class} ");
    let mut in_class = false;
    for line in out.lines() {
        if line.starts_with("class ") {
            in_class = line.starts_with(&head);
        } else if in_class {
            if let Some(rest) = line.trim().strip_prefix("Sent ") {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .context("tc: unreadable Sent line");
            }
        }
    }
    bail!("tc: no class {class} in:\n{out}")
}

/// Writes `ROOT/client.yaml` for a client bound to `ip`, with `mirrors` (base URLs) as its
/// `server_urls`, tried after the origin.
pub(crate) fn client_root(root: &Path, key: &str, ip: &str, mirrors: &[&str]) -> Result<()> {
    fs::create_dir_all(root)?;
    let mut yaml = format!("server_url: http://{HTTP}\npublic_key: {key}\nbind_address: {ip}\n");
    if !mirrors.is_empty() {
        yaml.push_str("server_urls:\n");
        for m in mirrors {
            yaml.push_str(&format!("  - {m}\n"));
        }
    }
    fs::write(root.join("client.yaml"), yaml)?;
    Ok(())
}

/// `dist --root ROOT --quiet ARGS` inside the namespace, stdin closed.
pub(crate) fn dist_cmd(env: &Env, root: &Path, args: &[&str]) -> Command {
    let mut c = env.ns.command(&env.dist);
    c.arg("--root")
        .arg(root)
        .arg("--quiet")
        .args(args)
        .stdin(Stdio::null());
    c
}

/// Runs `dist ARGS` to completion within `limit` (killed after it), returning its output.
pub(crate) fn run_dist(env: &Env, root: &Path, args: &[&str], limit: Duration) -> Result<Output> {
    let dir = env.tmp.join("out");
    fs::create_dir_all(&dir)?;
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = dist_cmd(env, root, args)
        .stdout(fs::File::create(&out)?)
        .stderr(fs::File::create(&err)?)
        .spawn()
        .context("cannot start dist")?;
    let status = match wait_for(&mut child, limit)? {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("dist {args:?} did not finish within {limit:?}");
        }
    };
    Ok(Output {
        status,
        stdout: fs::read(&out)?,
        stderr: fs::read(&err)?,
    })
}

/// `dist ARGS` that must succeed; its stdout.
pub(crate) fn ok(env: &Env, root: &Path, args: &[&str]) -> Result<String> {
    let o = run_dist(env, root, args, Duration::from_secs(600))?;
    if !o.status.success() {
        bail!(
            "dist {args:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Waits for `child` up to `limit`; `None` if it is still running.
pub(crate) fn wait_for(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if t.elapsed() > limit {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How a SIGKILL met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    /// The target was running `dist` (or the daemon) when SIGKILL arrived.
    Landed,
    /// SIGKILL arrived while `ip netns exec` was still setting up, before `dist` ran.
    BeforeExec,
    /// The operation was over first: the process had exited (for `dist serve`, which never
    /// exits by itself, the caller also counts a server that had become ready).
    Finished,
}

/// Sends SIGKILL to `child` once `delay` has passed since `started`, unless it exits first.
pub(crate) fn kill_at(child: &mut Child, started: Instant, delay: Duration) -> Result<Hit> {
    while started.elapsed() < delay {
        if child.try_wait()?.is_some() {
            return Ok(Hit::Finished);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let comm = fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
    let _ = child.kill();
    let status = child.wait()?;
    Ok(match status.signal() {
        Some(9) if comm.trim() == "ip" => Hit::BeforeExec,
        Some(9) => Hit::Landed,
        _ => Hit::Finished,
    })
}

/// SIGKILL to a process that is not our child (a detached daemon), by pid.
#[allow(unsafe_code)]
pub(crate) fn sigkill(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a positive pid signals that one process only.
    pid > 0 && unsafe { libc::kill(pid, libc::SIGKILL) } == 0
}

/// SIGTERM to a process that is not our child, up to 10 s for it to go, then SIGKILL.
#[allow(unsafe_code)]
pub(crate) fn terminate(pid: u32) {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a positive pid signals that one process only.
    if p <= 0 || unsafe { libc::kill(p, libc::SIGTERM) } != 0 {
        return;
    }
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        sigkill(pid);
    }
}

/// The parent of `pid`.
pub(crate) fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is a live process (zombies count as gone).
pub(crate) fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            rest.split_whitespace()
                .next()
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// The command line of `pid`, arguments joined by spaces.
pub(crate) fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.join(" ")
}

/// Processes in the namespace whose command line contains `needle`.
pub(crate) fn processes_with(env: &Env, needle: &str) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = env
        .ns
        .pids()
        .into_iter()
        .map(|p| (p, cmdline(p)))
        .filter(|(_, c)| c.contains(needle))
        .collect();
    v.sort();
    v
}

/// `VmRSS` of `pid` in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `p`-th percentile (0..=100) of `v`, nearest rank.
pub(crate) fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The last `n` lines of a file, indented, for messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
