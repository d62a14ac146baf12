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
//!
//! The server, the packages and the released groups of clients are the lab's (`crate::lab`),
//! which `bench transport` runs too; this module is the scenarios and their report.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::lab::args::Usage;
use crate::lab::campaign as c;
use crate::lab::env::{in_namespace_with, Env};
use crate::lab::group::{self, tally, Group, Outcome};
use crate::lab::server::Server;
use crate::lab::{self, secs1, timeline, Published};
use crate::netns::{HTTP, SERVER_IP};
use crate::util::mib;

/// How long one client may take before it is killed and its scenario marked failed.
const CLIENT_LIMIT: Duration = Duration::from_secs(600);
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
const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench swarm [N clients (8)] [MiB (128)] [mbit/s (64)]",
    values: &[],
    switches: &[],
    positionals: 3,
};

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
    let p = USAGE.parse(args)?;
    let a = Args {
        clients: p.positional(0, "N")?.unwrap_or(8),
        mib: p.positional(1, "MiB")?.unwrap_or(128),
        mbit: p.positional(2, "mbit/s")?.unwrap_or(64),
    };
    // Every client of every scenario has its own address in 10.77.0.2..=10.77.0.254.
    if a.clients == 0 || a.clients * SCENARIOS.len() > 253 {
        return Err(p.error(format!(
            "N must be 1..={} (one address per client per scenario)",
            253 / SCENARIOS.len()
        )));
    }
    if a.mib == 0 || a.mbit == 0 {
        return Err(p.error("MiB and mbit/s must be more than 0"));
    }
    Ok(a)
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let mut addrs = vec![SERVER_IP.to_string(), MIRROR_IP.to_string()];
    addrs.extend((0..a.clients * SCENARIOS.len()).map(client_ip));
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    in_namespace_with("swarm", &addrs, |env| measure(env, &a))
}

/// The address of client `k` (counting over all scenarios): 10.77.0.2, 10.77.0.3, ...
fn client_ip(k: usize) -> String {
    format!("10.77.0.{}", k + 2)
}

/// The servers of the run: the origin, and the mirror once its scenario has begun; and every
/// server stopped so far, with its exit.
struct Servers {
    origin: Option<Server>,
    mirror: Option<Server>,
    stopped: Vec<(&'static str, Result<ExitStatus>)>,
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
    let names: Vec<(String, usize)> = SCENARIOS
        .iter()
        .map(|s| (format!("swarm-{}", s.label()), a.mib))
        .collect();
    let (published, took) = lab::publish(env, &repo, &names)?;
    println!(
        "published {} packages of {:.1} MiB in {}",
        published.len(),
        mib(published[0].size),
        c::secs(took)
    );
    let key = c::ok(env, &repo, &["key", "show"])?.trim().to_string();
    c::shape(
        env,
        a.mbit,
        &[(SERVER_IP, c::ORIGIN_CLASS), (MIRROR_IP, MIRROR_CLASS)],
    )?;
    let mut servers = Servers {
        origin: Some(Server::bench_origin(env, &repo, &[], "serve.log")?),
        mirror: None,
        stopped: Vec::new(),
    };
    let mut outcomes = Vec::new();
    let result = scenarios(env, a, &repo, &published, &key, &mut servers, &mut outcomes);
    // The mirror first: its "stopped" announces go to the origin's tracker too.
    if let Some(m) = servers.mirror.take() {
        servers.stopped.push(("dist serve --mirror-of", m.stop()));
    }
    if let Some(o) = servers.origin.take() {
        servers.stopped.push(("dist serve (origin)", o.stop()));
    }
    let left = env.ns.pids();
    for pid in &left {
        println!("left running: {pid} {}", c::cmdline(*pid));
        c::terminate(*pid);
    }
    summary(&outcomes, a);
    result?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| o.failed())
        .map(|(s, _)| s.label())
        .collect();
    if !failed.is_empty() {
        bail!("scenarios failed: {}", failed.join(", "));
    }
    for (what, s) in servers.stopped {
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

/// Every scenario in turn (those of `DIST_BENCH_SCENARIOS=default,http` only, when set, to
/// compare settings quickly), each printed as soon as it is over.
fn scenarios(
    env: &Env,
    a: &Args,
    repo: &Path,
    published: &[Published],
    key: &str,
    servers: &mut Servers,
    outcomes: &mut Vec<(Scenario, Outcome)>,
) -> Result<()> {
    let origin = servers.origin.as_mut().expect("the origin was started");
    let t = origin.wait_healthy(env, Duration::from_secs(120))?;
    println!("dist serve healthy after {}", c::secs(t));
    let only = std::env::var("DIST_BENCH_SCENARIOS").ok();
    for (k, s) in SCENARIOS.iter().enumerate() {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|l| l.trim() == s.label()))
        {
            continue;
        }
        if *s == Scenario::Mirror {
            start_mirror(env, a, repo, key, published.len(), servers)?;
        }
        let ips: Vec<String> = (0..a.clients)
            .map(|i| client_ip(k * a.clients + i))
            .collect();
        let o = group::run(
            env,
            &Group {
                dir: env.tmp.join("clients").join(s.label()),
                package: &published[k],
                key,
                ips: &ips,
                install_args: s.install_args(),
                config: "",
                mirrors: s.mirrors(),
                mirror: servers
                    .mirror
                    .as_ref()
                    .map(|_| (MIRROR_CLASS, MIRROR_RPC_PORT)),
                timeline: true,
                limit: CLIENT_LIMIT,
            },
        )?;
        print_outcome(*s, &o);
        timeline::print(&o.timeline, o.clients.len(), o.size);
        outcomes.push((*s, o));
    }
    Ok(())
}

