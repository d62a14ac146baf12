//! `dist add PKGDIR... [--json]`

use anyhow::Result;
use dist::repo::{Added, Repo};

use super::{json, Global};
use crate::cli::AddArgs;

pub fn run(g: &Global, args: &AddArgs) -> Result<i32> {
    let repo = Repo::new(&g.root);
    let added = repo.add(&args.dirs)?;
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
