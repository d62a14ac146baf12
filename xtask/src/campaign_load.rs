//! `cargo xtask campaign load [ROUNDS]`: one `dist serve` of 50 small packages in a private
//! network namespace, and ROUNDS (default 5) rounds of: 200 concurrent `dist sync` into fresh
//! client roots (sharing one address), then 50 concurrent `dist install --transport http` of the
//! 50 packages into 50 of those roots (whose transmission-daemons, started to seed what they
//! fetched, are stopped at the end of the round). Reports the errors (and warnings) of each
//! phase, its p50/p99/max latency and wall time, and the server's VmRSS sampled every 100 ms: at
//! the start, after each round, its peak and at the end. Nothing is published between rounds, so
//! the rounds show whether the same load makes the server grow.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::lab::args::Usage;
use crate::lab::campaign as c;
use crate::lab::env::{in_namespace, Env};
use crate::lab::packages::Package;
use crate::lab::server::Server;

const SYNCS: usize = 200;
const INSTALLS: usize = 50;
const PACKAGE_BYTES: u64 = 256 << 10;
const PHASE_LIMIT: Duration = Duration::from_secs(600);
const USAGE: Usage = Usage {
    line: "usage: cargo xtask campaign load [ROUNDS]",
    values: &[],
    switches: &[],
    positionals: 1,
};

/// What one phase of concurrent commands gave.
struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    wall: Duration,
    /// Failing commands' stderr, by message, with their count.
    errors: BTreeMap<String, usize>,
    /// `warning:` lines of commands that succeeded, by message, with their count.
    warnings: BTreeMap<String, usize>,
}

pub fn run(args: &[&str]) -> Result<()> {
    let rounds: usize = USAGE.parse(args)?.positional(0, "ROUNDS")?.unwrap_or(5);
    let t = Instant::now();
    in_namespace("campaign-load", |env| {
        let (key, repo) = repository(env)?;
        let mut server = Server::spawn(env, &repo, &env.tmp.join("serve.log"))?;
        let result = under_load(env, &mut server, &key, rounds);
        let stopped = server.stop();
        let left = env.ns.pids();
        for pid in &left {
            println!("left running: {pid} {}", c::cmdline(*pid));
            c::terminate(*pid);
        }
        println!("total time: {}", c::secs(t.elapsed()));
        let errors = result?;
        if !stopped?.success() {
            bail!("dist serve did not exit cleanly on SIGTERM");
        }
        if errors > 0 || !left.is_empty() {
            bail!(
                "{errors} commands failed, {} processes were left",
                left.len()
            );
        }
        Ok(())
    })
}

