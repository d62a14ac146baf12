//! The published index (store-format.md §5): the schema of a snapshot, the package record, and
//! read-only queries over a snapshot file. Shared by `serve` and the client.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::format::ids::{parse_version, InfoHash, ObjectId, PackageId, PackageName};

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

/// One package version as the index publishes it; every field parsed when the row is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    pub name: PackageName,
    pub version: semver::Version,
    pub description: Option<String>,
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    pub size: u64,
    pub magnet: String,
    pub added_at: i64,
}

impl PackageRecord {
    /// `name@version`, as messages name it.
    pub fn id(&self) -> PackageId {
        PackageId::new(self.name.clone(), self.version.clone())
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
            .then_with(|| a.version.cmp_precedence(&b.version))
    });
}

/// A row whose field is not what the schema promises: a signed index can still be hostile, so
/// this is an error naming the package and the field, never a panic or a path.
#[derive(Debug, thiserror::Error)]
#[error("index row {row}: field `{field}`: {reason}")]
pub struct RowError {
    /// `name@version` as the row spells them (escaped), or the row number when even those fail.
    pub row: String,
    pub field: &'static str,
    pub reason: String,
}

/// The columns of one row as SQLite holds them, before parsing.
struct RawRow {
    rowid: i64,
    cols: [rusqlite::types::Value; 8],
}

const COLUMNS: [&str; 8] = [
    "name",
    "version",
    "description",
    "blake3",
    "infohash",
    "size",
    "magnet",
    "added_at",
];

impl RawRow {
    fn label(&self) -> String {
        match (&self.cols[0], &self.cols[1]) {
            (Value::Text(n), Value::Text(v)) => {
                format!("`{}@{}`", n.escape_default(), v.escape_default())
            }
            _ => format!("#{}", self.rowid),
        }
    }

    fn err(&self, i: usize, reason: impl ToString) -> RowError {
        RowError {
            row: self.label(),
            field: COLUMNS[i],
            reason: reason.to_string(),
        }
    }

    fn text(&self, i: usize) -> Result<&str, RowError> {
        match &self.cols[i] {
            Value::Text(t) => Ok(t),
            other => Err(self.err(i, format!("{} where text is expected", kind(other)))),
        }
    }

    fn int(&self, i: usize) -> Result<i64, RowError> {
        match &self.cols[i] {
            Value::Integer(n) => Ok(*n),
            other => Err(self.err(i, format!("{} where an integer is expected", kind(other)))),
        }
    }

    fn parse(&self) -> Result<PackageRecord, RowError> {
        let name = PackageName::parse(self.text(0)?).map_err(|e| self.err(0, e))?;
        let version = parse_version(self.text(1)?).map_err(|e| self.err(1, e))?;
        let description = match &self.cols[2] {
            Value::Null => None,
            _ => Some(self.text(2)?.to_string()),
        };
        let blake3 = ObjectId::parse(self.text(3)?).map_err(|e| self.err(3, e))?;
        let infohash = InfoHash::parse(self.text(4)?).map_err(|e| self.err(4, e))?;
        let size = u64::try_from(self.int(5)?).map_err(|_| self.err(5, "negative size"))?;
        Ok(PackageRecord {
            name,
            version,
            description,
            blake3,
            infohash,
            size,
            magnet: self.text(6)?.to_string(),
            added_at: self.int(7)?,
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real number",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

pub(crate) fn read_records(conn: &Connection) -> Result<Vec<PackageRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT rowid, {} FROM packages",
        COLUMNS.join(", ")
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(RawRow {
            rowid: r.get(0)?,
            cols: std::array::from_fn(|i| r.get(i + 1).unwrap_or(Value::Null)),
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?.parse()?);
    }
    sort_records(&mut out);
    Ok(out)
}

impl rusqlite::ToSql for ObjectId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.to_hex().into())
    }
}

impl rusqlite::ToSql for InfoHash {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.to_hex().into())
    }
}

impl rusqlite::ToSql for PackageName {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

/// Refuses a snapshot whose schema is anything but the two tables of [`SNAPSHOT_SCHEMA`] (and
/// their automatic primary-key indexes), before a row is read: a view, a trigger or a table of
/// another shape in a signed file could make reading it run without bound.
fn check_schema(conn: &Connection) -> Result<()> {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let expected: Vec<String> = SNAPSHOT_SCHEMA
        .split(';')
        .map(squash)
        .filter(|s| !s.is_empty())
        .collect();
    let mut stmt = conn.prepare("SELECT type, name, sql FROM sqlite_master")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut tables = 0;
    for row in rows {
        let (kind, name, sql) = row?;
        let ok = match (kind.as_str(), &sql) {
            ("table", Some(sql)) if expected.contains(&squash(sql)) => {
                tables += 1;
                true
            }
            ("index", None) => {
                name == "sqlite_autoindex_meta_1" || name == "sqlite_autoindex_packages_1"
            }
            _ => false,
        };
        if !ok {
            bail!(
                "unexpected {kind} `{}` in its schema (a snapshot holds exactly the tables of store-format.md §5)",
                name.escape_default()
            );
        }
    }
    if tables != expected.len() {
        bail!("its schema lacks the tables of store-format.md §5");
    }
    Ok(())
}

/// Refuses a file whose SQLite header does not say rollback journal (bytes 18 and 19, the file
/// format versions, are 1; 2 means WAL). `publish` never writes another, and on a WAL file even
/// a read-only open makes SQLite read frames from an unsigned `-wal` file beside it and create
/// `-wal` and `-shm` files (or fail, for a user who may not write there).
fn check_journal_mode(path: &Path) -> Result<()> {
    let mut head = [0u8; 20];
    // Unreadable, shorter than that or without the magic: SQLite says what is wrong.
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    if read.is_ok() && head[..16] == *b"SQLite format 3\0" && head[18..20] != [1, 1] {
        bail!(
            "its SQLite file format versions are {} and {}, not 1 and 1 (a snapshot is a rollback-journal database, never WAL)",
            head[18],
            head[19]
        );
    }
    Ok(())
}

/// A published snapshot opened read-only.
pub struct Snapshot {
    pub serial: u64,
    pub created: u64,
    pub packages: Vec<PackageRecord>,
}

impl Snapshot {
    pub fn open(path: &Path) -> Result<Snapshot> {
        check_journal_mode(path)
            .with_context(|| format!("{} is not a dist index", path.display()))?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open index {}", path.display()))?;
        check_schema(&conn).with_context(|| format!("{} is not a dist index", path.display()))?;
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
