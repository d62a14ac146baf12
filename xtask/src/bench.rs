//! Benchmarks, each printed next to a baseline measured in the same run.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::lab::args::Usage;
use crate::lab::packages::Package;
use crate::util::{self, Measured};

pub fn run(args: &[&str]) -> Result<()> {
    match args.first().copied().unwrap_or("pack") {
        "pack" => pack(&args[1.min(args.len())..]),
        "add" => add(),
        "e2e" => crate::bench_e2e::run(),
        "install" => crate::bench_install::run(&args[1..]),
        "profile" => crate::bench_profile::run(&args[1..]),
        "scale" => crate::bench_scale::run(&args[1..]),
        "swarm" => crate::bench_swarm::run(&args[1..]),
        "transport" => crate::bench_transport::run(&args[1..]),
        "resolve" => crate::bench_resolve::run(&args[1..]),
        other => bail!(
            "unknown benchmark `{other}` (try: pack, add, e2e, install, profile, scale, swarm, transport, resolve)"
        ),
    }
}

/// The package of `bench pack`: one `big_mib` MiB file plus `small` files of 64 KiB each, of
/// incompressible content (fixed seeds); and how many bytes its files hold.
fn pack_package(big_mib: u64, small: usize) -> (Package, u64) {
    let mut p = Package::new("bench", "1.0.0").random("big.bin", big_mib << 20, 1);
    for i in 0..small {
        p = p.random(&format!("small/f{i:05}.bin"), 64 << 10, 2 + i as u64);
    }
    (p, (big_mib << 20) + small as u64 * (64 << 10))
}

/// Reads every file under `dir`, so that both contenders find the package in the page cache.
fn warm(dir: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                let mut f = fs::File::open(e.path())?;
                while f.read(&mut buf)? > 0 {}
            }
        }
    }
    Ok(())
}

/// What the page allocator looks like when a contender starts.
///
/// On this VM (Firecracker with free page reporting) memory that has been free for a few
/// seconds is handed back to the host, and the first touch of such a page faults on the host:
/// writing 762 MiB into the page cache in 1 MiB writes then takes 0.9-1.8 s of system time
/// instead of 0.15 s, and which of the two a run gets depends on timing (see `WRITE` in
/// src/pack.rs). `Primed` writes and deletes a scratch file larger than the output right before
/// each run, so every contender gets freshly freed, host-backed pages, as on bare metal.
/// `Settled` waits 5 s instead, so every contender starts from memory handed back to the host:
/// this VM's worst case.
#[derive(Clone, Copy)]
enum Pages {
    Primed,
    Settled,
}

/// Puts the machine in the same state before every measured run: earlier outputs are already
/// deleted; flush dirty pages (their writeback would land on whoever runs next), read the package
/// into the page cache, then prime or settle the page allocator.
fn prepare(pkg: &Path, scratch: &Path, out_bytes: u64, pages: Pages) -> Result<()> {
    Command::new("sync").status()?;
    warm(pkg)?;
    match pages {
        Pages::Primed => {
            let buf = vec![0x5Au8; 1 << 20];
            let mut f = fs::File::create(scratch)?;
            let mut left = out_bytes + out_bytes / 4;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                f.write_all(&buf[..n])?;
                left -= n as u64;
            }
            drop(f);
            // Deleted before writeback, so its pages are freed without touching the disk.
            fs::remove_file(scratch)?;
        }
        Pages::Settled => std::thread::sleep(Duration::from_secs(5)),
    }
    Ok(())
}

/// Busy CPU time of the whole machine since boot, from `/proc/stat` (steal excluded).
fn machine_busy() -> Result<Duration> {
    let stat = fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum();
    Ok(Duration::from_secs_f64(
        ticks as f64 / util::clock_ticks_per_sec(),
    ))
}

/// CPU time the rest of the machine may use during a run of `wall` before the run is taken
/// again: the other engineer's builds and tests share these two cores. Kernel threads and
/// tick-based accounting in `/proc/stat` make up about 0.05 s per second of wall time on an idle
/// machine, hence the allowance growing with the run.
fn interference_limit(wall: Duration) -> Duration {
    Duration::from_millis(100) + wall / 10
}

/// Prepares the machine, runs `f`, and runs it again (up to 3 more times) if other processes
/// used more than `interference_limit` of CPU meanwhile. Returns the measurement, what `f`
/// returned besides it, and the CPU time used by others.
fn clean_run<T>(
    prepare: &dyn Fn() -> Result<()>,
    mut f: impl FnMut() -> Result<(Measured, T)>,
) -> Result<(Measured, T, Duration)> {
    let mut tries = 0;
    loop {
        prepare()?;
        let before = machine_busy()?;
        let (m, extra) = f()?;
        let others = machine_busy()?.saturating_sub(before + m.cpu());
        tries += 1;
        if others <= interference_limit(m.wall) || tries == 4 {
            return Ok((m, extra, others));
        }
        eprintln!(
            "    (other processes used {:.2}s of CPU during a {:.2}s run: taking it again)",
            others.as_secs_f64(),
            m.wall.as_secs_f64()
        );
    }
}

