//! `cargo xtask bench swarm [N] [MiB] [mbit]`: N clients install one package together from one
//! `dist serve` whose address is capped with tc, per scenario (`default`, `torrent`, `http`,
//! then `mirror`: the origin and one mirror), and how much of the load the origin carried.
//!
//! Everything runs in a network namespace the bench makes: the server at 10.77.0.1 (its traffic,
//! whatever the protocol, capped at `mbit` by an HTB class on the namespace's `lo`, field notes),
//! and N clients, each with its own address and root. Each scenario installs a fresh package
//! (new random content, so a new infohash: transmission refuses a peer that completed a torrent
//! before) into fresh roots on fresh addresses, all N `dist install NAME --json` spawned first
//! and released together. The origin's bytes are the capped class's counter (`tc -s class
//! show`), read before and after; the origin's BitTorrent seeder's share is its `uploadedEver`
//! for that torrent over RPC; the clients' split between peers and web seed is what their
//! `install --json` says.
//!
//! The `mirror` scenario runs last, because a running mirror takes part in every swarm of the
//! repository (it seeds every package and the origin lists it as a web seed): the first three
//! run exactly as without it. Before it, the origin is restarted with `--web-seed` naming the
//! mirror, and `dist serve --mirror-of` starts at 10.77.1.1 (outside the clients' range), capped
//! at the same `mbit` by its own class; it copies every published package from the origin
//! before it is healthy, and the scenario starts after that, so the copy is not counted. Its
//! clients have the default configuration with the mirror in `server_urls`. Its origin and
//! mirror bytes are both classes' counters, each as a ratio to N × size and as a share of the
//! two together: `mirror: origin_share=… mirror_share=… origin_ratio=… mirror_ratio=…`.
//!
//! Under each scenario's outcome is its timeline (`timeline`): every second from the release,
//! what the origin (and the mirror) sent so far and what the clients hold, sampled on a thread
//! of its own while the clients run.
//!
//! The last line is the contract of issue 11:
//! `swarm: origin_ratio=<default> wall_ratio=<default wall / http wall>`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::bench_e2e::Env;
use crate::campaign::{self as c, Server};
use crate::netns::{Netns, HTTP, SERVER_IP, TRACKER};
use crate::util::{self, mib};

mod timeline;

/// How long one client may take before it is killed and its scenario marked failed.
const CLIENT_LIMIT: Duration = Duration::from_secs(600);
/// The origin seeder's RPC port inside the namespace (fixed, so the bench can ask it).
const SEEDER_RPC_PORT: u16 = 9091;
/// The mirror: its own /32 outside the clients' 10.77.0.2..=10.77.0.254, its own HTB class
/// (same cap as the origin's), its own seeder RPC port.
const MIRROR_IP: &str = "10.77.1.1";
const MIRROR_HTTP: &str = "10.77.1.1:7380";
const MIRROR_TRACKER: &str = "10.77.1.1:6969";
const MIRROR_URL: &str = "http://10.77.1.1:7380";
const MIRROR_CLASS: &str = "1:30";
const MIRROR_RPC_PORT: u16 = 9092;
/// How long the mirror may take to copy every package and become healthy.
const MIRROR_LIMIT: Duration = Duration::from_secs(600);
const USAGE: &str = "usage: cargo xtask bench swarm [N clients (8)] [MiB (128)] [mbit/s (64)]";

