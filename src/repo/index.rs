//! The published index (store-format.md §5): the schema of a snapshot, the package record, the
//! canonical content digest both sides compute, and read-only queries over a snapshot file.
//! Shared by the publisher, `serve` and the client.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::format::ids::{parse_version, InfoHash, ObjectId, PackageId, PackageName};
use crate::format::relations::Relations;
use crate::format::torrent;
use crate::repo::search;

/// Version of the published index format, stored as `meta.format` and in the signed manifest.
/// 2: compressed snapshots, signed manifest, deltas; no `magnet` column (rendered from
/// `meta.distribution`). 3: the `depends` and `conflicts` columns (issue 12). 4: the
/// `executables` column (what a package puts into the profile's `bin/`, so that two packages
/// providing the same command are found before anything is fetched).
pub const INDEX_FORMAT: u32 = 4;

/// Schema of a format-4 snapshot (and of the same tables in the master index).
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
    PRIMARY KEY (name, version_key)
);
";

/// Schema of a format-3 snapshot: what a client synced before format 4 keeps on disk. It is
/// still read (no package's executables are known), until the next sync.
const SNAPSHOT_SCHEMA_V3: &str = "
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
    PRIMARY KEY (name, version_key)
);
";

/// Schema of a format-2 snapshot: what a client synced before format 3 keeps on disk. It is
/// still read (no package has relations), so installing keeps working until the next sync.
const SNAPSHOT_SCHEMA_V2: &str = "
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
    PRIMARY KEY (name, version_key)
);
";

/// Schema of a format-1 snapshot: what a client synced before format 2 keeps on disk. It is
/// still read (with its `magnet` column), so installing keeps working until the next sync.
const SNAPSHOT_SCHEMA_V1: &str = "
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

