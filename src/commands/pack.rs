//! `dist pack DIR [-o FILE] [--json]`

use std::path::PathBuf;

use anyhow::Result;
use dist::{fsx::Durability, pack, package::Package};

use crate::cli::PackArgs;

pub fn run(args: &PackArgs) -> Result<i32> {
    let pkg = Package::load(&args.dir)?;
    let dest = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.tar", pkg.manifest.id())));
    let packed = pack::pack_file(&pkg, &dest, Durability::AtomicOnly)?;
    let magnet = packed.magnet();
    if args.json {
        let v = serde_json::json!({
            "name": packed.name,
            "version": packed.version,
            "size": packed.size,
            "blake3": packed.blake3,
            "infohash": packed.infohash,
            "magnet": magnet,
            "piece_length": packed.info.piece_length,
            "file": dest,
            "torrent": format!("{}.torrent", dest.display()),
        });
        println!("{v}");
    } else {
        println!("{} {}", packed.name, packed.version);
        println!("  file      {}", dest.display());
        println!("  size      {} bytes", packed.size);
        println!("  blake3    {}", packed.blake3);
        println!("  infohash  {}", packed.infohash);
        println!("  magnet    {magnet}");
    }
    Ok(0)
}
