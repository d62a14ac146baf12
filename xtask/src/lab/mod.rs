//! The lab every bench and campaign uses (`main.rs` dispatches to them; none imports another):
//! - `env`: this tree's release `dist`, a fresh namespace, a temp dir, running `dist` and curl
//!   there, medians;
//! - `args`: the one command-line parser (flags with typed values, switches, positionals, each
//!   command's usage line);
//! - `packages`: the one package generator (manifest, seeded random or given files, scripts);
//! - `server`: `dist serve` in the namespace: started, waited for, killed, stopped;
//! - `fixtures`: a repository laid out as static files and a client synced from it over
//!   loopback (the resolver benches);
//! - `campaign`: a seeded random source, the origin's bandwidth caps and counters, running and
//!   killing `dist` in the namespace, processes, percentiles and resident memory;
//! - this file, `group` and `timeline`: the swarm lab that `bench swarm` and `bench transport`
//!   share: packages of fresh random content published into one repository, what the origin's
//!   seeder uploaded, and groups of clients released together (`group`), with the timeline of
//!   one group (`timeline`).
//!
//! **Invariant:** nothing here prints but `timeline::print` (when a bench asks); the benches own
//! their output. The lab knows nothing of scenarios, links or matrices: a group is told its
//! install flags and client.yaml lines.

pub(crate) mod args;
pub(crate) mod campaign;
pub(crate) mod env;
pub(crate) mod fixtures;
pub(crate) mod group;
pub(crate) mod packages;
pub(crate) mod server;
pub(crate) mod timeline;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use campaign as c;
use env::Env;
use packages::Package;

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
        let p = Package::data(name.as_str(), (*mib as u64) << 20, seed ^ (k as u64 + 1));
        let dir = p.write_in(&env.tmp.join("pkgs"))?;
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
