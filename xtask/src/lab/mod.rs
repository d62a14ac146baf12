//! The lab every bench and campaign uses. `env`: the release `dist`, a fresh namespace, a temp
//! dir, seeded packages, medians. `campaign`: a seeded random source, the origin's bandwidth caps
//! and counters, a restartable `dist serve`, running and killing `dist` in the namespace,
//! percentiles and resident memory. This file: the swarm lab that `bench swarm` and `bench
//! transport` share: packages of fresh random content published into one repository, its `dist
//! serve` inside the bench's namespace (the origin at 10.77.0.1, its seeder's RPC on a known
//! port), what the origin's seeder uploaded, and groups of clients released together (`group`),
//! with the timeline of one group (`timeline`).
//!
//! **Invariant:** nothing here prints but `timeline::print` (when a bench asks); the benches own
//! their output. The lab knows nothing of scenarios, links or matrices: a group is told its
//! install flags and client.yaml lines.

pub(crate) mod campaign;
pub(crate) mod env;
pub(crate) mod fixtures;
pub(crate) mod group;
pub(crate) mod timeline;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::netns::{HTTP, SERVER_IP, TRACKER};
use campaign::{self as c, Server};
use env::Env;

/// The origin seeder's RPC port inside the namespace (fixed, so the benches can ask it).
pub(crate) const SEEDER_RPC_PORT: u16 = 9091;

/// A package published for the benches.
pub(crate) struct Published {
    pub name: String,
    pub size: u64,
    pub infohash: String,
}

/// Writes one package of one file of fresh random content per `(name, MiB)` and adds them all in
/// one `dist add`; returns them in the same order, and how long it took. The package directories
/// are deleted afterwards (the tarballs stay in the server's page cache, like the origin of a
/// busy repository).
pub(crate) fn publish(
    env: &Env,
    repo: &Path,
    packages: &[(String, usize)],
) -> Result<(Vec<Published>, Duration)> {
    let t = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let mut add = vec!["add", "--create", "--json"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for (k, (name, mib)) in packages.iter().enumerate() {
        let dir = env.tmp.join("pkgs").join(name);
        package(&dir, name, *mib, seed ^ (k as u64 + 1))?;
        add.push(dir.display().to_string());
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    let out = c::ok(env, repo, &add)?;
    let rows: Vec<Value> = serde_json::from_str(&out).context("dist add --json")?;
    let published = packages
        .iter()
        .map(|(name, _)| {
            let row = rows
                .iter()
                .find(|r| r["name"] == name.as_str())
                .with_context(|| format!("dist add --json has no {name}"))?;
            Ok(Published {
                size: row["size"].as_u64().context("size")?,
                infohash: row["infohash"].as_str().context("infohash")?.to_string(),
                name: name.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let _ = fs::remove_dir_all(env.tmp.join("pkgs"));
    Ok((published, t.elapsed()))
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

/// `dist serve` on the namespace's server addresses, with its seeder's RPC on
/// `SEEDER_RPC_PORT`, `extra` flags, and its stderr in `TMP/log`.
pub(crate) fn spawn_server(env: &Env, repo: &Path, extra: &[&str], log: &str) -> Result<Server> {
    let mut cmd = env.ns.command(&env.dist);
    cmd.arg("--root")
        .arg(repo)
        .args(["serve", "--http", HTTP, "--tracker", TRACKER])
        .args(["--bind", SERVER_IP, "--rpc-port"])
        .arg(SEEDER_RPC_PORT.to_string())
        .args(extra);
    spawn_serve(env, cmd, log)
}

/// Starts a `dist serve` command, with the extra flags of `DIST_BENCH_SERVE_ARGS` (to compare
/// server settings, e.g. `--webseed-slots 1`; a mirror gets them too) and its stderr in
/// `TMP/log`.
pub(crate) fn spawn_serve(env: &Env, mut cmd: Command, log: &str) -> Result<Server> {
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

/// `uploadedEver` of `infohash` in the seeder whose RPC is on 127.0.0.1:`rpc_port` (the
/// origin's or a mirror's), with the session-id handshake; `None` if it does not answer (the
/// figure is then left out, not guessed).
pub(crate) fn seeder_uploaded(env: &Env, rpc_port: u16, infohash: &str) -> Option<u64> {
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
pub(crate) fn cpu_ticks() -> Option<(u64, u64)> {
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

/// Seconds with one decimal, for reports.
pub(crate) fn secs1(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
