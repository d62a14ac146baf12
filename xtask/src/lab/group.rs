//! One group of clients installing one package together: N fresh roots (each bound to its own
//! address, given the group's client.yaml lines) synced, every `dist install NAME --json`
//! spawned and held behind a barrier, released together, awaited (bounded), the origin's (and a
//! mirror's) counters read before and after, then every client daemon stopped with
//! `dist daemon stop` and whatever still runs from the group's roots ended by pid.
//!
//! The clock starts at the release: each client is `sh -c 'read _ && exec dist …'`, so process
//! start-up is paid before, and the release waits (bounded) until every `sh` blocks in its read.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::{cpu_ticks, secs1, seeder_uploaded, timeline, Published};
use crate::lab::campaign as c;
use crate::lab::env::Env;
use crate::lab::server::SEEDER_RPC_PORT;

/// How long the held clients may take to block in their `read` before the group fails.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// What one group of clients does.
pub(crate) struct Group<'a> {
    /// Where the clients' roots go (`DIR/c00`, `DIR/c01`, …); the caller deletes it.
    pub dir: PathBuf,
    pub package: &'a Published,
    /// The repository's public key.
    pub key: &'a str,
    /// One address per client, each already on the namespace's `lo` and never used before by a
    /// client of this package (transmission refuses a peer that completed a torrent before).
    pub ips: &'a [String],
    /// The extra `install` arguments (`--transport http`).
    pub install_args: &'a [&'a str],
    /// Lines appended to every client.yaml (`engine: libtorrent\n`).
    pub config: &'a str,
    /// Mirrors' base URLs for the clients' `server_urls`.
    pub mirrors: &'a [&'a str],
    /// With a mirror running: its tc class and its seeder's RPC port, to count its bytes.
    pub mirror: Option<(&'a str, u16)>,
    /// Sample a timeline while the clients run (`timeline`).
    pub timeline: bool,
    /// How long one client may take before it is killed and counted as failed.
    pub limit: Duration,
}

/// What one client's install gave.
pub(crate) struct ClientRun {
    pub ip: String,
    pub root: PathBuf,
    pub wall: Duration,
    /// `None`: killed after the group's limit.
    pub status: Option<ExitStatus>,
    /// The `install --json` entry of the package, if it printed one.
    pub entry: Option<Value>,
}

