//! `cargo xtask bench scale [N] [--baseline BIN] [--serve-cap SECS]` (issue 10): a repository of
//! N synthetic packages (default 100,000; one small file each), and from one run:
//! - `dist add` of all of them (`--from`, batches of 10,000): time and peak RSS; one more
//!   package into the full index;
//! - the snapshot, raw and as published;
//! - `dist serve` until `/health` is 200, cold and on restart, and the RSS of serve + tracker +
//!   seeder then;
//! - `dist sync` bytes on the wire: first sync, after one added package, unchanged;
//! - `search` and `info` p50 over the synced index;
//! - the web catalog (`GET /`, its last page, a search, a package page) p50, next to
//!   `/index.json` in the same run (a file the server hands out as it is: the cost of a request
//!   itself);
//! - the size of `published/` after 20 publishes, against one published snapshot.
//!
//! `--check` fails the run unless every figure of this build was measured and sync took the
//! delta and 304 paths (`cargo xtask test` runs it at N = 300 as a smoke test).
//!
//! With `--baseline BIN`, another `dist` (e.g. a build of the commit before this work) runs the
//! same steps on its own repository of the same packages, side by side; what it cannot do in
//! `--serve-cap` seconds (default 300) is reported as such. Everything runs on loopback with
//! free ports; nothing is left running.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::lab::args::Usage;
use crate::lab::packages::Package;
use crate::util::{self, Measured};

mod serve;

use serve::{dist, http_get, Ports, Serve};

const BATCH: usize = 10_000;
const QUERY_RUNS: usize = 21;
const PUBLISHES: usize = 20;
const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench scale [N] [--baseline BIN] [--serve-cap SECS] [--check]",
    values: &["--baseline", "--serve-cap"],
    switches: &["--check"],
    positionals: 1,
};

struct Args {
    n: usize,
    baseline: Option<PathBuf>,
    serve_cap: Duration,
    /// Fail unless every figure of this build was measured and sync took the expected paths
    /// (the smoke run of `cargo xtask test`).
    check: bool,
}

fn parse(args: &[&str]) -> Result<Args> {
    let a = USAGE.parse(args)?;
    Ok(Args {
        n: a.positional(0, "N")?.unwrap_or(100_000),
        baseline: a.value("--baseline")?,
        serve_cap: Duration::from_secs(a.value_or("--serve-cap", 300)?),
        check: a.switch("--check"),
    })
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let this = util::release_dist()?;
    let work = tempfile::Builder::new()
        .prefix("dist-bench-scale-")
        .tempdir()?;
    let pkgs = work.path().join("pkgs");
    eprintln!("generating {} packages in {}", a.n, pkgs.display());
    let lists = generate(&pkgs, a.n)?;
    let mut rows = vec![(
        "this",
        measure(&this, work.path(), "this", &lists, &pkgs, &a)?,
    )];
    if let Some(b) = &a.baseline {
        // What the baseline cannot do is a figure too: its row shows what it measured.
        match measure(b, work.path(), "baseline", &lists, &pkgs, &a) {
            Ok(f) => rows.push(("baseline", f)),
            Err(e) => eprintln!("[baseline] stopped: {e:#}"),
        }
    }
    println!("this: {}", this.display());
    if let Some(b) = &a.baseline {
        println!("baseline: {}", b.display());
    }
    report(a.n, &rows);
    if a.check {
        check(&rows[0].1)?;
    }
    Ok(())
}

/// The smoke run's verdict: everything measured, and sync by snapshot, delta and 304.
fn check(f: &Figures) -> Result<()> {
    let missing: Vec<&str> = [
        ("add", f.add.is_none()),
        ("add one", f.add_one.is_none()),
        ("serve cold", f.serve_cold.is_none()),
        ("serve restart", f.serve_restart.is_none()),
        ("serve stop", f.serve_stop.is_none()),
        ("RSS", f.rss_kib.is_none()),
        ("initial sync", f.sync_initial.is_none()),
        ("search", f.search_p50.is_none()),
        ("info", f.info_p50.is_none()),
        ("catalog", f.catalog.is_none()),
        ("published/", f.published_after.is_none()),
    ]
    .into_iter()
    .filter_map(|(what, gone)| gone.then_some(what))
    .collect();
    if !missing.is_empty() {
        bail!("bench scale: not measured: {}", missing.join(", "));
    }
    let mode = |s: &Option<(u64, String)>| s.as_ref().map(|(b, m)| (*b, m.clone()));
    match (mode(&f.sync_after_one), mode(&f.sync_unchanged)) {
        (Some((_, m1)), Some((0, m2))) if m1 == "delta" && m2 == "unchanged" => Ok(()),
        other => bail!("bench scale: sync after one add / unchanged were {other:?}, expected a delta and 0 bytes unchanged"),
    }
}

