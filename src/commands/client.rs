//! The client commands: sync, rollback, generations, list, daemon, gc, verify, search
//! (what changes the installed set is in `packages.rs`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dist::client::config::{config_path, ClientConfig, ConfigError, Engine, Settings};
use dist::client::sources::Sources;
use dist::client::{daemon, seeder, sync, Layout};
use dist::format::ids::PackageName;
use dist::repo::index::PackageRecord;

use super::{json, printable, reporter, Global};
use crate::cli::{ClientFlags, DaemonCommand};

/// client.yaml with the flags on top, resolved once.
pub fn config(g: &Global, f: &ClientFlags) -> Result<Settings> {
    let c = ClientConfig::load(&g.root).map_err(ConfigError::wrap)?;
    with_flags(c, f)
        .and_then(|c| c.resolve(&config_path(&g.root)))
        .map_err(ConfigError::wrap)
}

/// Only what the flags set, as a configuration (for `config show`).
pub fn flags_only(f: &ClientFlags) -> Result<ClientConfig> {
    with_flags(ClientConfig::default(), f)
}

fn with_flags(mut c: ClientConfig, f: &ClientFlags) -> Result<ClientConfig> {
    if let Some(v) = &f.server_url {
        c.server_url = Some(v.clone());
    }
    if let Some(v) = &f.public_key {
        c.public_key = Some(v.clone());
    }
    if let Some(v) = &f.bind {
        c.bind_address = Some(v.clone());
    }
    if let Some(v) = &f.transport {
        c.transport = Some(v.parse()?);
    }
    if let Some(v) = &f.engine {
        c.engine = Some(v.parse()?);
    }
    if let Some(v) = &f.rpc_url {
        c.rpc_url = Some(v.clone());
    }
    if let Some(v) = f.script_timeout {
        c.script_timeout = Some(v);
    }
    Ok(c)
}

