//! The commands that take packages out or keep them: `uninstall`, `autoremove` (both with
//! `--dry-run`), `hold`/`unhold`, and `hold` alone, which lists the holds. An uninstall says
//! what it left unneeded (installed as dependencies of what went, needed by nothing now).

use anyhow::Result;
use dist::client::generation::Installed;
use dist::client::remove::{self, Removal};
use dist::client::Layout;
use dist::format::ids::PackageName;

use super::out::{self, Cell, Style, Table};
use super::settings::config;
use super::{json, reporter, Global};
use crate::cli::{AutoremoveArgs, ClientFlags, UninstallArgs};

pub fn uninstall(g: &Global, f: &ClientFlags, a: &UninstallArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || a.json);
    // `--purge` of what is no longer installed: its leftover state and configuration.
    let mut names = Vec::new();
    for n in &a.names {
        if !(a.purge && remove::has_leftovers(&layout, n)?) {
            names.push(n.clone());
            continue;
        }
        if !a.dry_run {
            remove::purge_leftovers(&layout, n)?;
        }
        if !a.json {
            let verb = if a.dry_run { "would purge" } else { "purged" };
            println!("{verb} what {n} left (state and configuration)");
        }
    }
    if names.is_empty() {
        return print_removed(&[], None, &[], a.dry_run, a.json);
    }
    let plan = remove::plan_uninstall(&layout, &settings, &names, a.with_dependents)?;
    if a.dry_run {
        return print_removed(&plan.leaving(), None, &[], true, a.json);
    }
    let cause = match a.purge {
        true => dist::client::transition::Cause::Purge,
        false => dist::client::transition::Cause::Change,
    };
    let (gen, removed) = plan.apply(&layout, &settings, cause, &reporter)?;
    // What the removed packages had pulled in and nothing needs now: `autoremove`'s to take.
    let unneeded = remove::plan_autoremove(&layout, &settings)
        .ok()
        .flatten()
        .map(|r| r.leaving())
        .unwrap_or_default();
    print_removed(&removed, Some(gen), &unneeded, false, a.json)
}

/// `dist autoremove [--dry-run]`: what was installed as a dependency and is needed no more.
pub fn autoremove(g: &Global, f: &ClientFlags, a: &AutoremoveArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || a.json);
    let plan: Option<Removal> = remove::plan_autoremove(&layout, &settings)?;
    match (plan, a.dry_run) {
        (None, _) => print_removed(&[], None, &[], a.dry_run, a.json),
        (Some(p), true) => print_removed(&p.leaving(), None, &[], true, a.json),
        (Some(p), false) => {
            let cause = dist::client::transition::Cause::Change;
            let (gen, removed) = p.apply(&layout, &settings, cause, &reporter)?;
            print_removed(&removed, Some(gen), &[], false, a.json)
        }
    }
}

fn print_removed(
    removed: &[Installed],
    generation: Option<u64>,
    unneeded: &[Installed],
    dry_run: bool,
    json_out: bool,
) -> Result<i32> {
    if json_out {
        json::print(&json::Removed {
            removed: removed.iter().map(Into::into).collect(),
            generation,
            dry_run,
            unneeded: unneeded.iter().map(Into::into).collect(),
        })?;
        return Ok(0);
    }
    if removed.is_empty() {
        println!("nothing to remove");
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for p in removed {
        println!("{} {}", out::paint(Style::Yellow, verb), p.id());
    }
    if dry_run && !removed.is_empty() {
        let bytes: u64 = removed.iter().map(|p| p.size).sum();
        println!(
            "{} ({} of objects); nothing was changed",
            out::count(removed.len() as u64, "package"),
            out::size(bytes)
        );
    }
    if let Some(n) = generation {
        println!("generation {n} is current");
    }
    if !unneeded.is_empty() {
        let ids: Vec<String> = unneeded.iter().map(|p| p.id().to_string()).collect();
        println!(
            "no longer needed (installed as dependencies): {}; `dist autoremove` removes {}",
            ids.join(", "),
            if ids.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(0)
}

/// `dist hold NAME` / `dist unhold NAME`; `dist hold` alone lists the holds.
pub fn hold(g: &Global, name: Option<&str>, on: bool, json_out: bool) -> Result<i32> {
    let Some(name) = name else {
        return holds(g, json_out);
    };
    let layout = Layout::new(&g.root);
    let name = PackageName::parse(name).map_err(|e| anyhow::anyhow!("`{name}`: {e}"))?;
    let changed = layout.set_hold(&name, on)?;
    if json_out {
        json::print(&json::Hold {
            name: &name,
            held: on,
            changed,
        })?;
        return Ok(0);
    }
    match (on, changed) {
        (true, true) => println!("held {name}: upgrade and resolution keep its version"),
        (true, false) => println!("{name} was held already"),
        (false, true) => println!("released {name}"),
        (false, false) => println!("{name} was not held"),
    }
    Ok(0)
}

/// `dist hold` without a name: the held packages and the versions they keep.
fn holds(g: &Global, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let held = layout.holds()?;
    let installed = layout.current()?.map(|c| c.packages).unwrap_or_default();
    if json_out {
        let v: Vec<json::Held> = held
            .iter()
            .map(|n| json::Held {
                name: n,
                version: installed.get(n).map(|p| &p.version),
            })
            .collect();
        json::print(&json::Holds { held: v })?;
        return Ok(0);
    }
    if held.is_empty() {
        println!("nothing is held (`dist hold NAME` keeps a package at its version)");
        return Ok(0);
    }
    let mut t = Table::new();
    for n in &held {
        let version = installed
            .get(n)
            .map_or_else(|| "(not installed)".to_string(), |p| p.version.to_string());
        t.row(vec![Cell::styled(n.as_str(), Style::Bold), version.into()]);
    }
    t.print("");
    Ok(0)
}
