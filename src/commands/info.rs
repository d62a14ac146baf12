//! What the index and the installed set say about one package: `dist info` (alias `show`:
//! every version with what the web catalog shows) and `dist why` (the requested packages that
//! need it).

use anyhow::{Context, Result};
use dist::client::sources::{Candidate, Sources};
use dist::client::{suggest, why, Layout};
use dist::format::ids::PackageName;
use dist::index::record::PackageRecord;
use dist::text::{date, size as bytes};

use super::settings::config;
use super::usage::not_found;
use super::{json, printable, Global};
use crate::cli::ClientFlags;

/// `dist info NAME [--json]`.
pub fn info(g: &Global, f: &ClientFlags, name: &str, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let sources = Sources::open(&layout, &config(g, f)?)?;
    let candidates = match PackageName::parse(name) {
        Ok(n) => sources.versions(&n, None)?,
        Err(_) => Vec::new(),
    };
    if candidates.is_empty() {
        return Err(dist::client::request::UnknownPackage {
            name: name.to_string(),
            place: format!("the index ({})", sources.describe()),
            similar: sources.similar(name, None),
        }
        .into());
    }
    let repo_of = |c: &Candidate| sources.get(c.source).origin.repo.name.as_str().to_string();
    let repos: Vec<String> = candidates.iter().map(repo_of).collect();
    let versions: Vec<PackageRecord> = candidates.into_iter().map(|c| c.record).collect();
    let installed = layout
        .current()?
        .and_then(|g| g.packages.get(name).cloned());
    let here = |v: &PackageRecord| installed.as_ref().is_some_and(|i| i.blake3 == v.blake3);
    let description = versions.last().and_then(|v| v.description.as_deref());
    if json_out {
        return json::print(&json::Info {
            description,
            installed: installed.as_ref().map(|i| &i.version),
            name,
            versions: versions
                .iter()
                .zip(&repos)
                .map(|(v, repository)| json::InfoVersion::new(v, repository, here(v)))
                .collect(),
        })
        .map(|()| 0);
    }
    println!(
        "{}: {}",
        printable(name),
        printable(description.unwrap_or_default())
    );
    let many = sources.iter().count() > 1;
    for (v, repo) in versions.iter().rev().zip(repos.iter().rev()) {
        print_version(v, here(v), many.then_some(repo.as_str()));
    }
    Ok(0)
}

/// One version in `info`'s text: its line (version, size, date, marks), then what it needs.
fn print_version(v: &PackageRecord, installed: bool, repo: Option<&str>) {
    let mark = if installed { " (installed)" } else { "" };
    let repo = repo.map(|r| format!("  from {r}")).unwrap_or_default();
    println!(
        "  {}  {}  added {}{repo}{mark}{}",
        v.version,
        bytes(v.size),
        date(v.added_at),
        status_marks(v)
    );
    println!("      blake3 {}  infohash {}", v.blake3, v.infohash);
    if !v.relations.depends.is_empty() {
        let d: Vec<String> = v
            .relations
            .depends
            .iter()
            .map(|(n, r)| format!("{n} {r}"))
            .collect();
        println!("      depends: {}", printable(&d.join(", ")));
    }
    if !v.relations.conflicts.is_empty() {
        let c: Vec<&str> = v.relations.conflicts.iter().map(|n| n.as_str()).collect();
        println!("      conflicts: {}", c.join(", "));
    }
    match v.executables.as_deref() {
        Some([]) => {}
        Some(cmds) => println!("      commands: {}", printable(&cmds.join(", "))),
        None => println!("      commands: (not in this index)"),
    }
}

/// ` [yanked: REASON] [phased 20 %]` after a version in `info`.
pub fn status_marks(v: &PackageRecord) -> String {
    let mut out = String::new();
    if let Some(r) = &v.yanked {
        out.push_str(&format!(" [yanked: {}]", printable(r.as_str())));
    }
    if let Some(p) = v.phase {
        out.push_str(&format!(" [phased {p}]"));
    }
    out
}

/// `dist why NAME [--json]`: each chain from a requested package down to NAME, by the
/// installed packages' dependencies.
pub fn why(g: &Global, name: &str, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let packages = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let installed = PackageName::parse(name)
        .ok()
        .and_then(|n| packages.get(&n).map(|p| (n, p)));
    let Some((target, p)) = installed else {
        let similar = suggest::similar(name, packages.keys().map(PackageName::as_str));
        return Err(not_found(format!(
            "`{name}` is not installed{}",
            suggest::hint(&similar)
        )));
    };
    let paths = why::paths(&packages, &target);
    if json_out {
        return json::print(&json::Why {
            name,
            requested: p.requested,
            paths: paths
                .iter()
                .map(|c| c.iter().map(PackageName::as_str).collect())
                .collect(),
        })
        .map(|()| 0);
    }
    if p.requested {
        println!("{} was installed by name (dist install {name})", p.id());
    }
    let chains: Vec<&Vec<PackageName>> = paths.iter().filter(|c| c.len() > 1).collect();
    for c in &chains {
        let names: Vec<&str> = c.iter().map(PackageName::as_str).collect();
        println!("{}", names.join(" -> "));
    }
    if !p.requested && chains.is_empty() {
        let held = layout.holds().context("cannot read the holds")?;
        let why = if held.contains(&target) {
            "it is held (dist unhold lets autoremove take it)"
        } else {
            "dist autoremove removes it"
        };
        println!("{}: no requested package needs it any more: {why}", p.id());
    }
    Ok(0)
}
