//! The published index (store-format.md §5): the schema of a snapshot, the package record, the
//! canonical content digest both sides compute, and read-only queries over a snapshot file.
//! Shared by the publisher, `serve` and the client.

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::format::ids::{parse_version, InfoHash, ObjectId, PackageId, PackageName};
use crate::format::relations::Relations;
use crate::format::torrent;

use super::schema::Schema;
pub use super::snapshot::Snapshot;
pub use super::status::{Phase, YankReason};

/// Version of the published index format, stored as `meta.format` and in the signed manifest.
/// 2: compressed snapshots, signed manifest, deltas; no `magnet` column (rendered from
/// `meta.distribution`). 3: the `depends` and `conflicts` columns (issue 12). 4: the
/// `executables` column (what a package puts into the profile's `bin/`, so that two packages
/// providing the same command are found before anything is fetched). 5: the `yanked` and
/// `phase` columns (issue 22: withdrawn versions, phased rollouts).
pub const INDEX_FORMAT: u32 = 5;

/// Schema of a format-5 snapshot (and of the same tables in the master index).
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
    added_at    INTEGER NOT NULL,
    depends     TEXT,
    conflicts   TEXT,
    executables TEXT,
    yanked      TEXT,
    phase       INTEGER,
    PRIMARY KEY (name, version_key)
);
";

/// `?1, ?2, …` for every column of [`ROW_COLUMNS`].
pub fn row_placeholders() -> String {
    (1..=ROW_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of a row, in the order of the canonical content (§5.2) and of delta rows.
pub const ROW_COLUMNS: [&str; 13] = [
    "name",
    "version",
    "version_key",
    "description",
    "blake3",
    "infohash",
    "size",
    "added_at",
    "depends",
    "conflicts",
    "executables",
    "yanked",
    "phase",
];

/// Trackers and web-seed base URL: configuration that goes into magnets and `.torrent` files
/// but never into the info dictionary. Published as `meta.distribution`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    pub trackers: Vec<String>,
    /// Base URL of the HTTP server, without trailing `/`; web seeds are `<base>/objects/ab/cd…`.
    pub public_url: Option<String>,
}

impl Distribution {
    pub fn web_seed(&self, blake3: &ObjectId) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|b| format!("{}/objects/{}", b.trim_end_matches('/'), blake3.rel_path()))
    }

    /// The canonical JSON text stored in `meta.distribution` (keys sorted, no spaces).
    pub fn encode(&self) -> String {
        serde_json::json!({"trackers": self.trackers, "public_url": self.public_url}).to_string()
    }

    pub fn decode(s: &str) -> Result<Distribution> {
        let v: serde_json::Value =
            serde_json::from_str(s).context("meta `distribution` is not JSON")?;
        let trackers = match &v["trackers"] {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .context("meta `distribution`: a tracker is not a string")
                })
                .collect::<Result<Vec<_>>>()?,
            serde_json::Value::Null => Vec::new(),
            _ => bail!("meta `distribution`: `trackers` is not a list"),
        };
        let public_url = match &v["public_url"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            _ => bail!("meta `distribution`: `public_url` is not a string"),
        };
        Ok(Distribution {
            trackers,
            public_url,
        })
    }

    /// The magnet link of a record: its infohash, torrent name and size, these trackers, and
    /// the object's URL as web seed.
    pub fn magnet(&self, r: &PackageRecord) -> String {
        let ws: Vec<String> = self.web_seed(&r.blake3).into_iter().collect();
        torrent::magnet(
            &r.infohash,
            &format!("{}.tar", r.id()),
            r.size,
            &self.trackers,
            &ws,
        )
    }
}

