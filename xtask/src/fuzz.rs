//! `cargo xtask fuzz [--secs N] [TARGET...]`: the coverage-guided campaigns (issue 25), one
//! libFuzzer target of `fuzz/` per parser of what others wrote, each for N seconds (default
//! 600) one after the other, so each has a core to itself; `--blind` runs the mutational
//! campaigns of `tests/fuzz.rs` instead (`fuzz_blind.rs`).
//!
//! It installs cargo-fuzz when missing (`cargo install cargo-fuzz --locked`) and builds with
//! `cargo +nightly fuzz`. Each target's corpus lives in `$CARGO_TARGET_DIR/fuzz/corpus/TARGET`
//! (it grows from run to run) and starts from the seeds of the stable harness (written by
//! `fuzz_seeds_issue_25`, its kept regression inputs included) and `fuzz/seeds/TARGET/`. The
//! figures come from libFuzzer's last status line (`cov:` edges, `ft:` features, `corp:`) and
//! final stats (`-print_final_stats=1`); a crash, timeout or out-of-memory input is kept in
//! `$CARGO_TARGET_DIR/fuzz/artifacts/TARGET/` and fails the run after every target ran.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::lab::args::Usage;
use crate::util;

/// Every target of `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: [&str; 8] = [
    "ustar",
    "unpack",
    "torrent",
    "manifest",
    "snapshot",
    "wire",
    "client_yaml",
    "http_range",
];

const USAGE: Usage = Usage {
    line: "usage: cargo xtask fuzz [--secs N] [TARGET...] | --blind [SECS]",
    values: &["--secs"],
    switches: &[],
    positionals: usize::MAX,
};

/// What one target's run reported.
#[derive(Debug, Default)]
struct Figures {
    target: String,
    execs: u64,
    secs: f64,
    edges: u64,
    features: u64,
    corpus: String,
    rss_mb: u64,
    findings: Vec<PathBuf>,
}

pub fn run(args: &[&str]) -> Result<()> {
    if args.first() == Some(&"--blind") {
        return crate::fuzz_blind::run(&args[1..]);
    }
    let a = USAGE.parse(args)?;
    let secs: u64 = a.value_or("--secs", 600)?;
    let mut targets = a.positionals().to_vec();
    if let Some(t) = targets.iter().find(|t| !TARGETS.contains(t)) {
        return Err(a.error(format!("unknown target `{t}` (targets: {TARGETS:?})")));
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    ensure_cargo_fuzz()?;
    let dir = target_dir().join("fuzz");
    seed(&dir, &targets)?;
    nightly(&["fuzz", "build", "--target-dir", &path_str(&dir)?])?;
    let mut all = Vec::new();
    for t in &targets {
        all.push(run_target(&dir, t, secs)?);
    }
    print_table(&all, secs);
    let found: Vec<&PathBuf> = all.iter().flat_map(|f| &f.findings).collect();
    if !found.is_empty() {
        bail!("{} finding(s), kept in: {found:?}", found.len());
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::workspace_root().join("target"))
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// `cargo +nightly ARGS` in the workspace root, with none of the outer cargo's variables (it
/// runs this xtask with the stable toolchain).
fn nightly_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .args(args)
        .current_dir(util::workspace_root());
    for v in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "RUSTFLAGS"] {
        cmd.env_remove(v);
    }
    cmd
}

fn nightly(args: &[&str]) -> Result<()> {
    eprintln!("xtask: cargo +nightly {}", args.join(" "));
    let status = nightly_cmd(args)
        .status()
        .context("cannot run `cargo +nightly` (rustup with a nightly toolchain is needed)")?;
    if !status.success() {
        bail!("cargo +nightly {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// cargo-fuzz, installed from crates.io when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let have = nightly_cmd(&["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing: installing it");
    // Its own temporary target directory, not the workspace's.
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz --locked failed ({status})");
    }
    Ok(())
}

/// Copies the seeds into each target's corpus: the stable harness's (written by the test
/// `fuzz_seeds_issue_25`) and `fuzz/seeds/TARGET/`.
fn seed(dir: &Path, targets: &[&str]) -> Result<()> {
    let seeds = tempfile::tempdir()?;
    eprintln!("xtask: writing the seeds of the stable harness");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--quiet", "--test", "fuzz", "fuzz_seeds_issue_25"])
        .env("DIST_FUZZ_SEEDS_OUT", seeds.path())
        .current_dir(util::workspace_root())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("the test fuzz_seeds_issue_25 failed ({status})");
    }
    let kept = util::workspace_root().join("fuzz/seeds");
    for t in targets {
        let corpus = dir.join("corpus").join(t);
        fs::create_dir_all(&corpus)?;
        let mut n = 0;
        for from in [seeds.path().join(t), kept.join(t)] {
            let Ok(rd) = fs::read_dir(&from) else {
                continue;
            };
            for e in rd {
                let e = e?;
                fs::copy(e.path(), corpus.join(e.file_name()))?;
                n += 1;
            }
        }
        if n == 0 {
            bail!("no seeds for target {t}");
        }
    }
    Ok(())
}

