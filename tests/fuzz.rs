//! Fuzz campaigns (issue 9) for the parsers that read what others wrote: the strict tar
//! reader and unpacker, `.torrent` parsing, the manifest parser, the snapshot reader and (issue
//! 10) the index manifest and deltas. The
//! harness and the targets are in `tests/fuzzing/`.
//!
//! Each campaign runs a fixed number of seeded iterations by default (a few seconds each in a
//! debug build); `DIST_FUZZ_SECS` gives each a time budget instead, `DIST_FUZZ_SEED` the first
//! seed, `DIST_FUZZ_ITERS` the number of iterations (1 replays one seed). `cargo xtask fuzz
//! [SECS]` runs them in release. Each prints its figures (iterations, time, slowest iteration,
//! outcomes by kind, seed range) on stderr. Inputs that once failed are kept under
//! `fixtures/fuzz/<target>/` and replayed by `fuzz_regressions_issue_9`.

mod fuzzing;

use fuzzing::{campaign, replay, Budget};

#[test]
fn fuzz_tar() {
    campaign(&mut fuzzing::tar::Tar::new(), &Budget::from_env(10_000));
}

#[test]
fn fuzz_torrent() {
    campaign(
        &mut fuzzing::torrent::Torrent::new(),
        &Budget::from_env(150_000),
    );
}

#[test]
fn fuzz_manifest() {
    campaign(
        &mut fuzzing::manifest::Manifest::new(),
        &Budget::from_env(25_000),
    );
}

#[test]
fn fuzz_snapshot() {
    campaign(
        &mut fuzzing::snapshot::Snapshots::new(),
        &Budget::from_env(15_000),
    );
}

#[test]
fn fuzz_wire_issue_10() {
    campaign(&mut fuzzing::wire::Wire::new(), &Budget::from_env(20_000));
}

/// Every input a campaign ever failed on, replayed against the same properties.
#[test]
fn fuzz_regressions_issue_9() {
    let n = replay(&mut fuzzing::tar::Tar::new())
        + replay(&mut fuzzing::torrent::Torrent::new())
        + replay(&mut fuzzing::manifest::Manifest::new())
        + replay(&mut fuzzing::snapshot::Snapshots::new())
        + replay(&mut fuzzing::wire::Wire::new());
    eprintln!("fuzz: replayed {n} regression inputs");
}