/// One package version as the index publishes it; every field parsed when the row is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    pub name: PackageName,
    pub version: semver::Version,
    pub description: Option<String>,
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    pub size: u64,
    /// Rendered from the index's distribution (format 2) or read from the row (format 1).
    pub magnet: String,
    pub added_at: i64,
    /// `depends` and `conflicts` (format 3; none before).
    pub relations: Relations,
    /// The names it puts into the profile's `bin/` (its `assets/bin` entries), sorted; `None`
    /// when the index does not say (before format 4, or a package added before it).
    pub executables: Option<Vec<String>>,
    /// Withdrawn by the publisher, and why (format 5; never before).
    pub yanked: Option<YankReason>,
    /// Rolled out to this share of machines (format 5; `None`: to all).
    pub phase: Option<Phase>,
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

/// The fields a record is read from, before parsing (`magnet` only in format 1, `depends` and
/// `conflicts` only from format 3, `executables` from format 4, `yanked` and `phase` from 5).
const READ_COLUMNS: [&str; 13] = [
    "name",
    "version",
    "description",
    "blake3",
    "infohash",
    "size",
    "added_at",
    "magnet",
    "depends",
    "conflicts",
    "executables",
    "yanked",
    "phase",
];

/// The columns of one row as SQLite holds them, before parsing (NULL where the format has no
/// such column).
struct RawRow {
    rowid: i64,
    cols: [Value; 13],
}

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
            field: READ_COLUMNS[i],
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

    fn parse(&self, dist: Option<&Distribution>) -> Result<PackageRecord, RowError> {
        let name = PackageName::parse(self.text(0)?).map_err(|e| self.err(0, e))?;
        let version = parse_version(self.text(1)?).map_err(|e| self.err(1, e))?;
        let description = match &self.cols[2] {
            Value::Null => None,
            _ => Some(self.text(2)?.to_string()),
        };
        let blake3 = ObjectId::parse(self.text(3)?).map_err(|e| self.err(3, e))?;
        let infohash = InfoHash::parse(self.text(4)?).map_err(|e| self.err(4, e))?;
        let size = u64::try_from(self.int(5)?).map_err(|_| self.err(5, "negative size"))?;
        let opt_text = |i: usize| match &self.cols[i] {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        };
        let relations = Relations::from_text(&name, opt_text(8)?, opt_text(9)?).map_err(|e| {
            let i = if e.field == "depends" { 8 } else { 9 };
            self.err(i, format!("{}: {}", e.entry, e.reason))
        })?;
        let executables = opt_text(10)?
            .map(|t| parse_executables(t).map_err(|e| self.err(10, e)))
            .transpose()?;
        let yanked = opt_text(11)?
            .map(|t| YankReason::from_index(t).map_err(|e| self.err(11, e)))
            .transpose()?;
        let phase = match &self.cols[12] {
            Value::Null => None,
            _ => Some(Phase::new(self.int(12)?).map_err(|e| self.err(12, e))?),
        };
        let mut rec = PackageRecord {
            name,
            version,
            description,
            blake3,
            infohash,
            size,
            magnet: String::new(),
            added_at: self.int(6)?,
            relations,
            executables,
            yanked,
            phase,
        };
        rec.magnet = match dist {
            Some(d) => d.magnet(&rec),
            None => self.text(7)?.to_string(),
        };
        Ok(rec)
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

/// Reads and parses the rows a query selects (`where_sql` may be empty), sorted by name and
/// version precedence. `dist` is `None` for a format-1 table (magnets in the rows).
pub(super) fn query_records(
    conn: &Connection,
    schema: Schema,
    dist: Option<&Distribution>,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<PackageRecord>> {
    let cols = match schema {
        Schema::V1 => format!(
            "{}, NULL, NULL, NULL, NULL, NULL",
            READ_COLUMNS[..8].join(", ")
        ),
        Schema::V2 => format!(
            "{}, NULL, NULL, NULL, NULL, NULL, NULL",
            READ_COLUMNS[..7].join(", ")
        ),
        Schema::V3 => format!(
            "{}, NULL, {}, NULL, NULL, NULL",
            READ_COLUMNS[..7].join(", "),
            READ_COLUMNS[8..10].join(", ")
        ),
        Schema::V4 => format!(
            "{}, NULL, {}, NULL, NULL",
            READ_COLUMNS[..7].join(", "),
            READ_COLUMNS[8..11].join(", ")
        ),
        Schema::V5 => format!(
            "{}, NULL, {}",
            READ_COLUMNS[..7].join(", "),
            READ_COLUMNS[8..].join(", ")
        ),
    };
    let mut stmt = conn.prepare(&format!("SELECT rowid, {cols} FROM packages {where_sql}"))?;
    let rows = stmt.query_map(params, |r| {
        Ok(RawRow {
            rowid: r.get(0)?,
            cols: std::array::from_fn(|i| r.get(i + 1).unwrap_or(Value::Null)),
        })
    })?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?.parse(dist)?);
    }
    sort_records(&mut out);
    Ok(out)
}

