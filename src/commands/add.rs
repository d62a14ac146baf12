//! `dist add PKGDIR... [--json]`

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dist::repo::{Added, Repo};

use super::{json, Global};
use crate::cli::AddArgs;

/// The directories listed in `from` (`-`: standard input), one per line; blank lines skipped.
fn read_list(from: &Path) -> Result<Vec<PathBuf>> {
    let mut text = String::new();
    if from == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the package list from standard input")?;
    } else {
        text = std::fs::read_to_string(from)
            .with_context(|| format!("cannot read the package list {}", from.display()))?;
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect())
}

pub fn run(g: &Global, args: &AddArgs) -> Result<i32> {
    let mut dirs = args.dirs.clone();
    if let Some(from) = &args.from {
        dirs.extend(read_list(from)?);
    }
    if dirs.is_empty() {
        bail!("no package directories to add");
    }
    // Every package is checked before `--create` makes anything: a bad one leaves no new
    // repository (nor signing key) behind.
    let valid = dist::repo::validate(&dirs)?;
    if args.create {
        super::repo::create_if_missing(g)?;
    }
    let retention = match args.index_retention {
        Some(n) => n,
        None => dist::server::ServerFile::load(&g.root)?
            .index_retention
            .unwrap_or(dist::repo::DEFAULT_RETENTION),
    };
    let repo = Repo::new(&g.root)
        .with_retention(retention)
        .allowing_unresolved(args.allow_unresolved)
        .with_phase(args.phase);
    let added = repo.add_valid(valid)?;
    let serial = repo.latest_serial()?;
    if args.json {
        let v: Vec<_> = added
            .iter()
            .map(|a| {
                let (p, status) = match a {
                    Added::New(p) => (p, "added"),
                    Added::Unchanged(p) => (p, "unchanged"),
                };
                json::Added {
                    blake3: p.blake3,
                    infohash: p.infohash,
                    name: &p.name,
                    serial,
                    size: p.size,
                    status,
                    version: &p.version,
                }
            })
            .collect();
        json::print(&v)?;
        return Ok(0);
    }
    for a in &added {
        match a {
            Added::New(p) => println!(
                "added {} blake3 {} infohash {}",
                p.id(),
                p.blake3,
                p.infohash
            ),
            Added::Unchanged(p) => println!(
                "unchanged {} (already in the index with the same content)",
                p.id()
            ),
        }
    }
    if let Some(s) = serial {
        if added.iter().any(|a| matches!(a, Added::New(_))) {
            println!("published index serial {s}");
        }
    }
    Ok(0)
}
