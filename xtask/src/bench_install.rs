//! `cargo xtask bench install [--baseline BIN] [--runs N] [--mib M]`: one `dist install` of three
//! packages over BitTorrent, against the real server and daemons in a private network namespace,
//! with the client's transmission-daemon already warm. With `--baseline`, another `dist` binary
//! (an older build) runs the same install in the same run, alternating with this one; each binary
//! has its own client root, its own address and its own packages, so neither downloads from a
//! seeder that already saw it complete.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::lab::args::Usage;
use crate::lab::env::{in_namespace, ms, p50, Env};
use crate::lab::packages::Package;
use crate::lab::server::with_server;
use crate::netns::HTTP;

const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench install [--baseline BIN] [--runs N] [--mib M]",
    values: &["--baseline", "--runs", "--mib"],
    switches: &[],
    positionals: 0,
};

struct Args {
    baseline: Option<PathBuf>,
    runs: usize,
    mib: usize,
}

fn parse(args: &[&str]) -> Result<Args> {
    let a = USAGE.parse(args)?;
    Ok(Args {
        baseline: a.value("--baseline")?,
        runs: a.value_or("--runs", 3)?,
        mib: a.value_or("--mib", 8)?,
    })
}

/// One client: a binary, its root and its address.
struct Client {
    label: &'static str,
    dist: PathBuf,
    root: PathBuf,
    times: Vec<Duration>,
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    in_namespace("install", |env| measure(env, &a))
}

fn measure(env: &Env, a: &Args) -> Result<()> {
    let repo = env.tmp.join("repo");
    let pkgs = env.tmp.join("pkgs");
    let mut clients = vec![("this", env.dist.clone(), "10.77.0.2")];
    if let Some(b) = &a.baseline {
        clients.push(("baseline", b.clone(), "10.77.0.3"));
    }
    // Per client: one warm-up package, then three per run.
    let mut dirs = Vec::new();
    for (c, (label, _, _)) in clients.iter().enumerate() {
        let warm = Package::data(format!("warm-{label}"), 4096, 90 + c as u64);
        dirs.push(warm.write_in(&pkgs)?);
        for r in 0..a.runs {
            for k in 0..3 {
                let seed = 1000 * (c as u64 + 1) + 10 * r as u64 + k;
                let p = Package::data(format!("p-{label}-{r}-{k}"), (a.mib as u64) << 20, seed);
                dirs.push(p.write_in(&pkgs)?);
            }
        }
    }
    let mut add = vec!["add".to_string(), "--create".to_string()];
    add.extend(dirs.iter().map(|d| d.display().to_string()));
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    env.dist(&repo, &add)?;
    let key = env.dist(&repo, &["key", "show"])?.1.trim().to_string();
    with_server(env, &repo, || {
        let mut cs = Vec::new();
        for (label, dist, ip) in &clients {
            cs.push(setup_client(env, label, dist, ip, &key)?);
        }
        for r in 0..a.runs {
            for c in cs.iter_mut() {
                let names: Vec<String> = (0..3).map(|k| format!("p-{}-{r}-{k}", c.label)).collect();
                let mut args = vec!["install", "--transport", "torrent"];
                args.extend(names.iter().map(String::as_str));
                let t = with_binary(env, &c.dist, &c.root, &args)?;
                c.times.push(t);
            }
        }
        for c in &cs {
            println!(
                "install of 3 × {} MiB over BitTorrent in one command, warm daemon, {}: p50 {} (runs {:?} ms)",
                a.mib,
                c.label,
                ms(p50(c.times.clone())),
                c.times.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
            );
            with_binary(env, &c.dist, &c.root, &["daemon", "stop"])?;
        }
        if let [this, base] = &cs[..] {
            println!(
                "ratio this/baseline (p50): {:.2}",
                p50(this.times.clone()).as_secs_f64() / p50(base.times.clone()).as_secs_f64()
            );
        }
        Ok(())
    })
}

/// A synced client root for `dist` at `ip`, whose daemon is already running (it installed a
/// small package over BitTorrent).
fn setup_client(
    env: &Env,
    label: &'static str,
    dist: &Path,
    ip: &str,
    key: &str,
) -> Result<Client> {
    let root = env.tmp.join(format!("client-{label}"));
    fs::create_dir_all(&root)?;
    fs::write(
        root.join("client.yaml"),
        format!("server_url: http://{HTTP}\npublic_key: {key}\nbind_address: {ip}\n"),
    )?;
    with_binary(env, dist, &root, &["sync"])?;
    let warm = format!("warm-{label}");
    with_binary(
        env,
        dist,
        &root,
        &["install", &warm, "--transport", "torrent"],
    )?;
    Ok(Client {
        label,
        dist: dist.to_path_buf(),
        root,
        times: Vec::new(),
    })
}

fn with_binary(env: &Env, dist: &Path, root: &Path, args: &[&str]) -> Result<Duration> {
    env.run_with(dist, root, args).map(|(d, _)| d)
}
