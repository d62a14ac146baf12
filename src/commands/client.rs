//! The client commands: sync, install, uninstall, rollback, generations, list, info, daemon.

use anyhow::{Context, Result};
use dist::client::config::ClientConfig;
use dist::client::install::{self, Request};
use dist::client::{daemon, sync, Layout};

use super::{reporter, Global};
use crate::cli::{ClientFlags, DaemonCommand, InstallArgs};

/// client.yaml with the flags on top.
pub fn config(g: &Global, f: &ClientFlags) -> Result<ClientConfig> {
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
    Ok(c)
}

pub fn sync(g: &Global, f: &ClientFlags, json: bool) -> Result<i32> {
    let cfg = config(g, f)?;
    let layout = Layout::new(&g.root);
    let r = sync::sync(&layout, &cfg)?;
    if let Some(w) = &r.stale_warning {
        eprintln!("warning: {w}");
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else if r.changed {
        println!(
            "index updated to serial {} ({} package versions, {} bytes)",
            r.serial, r.packages, r.bytes
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
    let cfg = config(g, f)?;
    let layout = Layout::new(&g.root);
    let snap = layout.snapshot()?;
    let reqs = a
        .packages
        .iter()
        .map(|p| Request::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let resolving = std::time::Instant::now();
    let plan = install::plan(&layout, &cfg, &snap, &reqs)?;
    let resolve_ms = resolving.elapsed().as_millis() as u64;
    if a.dry_run {
        let items: Vec<_> = plan.iter().map(|(p, _)| p).collect();
        if a.json {
            println!("{}", serde_json::to_string(&items)?);
        } else {
            for p in items {
                let how = match (p.source, p.transport) {
                    ("fetch", Some(t)) => format!("fetch over {t:?}").to_lowercase(),
                    (s, _) => s.to_string(),
                };
                let rep = p
                    .replaces
                    .as_ref()
                    .map(|v| format!(", replaces {v}"))
                    .unwrap_or_default();
                println!("{}@{}  {} bytes  {how}{rep}", p.name, p.version, p.size);
            }
        }
        return Ok(0);
    }
    let reporter = reporter::Cli::new(g.quiet || a.json);
    let outcome = install::install(&layout, &cfg, plan, &reporter);
    reporter.finish();
    let mut outcome = outcome?;
    for r in outcome.reports.iter_mut() {
        r.phases_ms.insert("resolve", resolve_ms);
    }
    if a.json {
        println!("{}", serde_json::to_string(&outcome.reports)?);
    } else {
        for r in &outcome.reports {
            if r.source == "installed" {
                println!("{}@{} is already installed", r.name, r.version);
            } else {
                println!("installed {}@{} -> {}", r.name, r.version, r.store_path);
            }
        }
        if let Some(n) = outcome.generation {
            println!("generation {n} is current");
        }
    }
    Ok(0)
}

pub fn uninstall(g: &Global, name: &str) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet);
    let gen = install::uninstall(&layout, name, &reporter)?;
    println!("removed {name}; generation {} is current", gen.number);
    Ok(0)
}

pub fn rollback(g: &Global, to: Option<u64>) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet);
    let (from, to) = install::rollback(&layout, to, &reporter)?;
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
            .map(|gen| serde_json::json!({"number": gen.number, "current": Some(gen.number) == cur, "created": gen.created, "packages": gen.labels()}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
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
            let v: Vec<_> = pkgs
                .iter()
                .map(|p: &dist::client::profile::Installed| serde_json::json!({"name": p.name, "version": p.version, "blake3": p.blake3, "infohash": p.infohash, "store_path": p.store_path}))
                .collect();
            println!("{}", serde_json::Value::Array(v));
        } else if pkgs.is_empty() {
            println!("nothing is installed");
        } else {
            for p in &pkgs {
                println!("{}@{}  {}", p.name, p.version, p.store_path.display());
            }
        }
        return Ok(0);
    }
    let snap = layout.snapshot()?;
    if json {
        println!("{}", serde_json::to_string(&snap.packages)?);
    } else {
        for p in &snap.packages {
            print_record(p);
        }
    }
    Ok(0)
}

pub fn info(g: &Global, name: &str, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let snap = layout.snapshot()?;
    let versions = snap.versions(name);
    if versions.is_empty() {
        anyhow::bail!("no package `{name}` in the index (serial {})", snap.serial);
    }
    let installed = layout
        .current()?
        .and_then(|g| g.packages.get(name).cloned());
    if json {
        let v = serde_json::json!({
            "name": name,
            "description": versions.last().and_then(|v| v.description.clone()),
            "installed": installed.as_ref().map(|i| i.version.clone()),
            "versions": versions.iter().map(|v| serde_json::json!({
                "version": v.version, "blake3": v.blake3, "infohash": v.infohash, "size": v.size,
                "magnet": v.magnet, "added_at": v.added_at,
                "installed": installed.as_ref().is_some_and(|i| i.blake3 == v.blake3),
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!(
            "{name}: {}",
            versions
                .last()
                .and_then(|v| v.description.clone())
                .unwrap_or_default()
        );
        for v in versions {
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
                    println!("{}", serde_json::json!({"running": false, "torrents": []}));
                } else {
                    println!("no transmission-daemon is running for this root");
                }
                return Ok(0);
            };
            let all = rpc.all().context("cannot query the daemon")?;
            if j.json {
                let t: Vec<_> = all
                    .iter()
                    .map(|t| serde_json::json!({"name": t.name, "infohash": t.hash_string, "status": t.status, "percent_done": t.percent_done, "uploaded": t.uploaded_ever, "peers": t.peers.iter().map(|p| p.address.clone()).collect::<Vec<_>>()}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"running": true, "pid": st.pid, "rpc_port": st.rpc_port, "peer_port": st.peer_port, "torrents": t})
                );
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
        println!("{}", serde_json::to_string(&r)?);
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
        println!("{}", serde_json::to_string(&entries)?);
    } else {
        for e in &entries {
            if e.ok {
                println!("ok       {}@{}", e.name, e.version);
            } else {
                println!(
                    "CHANGED  {}@{} ({})",
                    e.name,
                    e.version,
                    e.store_path.display()
                );
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
    let t = term.to_lowercase();
    let mut hits: Vec<&dist::repo::index::PackageRecord> = snap
        .packages
        .iter()
        .filter(|p| {
            p.name.to_lowercase().contains(&t)
                || p.description
                    .as_deref()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains(&t)
        })
        .collect();
    // By name, newest version first within a name.
    hits.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| b.version.cmp_precedence(&a.version))
    });
    if json {
        let v: Vec<_> = hits
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "version": p.version, "description": p.description, "size": p.size, "blake3": p.blake3}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else if hits.is_empty() {
        println!("no package matches `{term}`");
    } else {
        for p in hits {
            print_record(p);
        }
    }
    Ok(0)
}

/// One index record as a text line: `name@version  description`.
fn print_record(p: &dist::repo::index::PackageRecord) {
    println!(
        "{}@{}  {}",
        p.name,
        p.version,
        p.description.as_deref().unwrap_or("")
    );
}
