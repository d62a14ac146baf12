//! The commands that change or report the installed set: install, upgrade, uninstall,
//! autoremove, outdated, hold/unhold. `install` and `upgrade` share the plan's printing and
//! execution.

use std::collections::BTreeSet;

use anyhow::Result;
use dist::client::install::{self, Stage};
use dist::client::plan::{self, Action};
use dist::client::request::{Request, Spec};
use dist::client::resolve::Because;
use dist::client::sources::Sources;
use dist::client::{remove, Layout};
use dist::format::ids::PackageName;

use super::client::config;
use super::{json, reporter, Global};
use crate::cli::{ClientFlags, InstallArgs, UpgradeArgs};

pub fn install(g: &Global, f: &ClientFlags, a: &InstallArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let sources = Sources::open(&layout, &settings)?;
    let reqs = a
        .packages
        .iter()
        .map(|p| Request::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let resolving = std::time::Instant::now();
    let options = plan::Options {
        replace: a.replace,
        reinstall: if a.reinstall {
            reqs.iter().map(|r| r.name.clone()).collect()
        } else {
            BTreeSet::new()
        },
        ..Default::default()
    };
    let plan = plan::plan_with(&layout, &settings, &sources, &reqs, options)?;
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
    let sources = Sources::open(&layout, &settings)?;
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
            repo: None,
        })
        .collect();
    let resolving = std::time::Instant::now();
    let options = plan::Options {
        refresh: names,
        ..Default::default()
    };
    let mut plan = plan::plan_with(&layout, &settings, &sources, &reqs, options)?;
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
    names: &[String],
    with_dependents: bool,
    json_out: bool,
) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || json_out);
    let (gen, removed) = remove::uninstall(&layout, &settings, names, with_dependents, &reporter)?;
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
pub fn outdated(g: &Global, f: &ClientFlags, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let list = remove::outdated(&layout, &config(g, f)?)?;
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
pub fn hold(g: &Global, name: &str, on: bool, json_out: bool) -> Result<i32> {
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