impl ClientRun {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && self.entry.is_some()
    }

    pub fn field_u64(&self, key: &str) -> u64 {
        self.entry
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// A field as text (`-` when absent or null).
    pub fn field_text(&self, key: &str) -> String {
        match self.entry.as_ref().and_then(|e| e.get(key)) {
            None | Some(Value::Null) => "-".into(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }

    /// Why it failed (`limit`: the group's), without its stderr.
    pub fn why(&self, limit: Duration) -> String {
        match self.status {
            None => format!("killed after {}", secs1(limit)),
            Some(s) if s.success() => "no install --json entry for the package".into(),
            Some(s) => format!("exited {s}"),
        }
    }

    /// The last non-empty line of its stderr (`None`: empty).
    pub fn last_error(&self) -> Option<String> {
        let err = fs::read_to_string(self.root.join("install.err")).unwrap_or_default();
        err.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
    }
}

/// What one group measured.
pub(crate) struct Outcome {
    pub size: u64,
    pub clients: Vec<ClientRun>,
    /// The group's client limit.
    pub limit: Duration,
    /// Start (the release of the barrier) to the last client done.
    pub wall: Duration,
    /// Bytes the origin's capped class sent during the group (tc, headers included).
    pub origin_bytes: u64,
    /// What the origin's BitTorrent seeder uploaded of this torrent (payload), if it answered.
    pub seeder_bytes: Option<u64>,
    /// With a mirror: what its class sent during the group, and what its seeder uploaded of
    /// this torrent (if it answered).
    pub mirror: Option<(u64, Option<u64>)>,
    /// How busy the host's CPUs were during the group (0..=1 of all cores), if readable: a
    /// sign of other load on the machine (8 torrent clients alone kept 2 cores 50-60 % busy).
    pub cpu_busy: Option<f64>,
    /// Problems outside the clients (e.g. a daemon that would not stop).
    pub notes: Vec<String>,
    /// About once a second while the clients ran, then once after the last (when asked for).
    pub timeline: Vec<timeline::Sample>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.clients.iter().any(|r| !r.ok()) || !self.notes.is_empty()
    }

    pub fn origin_ratio(&self) -> f64 {
        self.ratio(self.origin_bytes)
    }

    /// `bytes` / (N × size).
    pub fn ratio(&self, bytes: u64) -> f64 {
        bytes as f64 / (self.clients.len() as f64 * self.size as f64)
    }

    /// With a mirror: (origin, mirror) bytes, each as a share of both together.
    pub fn shares(&self) -> Option<(f64, f64)> {
        let (m, _) = self.mirror?;
        let both = (self.origin_bytes + m).max(1) as f64;
        Some((self.origin_bytes as f64 / both, m as f64 / both))
    }

    /// Each client's wall time.
    pub fn walls(&self) -> Vec<Duration> {
        self.clients.iter().map(|r| r.wall).collect()
    }

    pub fn ok_count(&self) -> usize {
        self.clients.iter().filter(|r| r.ok()).count()
    }

    /// The sum over clients of a number field of their `install --json` entry.
    pub fn total(&self, key: &str) -> u64 {
        self.clients.iter().map(|r| r.field_u64(key)).sum()
    }
}

/// `http×5 torrent×3`-style counts of a field over the clients.
pub(crate) fn tally(clients: &[ClientRun], key: &str) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in clients {
        let v = r.field_text(key);
        match counts.iter_mut().find(|(k, _)| *k == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the group. An error means it could not start (a client.yaml refused by `dist sync`,
/// a counter that cannot be read); the client daemons are stopped in every case.
pub(crate) fn run(env: &Env, g: &Group) -> Result<Outcome> {
    let roots: Vec<PathBuf> = (0..g.ips.len())
        .map(|i| g.dir.join(format!("c{i:02}")))
        .collect();
    let measured = prepare(env, g, &roots).and_then(|()| race(env, g, &roots));
    let notes = stop_daemons(env, &roots);
    let mut o = measured?;
    o.notes.extend(notes);
    Ok(o)
}

/// Fresh roots on the group's addresses, each with its client.yaml, synced.
fn prepare(env: &Env, g: &Group, roots: &[PathBuf]) -> Result<()> {
    for (root, ip) in roots.iter().zip(g.ips) {
        c::client_root(root, g.key, ip, g.mirrors)?;
        if !g.config.is_empty() {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(root.join("client.yaml"))?;
            f.write_all(g.config.as_bytes())?;
        }
        c::ok(env, root, &["sync"]).with_context(|| format!("client {ip} ({})", root.display()))?;
    }
    Ok(())
}

/// The origin's (and the mirror's) counters.
struct Counters {
    origin: u64,
    seeder: Option<u64>,
    /// With a mirror: its class counter and its seeder's upload.
    mirror: Option<(u64, Option<u64>)>,
    cpu: Option<(u64, u64)>,
}

impl Counters {
    fn read(env: &Env, g: &Group) -> Result<Counters> {
        let mirror = match g.mirror {
            Some((class, port)) => Some((
                c::class_sent(env, class)?,
                seeder_uploaded(env, port, &g.package.infohash),
            )),
            None => None,
        };
        Ok(Counters {
            origin: c::class_sent(env, c::ORIGIN_CLASS)?,
            seeder: seeder_uploaded(env, SEEDER_RPC_PORT, &g.package.infohash),
            mirror,
            cpu: cpu_ticks(),
        })
    }
}

/// Every install held, released together, awaited; what they did.
fn race(env: &Env, g: &Group, roots: &[PathBuf]) -> Result<Outcome> {
    let before = Counters::read(env, g)?;
    let held = hold(env, g, roots)?;
    let start = Instant::now();
    let mut running: Vec<(usize, Child)> = Vec::new();
    for (i, (child, mut stdin)) in held.into_iter().enumerate() {
        stdin.write_all(b"go\n")?;
        drop(stdin);
        running.push((i, child));
    }
    let finished: Vec<AtomicBool> = roots.iter().map(|_| AtomicBool::new(false)).collect();
    let (done, timeline) = if g.timeline {
        let watch = timeline::Watch {
            env,
            roots,
            infohash: &g.package.infohash,
            size: g.package.size,
            origin: (c::ORIGIN_CLASS, before.origin),
            mirror: g
                .mirror
                .zip(before.mirror)
                .map(|((class, _), (sent, _))| (class, sent)),
            finished: &finished,
        };
        sampled(&watch, running, start, g.limit)?
    } else {
        (await_all(running, start, g.limit, &finished)?, Vec::new())
    };
    let after = Counters::read(env, g)?;
    let since = |b: Option<u64>, a: Option<u64>| b.zip(a).map(|(b, a)| a.saturating_sub(b));
    let clients: Vec<ClientRun> = roots
        .iter()
        .zip(g.ips)
        .zip(done)
        .map(|((root, ip), (wall, status))| ClientRun {
            ip: ip.clone(),
            root: root.clone(),
            wall,
            status,
            entry: entry(root, &g.package.name),
        })
        .collect();
    Ok(Outcome {
        size: g.package.size,
        wall: clients.iter().map(|r| r.wall).max().unwrap_or_default(),
        clients,
        limit: g.limit,
        origin_bytes: after.origin.saturating_sub(before.origin),
        seeder_bytes: since(before.seeder, after.seeder),
        mirror: before
            .mirror
            .zip(after.mirror)
            .map(|((cb, sb), (ca, sa))| (ca.saturating_sub(cb), since(sb, sa))),
        cpu_busy: before.cpu.zip(after.cpu).and_then(|((b0, t0), (b1, t1))| {
            (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
        }),
        notes: Vec::new(),
        timeline,
    })
}

/// Spawns every client behind a barrier: `sh` waits for one line on its stdin, then execs
/// dist (same pid). Returns once every `sh` blocks in that read (bounded by `HOLD_LIMIT`).
fn hold(env: &Env, g: &Group, roots: &[PathBuf]) -> Result<Vec<(Child, ChildStdin)>> {
    let mut held: Vec<(Child, ChildStdin)> = Vec::new();
    for root in roots {
        let mut child = env
            .ns
            .command("sh")
            .args(["-c", "read _ && exec \"$@\"", "sh"])
            .arg(&env.dist)
            .arg("--root")
            .arg(root)
            .args(["--quiet", "install", &g.package.name, "--json"])
            .args(g.install_args)
            .stdin(Stdio::piped())
            .stdout(fs::File::create(root.join("install.out"))?)
            .stderr(fs::File::create(root.join("install.err"))?)
            .spawn()
            .context("cannot start a client")?;
        let stdin = child.stdin.take().context("client stdin")?;
        held.push((child, stdin));
    }
    let t = Instant::now();
    loop {
        let waiting: Vec<String> = held
            .iter()
            .map(|(ch, _)| ch.id())
            .filter(|pid| !reading_stdin(*pid))
            .map(|pid| format!("{pid} ({})", proc_state(pid)))
            .collect();
        if waiting.is_empty() {
            return Ok(held);
        }
        if t.elapsed() > HOLD_LIMIT {
            for (mut ch, _) in held {
                let _ = ch.kill();
                let _ = ch.wait();
            }
            bail!(
                "clients not blocked in their barrier's read within {HOLD_LIMIT:?}: {}",
                waiting.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is the barrier's `sh`, asleep reading its stdin (a pipe).
fn reading_stdin(pid: u32) -> bool {
    let read = |f: &str| fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    if read("comm").trim() != "sh" {
        return false;
    }
    if read("wchan").contains("pipe") {
        return true;
    }
    // Kernels that hide wchan: the syscall it sleeps in, `read` (0 on x86_64, 63 on aarch64)
    // on fd 0.
    let sys = read("syscall");
    let mut f = sys.split_whitespace();
    matches!(f.next(), Some("0" | "63")) && f.next() == Some("0x0")
}

/// `comm`, state and wait channel of `pid`, for a message.
fn proc_state(pid: u32) -> String {
    let read = |f: &str| fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let stat = read("stat");
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    format!("{} {state} {}", read("comm").trim(), read("wchan").trim())
}

/// Per client: its wall time and exit (`None`: killed).
type Done = Vec<(Duration, Option<ExitStatus>)>;

/// `await_all` with the timeline's sampler on a thread of its own, so its curls and tc never
/// delay the loop that times the clients; it stops when that loop is over.
fn sampled(
    watch: &timeline::Watch,
    running: Vec<(usize, Child)>,
    start: Instant,
    limit: Duration,
) -> Result<(Done, Vec<timeline::Sample>)> {
    std::thread::scope(|sc| {
        let (stop, stopped) = mpsc::channel::<()>();
        let sampler = sc.spawn(move || timeline::record(watch, start, stopped));
        let waited = await_all(running, start, limit, watch.finished);
        drop(stop);
        let samples = sampler
            .join()
            .map_err(|_| anyhow!("the timeline's sampler panicked"))?;
        Ok((waited?, samples))
    })
}

/// Waits for every client (each killed after `limit`), marking in `finished` those that
/// exited 0.
fn await_all(
    mut running: Vec<(usize, Child)>,
    start: Instant,
    limit: Duration,
    finished: &[AtomicBool],
) -> Result<Done> {
    let mut done: Vec<Option<(Duration, Option<ExitStatus>)>> = vec![None; finished.len()];
    while !running.is_empty() {
        let mut still = Vec::with_capacity(running.len());
        for (i, mut child) in running {
            if let Some(status) = child.try_wait()? {
                done[i] = Some((start.elapsed(), Some(status)));
                finished[i].store(status.success(), Ordering::Relaxed);
            } else if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                done[i] = Some((start.elapsed(), None));
            } else {
                still.push((i, child));
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(done
        .into_iter()
        .map(|d| d.expect("every client was awaited"))
        .collect())
}

/// The `install --json` entry of package `name` in `ROOT/install.out`.
fn entry(root: &Path, name: &str) -> Option<Value> {
    let out = fs::read_to_string(root.join("install.out")).ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    v.as_array()?.iter().find(|e| e["name"] == name).cloned()
}

/// `dist daemon stop` in every root at once (each within 60 s), then every process still
/// running from under a root (a daemon `dist daemon stop` missed) ended by pid; what went
/// wrong, if anything.
fn stop_daemons(env: &Env, roots: &[PathBuf]) -> Vec<String> {
    let mut notes = Vec::new();
    let mut children = Vec::new();
    for root in roots.iter().filter(|r| r.join("client.yaml").exists()) {
        match c::dist_cmd(env, root, &["daemon", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(ch) => children.push((root, ch)),
            Err(e) => notes.push(format!("cannot run dist daemon stop: {e}")),
        }
    }
    for (root, mut ch) in children {
        match c::wait_for(&mut ch, Duration::from_secs(60)) {
            Ok(Some(s)) if s.success() => {}
            Ok(Some(s)) => {
                let out = ch.wait_with_output().map(|o| o.stderr).unwrap_or_default();
                notes.push(format!(
                    "dist daemon stop in {} failed ({s}): {}",
                    root.display(),
                    String::from_utf8_lossy(&out).trim()
                ));
            }
            _ => {
                let _ = ch.kill();
                let _ = ch.wait();
                notes.push(format!("dist daemon stop in {} hung", root.display()));
            }
        }
    }
    for root in roots {
        for (pid, cmd) in c::processes_with(env, &format!("{}/", root.display())) {
            notes.push(format!(
                "still running after dist daemon stop, ended: {pid} {cmd}"
            ));
            c::terminate(pid);
        }
    }
    notes
}