/// Writes `n` package directories and the `--from` lists of `BATCH` directories each.
fn generate(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let mut lists = Vec::new();
    let mut list = String::new();
    for i in 0..n {
        let d = package(&format!("pkg-{i:06}"), "1.0.0").write_in(dir)?;
        list.push_str(&format!("{}\n", d.display()));
        if (i + 1) % BATCH == 0 || i + 1 == n {
            let path = dir.join(format!("list-{}.txt", lists.len()));
            fs::write(&path, std::mem::take(&mut list))?;
            lists.push(path);
        }
    }
    Ok(lists)
}

/// A synthetic package of one small file, described.
fn package(name: &str, version: &str) -> Package {
    Package::tiny(name, version)
        .description(format!("synthetic package {name} of the scale benchmark"))
}

/// What one contender measured; `None` where it could not (said in the report).
#[derive(Default)]
struct Figures {
    add: Option<Measured>,
    add_one: Option<Duration>,
    snapshot_raw: Option<u64>,
    snapshot_published: Option<u64>,
    serve_cold: Option<Duration>,
    serve_restart: Option<Duration>,
    /// SIGTERM to exit (`None`: killed after a minute).
    serve_stop: Option<Duration>,
    rss_kib: Option<u64>,
    sync_initial: Option<u64>,
    sync_after_one: Option<(u64, String)>,
    sync_unchanged: Option<(u64, String)>,
    search_p50: Option<Duration>,
    info_p50: Option<Duration>,
    /// p50 of `GET /index.json` (baseline), `/`, the last page, a search and a package page.
    catalog: Option<[Duration; 5]>,
    published_after: Option<u64>,
}

fn measure(
    bin: &Path,
    work: &Path,
    label: &str,
    lists: &[PathBuf],
    pkgs: &Path,
    a: &Args,
) -> Result<Figures> {
    let repo = work.join(format!("{label}-repo"));
    let mut f = Figures::default();
    util::repo_init(bin, &repo)?;
    eprintln!("[{label}] dist add of {} packages", a.n);
    f.add = add_all(bin, &repo, lists)?;
    let key = String::from_utf8(dist(bin, &repo).args(["key", "show"]).output()?.stdout)?
        .trim()
        .to_string();
    (f.snapshot_raw, f.snapshot_published) = snapshot_sizes(&repo)?;

    eprintln!("[{label}] dist serve, cold");
    let ports = Ports::new()?;
    let mut server = Serve::start(bin, &repo, &ports, work.join(format!("{label}-serve.log")))?;
    f.serve_cold = server.wait_healthy(a.serve_cap)?;
    if f.serve_cold.is_some() {
        f.rss_kib = server.rss_kib(&repo).ok();
        let client = work.join(format!("{label}-client"));
        served(
            bin,
            &Served {
                label,
                repo: &repo,
                client: &client,
                key: &key,
                http: ports.http,
            },
            pkgs,
            a,
            &mut f,
        )?;
    }
    f.serve_stop = server.stop(&repo);
    if f.serve_cold.is_some() {
        eprintln!("[{label}] dist serve, restart");
        let mut server =
            Serve::start(bin, &repo, &ports, work.join(format!("{label}-serve2.log")))?;
        f.serve_restart = server.wait_healthy(a.serve_cap)?;
        if let (Some(_), Ok(rss)) = (f.serve_restart, server.rss_kib(&repo)) {
            f.rss_kib = Some(f.rss_kib.unwrap_or(0).max(rss));
        }
        server.stop(&repo);
    }

    eprintln!("[{label}] {PUBLISHES} publishes");
    let done = latest(&repo)?;
    let already = usize::try_from(done)
        .unwrap_or(0)
        .saturating_sub(lists.len());
    for i in already..PUBLISHES {
        let d = package("publish", &format!("1.0.{i}")).write_in(pkgs)?;
        run_quiet(dist(bin, &repo).arg("add").arg(d))?;
    }
    f.published_after = Some(dir_size(&repo.join("published"))?);
    (f.snapshot_raw, f.snapshot_published) = snapshot_sizes(&repo)?;
    Ok(f)
}

/// Where a served repository and its client are, for [`served`].
struct Served<'a> {
    label: &'a str,
    repo: &'a Path,
    client: &'a Path,
    key: &'a str,
    http: SocketAddr,
}

