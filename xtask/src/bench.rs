//! Benchmarks, each printed next to a baseline measured in the same run.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util::{self, Measured};

pub fn run(args: &[&str]) -> Result<()> {
    match args.first().copied().unwrap_or("pack") {
        "pack" => pack(&args[1.min(args.len())..]),
        "add" => add(),
        other => bail!("unknown benchmark `{other}` (try: pack, add)"),
    }
}

/// Writes a package of one `big_mib` MiB file plus `small` files of 64 KiB each.
fn generate(dir: &Path, big_mib: usize, small: usize) -> Result<u64> {
    fs::create_dir_all(dir.join("assets/small"))?;
    fs::create_dir_all(dir.join("scripts"))?;
    fs::write(dir.join("manifest.yaml"), "name: bench\nversion: 1.0.0\n")?;
    fs::write(dir.join("scripts/install.sh"), "#!/bin/sh\n")?;
    fs::write(dir.join("scripts/uninstall.sh"), "#!/bin/sh\n")?;
    // Pseudo-random, incompressible, reproducible content (xorshift).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut fill = |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
    };
    let mut total = 0u64;
    let mut big = fs::File::create(dir.join("assets/big.bin"))?;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..big_mib {
        fill(&mut buf);
        big.write_all(&buf)?;
        total += buf.len() as u64;
    }
    let mut small_buf = vec![0u8; 64 << 10];
    for i in 0..small {
        fill(&mut small_buf);
        fs::write(dir.join(format!("assets/small/f{i:05}.bin")), &small_buf)?;
        total += small_buf.len() as u64;
    }
    Ok(total)
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
/// On this VM (Firecracker with free page reporting) memory freed more than ~2 s ago has been
/// handed back to the host, and the first touch of such a page costs a host fault: writing
/// 762 MiB into the page cache then takes 0.9-1.8 s of system time instead of 0.15 s, and which
/// of the two a run gets depends on timing. `Primed` writes and deletes a scratch file as large as
/// the output right before each run, so every contender gets freshly freed, host-backed pages
/// (as on bare metal; stable to a few percent). `Settled` waits instead, so every contender pays
/// the host faults (this VM's worst case; noisier).
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

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Dist,
    Pipeline,
}

fn pack(args: &[&str]) -> Result<()> {
    let big_mib: usize = std::env::var("BENCH_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let small: usize = std::env::var("BENCH_SMALL_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mut runs = 5usize;
    let mut pages = Pages::Primed;
    for a in args {
        match *a {
            "--cold" => pages = Pages::Settled,
            n => {
                runs = n.parse().ok().filter(|&n| n > 0).with_context(|| {
                    format!("usage: cargo xtask bench pack [RUNS] [--cold], not `{n}`")
                })?
            }
        }
    }
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
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-bench-pack-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let pkg = tmp.join("pkg");
    let content = generate(&pkg, big_mib, small).context("cannot generate the package")?;
    let scratch = tmp.join("scratch");
    let out = tmp.join("out.tar");
    println!(
        "bench pack: {:.0} MiB package ({} MiB file + {} files of 64 KiB)",
        util::mib(content),
        big_mib,
        small,
    );
    println!(
        "1 warm-up + {runs} measured iterations, each runs both contenders, order alternating; before every run: outputs deleted, sync, package read, page allocator {}",
        match pages {
            Pages::Primed => "primed (see --cold)",
            Pages::Settled => "settled 5 s (--cold)",
        }
    );
    let mut dist_runs = Vec::new();
    let mut base_runs = Vec::new();
    let mut stages = Vec::new();
    for i in 0..=runs {
        let order = if i % 2 == 0 {
            [Contender::Dist, Contender::Pipeline]
        } else {
            [Contender::Pipeline, Contender::Dist]
        };
        let (mut d, mut b) = (None, None);
        for c in order {
            prepare(&pkg, &scratch, content, pages)?;
            match c {
                Contender::Dist => d = Some(dist_pack(&dist, &pkg, &out)?),
                Contender::Pipeline => b = Some(baseline(&pkg, &out)?),
            }
        }
        let (d, (b, st)) = (d.expect("dist ran"), b.expect("pipeline ran"));
        eprintln!(
            "  {}: dist {:.2}s wall {:.2}s cpu, pipeline {:.2}s wall {:.2}s cpu",
            if i == 0 {
                "warm-up".to_string()
            } else {
                format!("run {i}")
            },
            d.wall.as_secs_f64(),
            d.cpu().as_secs_f64(),
            b.wall.as_secs_f64(),
            b.cpu().as_secs_f64(),
        );
        if i > 0 {
            dist_runs.push(d);
            base_runs.push(b);
            stages.push(st);
        }
    }
    let pipeline_name = "tar --sort=name + b3sum + transmission-create";
    println!(
        "{:<46} {:>22} {:>22} {:>10}",
        "", "wall s min/med/max", "user+sys s min/med/max", "peak RSS"
    );
    for (name, v) in [("dist pack", &dist_runs), (pipeline_name, &base_runs)] {
        let rss = v.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
        println!(
            "{:<46} {:>22} {:>22} {:>6.1} MiB",
            name,
            spread(v.iter().map(|m| m.wall)),
            spread(v.iter().map(Measured::cpu)),
            rss as f64 / 1024.0
        );
    }
    for (k, name) in ["  tar", "  b3sum", "  transmission-create"]
        .iter()
        .enumerate()
    {
        println!(
            "{:<46} {:>22} {:>22}",
            name,
            spread(stages.iter().map(|s: &[Measured; 3]| s[k].wall)),
            spread(stages.iter().map(|s: &[Measured; 3]| s[k].cpu())),
        );
    }
    // Paired ratios: each iteration's two runs saw the same machine state, so the ratio is
    // steadier than a ratio of medians when the VM drifts.
    let mut ratios: Vec<f64> = dist_runs
        .iter()
        .zip(&base_runs)
        .map(|(d, b)| d.wall.as_secs_f64() / b.wall.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let d_rss = dist_runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
    println!(
        "ratio dist/pipeline wall, per iteration: min {:.2} median {:.2} max {:.2} (target <= 0.5); dist peak RSS {:.1} MiB (target <= 64)",
        ratios[0],
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1],
        d_rss as f64 / 1024.0
    );
    fs::remove_dir_all(&tmp)?;
    Ok(())
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
        let d = tmp.join(format!("pkgs/p{i:04}"));
        fs::create_dir_all(d.join("assets/bin"))?;
        fs::create_dir_all(d.join("scripts"))?;
        fs::write(
            d.join("manifest.yaml"),
            format!("name: pkg{i:04}\nversion: 1.0.{i}\ndescription: bench package {i}\n"),
        )?;
        fs::write(d.join("assets/bin/tool"), format!("#!/bin/sh\necho {i}\n"))?;
        fs::write(
            d.join("assets/data.txt"),
            format!("{}\n", "x".repeat(1000 + i)),
        )?;
        fs::write(d.join("scripts/install.sh"), "#!/bin/sh\n")?;
        fs::write(d.join("scripts/uninstall.sh"), "#!/bin/sh\n")?;
        dirs.push(d);
    }
    Command::new("sync").status()?;
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