/// One way of fetching the package that the bench compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// No `--transport`: whatever the client's default decides.
    Default,
    Torrent,
    Http,
    /// Origin plus one mirror, both capped (issue 11, part 5): no `--transport`, the mirror in
    /// the clients' `server_urls`. Runs last (module doc).
    Mirror,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::Default,
    Scenario::Torrent,
    Scenario::Http,
    Scenario::Mirror,
];

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Default => "default",
            Scenario::Torrent => "torrent",
            Scenario::Http => "http",
            Scenario::Mirror => "mirror",
        }
    }

    /// The extra `install` arguments.
    fn install_args(self) -> &'static [&'static str] {
        match self {
            Scenario::Default | Scenario::Mirror => &[],
            Scenario::Torrent => &["--transport", "torrent"],
            Scenario::Http => &["--transport", "http"],
        }
    }

    /// The clients' `server_urls` (after the origin's `server_url`).
    fn mirrors(self) -> &'static [&'static str] {
        match self {
            Scenario::Mirror => &[MIRROR_URL],
            _ => &[],
        }
    }
}

struct Args {
    clients: usize,
    mib: usize,
    mbit: u32,
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        clients: 8,
        mib: 128,
        mbit: 64,
    };
    if args.len() > 3 {
        bail!("{USAGE}");
    }
    if let Some(n) = args.first() {
        a.clients = n.parse().context(USAGE)?;
    }
    if let Some(m) = args.get(1) {
        a.mib = m.parse().context(USAGE)?;
    }
    if let Some(r) = args.get(2) {
        a.mbit = r.parse().context(USAGE)?;
    }
    // Every client of every scenario has its own address in 10.77.0.2..=10.77.0.254.
    if a.clients == 0 || a.clients * SCENARIOS.len() > 253 {
        bail!(
            "N must be 1..={} (one address per client per scenario)",
            253 / SCENARIOS.len()
        );
    }
    if a.mib == 0 || a.mbit == 0 {
        bail!("{USAGE}");
    }
    Ok(a)
}

/// A package published for one scenario.
struct Published {
    name: String,
    size: u64,
    infohash: String,
}

/// What one client's install gave.
struct ClientRun {
    ip: String,
    root: PathBuf,
    wall: Duration,
    /// `None`: killed after `CLIENT_LIMIT`.
    status: Option<ExitStatus>,
    /// The `install --json` entry of the package, if it printed one.
    entry: Option<Value>,
}

