//! `cargo xtask bench profile [--packages N] [--files F] [--runs R] [--baseline BIN] [--dir DIR]`: what a
//! generation switch costs in a profile of N (500) packages of F (40) files each (20,000 linked
//! files), by where the files are (issue 26), measured side by side in one run, each layout in
//! its own client root, rounds interleaved:
//! - `bin`: every file in `bin/`, what a profile held before issue 26 (the baseline);
//! - `trees`: spread the way a Debian package spreads them (2 programs, which are dynamically
//!   linked ELF headers, so they get launchers; 8 libraries in `lib/<triplet>/`, 3 manual pages,
//!   3 completions, a desktop file and an icon, 20 files of `share/doc/<name>/` and 2 of
//!   `etc/<name>/`, both directories of their own);
//! - `shared`: the worst case, every file in a directory all packages share (each is a link).
//!
//! A round installs one more small package into each root (`install --json`: the `switch`
//! phase, which merges the trees and builds and renames the generation, and the command's
//! wall time), then uninstalls it (wall time). Old generations are not collected during the
//! rounds: on this machine's ext4 (no journal), creating inodes within a minute or more of
//! deleting tens of thousands (a `gc` of such generations) makes the allocator check every
//! recently deleted inode (`recently_deleted` in `find_inode_bit`, seconds of system time in
//! `perf`), which would measure the previous round's deletions, not the switch. Besides the wall times, the CPU time (user + system) of the install,
//! which the disk's flushes for other processes do not blur. With `--baseline`, another `dist`
//! binary (an older build) runs the `bin` layout in a fourth root. With `--dir`, the client roots
//! are made in DIR (a tmpfs such as /dev/shm/x takes the disk out of the figures) and left there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::lab::args::Usage;
use crate::lab::env::{in_namespace, ms, p50, Env};
use crate::lab::packages::Package;
use crate::lab::server::with_server;
use crate::netns::HTTP;

const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench profile [--packages N] [--files F] [--runs R] [--baseline BIN] [--dir DIR]",
    values: &["--packages", "--files", "--runs", "--baseline", "--dir"],
    switches: &[],
    positionals: 0,
};

struct Args {
    packages: usize,
    files: usize,
    runs: usize,
    baseline: Option<PathBuf>,
    dir: Option<PathBuf>,
}

fn parse(args: &[&str]) -> Result<Args> {
    let a = USAGE.parse(args)?;
    let files = a.value_or("--files", 40)?;
    if files < 40 {
        return Err(a.error("--files must be at least 40 (the `trees` layout's spread)"));
    }
    Ok(Args {
        packages: a.value_or("--packages", 500)?,
        files,
        runs: a.value_or("--runs", 9)?,
        baseline: a.value("--baseline")?,
        dir: a.value("--dir")?,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Bin,
    Trees,
    Shared,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Bin => "bin",
            Layout::Trees => "trees",
            Layout::Shared => "shared",
        }
    }

    /// The assets of package `name` in this layout: `files` paths under `assets/`.
    fn paths(self, name: &str, files: usize) -> Vec<String> {
        let mut v = Vec::new();
        let mut put = |dir: &str, n: usize, ext: &str| {
            for k in 0..n {
                v.push(format!("{dir}/{name}-{k}{ext}"));
            }
        };
        match self {
            Layout::Bin => put("bin", files, ""),
            Layout::Trees => {
                put("bin", 2, "");
                put("lib/x86_64-linux-gnu", 8, ".so.1");
                put("share/man/man1", 3, ".1.gz");
                put("share/bash-completion/completions", 1, "");
                put("share/zsh/site-functions", 1, "");
                put("share/fish/vendor_completions.d", 1, ".fish");
                put("share/applications", 1, ".desktop");
                put("share/icons/hicolor/48x48/apps", 1, ".png");
                put(&format!("etc/{name}"), 2, ".conf");
                put(&format!("share/doc/{name}"), files - 20, "");
            }
            Layout::Shared => {
                put("bin", 2, "");
                put("lib/x86_64-linux-gnu", files - 22, ".so.1");
                put("share/man/man1", 10, ".1.gz");
                put("share/applications", 5, ".desktop");
                put("etc", 5, ".conf");
            }
        }
        v
    }
}

