//! `cargo xtask fuzz --blind [SECS]`: the mutational (blind) fuzz campaigns of `tests/fuzz.rs`
//! on stable Rust in a release build, each
//! target for SECS seconds (default 300), one after the other so each has a core to itself.
//! The seeds start at `DIST_FUZZ_SEED` when set, else at a clock-derived number (printed), so
//! that successive runs try new inputs; any failure names its seed and where its input was kept.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::lab::args::Usage;
use crate::util;

const USAGE: Usage = Usage {
    line: "usage: cargo xtask fuzz --blind [SECS per target]",
    values: &[],
    switches: &[],
    positionals: 1,
};

pub fn run(args: &[&str]) -> Result<()> {
    let secs: u64 = USAGE.parse(args)?.positional(0, "SECS")?.unwrap_or(300);
    let seed = match std::env::var("DIST_FUZZ_SEED") {
        Ok(s) => s,
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            // Far apart from one run to the next, and far from the default seeds 0...
            (now.as_secs() << 20).to_string()
        }
    };
    eprintln!("xtask: fuzzing each target for {secs} s from seed {seed}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = [
        "test",
        "--release",
        "--test",
        "fuzz",
        "--",
        "--nocapture",
        "--test-threads=1",
    ];
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut child = Command::new(&cargo)
        .args(args)
        .env("DIST_FUZZ_SECS", secs.to_string())
        .env("DIST_FUZZ_SEED", &seed)
        .env_remove("DIST_FUZZ_ITERS")
        .current_dir(util::workspace_root())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cargo}"))?;
    // Pass the output through, and keep each target's summary line for the end.
    let mut summary = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("piped")).lines() {
        let line = line?;
        eprintln!("{line}");
        if line.starts_with("fuzz: ") {
            summary.push(line);
        }
    }
    let status = child.wait()?;
    eprintln!("\nxtask: fuzz summary (seed {seed}, {secs} s per target, release build)");
    for line in &summary {
        eprintln!("  {line}");
    }
    if !status.success() {
        bail!("the fuzz campaigns failed ({status}); see the seed and input above");
    }
    Ok(())
}
