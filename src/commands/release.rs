//! `dist yank NAME@VERSION --reason TEXT`, `dist unyank NAME@VERSION`, `dist phase NAME@VERSION
//! PERCENT [--force]`: the publisher changes a version's status and republishes (issue 22).

use anyhow::{anyhow, Result};
use dist::format::ids::{parse_version, PackageName};
use dist::index::status::YankReason;
use dist::repo::status_edit::{StatusChange, StatusEdit};
use dist::repo::Repo;

use super::{json_status, printable, Global};
use crate::cli::{PhaseArgs, UnyankArgs, YankArgs};

/// `NAME@VERSION` (or `NAME@=VERSION`): one version exactly.
fn exact(spec: &str) -> Result<(PackageName, semver::Version)> {
    let (name, version) = spec
        .split_once('@')
        .ok_or_else(|| anyhow!("`{spec}`: name the version as NAME@VERSION"))?;
    let name = PackageName::parse(name).map_err(|e| anyhow!("`{spec}`: {e}"))?;
    let version = version.strip_prefix('=').unwrap_or(version);
    let version = parse_version(version).map_err(|e| anyhow!("`{spec}`: {e}"))?;
    Ok((name, version))
}

/// The repository at the root, keeping as many deltas as `add` would.
fn repo(g: &Global) -> Result<Repo> {
    let retention = dist::server::ServerFile::load(&g.root)?
        .index_retention
        .unwrap_or(dist::repo::DEFAULT_RETENTION);
    Ok(Repo::new(&g.root).with_retention(retention))
}

pub fn yank(g: &Global, a: &YankArgs) -> Result<i32> {
    let (name, version) = exact(&a.package)?;
    let reason = YankReason::parse(&a.reason).map_err(|e| anyhow!("--reason: {e}"))?;
    let c = repo(g)?.set_status(&name, &version, StatusEdit::Yank(reason))?;
    report(&c, a.json)
}

pub fn unyank(g: &Global, a: &UnyankArgs) -> Result<i32> {
    let (name, version) = exact(&a.package)?;
    let c = repo(g)?.set_status(&name, &version, StatusEdit::Unyank)?;
    report(&c, a.json)
}

pub fn phase(g: &Global, a: &PhaseArgs) -> Result<i32> {
    let (name, version) = exact(&a.package)?;
    let edit = StatusEdit::Phase {
        to: a.percent,
        force: a.force,
    };
    let c = repo(g)?.set_status(&name, &version, edit)?;
    report(&c, a.json)
}

fn report(c: &StatusChange, json: bool) -> Result<i32> {
    if json {
        super::json::print(&json_status::Status::from(c))?;
        return Ok(0);
    }
    let yanked = match &c.yanked {
        Some(r) => format!("yanked ({})", printable(r.as_str())),
        None => "not yanked".to_string(),
    };
    let phase = match c.phase {
        Some(p) => format!("rolled out to {p} of machines"),
        None => "not phased".to_string(),
    };
    println!("{}: {yanked}, {phase}", c.id);
    match (c.changed, c.serial) {
        (true, Some(s)) => println!("published index serial {s}"),
        _ => println!("unchanged: nothing was published"),
    }
    Ok(0)
}