/// A repository with the packages `small-00` .. `small-49`; its public key and root.
fn repository(env: &Env) -> Result<(String, PathBuf)> {
    let repo = env.tmp.join("repo");
    let mut add = vec!["add".to_string(), "--create".to_string()];
    for i in 0..INSTALLS {
        let p = Package::data(format!("small-{i:02}"), PACKAGE_BYTES, 7000 + i as u64);
        let dir = p.write_in(&env.tmp.join("pkgs"))?;
        add.push(dir.display().to_string());
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    c::ok(env, &repo, &add)?;
    let key = c::ok(env, &repo, &["key", "show"])?.trim().to_string();
    Ok((key, repo))
}

/// Client root `i` of round `round`.
fn client(env: &Env, round: usize, i: usize) -> PathBuf {
    env.tmp
        .join(format!("clients-{round}"))
        .join(format!("c{i:03}"))
}

/// The rounds while a thread samples the server's RSS; returns the number of failed commands.
fn under_load(env: &Env, server: &mut Server, key: &str, rounds: usize) -> Result<usize> {
    server.wait_healthy(env, Duration::from_secs(120))?;
    let samples: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(server.pid(), samples.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let mut all: Vec<Phase> = Vec::new();
    let result = (|| -> Result<()> {
        for round in 1..=rounds {
            for i in 0..SYNCS {
                c::client_root(&client(env, round, i), key, c::CLIENT_IP, &[])?;
            }
            let sync = phase(env, "sync", SYNCS, round, |_| vec!["sync".into()])?;
            let install = phase(env, "install", INSTALLS, round, |i| {
                let name = format!("small-{i:02}");
                vec!["install".into(), name, "--transport".into(), "http".into()]
            })?;
            stop_client_daemons(env, round)?;
            println!("round {round}:");
            sync.print();
            install.print();
            let rss = rss_mib(server.pid());
            println!("    dist serve VmRSS after the round: {rss:.1} MiB");
            all.extend([sync, install]);
        }
        Ok(())
    })();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    result?;
    println!("all {rounds} rounds:");
    let mut errors = 0;
    for name in ["sync", "install"] {
        let mut p = Phase::new(name);
        for q in all.iter().filter(|q| q.name == name) {
            p.latencies.extend(&q.latencies);
            p.wall += q.wall;
            errors += q.errors.values().sum::<usize>();
        }
        p.print();
    }
    let rss = samples.lock().expect("samples").clone();
    let mib = |k: Option<&u64>| k.map_or("?".into(), |k| format!("{:.1} MiB", *k as f64 / 1024.0));
    println!(
        "dist serve VmRSS ({} samples, every 100 ms): start {}, peak {}, end {}",
        rss.len(),
        mib(rss.first()),
        mib(rss.iter().max()),
        mib(rss.last())
    );
    Ok(errors)
}

fn rss_mib(pid: u32) -> f64 {
    c::vm_rss_kib(pid).map_or(0.0, |k| k as f64 / 1024.0)
}

/// Samples `VmRSS` of `pid` every 100 ms into `samples` until `stop`.
fn sample_rss(
    pid: u32,
    samples: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if let Some(kib) = c::vm_rss_kib(pid) {
                samples.lock().expect("samples").push(kib);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Starts `dist ARGS(i)` in client root `i` for every `i < n` at once and waits for all.
fn phase(
    env: &Env,
    name: &'static str,
    n: usize,
    round: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> Result<Phase> {
    let began = Instant::now();
    let mut running: Vec<(usize, Child, Instant)> = Vec::with_capacity(n);
    for i in 0..n {
        let a = args(i);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let root = client(env, round, i);
        let child = c::dist_cmd(env, &root, &a)
            .stdout(Stdio::null())
            .stderr(fs::File::create(root.join(format!("{name}.err")))?)
            .spawn()?;
        running.push((i, child, Instant::now()));
    }
    let mut p = Phase::new(name);
    while !running.is_empty() {
        let mut still = Vec::with_capacity(running.len());
        for (i, mut child, start) in running {
            match child.try_wait()? {
                Some(status) => {
                    p.latencies.push(start.elapsed());
                    p.note(&client(env, round, i), status.success());
                }
                None if began.elapsed() > PHASE_LIMIT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    *p.errors
                        .entry(format!("still running after {PHASE_LIMIT:?}"))
                        .or_default() += 1;
                }
                None => still.push((i, child, start)),
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(2));
    }
    p.wall = began.elapsed();
    Ok(p)
}

impl Phase {
    fn new(name: &'static str) -> Phase {
        Phase {
            name,
            latencies: Vec::new(),
            wall: Duration::ZERO,
            errors: BTreeMap::new(),
            warnings: BTreeMap::new(),
        }
    }

    /// Files the stderr of the command that ran in `root` under errors or warnings.
    fn note(&mut self, root: &Path, ok: bool) {
        let err = fs::read_to_string(root.join(format!("{}.err", self.name))).unwrap_or_default();
        // Messages name the root: strip it so that equal failures count together.
        let err = err.replace(&root.display().to_string(), "ROOT");
        if !ok {
            *self.errors.entry(err.trim().to_string()).or_default() += 1;
        }
        for w in err.lines().filter(|l| l.starts_with("warning:")) {
            *self.warnings.entry(w.to_string()).or_default() += 1;
        }
    }

    fn print(&self) {
        let ms = |p: f64| {
            format!(
                "{:.0} ms",
                c::percentile(&self.latencies, p).as_secs_f64() * 1e3
            )
        };
        let errors: usize = self.errors.values().sum();
        println!(
            "  {:>4} × {:<8} errors {errors}, latency p50 {} p99 {} max {}, wall {}",
            self.latencies.len(),
            self.name,
            ms(50.0),
            ms(99.0),
            ms(100.0),
            c::secs(self.wall)
        );
        for (msg, n) in self.errors.iter().chain(&self.warnings) {
            println!("    {n} × {msg}");
        }
    }
}

/// `dist daemon stop` in every root of `round` that installed (the HTTP transport hands what it
/// fetched to a private transmission-daemon to seed), ten at a time.
fn stop_client_daemons(env: &Env, round: usize) -> Result<()> {
    let roots: Vec<PathBuf> = (0..INSTALLS).map(|i| client(env, round, i)).collect();
    let mut failed = Vec::new();
    for batch in roots.chunks(10) {
        let children: Vec<(PathBuf, Child)> = batch
            .iter()
            .map(|r| {
                let c = c::dist_cmd(env, r, &["daemon", "stop"])
                    .stdout(Stdio::null())
                    .spawn();
                c.map(|c| (r.clone(), c))
            })
            .collect::<std::io::Result<_>>()?;
        for (root, mut child) in children {
            if !child.wait()?.success() {
                failed.push(root.display().to_string());
            }
        }
    }
    if !failed.is_empty() {
        bail!("dist daemon stop failed in {failed:?}");
    }
    Ok(())
}