/// One target for `secs` seconds; its figures, and the inputs libFuzzer kept as findings.
fn run_target(dir: &Path, target: &str, secs: u64) -> Result<Figures> {
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    fs::create_dir_all(&artifacts)?;
    let before: Vec<PathBuf> = listing(&artifacts)?;
    let args = [
        format!("-max_total_time={secs}"),
        "-print_final_stats=1".into(),
        // An input that takes this long is a hang: kept as a finding.
        "-timeout=20".into(),
        "-rss_limit_mb=2048".into(),
        format!("-artifact_prefix={}/", path_str(&artifacts)?),
    ];
    let mut cmd_args = vec![
        "fuzz".to_string(),
        "run".into(),
        "--target-dir".into(),
        path_str(dir)?,
        target.into(),
        path_str(&corpus)?,
        "--".into(),
    ];
    cmd_args.extend(args);
    let refs: Vec<&str> = cmd_args.iter().map(String::as_str).collect();
    eprintln!("xtask: cargo +nightly {}", refs.join(" "));
    let started = Instant::now();
    let mut child = nightly_cmd(&refs)
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run cargo +nightly fuzz")?;
    let mut f = Figures {
        target: target.into(),
        ..Figures::default()
    };
    let log = BufReader::new(child.stderr.take().expect("piped"));
    for line in log.lines() {
        let line = line?;
        parse_line(&line, &mut f);
        // The status lines come every few seconds at first, then at powers of two: all shown.
        eprintln!("{target}: {line}");
    }
    let status = child.wait()?;
    f.secs = started.elapsed().as_secs_f64();
    f.findings = listing(&artifacts)?
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    if !status.success() && f.findings.is_empty() {
        bail!("cargo fuzz run {target} failed ({status}) without keeping an input");
    }
    Ok(f)
}

fn listing(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    v.sort();
    Ok(v)
}

/// Picks the figures out of one line of libFuzzer's output: a status line (`#N ... cov: E ft:
/// F corp: C ... rss: RMb`), the last of which wins, or a final stat.
fn parse_line(line: &str, f: &mut Figures) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
    };
    if line.starts_with('#') {
        if let Some(e) = after("cov:").and_then(|v| v.parse().ok()) {
            f.edges = e;
        }
        if let Some(v) = after("ft:").and_then(|v| v.parse().ok()) {
            f.features = v;
        }
        if let Some(c) = after("corp:") {
            f.corpus = c.to_string();
        }
    }
    if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
        f.execs = v.trim().parse().unwrap_or(0);
    }
    if let Some(v) = line.strip_prefix("stat::peak_rss_mb:") {
        f.rss_mb = v.trim().parse().unwrap_or(0);
    }
}

fn print_table(all: &[Figures], secs: u64) {
    eprintln!("\nxtask: coverage-guided fuzzing, {secs} s per target (cargo +nightly fuzz, libFuzzer, ASan)");
    eprintln!(
        "| target | executions | exec/s | edges (cov) | features (ft) | corpus (inputs/bytes) | peak RSS | findings |"
    );
    eprintln!("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
    for f in all {
        eprintln!(
            "| `{}` | {} | {:.0} | {} | {} | {} | {} MB | {} |",
            f.target,
            f.execs,
            f.execs as f64 / f.secs.max(1e-9),
            f.edges,
            f.features,
            f.corpus,
            f.rss_mb,
            f.findings.len()
        );
    }
}
