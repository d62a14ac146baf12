//! Reading a snapshot file that may be hostile: its SQLite header (rollback journal only), its
//! schema (`schema.rs`: exactly the tables of one index format, nothing that could make a read
//! run without bound), its meta, and then rows on demand through SQL and the primary key
//! (`Snapshot`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::record::{content_digest, query_records, Distribution, PackageRecord, INDEX_FORMAT};
use super::schema::{check_schema, Schema};
use crate::index::search;

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
        // A sync may be committing deltas to this copy: wait for it rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
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
            (1, Schema::V1)
            | (2, Schema::V2)
            | (3, Schema::V3)
            | (4, Schema::V4)
            | (INDEX_FORMAT, Schema::V5) => {}
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

    /// Every record whose object has this BLAKE3 (lowercase hex).
    pub fn by_blake3(&self, hex: &str) -> Result<Vec<PackageRecord>> {
        self.query("WHERE blake3 = ?1", [hex])
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that synced format 4 before this release still reads its copy (no version is
    /// yanked or phased) until its next sync replaces it (issue 22).
    #[test]
    fn a_format_4_copy_is_still_read_issue_22() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&Schema::V4.create_sql()).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO meta VALUES ('format', '4'), ('serial', '7'), ('created', '1'), ('distribution', '{{\"public_url\":null,\"trackers\":[]}}');
             INSERT INTO packages VALUES ('hello', '1.0.0', '1.0.0', NULL, '{}', '{}', 10, 1, NULL, NULL, '[]');",
            "a".repeat(64),
            "b".repeat(40)
        ))
        .unwrap();
        drop(conn);
        let snap = Snapshot::open_local(&path).unwrap();
        assert_eq!((snap.format, snap.serial), (4, 7));
        let all = snap.all().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].yanked.is_none() && all[0].phase.is_none());
        assert_eq!(all[0].executables, Some(vec![]));
        // It has no content digest of the current format: the next sync fetches the snapshot.
        assert!(snap.content_digest().is_err());
    }
}
