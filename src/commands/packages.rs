//! The commands that change or report the installed set: install, upgrade, uninstall,
//! autoremove, outdated, hold/unhold. `install` and `upgrade` share the plan's printing and
//! execution.

use std::collections::BTreeSet;

use anyhow::Result;
use dist::client::install::{self, Stage};
use dist::client::plan;
use dist::client::request::{Request, Spec};
use dist::client::resolve::Because;
use dist::client::sources::Sources;
use dist::client::transition::Change;
use dist::client::upgrade::{self, KeptBack};
use dist::client::{conffiles, offline, remove, Layout};
use dist::format::ids::PackageName;

use super::client::config;
use super::{json, notices, reporter, Global};
use crate::cli::{BundleArgs, ClientFlags, InstallArgs, UninstallArgs, UpgradeArgs};

pub fn install(g: &Global, f: &ClientFlags, a: &InstallArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    if let Some(file) = &a.from_bundle {
        let imported = offline::import_bundle(&layout, &settings, file)?;
        if !g.quiet {
            eprintln!(
                "{}: {} objects verified and stored{}",
                file.display(),
                imported.objects,
                match imported.indexes.is_empty() {
                    true => String::new(),
                    false => format!("; index of {} updated", imported.indexes.join(", ")),
                }
            );
        }
    }
    let sources = Sources::open(&layout, &settings)?;
    let reqs = a
        .packages
        .iter()
        .map(|p| match offline::is_local_path(p) {
            true => offline::local_object(&layout, &sources, std::path::Path::new(p), a.dry_run),
            false => Request::parse(p),
        })
        .collect::<Result<Vec<_>>>()?;
    let resolving = std::time::Instant::now();
    let options = plan::Options {
        replace: a.replace,
        reinstall: if a.reinstall {
            reqs.iter().map(|r| r.name.clone()).collect()
        } else {
            BTreeSet::new()
        },
        // A bundle holds what its maker chose: its versions are taken whatever the rollouts.
        no_phasing: f.no_phasing || a.from_bundle.is_some(),
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
    if let Some(file) = &a.from_bundle {
        let missing = plan.items.iter().find(|i| i.action.fetcher().is_some());
        if let Some(i) = missing {
            anyhow::bail!(
                "{}: the bundle lacks {} (blake3 {}), which this install needs; nothing was changed",
                file.display(),
                i.record.id(),
                i.record.blake3.to_hex()
            );
        }
    }
    let how = Output {
        json: a.json,
        dry_run: a.dry_run,
        resolve: resolving.elapsed(),
        kept_back: None,
    };
    execute(g, &layout, &settings, plan, &how)
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
/// versions their constraints and holds allow; a downgrade needs `--allow-downgrade`. What
/// cannot move is listed with why (kept back), as `outdated` lists it.
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
    let resolving = std::time::Instant::now();
    let (plan, kept) = upgrade::plan(&layout, &settings, &sources, &names, f.no_phasing)?;
    refuse_downgrades(&plan, &BTreeSet::new(), a.allow_downgrade)?;
    let how = Output {
        json: a.json,
        dry_run: a.dry_run,
        resolve: resolving.elapsed(),
        kept_back: Some(&kept),
    };
    if plan.items.is_empty() && plan.removes.is_empty() {
        return print_up_to_date(&how);
    }
    execute(g, &layout, &settings, plan, &how)
}

/// How `execute` prints; `kept_back` is `Some` for `upgrade`.
struct Output<'a> {
    json: bool,
    dry_run: bool,
    resolve: std::time::Duration,
    kept_back: Option<&'a [KeptBack]>,
}

/// `upgrade` with nothing to do: the kept-back packages, or that everything is up to date.
fn print_up_to_date(how: &Output<'_>) -> Result<i32> {
    let kept = how.kept_back.unwrap_or_default();
    if how.json {
        let v: Vec<json::UpgradeEntry> = kept
            .iter()
            .map(|k| json::UpgradeEntry::KeptBack(k.into()))
            .collect();
        json::print(&v)?;
    } else if kept.is_empty() {
        println!("everything is up to date");
    } else {
        print_kept_back(kept);
        println!(
            "nothing to upgrade: {} kept back",
            count(kept.len(), "package")
        );
    }
    Ok(0)
}

fn print_kept_back(kept: &[KeptBack]) {
    for k in kept {
        println!(
            "{} {} (latest {}): {}",
            k.name, k.installed, k.latest, k.reason
        );
    }
}

/// `1 package`, `2 packages`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn dependency(b: &Because) -> String {
    match b {
        Because::Dependency(by) => format!(" (dependency of {by})"),
        _ => String::new(),
    }
}

/// Prints a plan (`dry_run`) or carries it out and prints what it did.
fn execute(
    g: &Global,
    layout: &Layout,
    settings: &dist::client::config::Settings,
    plan: plan::Plan,
    how: &Output<'_>,
) -> Result<i32> {
    if !how.json {
        for r in &plan.removes {
            println!(
                "{} {} (--replace: a package of this install conflicts with it)",
                if how.dry_run {
                    "would remove"
                } else {
                    "removes"
                },
                r.id()
            );
        }
    }
    if how.dry_run {
        return print_plan(&plan, how);
    }
    let started = std::time::Instant::now();
    let reporter = reporter::Cli::new(g.quiet || how.json);
    let outcome = install::install(layout, settings, plan, &reporter);
    reporter.finish();
    let mut outcome = outcome?;
    for i in outcome.installed.iter_mut() {
        i.stages.insert(Stage::Resolve, how.resolve);
    }
    let kept = how.kept_back.unwrap_or_default();
    if how.json {
        let mut v: Vec<json::UpgradeEntry> = outcome
            .installed
            .iter()
            .map(|i| json::UpgradeEntry::Changed(i.into()))
            .collect();
        v.extend(kept.iter().map(|k| json::UpgradeEntry::KeptBack(k.into())));
        json::print(&v)?;
        notices::seeding(g, outcome.seeding.as_ref());
        return Ok(0);
    }
    if how.kept_back.is_some() {
        print_upgraded(&outcome, started.elapsed());
    } else {
        print_installed(&outcome);
    }
    print_kept_back(kept);
    for r in &outcome.replaced {
        println!("removed {} (--replace: {})", r.package.id(), r.clash);
    }
    for path in &outcome.config_kept {
        println!(
            "kept your changed {}; the new version's is beside it as {}",
            path.display(),
            conffiles::beside(path).display()
        );
    }
    if let Some(n) = outcome.generation {
        println!("generation {n} is current");
        notices::path_hint(g);
    }
    notices::seeding(g, outcome.seeding.as_ref());
    Ok(0)
}