/// 64-bit ELF header with one `PT_INTERP` program header: what a launcher is made for.
fn dynamic_elf() -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    b[64..68].copy_from_slice(&3u32.to_le_bytes());
    b
}

/// Package `name` with `paths` under `assets/`: each `bin/` file a dynamically linked ELF
/// header (mode 0755), every other file its own path.
fn package(name: &str, paths: &[String]) -> Package {
    let elf = dynamic_elf();
    paths.iter().fold(Package::new(name, "1.0.0"), |p, path| {
        if path.starts_with("bin/") {
            p.executable(path, elf.clone())
        } else {
            p.file(path, path.as_bytes())
        }
    })
}

/// One client root: a binary, a layout, and what it measured.
struct Contender {
    label: String,
    dist: PathBuf,
    layout: Layout,
    root: PathBuf,
    switch: Vec<Duration>,
    install: Vec<Duration>,
    install_cpu: Vec<Duration>,
    uninstall: Vec<Duration>,
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    in_namespace("profile", |env| measure(env, &a))
}

fn measure(env: &Env, a: &Args) -> Result<()> {
    let (repo, pkgs) = (env.tmp.join("repo"), env.tmp.join("pkgs"));
    let layouts = [Layout::Bin, Layout::Trees, Layout::Shared];
    let mut dirs = Vec::new();
    for l in layouts {
        for i in 0..a.packages {
            let name = format!("{}-{i:04}", l.name());
            dirs.push(package(&name, &l.paths(&name, a.files)).write(&pkgs.join(&name))?);
        }
        let extra = format!("{}-extra", l.name());
        let readme = [format!("share/doc/{extra}/README")];
        dirs.push(package(&extra, &readme).write(&pkgs.join(&extra))?);
    }
    let (took, _) = env.dist(&repo, &add_args(&dirs))?;
    println!(
        "profile: {} packages of {} files per layout added in {}",
        a.packages,
        a.files,
        ms(took)
    );
    let key = env.dist(&repo, &["key", "show"])?.1.trim().to_string();
    with_server(env, &repo, || {
        let mut cs = Vec::new();
        for l in layouts {
            cs.push(contender(env, a, &key, l.name().into(), &env.dist, l)?);
        }
        if let Some(b) = &a.baseline {
            cs.push(contender(
                env,
                a,
                &key,
                "bin (baseline)".into(),
                b,
                Layout::Bin,
            )?);
        }
        for _ in 0..a.runs {
            for c in cs.iter_mut() {
                round(env, c)?;
            }
        }
        report(&cs);
        Ok(())
    })
}

fn add_args(dirs: &[PathBuf]) -> Vec<&str> {
    let mut v = vec!["add", "--create"];
    v.extend(dirs.iter().map(|d| d.to_str().expect("a UTF-8 temp path")));
    v
}

/// A synced client root for `layout` with its N packages installed (over HTTP, no seeding).
fn contender(
    env: &Env,
    a: &Args,
    key: &str,
    label: String,
    dist: &Path,
    layout: Layout,
) -> Result<Contender> {
    let parent = a.dir.as_deref().unwrap_or(&env.tmp);
    let root = parent.join(format!("client-{}", label.replace([' ', '(', ')'], "")));
    fs::create_dir_all(&root)?;
    fs::write(
        root.join("client.yaml"),
        format!("server_url: http://{HTTP}\npublic_key: {key}\ntransport: http\nseed: false\n"),
    )?;
    env.run_with(dist, &root, &["sync"])?;
    let names: Vec<String> = (0..a.packages)
        .map(|i| format!("{}-{i:04}", layout.name()))
        .collect();
    let mut args = vec!["install"];
    args.extend(names.iter().map(String::as_str));
    let (took, _) = env.run_with(dist, &root, &args)?;
    println!("{label}: {} packages installed in {}", a.packages, ms(took));
    Ok(Contender {
        label,
        dist: dist.to_path_buf(),
        layout,
        root,
        switch: Vec::new(),
        install: Vec::new(),
        install_cpu: Vec::new(),
        uninstall: Vec::new(),
    })
}

