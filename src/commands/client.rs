//! The client commands: sync, install, uninstall, rollback, generations, list, info, daemon.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use dist::client::config::{ClientConfig, Settings};
use dist::client::install::{self, Stage};
use dist::client::plan::{self, Action};
use dist::client::request::{Request, Spec};
use dist::client::resolve::Because;
use dist::client::{daemon, remove, sync, Layout};
use dist::format::ids::PackageName;

use super::{json, printable, reporter, Global};
use crate::cli::{ClientFlags, DaemonCommand, InstallArgs, UpgradeArgs};

/// client.yaml with the flags on top, resolved once.
pub fn config(g: &Global, f: &ClientFlags) -> Result<Settings> {
    let mut c = ClientConfig::load(&g.root)?;
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
    if let Some(v) = &f.rpc_url {
        c.rpc_url = Some(v.clone());
    }
    if let Some(v) = f.script_timeout {
        c.script_timeout = Some(v);
    }
    c.resolve()
}

pub fn sync(g: &Global, f: &ClientFlags, json: bool) -> Result<i32> {
    let cfg = config(g, f)?;
    let layout = Layout::new(&g.root);
    let r = sync::sync(&layout, &cfg)?;
    if let Some(w) = &r.stale_warning {
        eprintln!("warning: {w}");
    }
    if let Some(w) = &r.fallback_reason {
        eprintln!("warning: {w}");
    }
    if json {
        json::print::<json::Sync>(&r)?;
    } else if r.changed {
        let how = match r.mode {
            sync::SyncMode::Delta => "deltas",
            _ => "the whole index",
        };
        println!(
            "index updated to serial {} ({} package versions; {} bytes on the wire, {how})",
            r.serial, r.packages, r.bytes_on_wire
        );
    } else {
        println!(
            "index unchanged at serial {} ({} package versions)",
            r.serial, r.packages
        );
    }
    Ok(0)
}

pub fn install(g: &Global, f: &ClientFlags, a: &InstallArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let snap = layout.snapshot()?;
    let reqs = a
        .packages
        .iter()
        .map(|p| Request::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let resolving = std::time::Instant::now();
    let options = plan::Options {
        replace: a.replace,
        ..Default::default()
    };
    let plan = plan::plan_with(&layout, &settings, &snap, &reqs, options)?;
    // A version asked for is a downgrade the user wants; any other needs saying so.
    let asked: BTreeSet<&PackageName> = reqs
        .iter()
        .filter(|r| !matches!(r.spec, Spec::Latest))
        .map(|r| &r.name)
        .collect();
    refuse_downgrades(&plan, &asked, a.allow_downgrade)?;
    execute(
        g,
        &layout,
        &settings,
        plan,
        a.json,
        a.dry_run,
        resolving.elapsed(),
    )
}

/// Refuses the plan's downgrades (`name old -> new`) of packages not in `asked`.
fn refuse_downgrades(plan: &plan::Plan, asked: &BTreeSet<&PackageName>, allow: bool) -> Result<()> {
    let downgrades: Vec<String> = plan
        .items
        .iter()
        .filter(|i| !asked.contains(&i.record.name))
        .filter_map(|i| {
            let old = i.replaces.as_ref()?;
            i.record
                .version
                .cmp_precedence(&old.version)
                .is_lt()
                .then(|| format!("{} {} -> {}", i.record.name, old.version, i.record.version))
        })
        .collect();
    if !downgrades.is_empty() && !allow {
        anyhow::bail!(
            "this would downgrade {}; ask for that version explicitly or pass --allow-downgrade (nothing was changed)",
            downgrades.join(", ")
        );
    }
    Ok(())
}

/// `dist upgrade [NAME...]`: the named installed packages (default: all) move to the newest
/// versions their constraints and holds allow; a downgrade needs `--allow-downgrade`.
pub fn upgrade(g: &Global, f: &ClientFlags, a: &UpgradeArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let snap = layout.snapshot()?;
    let installed = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let names: BTreeSet<PackageName> = if a.packages.is_empty() {
        installed.keys().cloned().collect()
    } else {
        a.packages
            .iter()
            .map(|n| {
                let name = PackageName::parse(n).map_err(|e| anyhow::anyhow!("`{n}`: {e}"))?;
                if !installed.contains_key(&name) {
                    anyhow::bail!("`{name}` is not installed");
                }
                Ok(name)
            })
            .collect::<Result<_>>()?
    };
    // The requested ones stay requested; dependencies move with them.
    let reqs: Vec<Request> = names
        .iter()
        .filter(|n| installed[*n].requested)
        .map(|n| Request {
            name: n.clone(),
            spec: Spec::Latest,
        })
        .collect();
    let resolving = std::time::Instant::now();
    let options = plan::Options {
        refresh: names,
        replace: false,
    };
    let mut plan = plan::plan_with(&layout, &settings, &snap, &reqs, options)?;
    plan.items.retain(|i| i.action != Action::Installed);
    refuse_downgrades(&plan, &BTreeSet::new(), a.allow_downgrade)?;
    if plan.items.is_empty() && !a.json {
        println!("everything is up to date");
        return Ok(0);
    }
    execute(
        g,
        &layout,
        &settings,
        plan,
        a.json,
        a.dry_run,
        resolving.elapsed(),
    )
}

/// Prints a plan (`dry_run`) or carries it out and prints what it did.
fn execute(
    g: &Global,
    layout: &Layout,
    settings: &dist::client::config::Settings,
    plan: plan::Plan,
    json_out: bool,
    dry_run: bool,
    resolve: std::time::Duration,
) -> Result<i32> {
    let dependency = |b: &Because| match b {
        Because::Dependency(by) => format!(" (dependency of {by})"),
        _ => String::new(),
    };
    if !json_out {
        for r in &plan.removes {
            println!(
                "{} {} (--replace: a package of this install conflicts with it)",
                if dry_run { "would remove" } else { "removes" },
                r.id()
            );
        }
    }
    if dry_run {
        if json_out {
            let items: Vec<json::Planned> = plan.items.iter().map(Into::into).collect();
            json::print(&items)?;
        } else {
            for p in &plan.items {
                let how = match p.action.fetcher() {
                    Some(t) => format!("fetch over {t}"),
                    None => p.action.source().to_string(),
                };
                let rep = p
                    .replaces
                    .as_ref()
                    .map(|r| {
                        if p.record.version.cmp_precedence(&r.version).is_lt() {
                            format!(", DOWNGRADES {}", r.version)
                        } else {
                            format!(", replaces {}", r.version)
                        }
                    })
                    .unwrap_or_default();
                println!(
                    "{}  {} bytes  {how}{rep}{}",
                    p.record.id(),
                    p.record.size,
                    dependency(&p.because)
                );
            }
        }
        return Ok(0);
    }
    let reporter = reporter::Cli::new(g.quiet || json_out);
    let outcome = install::install(layout, settings, plan, &reporter);
    reporter.finish();
    let mut outcome = outcome?;
    for i in outcome.installed.iter_mut() {
        i.stages.insert(Stage::Resolve, resolve);
    }
    if json_out {
        let v: Vec<json::Install> = outcome.installed.iter().map(Into::into).collect();
        json::print(&v)?;
    } else {
        for i in &outcome.installed {
            if i.item.action == Action::Installed {
                println!("{} is already installed", i.item.record.id());
            } else {
                println!(
                    "installed {}{} -> {}",
                    i.item.record.id(),
                    dependency(&i.item.because),
                    i.store_path.display()
                );
            }
        }
        if let Some(n) = outcome.generation {
            println!("generation {n} is current");
        }
    }
    Ok(0)
}

pub fn uninstall(
    g: &Global,
    f: &ClientFlags,
    name: &str,
    with_dependents: bool,
    json_out: bool,
) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || json_out);
    let (gen, removed) = remove::uninstall(&layout, &settings, name, with_dependents, &reporter)?;
    print_removed(&removed, Some(gen), json_out)
}