/// `?1, ?2, …` for every column of [`ROW_COLUMNS`].
pub fn row_placeholders() -> String {
    (1..=ROW_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of a row, in the order of the canonical content (§5.2) and of delta rows.
pub const ROW_COLUMNS: [&str; 11] = [
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
/// `conflicts` only from format 3, `executables` from format 4).
const READ_COLUMNS: [&str; 11] = [
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
];

/// The columns of one row as SQLite holds them, before parsing (NULL where the format has no
/// such column).
struct RawRow {
    rowid: i64,
    cols: [Value; 11],
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
fn query_records(
    conn: &Connection,
    schema: Schema,
    dist: Option<&Distribution>,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<PackageRecord>> {
    let cols = match schema {
        Schema::V1 => READ_COLUMNS[..8].join(", "),
        Schema::V2 => format!("{}, NULL, NULL, NULL, NULL", READ_COLUMNS[..7].join(", ")),
        Schema::V3 => format!(
            "{}, NULL, {}, NULL",
            READ_COLUMNS[..7].join(", "),
            READ_COLUMNS[8..10].join(", ")
        ),
        Schema::V4 => format!(
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
    query_records(conn, Schema::V4, Some(dist), where_sql, params)
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

/// Which schema a snapshot file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    V1,
    V2,
    V3,
    V4,
}

/// Refuses a snapshot whose schema is anything but the two tables of [`SNAPSHOT_SCHEMA`] (or
/// of format 1) and their automatic primary-key indexes, before a row is read: a view, a
/// trigger or a table of another shape in a signed file could make reading it run without bound.
/// With `local`, the client's own search table (`repo::search`) is allowed too; a file as
/// published never has it.
fn check_schema(conn: &Connection, local: bool) -> Result<Schema> {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let statements = |schema: &str| -> Vec<String> {
        schema
            .split(';')
            .map(squash)
            .filter(|s| !s.is_empty())
            .collect()
    };
    let known = [
        (Schema::V4, statements(SNAPSHOT_SCHEMA)),
        (Schema::V3, statements(SNAPSHOT_SCHEMA_V3)),
        (Schema::V2, statements(SNAPSHOT_SCHEMA_V2)),
        (Schema::V1, statements(SNAPSHOT_SCHEMA_V1)),
    ];
    let mut found = [0usize; 4];
    let mut stmt = conn.prepare("SELECT type, name, sql FROM sqlite_master")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    for row in rows {
        let (kind, name, sql) = row?;
        let ok = match (kind.as_str(), &sql) {
            ("table", Some(sql)) if local && name == "search" => {
                squash(sql) == squash(search::SEARCH_TABLE)
            }
            ("table", Some(sql))
                if local
                    && search::SHADOW_TABLES.contains(&name.as_str())
                    && sql.starts_with(&format!("CREATE TABLE '{name}'")) =>
            {
                true
            }
            ("table", Some(sql)) => {
                let sql = squash(sql);
                let mut any = false;
                for (k, (_, stmts)) in known.iter().enumerate() {
                    if stmts.contains(&sql) {
                        found[k] += 1;
                        any = true;
                    }
                }
                any
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
    // `meta` is the same in all: the `packages` table decides.
    known
        .iter()
        .zip(found)
        .find(|((_, stmts), n)| *n == stmts.len())
        .map(|((schema, _), _)| *schema)
        .context("its schema lacks the tables of store-format.md §5")
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

/// A snapshot opened read-only, its schema checked and its meta read; rows are queried on
/// demand (with the primary key's index), so a 100,000-row index costs what a query reads.
pub struct Snapshot {
    conn: Connection,
    path: PathBuf,
    schema: Schema,
    pub format: u32,
    pub serial: u64,
    pub created: u64,
    /// `meta.distribution` as stored (format 2; empty for format 1).
    pub distribution_text: String,
    /// `None` for format 1, whose rows carry their magnets.
    distribution: Option<Distribution>,
    /// Whether the client's search table is there.
    has_search: bool,
}

impl Snapshot {
    /// Opens a snapshot as published (its schema exactly §5.1).
    pub fn open(path: &Path) -> Result<Snapshot> {
        Snapshot::open_with(path, false)
    }

    /// Opens the client's copy, which may also hold its search table.
    pub fn open_local(path: &Path) -> Result<Snapshot> {
        Snapshot::open_with(path, true)
    }

    fn open_with(path: &Path, local: bool) -> Result<Snapshot> {
        let not_index = || format!("{} is not a dist index", path.display());
        check_journal_mode(path).with_context(not_index)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open index {}", path.display()))?;
        let schema = check_schema(&conn, local).with_context(not_index)?;
        let has_search = local && search::present(&conn)?;
        let meta = |k: &str| -> Result<Option<String>> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?)
        };
        let format: u32 = meta("format")
            .with_context(not_index)?
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{}: no index format", path.display()))?;
        match (format, schema) {
            (1, Schema::V1) | (2, Schema::V2) | (3, Schema::V3) | (INDEX_FORMAT, Schema::V4) => {}
            (1..=INDEX_FORMAT, _) => bail!(
                "{}: its tables are not those of index format {format}",
                path.display()
            ),
            _ => bail!(
                "{}: index format {format} is not supported (this dist reads 1 to {INDEX_FORMAT}); upgrade dist",
                path.display()
            ),
        }
        let serial = meta("serial")?
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{}: index without serial", path.display()))?;
        let created = meta("created")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let (distribution_text, distribution) = if format == 1 {
            (String::new(), None)
        } else {
            let text = meta("distribution")?
                .with_context(|| format!("{}: index without distribution", path.display()))?;
            let d = Distribution::decode(&text).with_context(|| path.display().to_string())?;
            (text, Some(d))
        };
        Ok(Snapshot {
            conn,
            path: path.to_path_buf(),
            schema,
            format,
            serial,
            created,
            distribution_text,
            distribution,
            has_search,
        })
    }

    fn query(&self, where_sql: &str, params: impl rusqlite::Params) -> Result<Vec<PackageRecord>> {
        query_records(
            &self.conn,
            self.schema,
            self.distribution.as_ref(),
            where_sql,
            params,
        )
        .with_context(|| format!("cannot read {}", self.path.display()))
    }

    /// The trackers and web-seed base of a format-2 index.
    pub fn distribution(&self) -> Option<&Distribution> {
        self.distribution.as_ref()
    }

    /// Every record, by name and version precedence.
    pub fn all(&self) -> Result<Vec<PackageRecord>> {
        self.query("", [])
    }

    /// All versions of `name`, lowest precedence first (one lookup in the primary key).
    pub fn versions(&self, name: &str) -> Result<Vec<PackageRecord>> {
        self.query("WHERE name = ?1", [name])
    }

    /// Records whose name or description contains `term`, ignoring case: through the search
    /// table when there is one and the term is long enough, else by a scan ignoring ASCII case.
    pub fn search(&self, term: &str) -> Result<Vec<PackageRecord>> {
        if self.has_search && term.chars().count() >= search::MIN_TERM_CHARS {
            return self.query(
                "WHERE rowid IN (SELECT rowid FROM search WHERE search MATCH ?1)",
                [search::phrase(term)],
            );
        }
        self.query(
            &format!("WHERE {}", search::LIKE_WHERE),
            [search::like_pattern(term)],
        )
    }

    /// Every package name, once each (for suggestions).
    pub fn names(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT name FROM packages")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(names)
    }

    /// How many package versions the index holds.
    pub fn count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM packages", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// The canonical content digest (the current format only).
    pub fn content_digest(&self) -> Result<blake3::Hash> {
        if self.format != INDEX_FORMAT {
            bail!(
                "{}: index format {} has no content digest",
                self.path.display(),
                self.format
            );
        }
        content_digest(&self.conn, &self.distribution_text)
            .with_context(|| format!("cannot read {}", self.path.display()))
    }
}
