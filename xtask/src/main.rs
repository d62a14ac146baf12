//! `cargo xtask`: the project's own commands.
//!
//! - `cargo xtask test`: every check CI runs (fmt, clippy, all tests).
//! - `cargo xtask demo`: the main job, end to end, as a user would see it.
//! - `cargo xtask bench [pack|add|e2e|install|profile|scale [N]|swarm [N] [MiB] [mbit]|transport [--quick]|resolve [N|hard]]`:
//!   benchmarks, each next to a baseline in the same run.
//! - `cargo xtask fuzz [--secs N] [TARGET...]`: the coverage-guided campaigns of `fuzz/`
//!   (cargo-fuzz, libFuzzer, nightly), N seconds per target (default 600), with their figures;
//!   `cargo xtask fuzz --blind [SECS]`: the mutational campaigns of `tests/fuzz.rs` in release.
//! - `cargo xtask campaign kill [N] [--seed S]`: N (default 200) SIGKILLs of dist's commands,
//!   server and client daemon at random moments, each followed by the invariant checks.
//! - `cargo xtask campaign load [ROUNDS]`: rounds of 200 concurrent syncs, then 50 concurrent
//!   installs, against one server; errors, latencies and the server's RSS.
//! - `cargo xtask man`: regenerates the man pages in `docs/man/` from the command-line
//!   definitions (`test` fails when the checked-in pages differ from them).

mod bench;
mod bench_e2e;
mod bench_install;
mod bench_profile;
mod bench_resolve;
mod bench_resolve_hard;
mod bench_scale;
mod bench_swarm;
mod bench_transport;
mod campaign_kill;
mod campaign_load;
#[path = "../../tests/common/debian.rs"]
mod debian;
mod demo;
#[path = "../../tests/common/files.rs"]
mod files;
mod fuzz;
mod fuzz_blind;
mod lab;
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
        Some("campaign") => match rest.first().copied() {
            Some("kill") => campaign_kill::run(&rest[1..]),
            Some("load") => campaign_load::run(&rest[1..]),
            _ => bail!("usage: cargo xtask campaign <kill [N] [--seed S] | load [ROUNDS]>"),
        },
        Some("man") => man(false),
        _ => bail!(
            "usage: cargo xtask <test|man|demo|bench [pack|add|e2e|install|profile|scale [N]|swarm [N] [MiB] [mbit]|transport [--quick]|resolve [N|hard]]|fuzz [--secs N] [TARGET...]|fuzz --blind [SECS]|campaign [kill [N] [--seed S]|load [ROUNDS]]>"
        ),
    }
}

/// The man pages generated from `src/cli.rs` (by `dist manpages DIR`, which uses clap_mangen)
/// into `docs/man/`; with `check`, into a temporary directory, compared with `docs/man/`.
fn man(check: bool) -> Result<()> {
    util::cargo(&["build", "--quiet", "--bin", "dist"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| util::workspace_root().join("target"));
    let dist = target.join("debug").join("dist");
    let checked_in = util::workspace_root().join("docs/man");
    let tmp = tempfile::tempdir()?;
    let out = if check {
        tmp.path().to_path_buf()
    } else {
        checked_in.clone()
    };
    if !check {
        let _ = std::fs::remove_dir_all(&out);
    }
    let status = std::process::Command::new(&dist)
        .arg("manpages")
        .arg(&out)
        .status()?;
    if !status.success() {
        bail!("{} manpages failed", dist.display());
    }
    if !check {
        eprintln!("xtask: wrote the man pages into {}", out.display());
        return Ok(());
    }
    let list = |d: &std::path::Path| -> Result<Vec<(String, Vec<u8>)>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d)? {
            let e = e?;
            v.push((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path())?,
            ));
        }
        v.sort();
        Ok(v)
    };
    let fresh = list(&out)?;
    let have = list(&checked_in).unwrap_or_default();
    if fresh != have {
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let stale: Vec<String> = fresh
            .iter()
            .filter(|f| !have.contains(f))
            .map(|(n, _)| n.clone())
            .chain(
                names(&have)
                    .into_iter()
                    .filter(|n| !names(&fresh).contains(n)),
            )
            .collect();
        bail!(
            "the man pages in docs/man/ are not those of src/cli.rs ({}): run `cargo xtask man` and commit them",
            stale.join(", ")
        );
    }
    eprintln!(
        "xtask: the man pages in docs/man/ match src/cli.rs ({} pages)",
        fresh.len()
    );
    Ok(())
}

/// fmt, clippy and every test, stopping at the first failure.
fn test(extra: &[&str]) -> Result<()> {
    util::cargo(&["fmt", "--all", "--", "--check"])?;
    // The fuzz crate is outside the workspace; its build (nightly, sanitizers, ~10 min here)
    // is not part of CI, its formatting is.
    util::cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"])?;
    util::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    man(true)?;
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
    // The profile benchmark small (20 packages a layout, 2 rounds): trees, launchers and
    // switches end to end against `dist serve`.
    bench_profile::run(&["--packages", "20", "--runs", "2"])?;
    // The swarm benchmark small (2 clients, 4 MiB, 200 mbit/s), as a smoke test of every
    // scenario, the mirror's included: it fails when a client or a server does.
    bench_swarm::run(&["2", "4", "200"])
}