/// `dist autoremove`: what was installed as a dependency and is needed no more.
pub fn autoremove(g: &Global, f: &ClientFlags, json_out: bool) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || json_out);
    match remove::autoremove(&layout, &settings, &reporter)? {
        Some((gen, removed)) => print_removed(&removed, Some(gen), json_out),
        None => print_removed(&[], None, json_out),
    }
}

fn print_removed(
    removed: &[dist::client::profile::Installed],
    generation: Option<u64>,
    json_out: bool,
) -> Result<i32> {
    if json_out {
        json::print(&json::Removed {
            removed: removed.iter().map(Into::into).collect(),
            generation,
        })?;
        return Ok(0);
    }
    if removed.is_empty() {
        println!("nothing to remove");
    }
    for p in removed {
        println!("removed {}", p.id());
    }
    if let Some(n) = generation {
        println!("generation {n} is current");
    }
    Ok(0)
}

/// `dist outdated`: installed packages with a newer version in the index.
pub fn outdated(g: &Global, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let list = remove::outdated(&layout)?;
    if json_out {
        let v: Vec<json::Outdated> = list.iter().map(Into::into).collect();
        json::print(&v)?;
    } else if list.is_empty() {
        println!("everything is up to date");
    } else {
        for o in &list {
            let held = if o.held { "  (held)" } else { "" };
            println!("{}  {} -> {}{held}", o.name, o.installed, o.newest);
        }
    }
    Ok(0)
}

/// `dist hold NAME` / `dist unhold NAME`.
pub fn hold(g: &Global, name: &str, on: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let name = PackageName::parse(name).map_err(|e| anyhow::anyhow!("`{name}`: {e}"))?;
    let changed = layout.set_hold(&name, on)?;
    match (on, changed) {
        (true, true) => println!("held {name}: upgrade and resolution keep its version"),
        (true, false) => println!("{name} was held already"),
        (false, true) => println!("released {name}"),
        (false, false) => println!("{name} was not held"),
    }
    Ok(0)
}

pub fn rollback(g: &Global, f: &ClientFlags, to: Option<u64>) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet);
    let (from, to) = install::rollback(&layout, &settings, to, &reporter)?;
    println!("rolled back from generation {from} to generation {to}");
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

