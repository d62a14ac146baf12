//! The client commands: sync, rollback, generations, list, info, gc, verify, search (what
//! changes the installed set is in `packages.rs`, the seeding daemon in `daemon.rs`).

use std::collections::BTreeMap;

use anyhow::Result;
use dist::client::sources::Sources;
use dist::client::{sync, Layout};
use dist::format::ids::PackageName;
use dist::index::record::PackageRecord;

use super::out::{Cell, Style, Table};
use super::settings::config;
use super::{json, out, printable, reporter, Global};
use crate::cli::ClientFlags;

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
            println!("{}", sync_line(&r, g.verbose));
        }
        return Ok(0);
    }
    let mut failed = 0;
    for (name, result) in &results {
        match result {
            Ok(r) => {
                warn_sync(r);
                if !json {
                    println!("{name}: {}", sync_line(r, g.verbose));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "{} {}",
                    out::error_prefix(),
                    super::printable_error(&format!("{e:#}"))
                );
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
        eprintln!("{} {w}", out::warning_prefix());
    }
    for k in &r.key_rotations {
        eprintln!(
            "{} the repository rotated its key {} -> {}: verified by the rotation statement, trusted from now on (recorded beside the index in trust.json)",
            out::note_prefix(),
            k.from,
            k.to
        );
    }
    for k in &r.revoked_keys {
        eprintln!(
            "{} the repository revoked key {k}: it is never accepted again",
            out::note_prefix()
        );
    }
    for b in &r.behind {
        eprintln!(
            "{} {} is behind: it offers index serial {}, {} offers {}",
            out::warning_prefix(),
            b.server,
            b.serial,
            r.server,
            r.serial
        );
    }
}

fn sync_line(r: &sync::SyncReport, verbose: bool) -> String {
    let versions = out::count(r.packages as u64, "package version");
    let mut line = if r.changed {
        let how = match r.mode {
            sync::SyncMode::Delta => "deltas",
            _ => "the whole index",
        };
        format!(
            "index updated to serial {} ({versions}; {} on the wire, {how})",
            r.serial,
            out::size(r.bytes_on_wire)
        )
    } else {
        format!("index unchanged at serial {} ({versions})", r.serial)
    };
    if verbose {
        line.push_str(&format!(
            "\n  from {}, signed {} by key {}",
            r.server,
            out::date(r.created),
            r.key
        ));
    }
    line
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
        return Ok(0);
    }
    let mut t = Table::new().right_aligned(&[1]);
    for gen in &gens {
        let here = Some(gen.number) == cur;
        t.row(vec![
            if here {
                Cell::styled("*", Style::Green)
            } else {
                " ".into()
            },
            match here {
                true => Cell::styled(gen.number.to_string(), Style::Bold),
                false => gen.number.to_string().into(),
            },
            Cell::styled(out::date(gen.created), Style::Dim),
            gen.labels().join(" ").into(),
        ]);
    }
    t.print("");
    Ok(0)
}

/// `dist list`: every version the synced indexes publish; with `--installed` or `--held`
/// (`installed`), what is installed.
/// `--upgradable`: what `dist outdated` lists (apt's `list --upgradable`).
pub fn list(g: &Global, f: &ClientFlags, which: (bool, bool, bool), json: bool) -> Result<i32> {
    let (installed, upgradable, held) = which;
    if upgradable {
        return super::packages::outdated(g, f, json);
    }
    if installed || held {
        return list_installed(g, held, json);
    }
    let layout = Layout::new(&g.root);
    let sources = Sources::open(&layout, &config(g, f)?)?;
    let all = sources.each(|snap| snap.all())?;
    if json {
        let v: Vec<json::Record> = all.iter().map(|(p, r)| json::Record::new(p, r)).collect();
        json::print(&v)?;
    } else {
        let many = sources.iter().count() > 1;
        record_table(&all, many).print("");
    }
    Ok(0)
}