impl ClientRun {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && self.entry.is_some()
    }

    fn field_u64(&self, key: &str) -> u64 {
        self.entry
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// A field as text (`-` when absent or null).
    fn field_text(&self, key: &str) -> String {
        match self.entry.as_ref().and_then(|e| e.get(key)) {
            None | Some(Value::Null) => "-".into(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }
}

/// What one scenario measured.
struct Outcome {
    scenario: Scenario,
    size: u64,
    clients: Vec<ClientRun>,
    /// Start (the release of the barrier) to the last client done.
    wall: Duration,
    /// Bytes the capped class sent during the scenario (tc, headers included).
    origin_bytes: u64,
    /// What the origin's BitTorrent seeder uploaded of this torrent (payload), if it answered.
    seeder_bytes: Option<u64>,
    /// With a mirror: what its class sent during the scenario, and what its seeder uploaded of
    /// this torrent (if it answered).
    mirror: Option<(u64, Option<u64>)>,
    /// How busy the host's CPUs were during the scenario (0..=1 of all cores), if readable: a
    /// sign of other load on the machine (8 torrent clients alone kept 2 cores 50-60 % busy).
    cpu_busy: Option<f64>,
    /// Problems outside the clients (e.g. a daemon that would not stop).
    notes: Vec<String>,
    /// About once a second while the clients ran, then once after the last.
    timeline: Vec<timeline::Sample>,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.clients.iter().any(|r| !r.ok()) || !self.notes.is_empty()
    }

    fn origin_ratio(&self) -> f64 {
        self.ratio(self.origin_bytes)
    }

    /// `bytes` / (N × size).
    fn ratio(&self, bytes: u64) -> f64 {
        bytes as f64 / (self.clients.len() as f64 * self.size as f64)
    }

    /// With a mirror: (origin, mirror) bytes, each as a share of both together.
    fn shares(&self) -> Option<(f64, f64)> {
        let (m, _) = self.mirror?;
        let both = (self.origin_bytes + m).max(1) as f64;
        Some((self.origin_bytes as f64 / both, m as f64 / both))
    }

    /// Each client's wall time.
    fn walls(&self) -> Vec<Duration> {
        self.clients.iter().map(|r| r.wall).collect()
    }

    fn ok_count(&self) -> usize {
        self.clients.iter().filter(|r| r.ok()).count()
    }

    /// The sum over clients of a number field of their `install --json` entry.
    fn total(&self, key: &str) -> u64 {
        self.clients.iter().map(|r| r.field_u64(key)).sum()
    }
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-bench-swarm-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    let mut addrs = vec![SERVER_IP.to_string(), MIRROR_IP.to_string()];
    addrs.extend((0..a.clients * SCENARIOS.len()).map(client_ip));
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let ns = Netns::new(&addrs).context("cannot make a network namespace")?;
    let env = Env {
        dist,
        ns,
        tmp: tmp.clone(),
    };
    let r = measure(&env, &a);
    drop(env);
    let _ = fs::remove_dir_all(&tmp);
    r
}

/// The address of client `k` (counting over all scenarios): 10.77.0.2, 10.77.0.3, ...
fn client_ip(k: usize) -> String {
    format!("10.77.0.{}", k + 2)
}

fn measure(env: &Env, a: &Args) -> Result<()> {
    println!(
        "swarm: {} clients, {} MiB package, origin {SERVER_IP} capped at {} mbit/s; dist {}",
        a.clients,
        a.mib,
        a.mbit,
        env.dist.display()
    );
    let repo = env.tmp.join("repo");
    let published = publish(env, &repo, &SCENARIOS, a.mib)?;
    let key = c::ok(env, &repo, &["key", "show"])?.trim().to_string();
    c::shape(
        env,
        a.mbit,
        &[(SERVER_IP, c::ORIGIN_CLASS), (MIRROR_IP, MIRROR_CLASS)],
    )?;
    let mut server = Some(spawn_server(env, &repo, &[], "serve.log")?);
    let mut mirror: Option<Server> = None;
    // Every server stopped, with its exit.
    let mut stopped: Vec<(&str, Result<ExitStatus>)> = Vec::new();
    let mut outcomes = Vec::new();
    let result = (|| -> Result<()> {
        let origin = server.as_mut().expect("the origin was started");
        let t = origin.wait_healthy(env, Duration::from_secs(120))?;
        println!("dist serve healthy after {}", c::secs(t));
        // `DIST_BENCH_SCENARIOS=default,http` runs only those (to compare settings quickly).
        let only = std::env::var("DIST_BENCH_SCENARIOS").ok();
        for (k, s) in SCENARIOS.iter().enumerate() {
            if only
                .as_deref()
                .is_some_and(|o| !o.split(',').any(|l| l.trim() == s.label()))
            {
                continue;
            }
            if *s == Scenario::Mirror {
                let old = server.take().expect("the origin runs");
                stopped.push(("dist serve (origin)", old.stop()));
                let origin = server.insert(spawn_server(
                    env,
                    &repo,
                    &["--web-seed", MIRROR_URL],
                    "serve-web-seed.log",
                )?);
                let t = origin.wait_healthy(env, Duration::from_secs(120))?;
                println!(
                    "dist serve restarted with --web-seed {MIRROR_URL}, healthy after {}",
                    c::secs(t)
                );
                let before = c::class_sent(env, c::ORIGIN_CLASS)?;
                let m = mirror.insert(spawn_mirror(env, &key)?);
                let t = m.wait_healthy_at(env, MIRROR_HTTP, MIRROR_LIMIT)?;
                let copied = c::class_sent(env, c::ORIGIN_CLASS)?.saturating_sub(before);
                println!(
                    "mirror at {MIRROR_IP} (capped at {} mbit/s too) healthy after {}: copied {} packages, the origin sent {:.1} MiB meanwhile",
                    a.mbit,
                    c::secs(t),
                    published.len(),
                    mib_f(copied)
                );
            }
            let ips: Vec<String> = (0..a.clients)
                .map(|i| client_ip(k * a.clients + i))
                .collect();
            let o = scenario(env, *s, &published[k], &key, &ips)?;
            print_outcome(&o);
            timeline::print(&o.timeline, o.clients.len(), o.size);
            outcomes.push(o);
        }
        Ok(())
    })();
    // The mirror first: its "stopped" announces go to the origin's tracker too.
    if let Some(m) = mirror {
        stopped.push(("dist serve --mirror-of", m.stop()));
    }
    if let Some(o) = server {
        stopped.push(("dist serve (origin)", o.stop()));
    }
    let left = env.ns.pids();
    for pid in &left {
        println!("left running: {pid} {}", c::cmdline(*pid));
        c::terminate(*pid);
    }
    if !outcomes.is_empty() {
        print_table(&outcomes, a);
    }
    let get = |s: Scenario| outcomes.iter().find(|o| o.scenario == s);
    if let Some(m) = get(Scenario::Mirror) {
        if let (Some((os, ms)), Some((mb, _))) = (m.shares(), m.mirror) {
            println!(
                "mirror: origin_share={os:.2} mirror_share={ms:.2} origin_ratio={:.2} mirror_ratio={:.2}",
                m.origin_ratio(),
                m.ratio(mb)
            );
        }
    }
    if let (Some(d), Some(h)) = (get(Scenario::Default), get(Scenario::Http)) {
        println!(
            "swarm: origin_ratio={:.2} wall_ratio={:.2}",
            d.origin_ratio(),
            d.wall.as_secs_f64() / h.wall.as_secs_f64()
        );
    }
    result?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.failed())
        .map(|o| o.scenario.label())
        .collect();
    if !failed.is_empty() {
        bail!("scenarios failed: {}", failed.join(", "));
    }
    for (what, s) in stopped {
        match s {
            Ok(s) if s.success() => {}
            Ok(s) => bail!("{what} exited {s} on SIGTERM"),
            Err(e) => return Err(e.context(what)),
        }
    }
    if !left.is_empty() {
        bail!("{} processes were left running", left.len());
    }
    Ok(())
}

