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
//!
//! The coverage-guided targets of `fuzz/` (issue 25, `cargo xtask fuzz`) start from the same
//! seeds: `fuzz_seeds_issue_25` writes them into `DIST_FUZZ_SEEDS_OUT` when it is set.

mod fuzzing;

use fuzzing::{campaign, replay, write_seeds, Budget};

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

/// The seed corpora of the coverage-guided targets (issue 25): each stable target's seeds and
/// kept inputs, written into `DIST_FUZZ_SEEDS_OUT/<target>/` (a temp dir when unset, so the
/// test still checks that every target gets seeds).
#[test]
fn fuzz_seeds_issue_25() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::env::var_os("DIST_FUZZ_SEEDS_OUT")
        .map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    let counts = [
        write_seeds(&fuzzing::tar::Tar::new(), &out, &["ustar", "unpack"]),
        write_seeds(&fuzzing::torrent::Torrent::new(), &out, &["torrent"]),
        write_seeds(&fuzzing::manifest::Manifest::new(), &out, &["manifest"]),
        write_seeds(&fuzzing::snapshot::Snapshots::new(), &out, &["snapshot"]),
        write_seeds(&fuzzing::wire::Wire::new(), &out, &["wire"]),
    ];
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    eprintln!("fuzz: wrote {counts:?} seeds into {}", out.display());
}
