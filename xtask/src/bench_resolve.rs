//! `cargo xtask bench resolve [N]`: dependency resolution against a synthetic index of N package
//! versions (default 10,000) with dependency chains (issue 12: target ≤ 100 ms).
//!
//! N/4 names of 4 versions each (1.0.0, 1.1.0, 2.0.0, 2.1.0), in chains of `CHAIN` names: a
//! version of `c<k>-<j>` depends on `c<k>-<j+1>` (`^1` for 1.x, `^2` for 2.x), and the chain's
//! head at 1.0.0 also on the head of the next chain at `^2`, so one request pulls in two whole
//! chains and PubGrub must pick a major per package. Measured: `dist install --dry-run --json`
//! of `c0-0@1.0.0` (resolution and plan of 100 packages, nothing fetched), p50 of `RUNS`, next to the same command
//! for a package without dependencies in the same index (the fixed cost of a command: process
//! start, opening the index) as the baseline. `cargo xtask bench resolve hard`: the red team's
//! hard cases (`bench_resolve_hard.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::lab::args::Usage;
use crate::lab::fixtures::served_client;
use crate::lab::packages::Package;
use crate::util;

const CHAIN: usize = 50;
const RUNS: usize = 10;
const VERSIONS: [&str; 4] = ["1.0.0", "1.1.0", "2.0.0", "2.1.0"];
const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench resolve [N versions]",
    values: &[],
    switches: &[],
    positionals: 1,
};

pub fn run(args: &[&str]) -> Result<()> {
    if args.first() == Some(&"hard") {
        return crate::bench_resolve_hard::run(&args[1..]);
    }
    let n: usize = USAGE.parse(args)?.positional(0, "N")?.unwrap_or(10_000);
    let names = (n / VERSIONS.len()).max(2 * CHAIN);
    let dist = util::release_dist()?;
    let tmp = tempfile::tempdir()?;
    let t = Instant::now();
    let list = generate(&tmp.path().join("pkgs"), names)?;
    let served = served_client(&dist, tmp.path(), &list, &[])?;
    let client = &served.root;
    println!(
        "resolve: {} package versions ({names} names, chains of {CHAIN}) added and synced in {:.1} s",
        names * VERSIONS.len(),
        t.elapsed().as_secs_f64()
    );
    let time = |name: &str| -> Result<(Duration, usize)> {
        let mut times = Vec::new();
        let mut planned = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let out = std::process::Command::new(&dist)
                .arg("--root")
                .arg(client)
                .args(["install", "--dry-run", "--json", name])
                .output()?;
            times.push(t.elapsed());
            if !out.status.success() {
                bail!(
                    "install --dry-run {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            planned = v.as_array().map_or(0, Vec::len);
        }
        times.sort();
        Ok((times[RUNS / 2], planned))
    };
    let (base, base_n) = time("lone")?;
    let (deep, deep_n) = time("c0-0@1.0.0")?;
    println!(
        "install --dry-run, p50 of {RUNS}: a package without dependencies {:.1} ms ({base_n} planned; baseline); the head of two chains {:.1} ms ({deep_n} planned)",
        ms(base),
        ms(deep)
    );
    println!(
        "resolve: resolution_ms={:.1} (chains minus baseline) total_ms={:.1}",
        ms(deep.saturating_sub(base)),
        ms(deep)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes every package directory and the `--from` list; returns the list's path.
fn generate(dir: &Path, names: usize) -> Result<PathBuf> {
    let mut list = String::new();
    let chains = names / CHAIN;
    for k in 0..chains {
        for j in 0..CHAIN {
            for v in VERSIONS {
                let major = &v[..1];
                let mut p = Package::tiny(format!("c{k}-{j}"), v);
                if j + 1 < CHAIN {
                    p = p.depends(format!("c{k}-{}", j + 1), format!("^{major}"));
                }
                if j == 0 && v == "1.0.0" && k + 1 < chains {
                    p = p.depends(format!("c{}-0", k + 1), "^2");
                }
                list.push_str(&format!("{}\n", p.write_in(dir)?.display()));
            }
        }
    }
    let lone = Package::tiny("lone", "1.0.0").write_in(dir)?;
    list.push_str(&format!("{}\n", lone.display()));
    let path = dir.join("list.txt");
    fs::write(&path, list)?;
    Ok(path)
}