/// Writes one package of `mib` MiB of fresh random content per scenario and adds them all.
fn publish(env: &Env, repo: &Path, scenarios: &[Scenario], mib: usize) -> Result<Vec<Published>> {
    let t = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let mut add = vec!["add".to_string(), "--json".to_string()];
    for (k, s) in scenarios.iter().enumerate() {
        let dir = env.tmp.join("pkgs").join(format!("swarm-{}", s.label()));
        package(
            &dir,
            &format!("swarm-{}", s.label()),
            mib,
            seed ^ (k as u64 + 1),
        )?;
        add.push(dir.display().to_string());
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    let out = c::ok(env, repo, &add)?;
    let rows: Vec<Value> = serde_json::from_str(&out).context("dist add --json")?;
    let published = scenarios
        .iter()
        .map(|s| {
            let name = format!("swarm-{}", s.label());
            let row = rows
                .iter()
                .find(|r| r["name"] == name.as_str())
                .with_context(|| format!("dist add --json has no {name}"))?;
            Ok(Published {
                size: row["size"].as_u64().context("size")?,
                infohash: row["infohash"].as_str().context("infohash")?.to_string(),
                name,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Its tarballs are in the server's page cache from here on, like the origin of a busy repo.
    let _ = fs::remove_dir_all(env.tmp.join("pkgs"));
    println!(
        "published {} packages of {:.1} MiB in {}",
        published.len(),
        mib_f(published[0].size),
        c::secs(t.elapsed())
    );
    Ok(published)
}

/// A package `name` of one `mib` MiB file of incompressible xorshift bytes from `seed`.
fn package(dir: &Path, name: &str, mib: usize, seed: u64) -> Result<()> {
    fs::create_dir_all(dir.join("assets"))?;
    fs::create_dir_all(dir.join("scripts"))?;
    fs::write(
        dir.join("manifest.yaml"),
        format!("name: {name}\nversion: 1.0.0\n"),
    )?;
    fs::write(dir.join("scripts/install.sh"), "#!/bin/sh\n")?;
    fs::write(dir.join("scripts/uninstall.sh"), "#!/bin/sh\n")?;
    let mut f = std::io::BufWriter::new(fs::File::create(dir.join("assets/data.bin"))?);
    let mut s = seed.max(1);
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.flush()?;
    Ok(())
}

/// `dist serve` on the namespace's server addresses, with its seeder's RPC on a known port,
/// `extra` flags, and its stderr in `TMP/log`.
fn spawn_server(env: &Env, repo: &Path, extra: &[&str], log: &str) -> Result<Server> {
    let mut cmd = env.ns.command(&env.dist);
    cmd.arg("--root")
        .arg(repo)
        .args(["serve", "--http", HTTP, "--tracker", TRACKER])
        .args(["--bind", SERVER_IP, "--rpc-port"])
        .arg(SEEDER_RPC_PORT.to_string())
        .args(extra);
    spawn_serve(env, cmd, log)
}

/// `dist serve --mirror-of` the origin at the mirror's addresses, in its own root, following
/// the origin every second.
fn spawn_mirror(env: &Env, key: &str) -> Result<Server> {
    let mut cmd = env.ns.command(&env.dist);
    cmd.arg("--root")
        .arg(env.tmp.join("mirror"))
        .args(["serve", "--mirror-of", &format!("http://{HTTP}")])
        .args(["--public-key", key, "--mirror-interval", "1"])
        .args(["--http", MIRROR_HTTP, "--tracker", MIRROR_TRACKER])
        .args(["--bind", MIRROR_IP, "--rpc-port"])
        .arg(MIRROR_RPC_PORT.to_string());
    spawn_serve(env, cmd, "mirror.log")
}

/// Starts a `dist serve` command, with the extra flags of `DIST_BENCH_SERVE_ARGS` (to compare
/// server settings, e.g. `--webseed-slots 1`; the mirror gets them too) and its stderr in
/// `TMP/log`.
fn spawn_serve(env: &Env, mut cmd: std::process::Command, log: &str) -> Result<Server> {
    let log = env.tmp.join(log);
    let child = cmd
        .args(
            std::env::var("DIST_BENCH_SERVE_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot start dist serve (log {})", log.display()))?;
    Ok(Server {
        child,
        log,
        started: Instant::now(),
    })
}

/// One scenario: fresh roots on `ips` synced, every install spawned and held, released together,
/// awaited (bounded), counters read, client daemons stopped.
fn scenario(env: &Env, s: Scenario, p: &Published, key: &str, ips: &[String]) -> Result<Outcome> {
    let extra = s.install_args();
    let dir = env.tmp.join(s.label());
    let roots: Vec<PathBuf> = (0..ips.len())
        .map(|i| dir.join(format!("c{i:02}")))
        .collect();
    for (root, ip) in roots.iter().zip(ips) {
        c::client_root(root, key, ip, s.mirrors())?;
        c::ok(env, root, &["sync"])?;
    }
    let mirrored = !s.mirrors().is_empty();
    let origin_before = c::class_sent(env, c::ORIGIN_CLASS)?;
    let seeder_before = seeder_uploaded(env, SEEDER_RPC_PORT, &p.infohash);
    let mirror_before = if mirrored {
        Some((
            c::class_sent(env, MIRROR_CLASS)?,
            seeder_uploaded(env, MIRROR_RPC_PORT, &p.infohash),
        ))
    } else {
        None
    };
    let cpu_before = cpu_ticks();
    // Spawn every client behind a barrier: `sh` waits for one line on its stdin, then execs
    // dist (same pid), so the process start-up cost is paid before the clock starts.
    let mut held: Vec<(Child, ChildStdin)> = Vec::new();
    for root in &roots {
        let mut child = env
            .ns
            .command("sh")
            .args(["-c", "read _ && exec \"$@\"", "sh"])
            .arg(&env.dist)
            .arg("--root")
            .arg(root)
            .args(["--quiet", "install", &p.name, "--json"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(fs::File::create(root.join("install.out"))?)
            .stderr(fs::File::create(root.join("install.err"))?)
            .spawn()
            .context("cannot start a client")?;
        let stdin = child.stdin.take().context("client stdin")?;
        held.push((child, stdin));
    }
    // Let every `ip netns exec` (or `nsenter`) become `sh` and reach its `read`.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10)
        && !held.iter().all(|(ch, _)| {
            fs::read_to_string(format!("/proc/{}/comm", ch.id())).is_ok_and(|c| c.trim() == "sh")
        })
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let mut running: Vec<(usize, Child)> = Vec::new();
    for (i, (child, mut stdin)) in held.into_iter().enumerate() {
        stdin.write_all(b"go\n")?;
        drop(stdin);
        running.push((i, child));
    }
    // The timeline's sampler runs on its own thread, so its curls and tc never delay this loop
    // (which times the clients); it stops when `stop` is dropped.
    let finished: Vec<AtomicBool> = roots.iter().map(|_| AtomicBool::new(false)).collect();
    let watch = timeline::Watch {
        env,
        roots: &roots,
        infohash: &p.infohash,
        size: p.size,
        origin: (c::ORIGIN_CLASS, origin_before),
        mirror: mirror_before.map(|(class_before, _)| (MIRROR_CLASS, class_before)),
        finished: &finished,
    };
    let (done, timeline) = std::thread::scope(|sc| -> Result<_> {
        let (stop, stopped) = mpsc::channel::<()>();
        let w = &watch;
        let sampler = sc.spawn(move || timeline::record(w, start, stopped));
        let mut done: Vec<Option<(Duration, Option<ExitStatus>)>> = vec![None; roots.len()];
        let waited = (|| -> Result<()> {
            while !running.is_empty() {
                let mut still = Vec::with_capacity(running.len());
                for (i, mut child) in running {
                    if let Some(status) = child.try_wait()? {
                        done[i] = Some((start.elapsed(), Some(status)));
                        finished[i].store(status.success(), Ordering::Relaxed);
                    } else if start.elapsed() > CLIENT_LIMIT {
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
            Ok(())
        })();
        drop(stop);
        let samples = sampler
            .join()
            .map_err(|_| anyhow!("the timeline's sampler panicked"))?;
        waited?;
        Ok((done, samples))
    })?;
    let origin_after = c::class_sent(env, c::ORIGIN_CLASS)?;
    let cpu_after = cpu_ticks();
    let seeder_after = seeder_uploaded(env, SEEDER_RPC_PORT, &p.infohash);
    let mirror = match mirror_before {
        Some((class_before, seeder_before)) => {
            let class_after = c::class_sent(env, MIRROR_CLASS)?;
            let seeder_after = seeder_uploaded(env, MIRROR_RPC_PORT, &p.infohash);
            Some((
                class_after.saturating_sub(class_before),
                seeder_before
                    .zip(seeder_after)
                    .map(|(b, a)| a.saturating_sub(b)),
            ))
        }
        None => None,
    };
    let clients: Vec<ClientRun> = roots
        .iter()
        .zip(ips)
        .zip(done)
        .map(|((root, ip), d)| {
            let (wall, status) = d.expect("every client was awaited");
            let entry = fs::read_to_string(root.join("install.out"))
                .ok()
                .and_then(|o| serde_json::from_str::<Value>(&o).ok())
                .and_then(|v| {
                    v.as_array()?
                        .iter()
                        .find(|e| e["name"] == p.name.as_str())
                        .cloned()
                });
            ClientRun {
                ip: ip.clone(),
                root: root.clone(),
                wall,
                status,
                entry,
            }
        })
        .collect();
    let wall = clients.iter().map(|r| r.wall).max().unwrap_or_default();
    let notes = stop_daemons(env, &roots);
    Ok(Outcome {
        scenario: s,
        size: p.size,
        clients,
        wall,
        origin_bytes: origin_after.saturating_sub(origin_before),
        seeder_bytes: seeder_before
            .zip(seeder_after)
            .map(|(b, a)| a.saturating_sub(b)),
        mirror,
        cpu_busy: cpu_before.zip(cpu_after).and_then(|((b0, t0), (b1, t1))| {
            (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
        }),
        notes,
        timeline,
    })
}

/// `uploadedEver` of `infohash` in the seeder whose RPC is on 127.0.0.1:`rpc_port` (the
/// origin's or the mirror's), with the session-id handshake; `None` if it does not answer (the
/// figure is then left out, not guessed).
fn seeder_uploaded(env: &Env, rpc_port: u16, infohash: &str) -> Option<u64> {
    let url = format!("http://127.0.0.1:{rpc_port}/transmission/rpc");
    let head = env
        .ns
        .command("curl")
        .args(["-s", "--max-time", "5", "-o", "/dev/null", "-D", "-", &url])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let head = String::from_utf8_lossy(&head.stdout);
    let sid = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("X-Transmission-Session-Id")
            .then(|| v.trim().to_string())
    })?;
    let body = format!(
        r#"{{"method":"torrent-get","arguments":{{"ids":["{infohash}"],"fields":["uploadedEver"]}}}}"#
    );
    let out = env
        .ns
        .command("curl")
        .args(["-sf", "--max-time", "5", "-H"])
        .arg(format!("X-Transmission-Session-Id: {sid}"))
        .args(["-d", &body, &url])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["arguments"]["torrents"][0]["uploadedEver"].as_u64()
}

/// Busy and total ticks of all CPUs from the first line of `/proc/stat` (idle and iowait are
/// not busy).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// `dist daemon stop` in every root at once (each within 60 s); what went wrong, if anything.
fn stop_daemons(env: &Env, roots: &[PathBuf]) -> Vec<String> {
    let mut notes = Vec::new();
    let mut children = Vec::new();
    for root in roots {
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
    notes
}

fn mib_f(bytes: u64) -> f64 {
    mib(bytes)
}

fn secs1(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `http×5 torrent×3`-style counts of a field over the clients.
fn tally(clients: &[ClientRun], key: &str) -> String {
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

/// The scenario's details, as soon as it is over.
fn print_outcome(o: &Outcome) {
    let (walls, ok) = (o.walls(), o.ok_count());
    let (peers, webseed) = (o.total("bytes_from_peers"), o.total("bytes_from_webseed"));
    println!(
        "{}: {ok}/{} ok{}, wall {}, client p50 {} max {}; host CPUs {} busy",
        o.scenario.label(),
        o.clients.len(),
        if o.failed() { " (FAILED)" } else { "" },
        secs1(o.wall),
        secs1(c::percentile(&walls, 50.0)),
        secs1(c::percentile(&walls, 100.0)),
        o.cpu_busy
            .map_or("?".into(), |b| format!("{:.0} %", b * 100.0)),
    );
    let seeder = o
        .seeder_bytes
        .map_or("?".into(), |b| format!("{:.1} MiB", mib_f(b)));
    println!(
        "  origin sent {:.1} MiB = {:.2} × (N × size); of it the BitTorrent seeder {seeder} (payload), the rest HTTP (web seed, http transport), tracker, headers",
        mib_f(o.origin_bytes),
        o.origin_ratio()
    );
    if let (Some((m, mirror_seeder)), Some((os, ms))) = (o.mirror, o.shares()) {
        let mirror_seeder = mirror_seeder.map_or("?".into(), |b| format!("{:.1} MiB", mib_f(b)));
        println!(
            "  mirror sent {:.1} MiB = {:.2} × (N × size); of it its BitTorrent seeder {mirror_seeder} (payload)",
            mib_f(m),
            o.ratio(m)
        );
        println!(
            "  of the {:.1} MiB both sent: origin {:.0} %, mirror {:.0} %",
            mib_f(o.origin_bytes + m),
            os * 100.0,
            ms * 100.0
        );
    }
    println!(
        "  clients say: from peers {:.1} MiB (the origin's seeder is a peer too), from web seed/HTTP {:.1} MiB; transport {}; reason {}",
        mib_f(peers),
        mib_f(webseed),
        tally(&o.clients, "transport"),
        tally(&o.clients, "transport_reason"),
    );
    let phases: Vec<String> = ["fetch", "verify", "unpack", "scripts", "switch"]
        .iter()
        .filter_map(|ph| {
            let v: Vec<Duration> = o
                .clients
                .iter()
                .filter_map(|r| r.entry.as_ref()?["phases_ms"][ph].as_u64())
                .map(Duration::from_millis)
                .collect();
            (!v.is_empty()).then(|| format!("{ph} {}", secs1(c::percentile(&v, 50.0))))
        })
        .collect();
    if !phases.is_empty() {
        println!("  phases, p50 over clients: {}", phases.join(", "));
    }
    for r in &o.clients {
        let reason = r.field_text("transport_reason");
        if reason != "-" {
            println!(
                "  {} {}: transport {}, reason {reason}",
                r.ip,
                secs1(r.wall),
                r.field_text("transport")
            );
        }
    }
    for r in o.clients.iter().filter(|r| !r.ok()) {
        let why = match r.status {
            None => format!("killed after {}", secs1(CLIENT_LIMIT)),
            Some(s) if s.success() => "no install --json entry for the package".into(),
            Some(s) => format!("exited {s}"),
        };
        let err = c::tail(&r.root.join("install.err"), 8);
        let err = if err.trim().is_empty() {
            "    (stderr empty)".to_string()
        } else {
            err
        };
        println!(
            "  client {} ({}) failed after {}: {why}; stderr tail:\n{err}",
            r.ip,
            r.root.display(),
            secs1(r.wall),
        );
    }
    for n in &o.notes {
        println!("  {n}");
    }
}

/// One row per scenario, after all of them.
fn print_table(outcomes: &[Outcome], a: &Args) {
    println!();
    println!(
        "| {} clients, {} MiB, {} mbit/s | ok | total wall | client p50 | client max | origin / (N × size) | origin seeder | mirror / (N × size) | mirror seeder | from peers | from web seed | transport | reason |",
        a.clients, a.mib, a.mbit
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let (walls, ok) = (o.walls(), o.ok_count());
        let (peers, webseed) = (o.total("bytes_from_peers"), o.total("bytes_from_webseed"));
        let mib_or = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.1} MiB", mib_f(b)));
        let (mirror, mirror_seeder) = match o.mirror {
            Some((m, seeder)) => (format!("{:.2}", o.ratio(m)), mib_or(seeder)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {ok}/{}{} | {} | {} | {} | {:.2} | {} | {mirror} | {mirror_seeder} | {:.1} MiB | {:.1} MiB | {} | {} |",
            o.scenario.label(),
            o.clients.len(),
            if o.failed() { " FAILED" } else { "" },
            secs1(o.wall),
            secs1(c::percentile(&walls, 50.0)),
            secs1(c::percentile(&walls, 100.0)),
            o.origin_ratio(),
            mib_or(o.seeder_bytes),
            mib_f(peers),
            mib_f(webseed),
            tally(&o.clients, "transport"),
            tally(&o.clients, "transport_reason"),
        );
    }
}