pub fn sync(g: &Global, f: &ClientFlags, json: bool) -> Result<i32> {
    let cfg = config(g, f)?;
    let layout = Layout::new(&g.root);
    let mut results = sync::sync_all(&layout, &cfg);
    if results.len() == 1 {
        // One repository: its report, or its error, as ever.
        let (_, r) = results.pop().expect("one result");
        let r = r?;
        warn_sync(&r);
        if json {
            json::print::<json::Sync>(&r)?;
        } else {
            println!("{}", sync_line(&r));
        }
        return Ok(0);
    }
    let mut failed = 0;
    for (name, result) in &results {
        match result {
            Ok(r) => {
                warn_sync(r);
                if !json {
                    println!("{name}: {}", sync_line(r));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}", super::printable_error(&format!("{e:#}")));
                if !json {
                    println!("{name}: not updated (its last verified index stays)");
                }
            }
        }
    }
    if json {
        let all = json::SyncAll {
            first: results.first().and_then(|(_, r)| r.as_ref().ok()),
            repositories: results
                .iter()
                .map(|(name, r)| json::RepoSync {
                    name: name.as_str(),
                    report: r.as_ref().ok(),
                    error: r.as_ref().err().map(|e| format!("{e:#}")),
                })
                .collect(),
        };
        json::print(&all)?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn warn_sync(r: &sync::SyncReport) {
    for w in [&r.stale_warning, &r.fallback_reason].into_iter().flatten() {
        eprintln!("warning: {w}");
    }
    for k in &r.key_rotations {
        eprintln!(
            "note: the repository rotated its key {} -> {}: verified by the rotation statement, trusted from now on (recorded beside the index in trust.json)",
            k.from, k.to
        );
    }
    for k in &r.revoked_keys {
        eprintln!("note: the repository revoked key {k}: it is never accepted again");
    }
    for b in &r.behind {
        eprintln!(
            "warning: {} is behind: it offers index serial {}, {} offers {}",
            b.server, b.serial, r.server, r.serial
        );
    }
}

fn sync_line(r: &sync::SyncReport) -> String {
    if r.changed {
        let how = match r.mode {
            sync::SyncMode::Delta => "deltas",
            _ => "the whole index",
        };
        format!(
            "index updated to serial {} ({} package versions; {} bytes on the wire, {how})",
            r.serial, r.packages, r.bytes_on_wire
        )
    } else {
        format!(
            "index unchanged at serial {} ({} package versions)",
            r.serial, r.packages
        )
    }
}

pub fn rollback(g: &Global, f: &ClientFlags, to: Option<u64>, json_out: bool) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || json_out);
    let (from, to) = dist::client::rollback::rollback(&layout, &settings, to, &reporter)?;
    if json_out {
        json::print(&json::Rollback { from, to })?;
    } else {
        println!("rolled back from generation {from} to generation {to}");
    }
    Ok(0)
}

pub fn generations(g: &Global, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let cur = layout.current_number()?;
    let gens = layout.generations()?;
    if json {
        let v: Vec<_> = gens
            .iter()
            .map(|gen| json::GenerationEntry::new(gen, cur))
            .collect();
        json::print(&v)?;
    } else {
        for gen in &gens {
            let mark = if Some(gen.number) == cur { "*" } else { " " };
            println!("{mark} {:>4}  {}", gen.number, gen.labels().join(" "));
        }
    }
    Ok(0)
}

/// `dist list [--installed | --upgradable]`: the index's packages, the installed ones, or what
/// `dist outdated` lists (apt's `list --upgradable`).
pub fn list(g: &Global, f: &ClientFlags, which: (bool, bool), json: bool) -> Result<i32> {
    let (installed, upgradable) = which;
    if upgradable {
        return super::packages::outdated(g, f, json);
    }
    let layout = Layout::new(&g.root);
    if installed {
        let cur = layout.current()?;
        let pkgs: Vec<_> = cur
            .map(|g| g.packages.into_values().collect())
            .unwrap_or_default();
        if json {
            let held = layout.holds()?;
            let v: Vec<json::InstalledEntry> = pkgs
                .iter()
                .map(|p| json::InstalledEntry::new(p, held.contains(&p.name)))
                .collect();
            json::print(&v)?;
        } else if pkgs.is_empty() {
            println!("nothing is installed");
        } else {
            for p in &pkgs {
                println!("{}  {}", p.id(), p.store_path.display());
            }
        }
        return Ok(0);
    }
    let sources = Sources::open(&layout, &config(g, f)?)?;
    let all = sources.each(|snap| snap.all())?;
    if json {
        let v: Vec<json::Record> = all.iter().map(|(p, r)| json::Record::new(p, r)).collect();
        json::print(&v)?;
    } else {
        let many = sources.iter().count() > 1;
        for (p, r) in &all {
            print_record(p, many.then_some(*r));
        }
    }
    Ok(0)
}

/// `dist daemon run`: the libtorrent engine's seeder, until SIGTERM (its warnings go to
/// stderr, which is its log).
pub fn seeder(g: &Global, f: &ClientFlags) -> Result<i32> {
    let settings = config(g, f)?;
    let reporter = reporter::Cli::new(true);
    dist::client::seeder::run(&Layout::new(&g.root), &settings, &reporter)?;
    Ok(0)
}

/// The engine `daemon status` reports on: the configured one (client.yaml), unless only the
/// other one runs.
fn daemon_engine(g: &Global, layout: &Layout) -> Engine {
    let configured = ClientConfig::load(&g.root)
        .ok()
        .and_then(|c| c.engine)
        .unwrap_or_default();
    let lt = seeder::running(layout).is_some();
    let tr = daemon::running(layout).is_some();
    match (configured, lt, tr) {
        (Engine::Transmission, true, false) => Engine::Libtorrent,
        (Engine::Libtorrent, false, true) => Engine::Transmission,
        (e, _, _) => e,
    }
}

pub fn daemon(g: &Global, cmd: &DaemonCommand) -> Result<i32> {
    let layout = Layout::new(&g.root);
    match cmd {
        DaemonCommand::Stop(j) => {
            let stopped = daemon::stop(&layout)?;
            let seeder = seeder::stop(&layout)?;
            if j.json {
                json::print(&json::DaemonStop {
                    stopped: stopped || seeder,
                })?;
            } else {
                match (stopped, seeder) {
                    (false, false) => println!("no daemon is running for this root"),
                    (tr, lt) => {
                        if tr {
                            println!("transmission-daemon stopped");
                        }
                        if lt {
                            println!("libtorrent seeder stopped");
                        }
                    }
                }
            }
            Ok(0)
        }
        DaemonCommand::Status(j) => match daemon_engine(g, &layout) {
            Engine::Transmission => transmission_status(&layout, j.json),
            Engine::Libtorrent => seeder_status(&layout, j.json),
        },
        DaemonCommand::Run(_) => unreachable!("dispatched to `seeder`"),
    }
}

fn transmission_status(layout: &Layout, json_out: bool) -> Result<i32> {
    let Some((st, rpc)) = daemon::running(layout) else {
        return not_running(Engine::Transmission, json_out);
    };
    let mut all = rpc.all().context("cannot query the daemon")?;
    all.retain(|t| !dist::daemons::transmission::Kicker::is_dummy(&t.hash_string));
    if json_out {
        let torrents = all
            .iter()
            .map(|t| json::DaemonTorrent {
                infohash: t.hash_string,
                name: t.name.clone(),
                peers: t.peers.iter().map(|p| p.address.clone()).collect(),
                percent_done: t.percent_done,
                status: Some(t.status),
                state: t.state().name(),
                uploaded: t.uploaded_ever,
            })
            .collect();
        json::print(&json::DaemonStatus {
            engine: Engine::Transmission.name(),
            peer_port: Some(st.peer_port),
            pid: Some(st.pid),
            rpc_port: Some(st.rpc_port),
            running: true,
            torrents,
        })?;
        return Ok(0);
    }
    println!(
        "transmission-daemon pid {} (RPC 127.0.0.1:{}, peer port {})",
        st.pid, st.rpc_port, st.peer_port
    );
    for t in &all {
        println!(
            "  {}  {}  {:.0}%  uploaded {} bytes  peers {}",
            printable(&t.name),
            t.state().name(),
            t.percent_done * 100.0,
            t.uploaded_ever,
            t.peers.len()
        );
    }
    Ok(0)
}

fn seeder_status(layout: &Layout, json_out: bool) -> Result<i32> {
    let Some(st) = seeder::running(layout) else {
        return not_running(Engine::Libtorrent, json_out);
    };
    let status = seeder::status(layout);
    if json_out {
        let torrents = status
            .torrents
            .iter()
            .map(|t| json::DaemonTorrent {
                infohash: t.infohash,
                name: t.name.clone(),
                peers: Vec::new(),
                percent_done: t.percent_done,
                status: None,
                state: seeder_state(&t.state),
                uploaded: t.uploaded,
            })
            .collect();
        json::print(&json::DaemonStatus {
            engine: Engine::Libtorrent.name(),
            peer_port: Some(st.peer_port),
            pid: Some(st.pid),
            rpc_port: None,
            running: true,
            torrents,
        })?;
        return Ok(0);
    }
    println!(
        "libtorrent seeder pid {} (peer port {})",
        st.pid, st.peer_port
    );
    for t in &status.torrents {
        println!(
            "  {}  {}  {:.0}%  uploaded {} bytes  peers {}",
            printable(&t.name),
            t.state,
            t.percent_done * 100.0,
            t.uploaded,
            t.peers
        );
    }
    Ok(0)
}

/// The libtorrent seeder's state word as a `state` of `daemon status`.
fn seeder_state(s: &str) -> &'static str {
    match s {
        "verifying" => "verifying",
        "downloading" => "downloading",
        "seeding" => "seeding",
        _ => "unknown",
    }
}