/// Every record of a current-format `packages` table (the master index or a snapshot).
pub(crate) fn read_records(conn: &Connection, dist: &Distribution) -> Result<Vec<PackageRecord>> {
    read_records_where(conn, dist, "", [])
}

/// The longest list of executables a row may name.
const MAX_EXECUTABLES: usize = 4096;

/// `executables` as the index holds it: a JSON array of distinct file names in byte order
/// (what [`executables_text`] writes); anything else is refused.
pub fn parse_executables(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of names: {e}"))?;
    if list.len() > MAX_EXECUTABLES {
        return Err(format!("more than {MAX_EXECUTABLES} names"));
    }
    for n in &list {
        if n.is_empty()
            || n == "."
            || n == ".."
            || n.len() > 255
            || n.contains(['/', '\0'])
            || n.chars().any(char::is_control)
        {
            return Err(format!("`{}` is not a file name", n.escape_default()));
        }
    }
    if list.windows(2).any(|w| w[0] >= w[1]) {
        return Err("names are not distinct and in byte order".into());
    }
    Ok(list)
}

/// The canonical text of `executables` (sorted, distinct).
pub fn executables_text(names: &[String]) -> String {
    let mut v: Vec<&String> = names.iter().collect();
    v.sort();
    v.dedup();
    serde_json::to_string(&v).expect("strings serialize")
}

/// The records of a current-format `packages` table (the master index or a snapshot) that
/// `where_sql` selects.
pub(crate) fn read_records_where(
    conn: &Connection,
    dist: &Distribution,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<PackageRecord>> {
    query_records(conn, Schema::V5, Some(dist), where_sql, params)
}

/// The BLAKE3 digest of an index's canonical content (store-format.md §5.2): the distribution
/// text and every row in `(name, version_key)` byte order, each as a JSON array of its
/// [`ROW_COLUMNS`]. The publisher signs it; a client recomputes it over what it holds after
/// applying deltas, so it ends up with exactly the content that was signed.
pub fn content_digest(conn: &Connection, distribution: &str) -> Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    h.update(format!("dist-index-content {INDEX_FORMAT}\n").as_bytes());
    h.update(distribution.as_bytes());
    h.update(b"\n");
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM packages ORDER BY name, version_key",
        ROW_COLUMNS.join(", ")
    ))?;
    let mut rows = stmt.query([])?;
    let mut line = Vec::with_capacity(512);
    while let Some(r) = rows.next()? {
        line.clear();
        let vals = (0..ROW_COLUMNS.len())
            .map(|i| sql_to_json(r.get::<_, Value>(i)?, ROW_COLUMNS[i]))
            .collect::<Result<Vec<_>>>()?;
        serde_json::to_writer(&mut line, &vals)?;
        line.push(b'\n');
        h.update(&line);
    }
    Ok(h.finalize())
}

/// A column value as canonical JSON: text, integer or null; anything else is not index content.
pub fn sql_to_json(v: Value, column: &str) -> Result<serde_json::Value> {
    Ok(match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(n) => n.into(),
        Value::Text(t) => t.into(),
        other => bail!("column `{column}` holds {}", kind(&other)),
    })
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