fn print_installed(outcome: &install::Outcome) {
    for i in &outcome.installed {
        let id = i.item.record.id();
        match (i.change, i.old_version()) {
            (None, _) => println!("{id} is already installed"),
            (Some(c), Some(old)) if c != Change::Reinstall => println!(
                "installed {id} ({} from {old}){} -> {}",
                c.name(),
                dependency(&i.item.because),
                i.store_path.display()
            ),
            _ => println!(
                "installed {id}{} -> {}",
                dependency(&i.item.because),
                i.store_path.display()
            ),
        }
    }
}

/// `name old -> new` for each change, then one line: how many, bytes fetched, time.
fn print_upgraded(outcome: &install::Outcome, took: std::time::Duration) {
    let mut fetched = 0;
    let mut changed = 0;
    for i in &outcome.installed {
        let Some(change) = i.change else { continue };
        changed += 1;
        let rec = &i.item.record;
        fetched += i.fetched.as_ref().map_or(0, |_| rec.size);
        match i.old_version() {
            Some(old) => println!("{} {old} -> {}", rec.name, rec.version),
            None => println!(
                "{} {} ({}{})",
                rec.name,
                rec.version,
                change.name(),
                dependency(&i.item.because)
            ),
        }
    }
    println!(
        "upgraded {}, fetched {} in {:.1}s",
        count(changed, "package"),
        indicatif::HumanBytes(fetched),
        took.as_secs_f64()
    );
}

/// `--dry-run`: the plan, as text or as `install --json`'s entries without the results.
fn print_plan(plan: &plan::Plan, how: &Output<'_>) -> Result<i32> {
    let kept = how.kept_back.unwrap_or_default();
    if how.json {
        let mut v: Vec<json::UpgradeEntry> = plan
            .items
            .iter()
            .map(|i| json::UpgradeEntry::Planned(i.into()))
            .collect();
        v.extend(kept.iter().map(|k| json::UpgradeEntry::KeptBack(k.into())));
        json::print(&v)?;
        return Ok(0);
    }
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
    print_kept_back(kept);
    Ok(0)
}

pub fn uninstall(g: &Global, f: &ClientFlags, a: &UninstallArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reporter = reporter::Cli::new(g.quiet || a.json);
    // `--purge` of what is no longer installed: its leftover state and configuration.
    let mut names = Vec::new();
    for n in &a.names {
        if a.purge && remove::purge_leftovers(&layout, n)? {
            if !a.json {
                println!("purged what {n} left (state and configuration)");
            }
        } else {
            names.push(n.clone());
        }
    }
    if names.is_empty() {
        return print_removed(&[], None, a.json);
    }
    let (gen, removed) = remove::uninstall(
        &layout,
        &settings,
        &names,
        a.with_dependents,
        a.purge,
        &reporter,
    )?;
    print_removed(&removed, Some(gen), a.json)
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

/// `dist outdated`: installed packages with a newer version in the index, and why `upgrade`
/// would keep one back.
pub fn outdated(g: &Global, f: &ClientFlags, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let list = upgrade::outdated(&layout, &config(g, f)?, f.no_phasing)?;
    if json_out {
        let v: Vec<json::Outdated> = list.iter().map(Into::into).collect();
        json::print(&v)?;
    } else if list.is_empty() {
        println!("everything is up to date");
    } else {
        for o in &list {
            let why = match &o.kept_back {
                Some(why) => format!("  ({})", super::printable(why)),
                None => String::new(),
            };
            let yanked = match &o.yanked {
                Some(r) => format!(" (yanked: {})", super::printable(r)),
                None => String::new(),
            };
            if let Some(b) = &o.changed {
                println!(
                    "{}  {}: the index has other bytes for this version (blake3 {b}); \
                     `dist install --reinstall {}` accepts them",
                    o.name, o.installed, o.name
                );
                continue;
            }
            match o.newest.cmp_precedence(&o.installed).is_gt() {
                true => println!("{}  {}{yanked} -> {}{why}", o.name, o.installed, o.newest),
                false => println!("{}  {}{yanked}", o.name, o.installed),
            }
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

/// `dist bundle NAME... -o FILE`: the packages with every dependency and the signed index that
/// verifies them, in one file.
pub fn bundle(g: &Global, f: &ClientFlags, a: &BundleArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let reqs = a
        .packages
        .iter()
        .map(|p| Request::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let reporter = reporter::Cli::new(g.quiet || a.json);
    let b = offline::write_bundle(&layout, &settings, &reqs, &a.output, &reporter)?;
    if a.json {
        json::print::<json::Bundled>(&b)?;
    } else {
        for p in &b.packages {
            println!("{}@{} ({})", p.name, p.version, p.repository);
        }
        println!(
            "wrote {} ({} packages, {} bytes)",
            b.path.display(),
            b.packages.len(),
            b.bytes
        );
    }
    Ok(0)
}
