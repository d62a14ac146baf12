//! `dist pack DIR [-o FILE] [--json]` and `dist pack DIR --check`

use std::path::PathBuf;

use anyhow::{bail, Result};
use dist::client::sources::Sources;
use dist::client::Layout;
use dist::format::{pack, package::Package};
use dist::index::record;
use dist::store::archive;
use dist::store::fsx::Durability;

use super::{json, Global};
use crate::cli::PackArgs;

pub fn run(g: &Global, args: &PackArgs) -> Result<i32> {
    let pkg = Package::load(&args.dir)?;
    if args.check {
        return check(g, &pkg, args.json);
    }
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.tar", pkg.manifest.id())));
    let packed = archive::pack_file(&pkg, &dest, Durability::AtomicOnly)?;
    let magnet = packed.magnet();
    if args.json {
        json::print(&json::Packed {
            blake3: packed.blake3,
            file: &dest,
            infohash: packed.infohash,
            magnet: &magnet,
            name: &packed.name,
            piece_length: packed.info.piece_length,
            size: packed.size,
            torrent: format!("{}.torrent", dest.display()),
            version: &packed.version,
        })?;
    } else {
        println!("{} {}", packed.name, packed.version);
        println!("  file      {}", dest.display());
        println!(
            "  size      {} ({} bytes)",
            super::out::size(packed.size),
            packed.size
        );
        println!("  blake3    {}", packed.blake3);
        println!("  infohash  {}", packed.infohash);
        println!("  magnet    {magnet}");
    }
    Ok(0)
}

/// The reproducible-build check: rebuild (into nothing) and compare with the synced index.
fn check(g: &Global, pkg: &Package, json: bool) -> Result<i32> {
    let settings = super::settings::config(g, &crate::cli::ClientFlags::default())?;
    let sources = Sources::open(&Layout::new(&g.root), &settings)?;
    let m = &pkg.manifest;
    let key = record::version_key(&m.version);
    let Some(rec) = sources
        .versions(&m.name, None)?
        .into_iter()
        .map(|c| c.record)
        .find(|r| record::version_key(&r.version) == key)
    else {
        bail!(
            "the index ({}) has no {}@{}: nothing to compare the rebuild with",
            sources.describe(),
            m.name,
            m.version_str
        );
    };
    let packed = pack::pack_to(pkg, &mut std::io::sink())?;
    let same = packed.blake3 == rec.blake3 && packed.infohash == rec.infohash;
    if json {
        json::print(&json::Check {
            blake3: json::Compared {
                index: rec.blake3,
                rebuilt: packed.blake3,
            },
            infohash: json::Compared {
                index: rec.infohash,
                rebuilt: packed.infohash,
            },
            name: &m.name,
            reproducible: same,
            version: &rec.version,
        })?;
    }
    if same {
        if !json {
            println!(
                "{}: reproducible (blake3 {}, infohash {})",
                rec.id(),
                rec.blake3,
                rec.infohash
            );
        }
        return Ok(0);
    }
    bail!(
        "{} is not reproducible: the rebuild has blake3 {} and infohash {}, the index ({}) publishes blake3 {} and infohash {}",
        rec.id(),
        packed.blake3,
        packed.infohash,
        sources.describe(),
        rec.blake3,
        rec.infohash
    )
}
