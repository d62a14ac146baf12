//! `cargo xtask bench resolve hard [--baseline DIST] [--versions N,N…]`: the red team's
//! resolutions (issue 25, finding 6), each timed with its peak RSS, exit code, error kind and
//! the size of what it printed, for this tree's `dist` and optionally a baseline binary:
//!
//! - `pigeons`: 9 packages each needing one of 8 slots, every slot taking one package: `all`
//!   depends on `p0`…`p8`; `pK` version `S.0.0` means "in slot S" and depends on `hS =K+1`;
//!   `hS` has versions 1.0.0…9.0.0 (who sits there). 145 rows, unsatisfiable (pigeonhole),
//!   exponential for PubGrub's learning.
//! - `versions-N`: `app` has N versions, version K depending on `lib =K.0.0`, and each `lib`
//!   version on a package no index has: every version of `app` is tried and fails.
//! - `gaps-1000`: the same with `lib` versions between those `app` needs (`app` K needs `lib
//!   =2K.0.0`), so what is ruled out of `lib` never merges into one interval.
//!
//! Each resolution is `install --dry-run --json` in a client synced over HTTP (a loopback file
//! server of the published repository), so `resolve_timeout` and every check apply.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::lab::args::Usage;
use crate::lab::fixtures::{served_client, ServedClient};
use crate::lab::packages::Package;
use crate::util;

const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench resolve hard [--baseline DIST] [--versions N,N]",
    values: &["--baseline", "--versions"],
    switches: &[],
    positionals: 0,
};

struct Args {
    baseline: Option<PathBuf>,
    versions: Vec<usize>,
}

fn parse(args: &[&str]) -> Result<Args> {
    let a = USAGE.parse(args)?;
    let list = |s: &str| s.split(',').map(str::parse).collect::<Result<Vec<_>, _>>();
    Ok(Args {
        baseline: a.value("--baseline")?,
        versions: a
            .value_with("--versions", list)?
            .unwrap_or(vec![1_000, 4_000]),
    })
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let dist = util::release_dist()?;
    let mut contenders = vec![("this tree", dist.clone())];
    if let Some(b) = &a.baseline {
        contenders.push(("baseline", b.clone()));
    }
    let mut cases: Vec<(String, Vec<Package>, &str)> = vec![("pigeons".into(), pigeons(9), "all")];
    for n in &a.versions {
        cases.push((format!("versions-{n}"), versions(*n, 1), "app"));
    }
    cases.push(("gaps-1000".into(), versions(1_000, 2), "app"));
    println!("| case | binary | wall | peak RSS | exit | kind | stderr |");
    println!("|---|---|---|---|---|---|---|");
    for (name, pkgs, request) in &cases {
        let tmp = tempfile::tempdir()?;
        let client = client(&dist, tmp.path(), pkgs)?;
        for (label, bin) in &contenders {
            let r = once(bin, &client.root, request)?;
            println!(
                "| {name} | {label} | {:.1} s | {:.0} MiB | {} | {} | {} bytes |",
                r.measured.wall.as_secs_f64(),
                r.measured.max_rss_kib as f64 / 1024.0,
                r.code.map_or("signal".into(), |c| c.to_string()),
                r.kind,
                r.stderr_bytes
            );
        }
    }
    Ok(())
}

fn pigeons(n: usize) -> Vec<Package> {
    let slots = n - 1;
    let all = (0..n).fold(Package::tiny("all", "1.0.0"), |p, k| {
        p.depends(format!("p{k}"), "*")
    });
    let mut out = vec![all];
    for k in 0..n {
        for s in 1..=slots {
            let p = Package::tiny(format!("p{k}"), format!("{s}.0.0"));
            out.push(p.depends(format!("h{s}"), format!("={}.0.0", k + 1)));
        }
    }
    for s in 1..=slots {
        for k in 1..=n {
            out.push(Package::tiny(format!("h{s}"), format!("{k}.0.0")));
        }
    }
    out
}

/// `app` 1.0.0…N.0.0, version K needing `lib =(K × step).0.0`, and `lib` 1.0.0…(N × step).0.0,
/// each needing a package no index has.
fn versions(n: usize, step: usize) -> Vec<Package> {
    let mut out = Vec::new();
    for k in 1..=n {
        let app = Package::tiny("app", format!("{k}.0.0"));
        out.push(app.depends("lib", format!("={}.0.0", k * step)));
    }
    for k in 1..=n * step {
        out.push(Package::tiny("lib", format!("{k}.0.0")).depends("gone", "^1"));
    }
    out
}

/// A repository of `pkgs` published and served on loopback, and a client synced from it.
fn client(dist: &Path, tmp: &Path, pkgs: &[Package]) -> Result<ServedClient> {
    let dirs = tmp.join("pkgs");
    let mut list = String::new();
    for p in pkgs {
        list.push_str(&format!("{}\n", p.write_in(&dirs)?.display()));
    }
    let list_path = tmp.join("list.txt");
    fs::write(&list_path, list)?;
    let client = served_client(dist, tmp, &list_path, &["--allow-unresolved"])?;
    fs::remove_dir_all(&dirs)?;
    Ok(client)
}

struct Outcome {
    measured: util::Measured,
    code: Option<i32>,
    kind: String,
    stderr_bytes: u64,
}

/// `dist install --dry-run --json REQUEST`, measured; its JSON error's `kind`.
fn once(dist: &Path, root: &Path, request: &str) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(dist);
    cmd.arg("--root")
        .arg(root)
        .args(["install", "--dry-run", "--json", request])
        .stdout(Stdio::from(fs::File::create(&out)?))
        .stderr(Stdio::from(fs::File::create(&err)?));
    let (measured, code) = util::measure_status(&mut cmd)?;
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&out)?).unwrap_or_default();
    Ok(Outcome {
        measured,
        code,
        kind: v["error"]["kind"].as_str().unwrap_or("-").to_string(),
        stderr_bytes: fs::metadata(&err)?.len(),
    })
}
