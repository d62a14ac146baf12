//! Benchmarks, each printed next to a baseline measured in the same run.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

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

fn warm(dir: &Path) -> Result<()> {
    // Flush dirty pages of earlier runs (their writeback would otherwise land on whichever
    // contender runs next), then read everything once so both start from the same page cache.
    Command::new("sync").status()?;
    let status = Command::new("tar")
        .args(["-cf", "/dev/null", "-C"])
        .arg(dir)
        .arg(".")
        .status()?;
    if !status.success() {
        bail!("cannot read {}", dir.display());
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat $(find '{}' -type f) > /dev/null",
            dir.display()
        ))
        .status()?;
    if !status.success() {
        bail!("cannot read {}", dir.display());
    }
    Ok(())
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
    let runs: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(3);
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
    println!(
        "bench pack: {:.0} MiB package ({} MiB file + {} files of 64 KiB), {} runs each, median shown",
        util::mib(content),
        big_mib,
        small,
        runs
    );
    let mut dist_runs = Vec::new();
    let mut base_runs = Vec::new();
    for i in 0..runs {
        warm(&pkg)?;
        let out = tmp.join(format!("dist-{i}.tar"));
        let d = util::measure(
            Command::new(&dist)
                .arg("--quiet")
                .arg("pack")
                .arg(&pkg)
                .arg("-o")
                .arg(&out)
                .stdout(Stdio::null()),
        )?;
        fs::remove_file(&out)?;
        fs::remove_file(tmp.join(format!("dist-{i}.tar.torrent")))?;
        warm(&pkg)?;
        let b = baseline(&pkg, &tmp.join(format!("base-{i}.tar")))?;
        dist_runs.push(d);
        base_runs.push(b);
    }
    let d = median(&dist_runs);
    let b = median(&base_runs);
    println!("{:<44} {:>10} {:>14}", "", "wall", "peak RSS");
    println!(
        "{:<44} {:>9.2}s {:>10.1} MiB",
        "dist pack",
        d.wall.as_secs_f64(),
        d.max_rss_kib as f64 / 1024.0
    );
    println!(
        "{:<44} {:>9.2}s {:>10.1} MiB",
        "tar --sort=name + b3sum + transmission-create",
        b.wall.as_secs_f64(),
        b.max_rss_kib as f64 / 1024.0
    );
    println!(
        "ratio dist/pipeline: {:.2}x time (target <= 0.5), dist peak RSS {:.1} MiB (target <= 64)",
        d.wall.as_secs_f64() / b.wall.as_secs_f64(),
        d.max_rss_kib as f64 / 1024.0
    );
    fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// The standard-tools pipeline: deterministic tar, then b3sum, then transmission-create.
/// Wall time is the sum; peak RSS is the largest of the three.
fn baseline(pkg: &Path, out: &Path) -> Result<Measured> {
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
    Ok(Measured {
        wall: tar.wall + b3.wall + tc.wall,
        max_rss_kib: tar.max_rss_kib.max(b3.max_rss_kib).max(tc.max_rss_kib),
    })
}

fn median(v: &[Measured]) -> Measured {
    let mut s = v.to_vec();
    s.sort_by_key(|m| m.wall);
    let mut rss: Vec<u64> = v.iter().map(|m| m.max_rss_kib).collect();
    rss.sort();
    Measured {
        wall: s[s.len() / 2].wall,
        max_rss_kib: rss[rss.len() / 2],
    }
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
    let mut batches = std::time::Duration::ZERO;
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