/// One side of the comparison.
enum Contender {
    /// `dist pack` with this binary: the one under test (`base == false`) or BENCH_DIST_BASE.
    Dist { base: bool, bin: PathBuf },
    /// tar + b3sum + transmission-create.
    Pipeline,
}

impl Contender {
    fn name(&self) -> &str {
        match self {
            Contender::Dist { base: false, .. } => "dist pack",
            Contender::Dist { base: true, .. } => "dist pack (BENCH_DIST_BASE)",
            Contender::Pipeline => "tar --sort=name + b3sum + transmission-create",
        }
    }

    fn short(&self) -> &str {
        match self {
            Contender::Dist { base: false, .. } => "dist",
            Contender::Dist { base: true, .. } => "base",
            Contender::Pipeline => "pipeline",
        }
    }
}

/// One iteration's measurement and, for the pipeline, its three stages.
type Run = (Measured, [Measured; 3]);

fn pack(args: &[&str]) -> Result<()> {
    let big_mib: u64 = std::env::var("BENCH_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let small: usize = std::env::var("BENCH_SMALL_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let (runs, pages) = pack_options(args)?;
    check_pipeline_tools()?;
    let contenders = contenders()?;
    let tmp = std::env::temp_dir().join(format!("dist-bench-pack-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let pkg = tmp.join("pkg");
    let (package, content) = pack_package(big_mib, small);
    package.write(&pkg)?;
    println!(
        "bench pack: {:.0} MiB package ({} MiB file + {} files of 64 KiB), dist = {}",
        util::mib(content),
        big_mib,
        small,
        match &contenders[0] {
            Contender::Dist { bin, .. } => bin.display().to_string(),
            Contender::Pipeline => String::new(),
        }
    );
    println!(
        "1 warm-up + {runs} measured iterations, every contender in each, order rotating; before every run: sync, package read, page allocator {}; runs disturbed by other processes are taken again",
        match pages {
            Pages::Primed => "primed (see --cold)",
            Pages::Settled => "settled for 5 s (--cold)",
        }
    );
    let (results, disturbed) = iterate(&contenders, &tmp, content, pages, runs)?;
    report_pack(&contenders, &results, disturbed);
    fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// `[RUNS] [--cold]`.
fn pack_options(args: &[&str]) -> Result<(usize, Pages)> {
    let a = PACK_USAGE.parse(args)?;
    let runs = a.positional(0, "RUNS")?.unwrap_or(5);
    if runs == 0 {
        return Err(a.error("RUNS must be more than 0"));
    }
    let pages = if a.switch("--cold") {
        Pages::Settled
    } else {
        Pages::Primed
    };
    Ok((runs, pages))
}

const PACK_USAGE: Usage = Usage {
    line: "usage: cargo xtask bench pack [RUNS] [--cold]",
    values: &[],
    switches: &["--cold"],
    positionals: 1,
};

fn check_pipeline_tools() -> Result<()> {
    for tool in ["tar", "b3sum", "transmission-create"] {
        if Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            bail!(
                "`{tool}` is needed for the baseline (apt-get install tar b3sum transmission-cli)"
            );
        }
    }
    Ok(())
}

/// This tree's `dist`, an optional second build, and the pipeline (always last).
fn contenders() -> Result<Vec<Contender>> {
    // BENCH_DIST runs a given binary instead of building this tree; BENCH_DIST_BASE adds a
    // second one to the same iterations, to compare two builds under the same conditions.
    let dist = match std::env::var_os("BENCH_DIST") {
        Some(p) => PathBuf::from(p),
        None => util::release_dist()?,
    };
    let mut contenders = vec![Contender::Dist {
        base: false,
        bin: dist,
    }];
    if let Some(base) = std::env::var_os("BENCH_DIST_BASE") {
        contenders.push(Contender::Dist {
            base: true,
            bin: base.into(),
        });
    }
    contenders.push(Contender::Pipeline);
    Ok(contenders)
}

/// A warm-up and `runs` iterations, every contender in each, in rotating order. Returns the
/// measured runs per contender and how many were disturbed by other processes.
fn iterate(
    contenders: &[Contender],
    tmp: &Path,
    content: u64,
    pages: Pages,
    runs: usize,
) -> Result<(Vec<Vec<Run>>, usize)> {
    let (pkg, scratch, out) = (tmp.join("pkg"), tmp.join("scratch"), tmp.join("out.tar"));
    let prepare = || prepare(&pkg, &scratch, content, pages);
    let n = contenders.len();
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); n];
    let mut disturbed = 0;
    for i in 0..=runs {
        let mut line = if i == 0 {
            "  warm-up ".to_string()
        } else {
            format!("  run {i:<4}")
        };
        for turn in 0..n {
            let c = (i + turn) % n;
            let (m, stages, others) = match &contenders[c] {
                Contender::Dist { bin, .. } => clean_run(&prepare, || {
                    let m = dist_pack(bin, &pkg, &out)?;
                    Ok((m, [m; 3]))
                })?,
                Contender::Pipeline => clean_run(&prepare, || baseline(&pkg, &out))?,
            };
            if others > interference_limit(m.wall) {
                disturbed += 1;
            }
            line += &format!(
                " | {} {:.2}s wall {:.2}s cpu (others {:.2}s)",
                contenders[c].short(),
                m.wall.as_secs_f64(),
                m.cpu().as_secs_f64(),
                others.as_secs_f64()
            );
            if i > 0 {
                results[c].push((m, stages));
            }
        }
        eprintln!("{line}");
    }
    Ok((results, disturbed))
}

/// The table: min/median/max per contender, the pipeline's stages, paired ratios, peak RSS.
fn report_pack(contenders: &[Contender], results: &[Vec<Run>], disturbed: usize) {
    let n = contenders.len();
    println!(
        "{:<46} {:>22} {:>22} {:>10}",
        "", "wall s min/med/max", "user+sys s min/med/max", "peak RSS"
    );
    for (c, runs) in contenders.iter().zip(results) {
        let rss = runs.iter().map(|r| r.0.max_rss_kib).max().unwrap_or(0);
        println!(
            "{:<46} {:>22} {:>22} {:>6.1} MiB",
            c.name(),
            spread(runs.iter().map(|r| r.0.wall)),
            spread(runs.iter().map(|r| r.0.cpu())),
            rss as f64 / 1024.0
        );
    }
    let pipeline = &results[n - 1];
    for (k, name) in ["  tar", "  b3sum", "  transmission-create"]
        .iter()
        .enumerate()
    {
        println!(
            "{:<46} {:>22} {:>22}",
            name,
            spread(pipeline.iter().map(|r| r.1[k].wall)),
            spread(pipeline.iter().map(|r| r.1[k].cpu())),
        );
    }
    // Paired ratios: the runs of one iteration saw the same machine, so these are steadier than
    // a ratio of medians when the VM drifts.
    let paired = |runs: &[Run], num: &dyn Fn(&Measured) -> f64, den: &dyn Fn(&Run) -> f64| {
        let mut r: Vec<f64> = runs
            .iter()
            .zip(pipeline)
            .map(|(d, b)| num(&d.0) / den(b))
            .collect();
        r.sort_by(f64::total_cmp);
        format!("{:.2} {:.2} {:.2}", r[0], r[r.len() / 2], r[r.len() - 1])
    };
    for (c, runs) in contenders.iter().zip(results).take(n - 1) {
        println!(
            "{} / pipeline per iteration, min/med/max: wall {} (target <= 0.5), user+sys {}",
            c.name(),
            paired(runs, &|m| m.wall.as_secs_f64(), &|b| b.0.wall.as_secs_f64()),
            paired(runs, &|m| m.cpu().as_secs_f64(), &|b| b
                .0
                .cpu()
                .as_secs_f64()),
        );
        // transmission-create 3.00 waits for its hashing thread with tr_wait_msec(500), so its
        // wall time comes in 0.5 s steps; counting its CPU time instead shows how much of the
        // pipeline's wall time that polling accounts for.
        println!(
            "  wall, with transmission-create's CPU time in place of its 500 ms-polled wall time: {}",
            paired(runs, &|m| m.wall.as_secs_f64(), &|b| {
                let s = &b.1;
                (s[0].wall + s[1].wall + s[2].cpu().min(s[2].wall)).as_secs_f64()
            })
        );
    }
    let d_rss = results[0]
        .iter()
        .map(|r| r.0.max_rss_kib)
        .max()
        .unwrap_or(0);
    println!(
        "dist peak RSS {:.1} MiB (target <= 64); runs still disturbed by other processes after 4 tries: {disturbed}",
        d_rss as f64 / 1024.0
    );
}

/// "min / median / max" of some durations, in seconds.
fn spread(v: impl Iterator<Item = Duration>) -> String {
    let mut v: Vec<Duration> = v.collect();
    v.sort();
    format!(
        "{:.2} {:.2} {:.2}",
        v[0].as_secs_f64(),
        v[v.len() / 2].as_secs_f64(),
        v[v.len() - 1].as_secs_f64()
    )
}

fn dist_pack(dist: &Path, pkg: &Path, out: &Path) -> Result<Measured> {
    let m = util::measure(
        Command::new(dist)
            .arg("--quiet")
            .arg("pack")
            .arg(pkg)
            .arg("-o")
            .arg(out)
            .stdout(Stdio::null()),
    )?;
    fs::remove_file(out)?;
    let mut torrent = out.as_os_str().to_owned();
    torrent.push(".torrent");
    fs::remove_file(torrent)?;
    Ok(m)
}

/// The standard-tools pipeline: deterministic tar, then b3sum, then transmission-create.
/// Wall and CPU time are the sums; peak RSS is the largest of the three. Also returns each stage.
fn baseline(pkg: &Path, out: &Path) -> Result<(Measured, [Measured; 3])> {
    let tar = util::measure(
        Command::new("tar")
            .args([
                "--sort=name",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-cf",
            ])
            .arg(out)
            .arg("-C")
            .arg(pkg)
            .arg("."),
    )?;
    let b3 = util::measure(Command::new("b3sum").arg(out).stdout(Stdio::null()))?;
    let torrent = out.with_extension("torrent");
    let tc = util::measure(
        Command::new("transmission-create")
            .arg("-o")
            .arg(&torrent)
            .arg(out)
            .stdout(Stdio::null()),
    )?;
    fs::remove_file(out)?;
    fs::remove_file(&torrent)?;
    let stages = [tar, b3, tc];
    let total = Measured {
        wall: stages.iter().map(|m| m.wall).sum(),
        user: stages.iter().map(|m| m.user).sum(),
        sys: stages.iter().map(|m| m.sys).sum(),
        max_rss_kib: stages.iter().map(|m| m.max_rss_kib).max().unwrap_or(0),
    };
    Ok((total, stages))
}

/// `dist add` of 1,000 small packages in one batch (and in batches of 100), next to the
/// standard tools doing only the packing part for the same packages (tar + b3sum +
/// transmission-create per package).
fn add() -> Result<()> {
    let n: usize = std::env::var("BENCH_PACKAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-bench-add-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let mut dirs = Vec::new();
    for i in 0..n {
        let p = Package::new(format!("pkg{i:04}"), format!("1.0.{i}"))
            .description(format!("bench package {i}"))
            .file("bin/tool", format!("#!/bin/sh\necho {i}\n"))
            .file("data.txt", format!("{}\n", "x".repeat(1000 + i)));
        dirs.push(p.write(&tmp.join(format!("pkgs/p{i:04}")))?);
    }
    Command::new("sync").status()?;
    util::repo_init(&dist, &tmp.join("root1"))?;
    util::repo_init(&dist, &tmp.join("root2"))?;
    let one = util::measure(
        Command::new(&dist)
            .arg("--root")
            .arg(tmp.join("root1"))
            .arg("add")
            .args(&dirs)
            .stdout(Stdio::null()),
    )?;
    let mut batches = Duration::ZERO;
    for chunk in dirs.chunks(100) {
        let m = util::measure(
            Command::new(&dist)
                .arg("--root")
                .arg(tmp.join("root2"))
                .arg("add")
                .args(chunk)
                .stdout(Stdio::null()),
        )?;
        batches += m.wall;
    }
    let script = format!(
        "set -e; for d in {}/pkgs/*; do b=$(basename $d); tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf {}/out/$b.tar -C $d .; b3sum {}/out/$b.tar >/dev/null; transmission-create -o {}/out/$b.torrent {}/out/$b.tar >/dev/null; done",
        tmp.display(), tmp.display(), tmp.display(), tmp.display(), tmp.display()
    );
    fs::create_dir_all(tmp.join("out"))?;
    let base = util::measure(Command::new("sh").arg("-c").arg(&script))?;
    println!("bench add: {n} small packages (~1-2 KiB each)");
    println!(
        "{:<52} {:>9.2}s  ({:.1} ms/package, peak RSS {:.1} MiB)",
        format!("dist add, one batch of {n}"),
        one.wall.as_secs_f64(),
        one.wall.as_secs_f64() * 1000.0 / n as f64,
        one.max_rss_kib as f64 / 1024.0
    );
    println!(
        "{:<52} {:>9.2}s  ({:.1} ms/package)",
        format!("dist add, {} batches of 100", n.div_ceil(100)),
        batches.as_secs_f64(),
        batches.as_secs_f64() * 1000.0 / n as f64
    );
    println!(
        "{:<52} {:>9.2}s  ({:.1} ms/package)",
        "baseline: tar + b3sum + transmission-create each",
        base.wall.as_secs_f64(),
        base.wall.as_secs_f64() * 1000.0 / n as f64
    );
    fs::remove_dir_all(&tmp)?;
    Ok(())
}