fn not_running(engine: Engine, json_out: bool) -> Result<i32> {
    if json_out {
        json::print(&json::DaemonStatus {
            engine: engine.name(),
            peer_port: None,
            pid: None,
            rpc_port: None,
            running: false,
            torrents: Vec::new(),
        })?;
    } else {
        match engine {
            Engine::Transmission => println!("no transmission-daemon is running for this root"),
            Engine::Libtorrent => println!("no libtorrent seeder is running for this root"),
        }
    }
    Ok(0)
}

/// `dist gc`: first what `autoremove` removes (installed as a dependency, needed by nothing
/// requested any more), then generations beyond `--keep` and everything no generation uses.
pub fn gc(g: &Global, f: &ClientFlags, keep: Option<usize>, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let settings = config(g, f)?;
    let reporter = reporter::Cli::new(g.quiet || json);
    let autoremoved = dist::client::remove::autoremove(&layout, &settings, &reporter)?
        .map(|(_, removed)| removed)
        .unwrap_or_default();
    let r = dist::client::maintain::gc(&layout, keep)?;
    if json {
        let mut out = json::Gc::from(&r);
        out.autoremoved = autoremoved.iter().map(Into::into).collect();
        json::print(&out)?;
    } else {
        for p in &autoremoved {
            println!("removed {} (nothing requested needs it)", p.id());
        }
        println!(
            "removed {} generations, {} store paths, {} objects; freed {} bytes",
            r.generations_removed.len(),
            r.store_paths_removed.len(),
            r.objects_removed.len(),
            r.bytes_freed
        );
    }
    Ok(0)
}