/// Restarts the origin with `--web-seed` naming the mirror, then starts the mirror and waits
/// until it has copied every package and is healthy (what the origin sent meanwhile is printed,
/// not counted).
fn start_mirror(
    env: &Env,
    a: &Args,
    repo: &Path,
    key: &str,
    packages: usize,
    servers: &mut Servers,
) -> Result<()> {
    let old = servers.origin.take().expect("the origin runs");
    servers.stopped.push(("dist serve (origin)", old.stop()));
    let origin = servers.origin.insert(Server::bench_origin(
        env,
        repo,
        &["--web-seed", MIRROR_URL],
        "serve-web-seed.log",
    )?);
    let t = origin.wait_healthy(env, Duration::from_secs(120))?;
    println!(
        "dist serve restarted with --web-seed {MIRROR_URL}, healthy after {}",
        c::secs(t)
    );
    let before = c::class_sent(env, c::ORIGIN_CLASS)?;
    let m = servers.mirror.insert(spawn_mirror(env, key)?);
    let t = m.wait_healthy_at(env, MIRROR_HTTP, MIRROR_LIMIT)?;
    let copied = c::class_sent(env, c::ORIGIN_CLASS)?.saturating_sub(before);
    println!(
        "mirror at {MIRROR_IP} (capped at {} mbit/s too) healthy after {}: copied {packages} packages, the origin sent {:.1} MiB meanwhile",
        a.mbit,
        c::secs(t),
        mib(copied)
    );
    Ok(())
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
    Server::bench(env, cmd, "mirror.log")
}

/// The table, the mirror's line and the last line, from what ran.
fn summary(outcomes: &[(Scenario, Outcome)], a: &Args) {
    if !outcomes.is_empty() {
        print_table(outcomes, a);
    }
    let get = |s: Scenario| outcomes.iter().find(|(k, _)| *k == s).map(|(_, o)| o);
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
}

/// The scenario's details, as soon as it is over.
fn print_outcome(s: Scenario, o: &Outcome) {
    let (walls, ok) = (o.walls(), o.ok_count());
    let (peers, webseed) = (o.total("bytes_from_peers"), o.total("bytes_from_webseed"));
    println!(
        "{}: {ok}/{} ok{}, wall {}, client p50 {} max {}; host CPUs {} busy",
        s.label(),
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
        .map_or("?".into(), |b| format!("{:.1} MiB", mib(b)));
    println!(
        "  origin sent {:.1} MiB = {:.2} × (N × size); of it the BitTorrent seeder {seeder} (payload), the rest HTTP (web seed, http transport), tracker, headers",
        mib(o.origin_bytes),
        o.origin_ratio()
    );
    if let (Some((m, mirror_seeder)), Some((os, ms))) = (o.mirror, o.shares()) {
        let mirror_seeder = mirror_seeder.map_or("?".into(), |b| format!("{:.1} MiB", mib(b)));
        println!(
            "  mirror sent {:.1} MiB = {:.2} × (N × size); of it its BitTorrent seeder {mirror_seeder} (payload)",
            mib(m),
            o.ratio(m)
        );
        println!(
            "  of the {:.1} MiB both sent: origin {:.0} %, mirror {:.0} %",
            mib(o.origin_bytes + m),
            os * 100.0,
            ms * 100.0
        );
    }
    println!(
        "  clients say: from peers {:.1} MiB (the origin's seeder is a peer too), from web seed/HTTP {:.1} MiB; transport {}; reason {}",
        mib(peers),
        mib(webseed),
        tally(&o.clients, "transport"),
        tally(&o.clients, "transport_reason"),
    );
    print_clients(o);
}

/// Phases, each client's transport reason, each failure with its stderr, and the notes.
fn print_clients(o: &Outcome) {
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
        let err = c::tail(&r.root.join("install.err"), 8);
        let err = if err.trim().is_empty() {
            "    (stderr empty)".to_string()
        } else {
            err
        };
        println!(
            "  client {} ({}) failed after {}: {}; stderr tail:\n{err}",
            r.ip,
            r.root.display(),
            secs1(r.wall),
            r.why(o.limit),
        );
    }
    for n in &o.notes {
        println!("  {n}");
    }
}

/// One row per scenario, after all of them.
fn print_table(outcomes: &[(Scenario, Outcome)], a: &Args) {
    println!();
    println!(
        "| {} clients, {} MiB, {} mbit/s | ok | total wall | client p50 | client max | origin / (N × size) | origin seeder | mirror / (N × size) | mirror seeder | from peers | from web seed | transport | reason |",
        a.clients, a.mib, a.mbit
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (s, o) in outcomes {
        let (walls, ok) = (o.walls(), o.ok_count());
        let (peers, webseed) = (o.total("bytes_from_peers"), o.total("bytes_from_webseed"));
        let mib_or = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.1} MiB", mib(b)));
        let (mirror, mirror_seeder) = match o.mirror {
            Some((m, seeder)) => (format!("{:.2}", o.ratio(m)), mib_or(seeder)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {ok}/{}{} | {} | {} | {} | {:.2} | {} | {mirror} | {mirror_seeder} | {:.1} MiB | {:.1} MiB | {} | {} |",
            s.label(),
            o.clients.len(),
            if o.failed() { " FAILED" } else { "" },
            secs1(o.wall),
            secs1(c::percentile(&walls, 50.0)),
            secs1(c::percentile(&walls, 100.0)),
            o.origin_ratio(),
            mib_or(o.seeder_bytes),
            mib(peers),
            mib(webseed),
            tally(&o.clients, "transport"),
            tally(&o.clients, "transport_reason"),
        );
    }
}