pub fn list(g: &Global, installed: bool, json: bool) -> Result<i32> {
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
    let snap = layout.snapshot()?;
    if json {
        let all = snap.all()?;
        let v: Vec<json::Record> = all.iter().map(Into::into).collect();
        json::print(&v)?;
    } else {
        for p in &snap.all()? {
            print_record(p);
        }
    }
    Ok(0)
}

pub fn info(g: &Global, name: &str, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let snap = layout.snapshot()?;
    let versions = snap.versions(name)?;
    if versions.is_empty() {
        anyhow::bail!("no package `{name}` in the index (serial {})", snap.serial);
    }
    let installed = layout
        .current()?
        .and_then(|g| g.packages.get(name).cloned());
    if json {
        json::print(&json::Info {
            description: versions.last().and_then(|v| v.description.as_deref()),
            installed: installed.as_ref().map(|i| &i.version),
            name,
            versions: versions
                .iter()
                .map(|v| json::InfoVersion {
                    added_at: v.added_at,
                    blake3: v.blake3,
                    infohash: v.infohash,
                    installed: installed.as_ref().is_some_and(|i| i.blake3 == v.blake3),
                    magnet: &v.magnet,
                    size: v.size,
                    version: &v.version,
                })
                .collect(),
        })?;
    } else {
        println!(
            "{}: {}",
            printable(name),
            printable(
                versions
                    .last()
                    .and_then(|v| v.description.as_deref())
                    .unwrap_or_default()
            )
        );
        for v in &versions {
            let mark = if installed.as_ref().is_some_and(|i| i.blake3 == v.blake3) {
                " (installed)"
            } else {
                ""
            };
            println!(
                "  {}  {} bytes  blake3 {}{mark}",
                v.version, v.size, v.blake3
            );
        }
    }
    Ok(0)
}

pub fn daemon(g: &Global, cmd: &DaemonCommand) -> Result<i32> {
    let layout = Layout::new(&g.root);
    match cmd {
        DaemonCommand::Stop => {
            if daemon::stop(&layout)? {
                println!("transmission-daemon stopped");
            } else {
                println!("no transmission-daemon is running for this root");
            }
        }
        DaemonCommand::Status(j) => {
            let Some((st, rpc)) = daemon::running(&layout) else {
                if j.json {
                    json::print(&json::DaemonStatus {
                        peer_port: None,
                        pid: None,
                        rpc_port: None,
                        running: false,
                        torrents: Vec::new(),
                    })?;
                } else {
                    println!("no transmission-daemon is running for this root");
                }
                return Ok(0);
            };
            let all = rpc.all().context("cannot query the daemon")?;
            if j.json {
                let torrents = all
                    .iter()
                    .map(|t| json::DaemonTorrent {
                        infohash: t.hash_string,
                        name: t.name.clone(),
                        peers: t.peers.iter().map(|p| p.address.clone()).collect(),
                        percent_done: t.percent_done,
                        status: t.status,
                        uploaded: t.uploaded_ever,
                    })
                    .collect();
                json::print(&json::DaemonStatus {
                    peer_port: Some(st.peer_port),
                    pid: Some(st.pid),
                    rpc_port: Some(st.rpc_port),
                    running: true,
                    torrents,
                })?;
            } else {
                println!(
                    "transmission-daemon pid {} (RPC 127.0.0.1:{}, peer port {})",
                    st.pid, st.rpc_port, st.peer_port
                );
                for t in &all {
                    println!(
                        "  {}  {:.0}%  uploaded {} bytes  peers {}",
                        t.name,
                        t.percent_done * 100.0,
                        t.uploaded_ever,
                        t.peers.len()
                    );
                }
            }
        }
    }
    Ok(0)
}

pub fn gc(g: &Global, keep: Option<usize>, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let r = dist::client::maintain::gc(&layout, keep)?;
    if json {
        json::print(&json::Gc::from(&r))?;
    } else {
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
    if json {
        let v: Vec<json::Verified> = entries.iter().map(Into::into).collect();
        json::print(&v)?;
    } else {
        for e in &entries {
            if e.ok {
                println!("ok       {}", e.id());
            } else {
                println!("CHANGED  {} ({})", e.id(), e.store_path.display());
                for d in &e.differences {
                    println!("         {d}");
                }
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

pub fn search(g: &Global, term: &str, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let snap = layout.snapshot()?;
    let mut hits = snap.search(term)?;
    // By name, newest version first within a name.
    hits.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| b.version.cmp_precedence(&a.version))
    });
    if json {
        let v: Vec<json::SearchHit> = hits.iter().map(Into::into).collect();
        json::print(&v)?;
    } else if hits.is_empty() {
        println!("no package matches `{term}`");
    } else {
        for p in &hits {
            print_record(p);
        }
    }
    Ok(0)
}

/// One index record as a text line: `name@version  description`.
fn print_record(p: &dist::repo::index::PackageRecord) {
    println!(
        "{}  {}",
        p.id(),
        printable(p.description.as_deref().unwrap_or(""))
    );
}