pub fn verify(g: &Global, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let entries = dist::client::maintain::verify(&layout)?;
    let bad = entries.iter().filter(|e| !e.ok).count();
    let yanked = yanked_installed(g, &layout);
    let yank_of = |e: &dist::client::maintain::VerifyEntry| {
        yanked
            .get(&(e.name.clone(), e.version.clone()))
            .map(String::as_str)
    };
    if json {
        let v: Vec<json::Verified> = entries
            .iter()
            .map(|e| json::Verified::new(e, yank_of(e)))
            .collect();
        json::print(&v)?;
    } else {
        for e in &entries {
            let y = yank_of(e)
                .map(|r| format!(" (yanked: {})", printable(r)))
                .unwrap_or_default();
            if e.ok {
                println!("ok       {}{y}", e.id());
            } else {
                println!("CHANGED  {}{y} ({})", e.id(), e.store_path.display());
                for d in &e.differences {
                    println!("         {d}");
                }
            }
            for c in &e.config_changed {
                println!("         configuration changed (yours): etc/{}/{c}", e.name);
            }
        }
    }
    if bad > 0 {
        eprintln!(
            "error: {bad} of {} store paths differ from what was installed",
            entries.len()
        );
        return Ok(1);
    }
    Ok(0)
}

pub fn search(g: &Global, f: &ClientFlags, term: &str, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let sources = Sources::open(&layout, &config(g, f)?)?;
    let mut hits = sources.each(|snap| snap.search(term))?;
    // By name, newest version first within a name (stable: the higher priority first).
    hits.sort_by(|(a, _), (b, _)| {
        a.name
            .cmp(&b.name)
            .then_with(|| b.version.cmp_precedence(&a.version))
    });
    if json {
        let v: Vec<json::SearchHit> = hits
            .iter()
            .map(|(p, r)| json::SearchHit::new(p, r))
            .collect();
        json::print(&v)?;
    } else if hits.is_empty() {
        println!("no package matches `{term}`");
    } else {
        let many = sources.iter().count() > 1;
        for (p, r) in &hits {
            print_record(p, many.then_some(*r));
        }
    }
    Ok(0)
}

/// The installed versions the synced index yanks, with the reason: empty when there is no
/// configuration or index to ask (`verify` checks the store without them).
fn yanked_installed(
    g: &Global,
    layout: &Layout,
) -> BTreeMap<(PackageName, semver::Version), String> {
    let mut out = BTreeMap::new();
    let Ok(Some(current)) = layout.current() else {
        return out;
    };
    let Ok(sources) = config(g, &ClientFlags::default()).and_then(|s| Sources::open(layout, &s))
    else {
        return out;
    };
    for p in current.packages.values() {
        if let Ok(Some(reason)) = dist::client::upgrade::yank_of(&sources, p) {
            out.insert((p.name.clone(), p.version.clone()), reason);
        }
    }
    out
}

/// One index record as a text line: `name@version  description`, with `REPO/` first when
/// several repositories are configured.
fn print_record(p: &PackageRecord, repo: Option<&str>) {
    let repo = repo.map(|r| format!("{r}/")).unwrap_or_default();
    println!(
        "{repo}{}  {}",
        p.id(),
        printable(p.description.as_deref().unwrap_or(""))
    );
}
