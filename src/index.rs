//! The published index (store-format.md §5): the schema of a snapshot, the package record, and
//! read-only queries over a snapshot file. Shared by `serve` and the client.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

/// Version of the published snapshot schema, stored as `meta.format`.
pub const INDEX_FORMAT: u32 = 1;

/// Schema of a published snapshot (and of the same tables in the master index).
pub const SNAPSHOT_SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE packages (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    version_key TEXT NOT NULL,
    description TEXT,
    blake3      TEXT NOT NULL,
    infohash    TEXT NOT NULL,
    size        INTEGER NOT NULL,
    magnet      TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (name, version_key)
);
";

/// One package version as the index publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub blake3: String,
    pub infohash: String,
    pub size: u64,
    pub magnet: String,
    pub added_at: i64,
}

impl PackageRecord {
    pub fn semver(&self) -> semver::Version {
        semver::Version::parse(&self.version).expect("index versions are valid SemVer")
    }
}

/// The identity of a version: SemVer without build metadata (`1.0.0+a` == `1.0.0+b`).
pub fn version_key(v: &semver::Version) -> String {
    let mut k = semver::Version::new(v.major, v.minor, v.patch);
    k.pre = v.pre.clone();
    k.to_string()
}

/// Sorts records by name, then SemVer precedence (not text order).
pub fn sort_records(records: &mut [PackageRecord]) {
    records.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.semver().cmp_precedence(&b.semver()))
    });
}

pub(crate) fn read_records(conn: &Connection) -> Result<Vec<PackageRecord>> {
    let mut stmt = conn.prepare(
        "SELECT name, version, description, blake3, infohash, size, magnet, added_at FROM packages",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PackageRecord {
            name: r.get(0)?,
            version: r.get(1)?,
            description: r.get(2)?,
            blake3: r.get(3)?,
            infohash: r.get(4)?,
            size: r.get::<_, i64>(5)? as u64,
            magnet: r.get(6)?,
            added_at: r.get(7)?,
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?);
    }
    for r in &out {
        if semver::Version::parse(&r.version).is_err() {
            bail!(
                "the index holds an invalid version `{}` of `{}`",
                r.version,
                r.name
            );
        }
    }
    sort_records(&mut out);
    Ok(out)
}

/// A published snapshot opened read-only.
pub struct Snapshot {
    pub serial: u64,
    pub created: u64,
    pub packages: Vec<PackageRecord>,
}

impl Snapshot {
    pub fn open(path: &Path) -> Result<Snapshot> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open index {}", path.display()))?;
        let meta = |k: &str| -> Result<Option<String>> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?)
        };
        let format: u32 = meta("format")
            .with_context(|| format!("{} is not a dist index", path.display()))?
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{}: no index format", path.display()))?;
        if format != INDEX_FORMAT {
            bail!(
                "{}: index format {format} is not supported (this dist reads {INDEX_FORMAT})",
                path.display()
            );
        }
        let serial = meta("serial")?
            .and_then(|v| v.parse().ok())
            .context("index without serial")?;
        let created = meta("created")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let packages =
            read_records(&conn).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Snapshot {
            serial,
            created,
            packages,
        })
    }

    /// All versions of `name`, lowest precedence first.
    pub fn versions(&self, name: &str) -> Vec<&PackageRecord> {
        self.packages.iter().filter(|p| p.name == name).collect()
    }
}