/// `dist list --installed` / `--held`: the installed packages, each with how it came
/// (requested by name, or as a dependency) and whether it is held.
fn list_installed(g: &Global, held_only: bool, json: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let held = layout.holds()?;
    let mut pkgs: Vec<_> = layout
        .current()?
        .map(|g| g.packages.into_values().collect())
        .unwrap_or_default();
    if held_only {
        pkgs.retain(|p: &dist::client::generation::Installed| held.contains(&p.name));
    }
    if json {
        let v: Vec<json::InstalledEntry> = pkgs
            .iter()
            .map(|p| json::InstalledEntry::new(p, held.contains(&p.name)))
            .collect();
        json::print(&v)?;
        return Ok(0);
    }
    if pkgs.is_empty() {
        println!(
            "{}",
            if held_only {
                "nothing is held"
            } else {
                "nothing is installed"
            }
        );
        return Ok(0);
    }
    let mut t = Table::new().right_aligned(&[4]);
    for p in &pkgs {
        t.row(vec![
            Cell::styled(p.name.as_str(), Style::Bold),
            p.version.to_string().into(),
            match p.requested {
                true => "requested".into(),
                false => Cell::styled("dependency", Style::Dim),
            },
            match held.contains(&p.name) {
                true => Cell::styled("held", Style::Yellow),
                false => "".into(),
            },
            out::size(p.size).into(),
            p.store_path.display().to_string().into(),
        ]);
    }
    t.print("");
    Ok(0)
}
/// `dist gc [--dry-run]`: first what `autoremove` removes (installed as a dependency, needed
/// by nothing requested any more), then generations beyond `--keep` and everything no
/// generation uses.
pub fn gc(
    g: &Global,
    f: &ClientFlags,
    keep: Option<usize>,
    dry_run: bool,
    json: bool,
) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let settings = config(g, f)?;
    let reporter = reporter::Cli::new(g.quiet || json);
    let plan = dist::client::remove::plan_autoremove(&layout, &settings)?;
    let pending = plan.as_ref().map(|p| p.remaining());
    let autoremoved = match (plan, dry_run) {
        (None, _) => Vec::new(),
        (Some(p), true) => p.leaving(),
        (Some(p), false) => {
            let cause = dist::client::transition::Cause::Change;
            p.apply(&layout, &settings, cause, &reporter)?.1
        }
    };
    // A root can be a repository too: what its index publishes stays.
    let published = dist::repo::Repo::new(&layout.root).indexed_objects()?;
    let options = dist::client::maintain::GcOptions {
        keep,
        dry_run,
        pending: pending.as_ref(),
        published: Some(&published),
    };
    let r = dist::client::maintain::gc(&layout, options)?;
    if json {
        let mut out = json::Gc::from(&r);
        out.autoremoved = autoremoved.iter().map(Into::into).collect();
        out.dry_run = dry_run;
        json::print(&out)?;
        return Ok(0);
    }
    let would = |done: &str, not_yet: &str| {
        if dry_run {
            not_yet.to_string()
        } else {
            done.to_string()
        }
    };
    for p in &autoremoved {
        println!(
            "{} {} (nothing requested needs it)",
            would("removed", "would remove"),
            p.id()
        );
    }
    if g.verbose {
        for n in &r.generations_removed {
            println!("{} generation {n}", would("removed", "would remove"));
        }
        for p in &r.store_paths_removed {
            println!("{} store path {p}", would("removed", "would remove"));
        }
        for o in &r.objects_removed {
            println!("{} object {o}", would("removed", "would remove"));
        }
    }
    println!(
        "{} {}, {}, {}; {} {}{}",
        would("removed", "would remove"),
        out::count(r.generations_removed.len() as u64, "generation"),
        out::count(r.store_paths_removed.len() as u64, "store path"),
        out::count(r.objects_removed.len() as u64, "object"),
        would("freed", "would free"),
        out::size(r.bytes_freed),
        if dry_run {
            " (nothing was changed)"
        } else {
            ""
        }
    );
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
                println!("{}       {}{y}", out::paint(Style::Green, "ok"), e.id());
            } else {
                println!(
                    "{}  {}{y} ({})",
                    out::paint(Style::Red, "CHANGED"),
                    e.id(),
                    e.store_path.display()
                );
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
            "{} {bad} of {} differ from what was installed",
            out::error_prefix(),
            out::count(entries.len() as u64, "store path")
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
        record_table(&hits, many).print("");
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

/// Index records as aligned lines: `name  version  size  description`, with the repository
/// first when several are configured.
fn record_table(records: &[(PackageRecord, &str)], many: bool) -> Table {
    let mut t = Table::new().right_aligned(&[if many { 3 } else { 2 }]);
    for (p, r) in records {
        let mut row: Vec<Cell> = Vec::new();
        if many {
            row.push(Cell::styled(*r, Style::Dim));
        }
        row.push(Cell::styled(p.name.as_str(), Style::Bold));
        row.push(p.version.to_string().into());
        row.push(out::size(p.size).into());
        row.push(
            printable(p.description.as_deref().unwrap_or(""))
                .into_owned()
                .into(),
        );
        t.row(row);
    }
    t
}
