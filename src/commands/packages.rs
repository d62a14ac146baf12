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
use dist::client::{conffiles, offline, Layout};
use dist::format::ids::PackageName;

use super::out::{self, Cell, Style, Table};
use super::settings::config;
use super::{json, notices, reporter, Global};
use crate::cli::{BundleArgs, ClientFlags, InstallArgs, UpgradeArgs};

pub fn install(g: &Global, f: &ClientFlags, a: &InstallArgs) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    if let Some(file) = &a.from_bundle {
        let imported = offline::import_bundle(&layout, &settings, file)?;
        if !g.quiet {
            eprintln!(
                "{}: {} verified and stored{}",
                file.display(),
                out::count(imported.objects as u64, "object"),
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
            out::count(kept.len() as u64, "package")
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
        notices::after_change(g, outcome.generation, outcome.seeding.as_ref());
        return Ok(0);
    }
    if how.kept_back.is_some() {
        print_upgraded(&outcome, started.elapsed());
    } else {
        print_installed(&outcome);
    }
    if g.verbose {
        print_fetches(&outcome);
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
    }
    notices::after_change(g, outcome.generation, outcome.seeding.as_ref());
    Ok(0)
}

/// `--verbose`: how each object came, why that way, from whom, and how long it took.
fn print_fetches(outcome: &install::Outcome) {
    for i in &outcome.installed {
        let Some(f) = &i.fetched else { continue };
        let engine = f.engine.map(|e| format!(" ({e})")).unwrap_or_default();
        println!(
            "  {}: {} over {}{engine} in {}: {}; {} from peers, {} from web seeds",
            i.item.record.id(),
            out::size(i.item.record.size),
            f.transport,
            out::duration(f.took),
            f.why.text(f.transport),
            out::size(f.fetched.bytes_from_peers),
            out::size(f.fetched.bytes_from_webseed)
        );
    }
}

fn print_installed(outcome: &install::Outcome) {
    let done = out::paint(Style::Green, "installed");
    for i in &outcome.installed {
        let id = i.item.record.id();
        match (i.change, i.old_version()) {
            (None, _) => println!("{id} is already installed"),
            (Some(c), Some(old)) if c != Change::Reinstall => println!(
                "{done} {id} ({} from {old}){} -> {}",
                c.name(),
                dependency(&i.item.because),
                i.store_path.display()
            ),
            _ => println!(
                "{done} {id}{} -> {}",
                dependency(&i.item.because),
                i.store_path.display()
            ),
        }
    }
}

/// `name old -> new` for each change, then one line: how many, bytes fetched, time.
fn print_upgraded(outcome: &install::Outcome, took: std::time::Duration) {
    let mut fetched = 0;
    let mut changed = 0u64;
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
        out::count(changed, "package"),
        out::size(fetched),
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
    let mut t = Table::new().right_aligned(&[1]);
    let (mut fetch, mut fetch_bytes) = (0u64, 0u64);
    for p in &plan.items {
        let how = match p.action.fetcher() {
            Some(t) => {
                fetch += 1;
                fetch_bytes += p.record.size;
                format!("fetch over {t}")
            }
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
        t.row(vec![
            Cell::styled(p.record.id().to_string(), Style::Bold),
            out::size(p.record.size).into(),
            format!("{how}{rep}{}", dependency(&p.because)).into(),
        ]);
    }
    t.print("");
    if !plan.items.is_empty() {
        let total: u64 = plan.items.iter().map(|p| p.record.size).sum();
        println!(
            "{}, {} in all; {} to fetch ({}); nothing was changed",
            out::count(plan.items.len() as u64, "package"),
            out::size(total),
            out::count(fetch, "object"),
            out::size(fetch_bytes)
        );
    }
    print_kept_back(kept);
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
        let mut t = Table::new();
        for o in &list {
            let yanked = match &o.yanked {
                Some(r) => format!(" (yanked: {})", super::printable(r)),
                None => String::new(),
            };
            let mut row: Vec<Cell> = vec![
                Cell::styled(o.name.as_str(), Style::Bold),
                format!("{}{yanked}", o.installed).into(),
            ];
            if let Some(b) = &o.changed {
                row.push(Cell::styled(
                    format!(
                        "the index has other bytes for this version (blake3 {b}); `dist install --reinstall {}` accepts them",
                        o.name
                    ),
                    Style::Yellow,
                ));
            } else if o.newest.cmp_precedence(&o.installed).is_gt() {
                row.push("->".into());
                row.push(Cell::styled(o.newest.to_string(), Style::Green));
                if let Some(why) = &o.kept_back {
                    row.push(format!("({})", super::printable(why)).into());
                }
            }
            t.row(row);
        }
        t.print("");
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
            "wrote {} ({}, {})",
            b.path.display(),
            out::count(b.packages.len() as u64, "package"),
            out::size(b.bytes)
        );
    }
    Ok(0)
}
