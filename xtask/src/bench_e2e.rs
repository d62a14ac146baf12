//! `cargo xtask bench e2e`: the end-to-end figures, measured against the real daemons inside a
//! private network namespace: time from `dist add` to the first byte an independent client gets,
//! install time of a 1 MiB package per transport and with the default (`auto`, alone) with a warm
//! daemon (p50 of 10, next to a plain HTTP GET of the same object as the baseline), rollback
//! time, and gc/verify over 100 installed packages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::lab::env::{in_namespace, ms, p50, Env};
use crate::lab::packages::Package;
use crate::lab::server::with_server;
use crate::netns::HTTP;

/// An `install --json` entry's `phases_ms`, as (phase, milliseconds).
fn phases_of(e: &serde_json::Value) -> Vec<(String, u64)> {
    e["phases_ms"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The phases (`install --json` `phases_ms`) of the run whose wall time is the median.
fn median_phases(walls: &[Duration], phases: &[Vec<(String, u64)>]) -> Vec<(String, u64)> {
    let mut order: Vec<usize> = (0..walls.len()).collect();
    order.sort_by_key(|&i| walls[i]);
    order
        .get(order.len() / 2)
        .map(|&i| phases[i].clone())
        .unwrap_or_default()
}

pub fn run() -> Result<()> {
    in_namespace("e2e", measure)
}

fn measure(env: &Env) -> Result<()> {
    let repo = env.tmp.join("repo");
    let pkgs = env.tmp.join("pkgs");
    let mut all = Vec::new();
    for i in 0..31 {
        all.push(Package::data(format!("mib{i:02}"), 1 << 20, 1000 + i).write_in(&pkgs)?);
    }
    for i in 0..100 {
        all.push(Package::data(format!("small{i:03}"), 4096, 5000 + i).write_in(&pkgs)?);
    }
    let (_, _) = env.dist(&repo, &["add", "--create", &all[0].display().to_string()])?;
    let key = env.dist(&repo, &["key", "show"])?.1.trim().to_string();
    with_server(env, &repo, || {
        add_to_first_byte(env, &repo, &pkgs)?;
        let client = installs(env, &repo, &all, &key)?;
        gc_and_verify(env, &client)?;
        env.dist(&client, &["daemon", "stop"])?;
        Ok(())
    })
}

/// 1. `dist add` of a 1 MiB package -> first byte at an independent client (curl on the web
///    seed, as soon as the object is published) -> tracked and seeding.
fn add_to_first_byte(env: &Env, repo: &Path, pkgs: &Path) -> Result<()> {
    let fresh = Package::data("fresh", 1 << 20, 77).write_in(pkgs)?;
    let t = Instant::now();
    env.dist(repo, &["add", &fresh.display().to_string()])?;
    let added = t.elapsed();
    let snap = dist_snapshot(repo)?;
    let b3 = snap
        .iter()
        .find(|(n, _)| n == "fresh")
        .map(|(_, b)| b.clone())
        .context("fresh not indexed")?;
    let url = format!("http://{HTTP}/objects/{}/{}", &b3[..2], &b3[2..]);
    while !env.curl_ok(&["-r", "0-0", "-o", "/dev/null", &url]) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let first_byte = t.elapsed();
    env.wait_healthy()?;
    let seeding = t.elapsed();
    println!("add -> first byte: dist add {} ; first byte over HTTP (web seed) at {} ; tracked and seeding (/health 200) at {}", ms(added), ms(first_byte), ms(seeding));

    Ok(())
}

/// Adds the rest of `all` to the repository and makes a synced client of it.
fn synced_client(env: &Env, repo: &Path, all: &[PathBuf], key: &str) -> Result<PathBuf> {
    let rest: Vec<String> = all[1..].iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["add"];
    args.extend(rest.iter().map(String::as_str));
    env.dist(repo, &args)?;
    env.wait_healthy()?;
    let client = env.tmp.join("client");
    fs::create_dir_all(&client)?;
    fs::write(
        client.join("client.yaml"),
        format!("server_url: http://{HTTP}\npublic_key: {key}\nbind_address: 10.77.0.2\n"),
    )?;
    env.dist(&client, &["sync"])?;
    Ok(client)
}

/// 2. Installs with a warm daemon, p50 of 10 per transport, and rollback; returns the client.
fn installs(env: &Env, repo: &Path, all: &[PathBuf], key: &str) -> Result<PathBuf> {
    let client = synced_client(env, repo, all, key)?;
    env.dist(&client, &["install", "mib00", "--transport", "http"])?; // starts the daemon
    let mut http = Vec::new();
    let mut torrent = Vec::new();
    let mut get = Vec::new();
    for i in 1..=10 {
        let name = format!("mib{i:02}");
        let b3 = snap_b3(&client, &name)?;
        let url = format!("http://{HTTP}/objects/{}/{}", &b3[..2], &b3[2..]);
        let t = Instant::now();
        if !env.curl_ok(&["-o", "/dev/null", &url]) {
            bail!("GET {url} failed");
        }
        get.push(t.elapsed());
        http.push(
            env.dist(&client, &["install", &name, "--transport", "http"])?
                .0,
        );
    }
    for i in 11..=20 {
        torrent.push(
            env.dist(
                &client,
                &["install", &format!("mib{i:02}"), "--transport", "torrent"],
            )?
            .0,
        );
    }
    // The default configuration (`auto`), alone: a tracker scrape finds no peers besides the
    // origin, so a direct download (issue 11: p50 <= 50 ms).
    let mut default = Vec::new();
    let mut default_fetch = Vec::new();
    // What the phases (resolve … switch) account for; the rest is start-up, reading the
    // configuration and the index, seeding what was fetched, and printing.
    let mut default_phases = Vec::new();
    for i in 21..=30 {
        let (t, out) = env.dist(&client, &["install", &format!("mib{i:02}"), "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out).context("install --json")?;
        let e = &v[0];
        if e["transport"] != "http" {
            bail!("a lone default install did not go over HTTP: {e}");
        }
        default.push(t);
        default_phases.push(phases_of(e));
        default_fetch.push(Duration::from_millis(
            e["phases_ms"]["fetch"].as_u64().unwrap_or(0),
        ));
    }
    println!("install 1 MiB, warm daemon, p50 of 10: http {} ; torrent {} ; default (auto, alone) {} of which fetch (scrape + GET) {} ; baseline plain GET of the object {}", ms(p50(http.clone())), ms(p50(torrent.clone())), ms(p50(default.clone())), ms(p50(default_fetch)), ms(p50(get)));
    println!(
        "  default runs: {:?} ; phases of the median run (ms): {:?}",
        default.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        median_phases(&default, &default_phases)
    );
    println!(
        "  http runs:    {:?}",
        http.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    println!(
        "  torrent runs: {:?}",
        torrent.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    let mut rb = Vec::new();
    for _ in 0..10 {
        rb.push(env.dist(&client, &["rollback"])?.0);
        env.dist(
            &client,
            &["rollback", "--to", &last_generation(&client)?.to_string()],
        )?;
    }
    println!(
        "rollback (31 packages installed), p50 of 10: {}",
        ms(p50(rb))
    );

    Ok(client)
}

/// 3. gc and verify with 100 more installed packages.
fn gc_and_verify(env: &Env, client: &Path) -> Result<()> {
    let smalls: Vec<String> = (0..100).map(|i| format!("small{i:03}")).collect();
    let mut args = vec!["install", "--transport", "http"];
    args.extend(smalls.iter().map(String::as_str));
    let (t_install, _) = env.dist(client, &args)?;
    let (t_verify, _) = env.dist(client, &["verify"])?;
    let mut args = vec!["uninstall"];
    args.push("small000");
    env.dist(client, &args)?;
    let (t_gc, out) = env.dist(client, &["gc", "--keep", "1"])?;
    println!(
        "131 packages installed in one command: {} ; verify {} ; gc --keep 1 {} ({})",
        ms(t_install),
        ms(t_verify),
        ms(t_gc),
        out.trim()
    );
    Ok(())
}

fn dist_snapshot(repo: &Path) -> Result<Vec<(String, String)>> {
    let latest: u64 = fs::read_to_string(repo.join("published/LATEST"))?
        .trim()
        .parse()?;
    let db = repo.with_extension("snapshot.db");
    crate::util::published_snapshot(repo, latest, &db)?;
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT name, blake3 FROM packages")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once('|')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect())
}

fn snap_b3(client: &Path, name: &str) -> Result<String> {
    let out = Command::new("sqlite3")
        .arg(client.join("index/index.db"))
        .arg(format!("SELECT blake3 FROM packages WHERE name = '{name}'"))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn last_generation(client: &Path) -> Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(client.join("generations"))?.flatten() {
        if let Ok(v) = e.file_name().to_string_lossy().parse::<u64>() {
            n = n.max(v);
        }
    }
    Ok(n)
}