/// One round for one root: install the extra package (switch phase, wall), uninstall it
/// (wall).
fn round(env: &Env, c: &mut Contender) -> Result<()> {
    let extra = format!("{}-extra", c.layout.name());
    let out_path = c.root.with_extension("install.json");
    let m = crate::util::measure(
        env.ns
            .command(&c.dist)
            .arg("--root")
            .arg(&c.root)
            .args(["--quiet", "install", "--json", &extra])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path)?),
    )?;
    let out = fs::read_to_string(&out_path)?;
    let v: serde_json::Value = serde_json::from_str(&out).context("install --json")?;
    let switch = v
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == extra.as_str()))
        .and_then(|p| p["phases_ms"]["switch"].as_f64())
        .with_context(|| format!("no phases_ms.switch in {out}"))?;
    c.switch.push(Duration::from_secs_f64(switch / 1000.0));
    c.install.push(m.wall);
    c.install_cpu.push(m.cpu());
    let (wall, _) = env.run_with(&c.dist, &c.root, &["uninstall", &extra])?;
    c.uninstall.push(wall);
    Ok(())
}

/// What the current generation of `root` holds: (links, of them to launchers, directories).
fn census(root: &Path) -> Result<(usize, usize, usize)> {
    let mut n = (0, 0, 0);
    let mut stack = vec![fs::canonicalize(root.join("current"))?];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_symlink() {
                n.0 += 1;
                n.1 += usize::from(fs::read_link(e.path())?.starts_with("../../../launchers"));
            } else if t.is_dir() {
                n.2 += 1;
                stack.push(e.path());
            }
        }
    }
    Ok(n)
}

fn report(cs: &[Contender]) {
    println!(
        "\n| layout | generation: links (to launchers) / dirs | switch p50 | install p50: wall / CPU | uninstall p50 |"
    );
    println!("|---|---|---|---|---|");
    for c in cs {
        let (links, launchers, dirs) = census(&c.root).unwrap_or_default();
        println!(
            "| {} | {links} ({launchers}) / {dirs} | {} | {} / {} | {} |",
            c.label,
            ms(p50(c.switch.clone())),
            ms(p50(c.install.clone())),
            ms(p50(c.install_cpu.clone())),
            ms(p50(c.uninstall.clone()))
        );
    }
    for c in cs {
        let each: Vec<u128> = c.switch.iter().map(|d| d.as_millis()).collect();
        println!("{}: switch of each round {each:?} ms", c.label);
    }
    let ratio = |a: &Contender, b: &Contender, f: fn(&Contender) -> &Vec<Duration>| {
        p50(f(a).clone()).as_secs_f64() / p50(f(b).clone()).as_secs_f64()
    };
    let bin = &cs[0];
    let mut line = vec![format!("runs={}", bin.switch.len())];
    for c in &cs[1..] {
        let tag = c.label.replace(" (baseline)", "_baseline");
        line.push(format!(
            "switch_{tag}_vs_bin={:.3} install_{tag}_vs_bin={:.3} install_cpu_{tag}_vs_bin={:.3}",
            ratio(c, bin, |c| &c.switch),
            ratio(c, bin, |c| &c.install),
            ratio(c, bin, |c| &c.install_cpu)
        ));
    }
    println!("\nprofile: {}", line.join(" "));
}