/// The figures of a repository `dist serve` answers for: syncs (initial, after one more add,
/// unchanged), search and info, and the catalog's pages.
fn served(bin: &Path, s: &Served, pkgs: &Path, a: &Args, f: &mut Figures) -> Result<()> {
    let sync = |what: &str| -> Result<(u64, String)> {
        let o = dist(bin, s.client)
            .args(["--server-url", &format!("http://{}", s.http)])
            .args(["--public-key", s.key, "sync", "--json"])
            .output()?;
        if !o.status.success() {
            bail!("sync ({what}): {}", String::from_utf8_lossy(&o.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        let bytes = v["bytes_on_wire"]
            .as_u64()
            .or(v["bytes"].as_u64())
            .unwrap_or(0);
        Ok((bytes, v["mode"].as_str().unwrap_or("-").to_string()))
    };
    f.sync_initial = sync("initial").ok().map(|(b, _)| b);
    eprintln!("[{}] one more package into the index", s.label);
    let one = package("one-more", "1.0.0").write_in(pkgs)?;
    let t = Instant::now();
    let st = dist(bin, s.repo)
        .arg("add")
        .arg(&one)
        .stdout(Stdio::null())
        .status()?;
    f.add_one = st.success().then(|| t.elapsed());
    let serial = latest(s.repo)?;
    wait_for(Duration::from_secs(120), || {
        http_get(s.http, "/index.json")
            .ok()
            .is_some_and(|(code, body)| code == 200 && serial_of(&body) == Some(serial))
            || http_get(s.http, "/index.db")
                .ok()
                .is_some_and(|(code, _)| code == 200)
    });
    f.sync_after_one = sync("after one").ok();
    f.sync_unchanged = sync("unchanged").ok();
    // A name from the middle of the index, and a term that matches ten names.
    let name = format!("pkg-{:06}", a.n / 2);
    let term = &name[..name.len() - 1];
    f.search_p50 = p50(QUERY_RUNS, || {
        run_quiet(dist(bin, s.client).args(["search", term]))
    })
    .ok();
    f.info_p50 = p50(QUERY_RUNS, || {
        run_quiet(dist(bin, s.client).args(["info", &name]))
    })
    .ok();
    f.catalog = catalog(s.http, a.n, term, &name)
        .map_err(|e| eprintln!("[{}] catalog: {e:#}", s.label))
        .ok();
    Ok(())
}

/// `dist add --from` of every list, the measurements summed (peak RSS: the largest).
fn add_all(bin: &Path, repo: &Path, lists: &[PathBuf]) -> Result<Option<Measured>> {
    let mut total: Option<Measured> = None;
    for l in lists {
        let m = util::measure(
            dist(bin, repo)
                .args(["add", "--from"])
                .arg(l)
                .stdout(Stdio::null()),
        )?;
        total = Some(match total {
            None => m,
            Some(t) => Measured {
                wall: t.wall + m.wall,
                user: t.user + m.user,
                sys: t.sys + m.sys,
                max_rss_kib: t.max_rss_kib.max(m.max_rss_kib),
            },
        });
    }
    Ok(total)
}

/// The web catalog's pages, p50 of `QUERY_RUNS` each, after `/index.json` as the baseline; a page
/// that does not answer 200 with the package it should show fails the measurement.
fn catalog(http: SocketAddr, n: usize, term: &str, name: &str) -> Result<[Duration; 5]> {
    // 50 packages a page, by name: "one-more", then pkg-000000 to the last.
    let last = (n + 1).div_ceil(50);
    let newest = format!("pkg-{:06}", n - 1);
    let pages = [
        ("/index.json".to_string(), None),
        ("/".to_string(), Some("pkg-000000")),
        (format!("/?page={last}"), Some(newest.as_str())),
        (format!("/?q={term}"), Some(name)),
        (format!("/packages/{name}"), Some(name)),
    ];
    let mut out = [Duration::ZERO; 5];
    for (i, (path, shows)) in pages.iter().enumerate() {
        out[i] = p50(QUERY_RUNS, || {
            let (code, body) = http_get(http, path)?;
            let shown = shows.is_none_or(|s| String::from_utf8_lossy(&body).contains(s));
            if code != 200 || !shown {
                bail!(
                    "GET {path}: {code}, {} bytes, {shows:?} shown: {shown}",
                    body.len()
                );
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn latest(repo: &Path) -> Result<u64> {
    Ok(fs::read_to_string(repo.join("published/LATEST"))?
        .trim()
        .parse()?)
}

fn serial_of(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?["serial"].as_u64()
}

/// Raw and published bytes of the newest snapshot: format 2's manifest says both; format 1
/// publishes the raw file.
fn snapshot_sizes(repo: &Path) -> Result<(Option<u64>, Option<u64>)> {
    let serial = latest(repo)?;
    let manifest = repo.join(format!("published/{serial}.json"));
    if let Ok(bytes) = fs::read(&manifest) {
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        return Ok((
            v["snapshot"]["raw_size"].as_u64(),
            v["snapshot"]["size"].as_u64(),
        ));
    }
    let old = fs::metadata(repo.join(format!("published/index-{serial}.db")))?.len();
    Ok((Some(old), Some(old)))
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir)? {
        let m = e?.metadata()?;
        if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let o = cmd.output()?;
    if !o.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

fn p50(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn bytes(b: Option<u64>) -> String {
    match b {
        Some(b) if b >= 1 << 20 => format!("{:.2} MiB", util::mib(b)),
        Some(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
        None => "-".into(),
    }
}

/// How one line of the report shows a contender's figures.
type Show = Box<dyn Fn(&Figures) -> String>;

/// The report's lines about publishing (`dist add` and what it writes).
fn publisher_lines() -> Vec<(&'static str, Show)> {
    vec![
        (
            "add (batches of 10,000)",
            Box::new(|f| secs(f.add.map(|m| m.wall))),
        ),
        (
            "add peak RSS",
            Box::new(|f| bytes(f.add.map(|m| m.max_rss_kib * 1024))),
        ),
        ("add one more package", Box::new(|f| secs(f.add_one))),
        ("snapshot raw", Box::new(|f| bytes(f.snapshot_raw))),
        (
            "snapshot as published",
            Box::new(|f| bytes(f.snapshot_published)),
        ),
    ]
}

/// The report's lines about serving, syncing, querying and the catalog.
fn server_lines() -> Vec<(&'static str, Show)> {
    vec![
        ("serve healthy, cold", Box::new(|f| secs(f.serve_cold))),
        (
            "serve healthy, restart",
            Box::new(|f| secs(f.serve_restart)),
        ),
        (
            "serve SIGTERM to exit",
            Box::new(|f| {
                f.serve_stop
                    .map(|d| secs(Some(d)))
                    .unwrap_or_else(|| "> 60 s (killed)".into())
            }),
        ),
        (
            "RSS serve+tracker+seeder",
            Box::new(|f| bytes(f.rss_kib.map(|k| k * 1024))),
        ),
        (
            "sync initial, on the wire",
            Box::new(|f| bytes(f.sync_initial)),
        ),
        (
            "sync after one add",
            Box::new(|f| {
                f.sync_after_one
                    .as_ref()
                    .map(|(b, m)| format!("{} ({m})", bytes(Some(*b))))
                    .unwrap_or_else(|| "-".into())
            }),
        ),
        (
            "sync unchanged",
            Box::new(|f| {
                f.sync_unchanged
                    .as_ref()
                    .map(|(b, m)| format!("{} ({m})", bytes(Some(*b))))
                    .unwrap_or_else(|| "-".into())
            }),
        ),
        ("search p50", Box::new(|f| ms(f.search_p50))),
        ("info p50", Box::new(|f| ms(f.info_p50))),
        (
            "GET /index.json p50 (baseline)",
            Box::new(|f| ms(f.catalog.map(|c| c[0]))),
        ),
        ("catalog / p50", Box::new(|f| ms(f.catalog.map(|c| c[1])))),
        (
            "catalog last page p50",
            Box::new(|f| ms(f.catalog.map(|c| c[2]))),
        ),
        (
            "catalog search p50",
            Box::new(|f| ms(f.catalog.map(|c| c[3]))),
        ),
        (
            "catalog package page p50",
            Box::new(|f| ms(f.catalog.map(|c| c[4]))),
        ),
        (
            "published/ after 20 publishes",
            Box::new(|f| {
                let ratio = match (f.published_after, f.snapshot_published) {
                    (Some(p), Some(s)) if s > 0 => {
                        format!(" ({:.2} x snapshot)", p as f64 / s as f64)
                    }
                    _ => String::new(),
                };
                format!("{}{ratio}", bytes(f.published_after))
            }),
        ),
    ]
}

fn report(n: usize, rows: &[(&str, Figures)]) {
    println!("bench scale: {n} packages (one small file each), on loopback");
    let lines: Vec<(&str, Show)> = publisher_lines()
        .into_iter()
        .chain(server_lines())
        .collect();
    print!("{:<32}", "");
    for (label, _) in rows {
        print!("{label:>30}");
    }
    println!();
    for (what, show) in &lines {
        print!("{what:<32}");
        for (_, f) in rows {
            print!("{:>30}", show(f));
        }
        println!();
    }
    println!(
        "('-': not measured: serve did not become healthy within --serve-cap, or the step failed)"
    );
}
