//! `dist export [-o FILE] [--json]` and `dist apply FILE [--dry-run] [--json]`: a machine's
//! installed set as a file, and making a machine's set exactly one (issue 22).

use anyhow::Result;
use dist::client::install::{self, Stage};
use dist::client::lockfile::{self, InstalledSet};
use dist::client::plan::{Plan, PlanItem};
use dist::client::sources::Sources;
use dist::client::transition::Change;
use dist::client::Layout;
use dist::store::fsx;

use super::json_status::{self, ApplyEntry, Removal};
use super::settings::config;
use super::{json, reporter, Global};
use crate::cli::{ApplyArgs, ClientFlags, ExportArgs};

pub fn export(g: &Global, f: &ClientFlags, a: &ExportArgs) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let settings = config(g, f)?;
    let nothing = layout.current()?.is_none_or(|gen| gen.packages.is_empty());
    let sources = if nothing {
        None
    } else {
        Some(Sources::open(&layout, &settings)?)
    };
    let set = lockfile::export(&layout, sources.as_ref())?;
    let text = set.render();
    if let Some(path) = &a.output {
        fsx::write_atomic(path, text.as_bytes(), 0o644)?;
    }
    let file = a.output.as_ref().map(|p| p.display().to_string());
    if a.json {
        json::print(&json_status::Export::new(&set, file))?;
    } else if let Some(f) = file {
        let n = set.entries.len();
        println!("wrote {n} package{} to {f}", if n == 1 { "" } else { "s" });
    } else {
        print!("{text}");
    }
    Ok(0)
}

pub fn apply(g: &Global, f: &ClientFlags, a: &ApplyArgs) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let settings = config(g, f)?;
    let set = InstalledSet::read(&a.file)?;
    let sources = Sources::open(&layout, &settings)?;
    let resolving = std::time::Instant::now();
    let plan = dist::client::apply::plan(&layout, &settings, &sources, &set)?;
    let resolved = resolving.elapsed();
    if a.dry_run {
        return print_plan(&plan, a.json);
    }
    let removes = plan.removes.clone();
    let reporter = reporter::Cli::new(g.quiet || a.json);
    let outcome = install::install(&layout, &settings, plan, &reporter);
    reporter.finish();
    let mut outcome = outcome?;
    for i in outcome.installed.iter_mut() {
        i.stages.insert(Stage::Resolve, resolved);
    }
    if a.json {
        let mut v: Vec<ApplyEntry> = outcome
            .installed
            .iter()
            .map(|i| ApplyEntry::Changed(i.into()))
            .collect();
        v.extend(
            removes
                .iter()
                .map(|r| ApplyEntry::Removed(Removal::new(r, true))),
        );
        json::print(&v)?;
        super::notices::after_change(g, outcome.generation, outcome.seeding.as_ref());
        return Ok(0);
    }
    for i in &outcome.installed {
        if let Some(c) = i.change {
            println!("{}", change_line(c, &i.item, true));
        }
    }
    for r in &removes {
        println!("removed {}", r.id());
    }
    match outcome.generation {
        Some(n) => println!("generation {n} is current"),
        None => println!("the installed set is already this one: nothing changed"),
    }
    super::notices::after_change(g, outcome.generation, outcome.seeding.as_ref());
    Ok(0)
}

/// `--dry-run`: what would change, as text or as `install --dry-run --json`'s entries.
fn print_plan(plan: &Plan, json_out: bool) -> Result<i32> {
    if json_out {
        let mut v: Vec<ApplyEntry> = plan
            .items
            .iter()
            .map(|i| ApplyEntry::Planned(i.into()))
            .collect();
        v.extend(
            plan.removes
                .iter()
                .map(|r| ApplyEntry::Removed(Removal::new(r, false))),
        );
        json::print(&v)?;
        return Ok(0);
    }
    let mut stay = 0;
    for i in &plan.items {
        match planned_change(i) {
            Some(c) => println!("would {}", change_line(c, i, false)),
            None => stay += 1,
        }
    }
    for r in &plan.removes {
        println!("would remove {}", r.id());
    }
    println!("{stay} stay as they are");
    Ok(0)
}

/// What the transition would do with a planned item (`None`: it stays).
fn planned_change(i: &PlanItem) -> Option<Change> {
    if i.action == dist::client::plan::Action::Installed {
        return None;
    }
    Change::between(
        i.replaces.as_ref().map(|r| &r.version),
        Some(&i.record.version),
    )
}

/// `install hello@1.0.0`, `upgrade hello 1.0.0 -> 2.0.0`, `downgrade …`, `reinstall …`
/// (`installed`, `upgraded`, … when `done`).
fn change_line(c: Change, i: &PlanItem, done: bool) -> String {
    let rec = &i.record;
    let verb = match (done, c.name().ends_with('e')) {
        (false, _) => c.name().to_string(),
        (true, true) => format!("{}d", c.name()),
        (true, false) => format!("{}ed", c.name()),
    };
    match &i.replaces {
        Some(old) if c != Change::Install => {
            format!("{verb} {} {} -> {}", rec.name, old.version, rec.version)
        }
        _ => format!("{verb} {}", rec.id()),
    }
}
