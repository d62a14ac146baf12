//! `cargo xtask`: the project's own commands.
//!
//! - `cargo xtask test`: every check CI runs (fmt, clippy, all tests).
//! - `cargo xtask demo`: the main job, end to end, as a user would see it.
//! - `cargo xtask bench [pack|add|e2e|install|scale [N]|swarm [N] [MiB] [mbit]|resolve [N]]`: benchmarks,
//!   each next to a baseline in the same run.
//! - `cargo xtask fuzz [SECS]`: the fuzz campaigns of `tests/fuzz.rs` in release, SECS seconds
//!   per target (default 300), with their figures.
//! - `cargo xtask campaign kill [N] [--seed S]`: N (default 200) SIGKILLs of dist's commands,
//!   server and client daemon at random moments, each followed by the invariant checks.
//! - `cargo xtask campaign load [ROUNDS]`: rounds of 200 concurrent syncs, then 50 concurrent
//!   installs, against one server; errors, latencies and the server's RSS.

mod bench;
mod bench_e2e;
mod bench_install;
mod bench_resolve;
mod bench_scale;
mod bench_swarm;
mod campaign;
mod campaign_kill;
mod campaign_load;
mod demo;
mod fuzz;
#[path = "../../tests/common/netns.rs"]
#[allow(dead_code)]
mod netns;
mod util;

use anyhow::{bail, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&rest),
        Some("demo") => demo::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("campaign") => campaign::run(&rest),
        _ => bail!(
            "usage: cargo xtask <test|demo|bench [pack|add|e2e|install|scale [N]|swarm [N] [MiB] [mbit]|resolve [N]]|fuzz [SECS]|campaign [kill [N] [--seed S]|load [ROUNDS]]>"
        ),
    }
}

/// fmt, clippy and every test, stopping at the first failure.
fn test(extra: &[&str]) -> Result<()> {
    util::cargo(&["fmt", "--all", "--", "--check"])?;
    util::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let mut args = vec!["test", "--workspace"];
    args.extend_from_slice(extra);
    util::cargo(&args)?;
    // The scale and swarm benchmarks at a small size, as smoke tests of their steps (debug
    // binary: no release build in CI).
    util::cargo(&["build", "--quiet", "--bin", "dist"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| util::workspace_root().join("target"));
    std::env::set_var("DIST_BIN", target.join("debug").join("dist"));
    bench_scale::run(&["300", "--serve-cap", "180", "--check"])?;
    // The swarm benchmark small (2 clients, 4 MiB, 200 mbit/s), as a smoke test of every
    // scenario, the mirror's included: it fails when a client or a server does.
    bench_swarm::run(&["2", "4", "200"])
}
