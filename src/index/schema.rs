//! The schema of a snapshot file that may be hostile, checked by structure (issue 25, finding
//! 10): exactly the tables `meta` and `packages` of one index format, each with the columns of
//! store-format.md §5.1 in order (name, declared type, `NOT NULL`, primary key, no default, no
//! generated column) as `PRAGMA table_xinfo` reports them, a rowid, and no clause the pragmas
//! cannot show (`CHECK`, `COLLATE`, `REFERENCES`, `UNIQUE`, `WITHOUT ROWID`, …): the words of
//! its `CREATE TABLE` statement are only those of a column list. Layout, case, quoting and
//! comments are free, so the statements of store-format.md as written are read, and nothing
//! in a signed file (a view, a trigger, an index, a constraint) can make reading it run
//! without bound or change what a query means. The shapes of the formats before
//! [`INDEX_FORMAT`](super::record::INDEX_FORMAT) are here too: a client still reads a copy it
//! synced in one of them.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

use crate::index::search;

/// Which schema a snapshot file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Schema {
    V1,
    V2,
    V3,
    V4,
    V5,
}

/// One column: its name, declared type and whether it is `NOT NULL`.
type Column = (&'static str, &'static str, bool);

const META: [Column; 2] = [("key", "TEXT", false), ("value", "TEXT", true)];

/// The `packages` columns of format 5; formats 2 to 4 have the first 8, 10 and 11 of them.
const PACKAGES: [Column; 13] = [
    ("name", "TEXT", true),
    ("version", "TEXT", true),
    ("version_key", "TEXT", true),
    ("description", "TEXT", false),
    ("blake3", "TEXT", true),
    ("infohash", "TEXT", true),
    ("size", "INTEGER", true),
    ("added_at", "INTEGER", true),
    ("depends", "TEXT", false),
    ("conflicts", "TEXT", false),
    ("executables", "TEXT", false),
    ("yanked", "TEXT", false),
    ("phase", "INTEGER", false),
];

/// Format 1: a `magnet` column between `size` and `added_at`, nothing after.
const PACKAGES_V1: [Column; 9] = [
    ("name", "TEXT", true),
    ("version", "TEXT", true),
    ("version_key", "TEXT", true),
    ("description", "TEXT", false),
    ("blake3", "TEXT", true),
    ("infohash", "TEXT", true),
    ("size", "INTEGER", true),
    ("magnet", "TEXT", true),
    ("added_at", "INTEGER", true),
];

const META_KEY: &[&str] = &["key"];
const PACKAGES_KEY: &[&str] = &["name", "version_key"];

/// Every format, newest first.
const SCHEMAS: [Schema; 5] = [Schema::V5, Schema::V4, Schema::V3, Schema::V2, Schema::V1];

impl Schema {
    fn packages(self) -> &'static [Column] {
        match self {
            Schema::V5 => &PACKAGES,
            Schema::V4 => &PACKAGES[..11],
            Schema::V3 => &PACKAGES[..10],
            Schema::V2 => &PACKAGES[..8],
            Schema::V1 => &PACKAGES_V1,
        }
    }

    /// The `CREATE TABLE` statements of this format, in the spelling `publish` writes (for
    /// tests that make a copy of an earlier format).
    #[cfg(test)]
    pub(super) fn create_sql(self) -> String {
        fn table(name: &str, cols: &[Column], key: &[&str]) -> String {
            let mut lines: Vec<String> = cols
                .iter()
                .map(|(n, ty, nn)| format!("    {n} {ty}{}", if *nn { " NOT NULL" } else { "" }))
                .collect();
            lines.push(format!("    PRIMARY KEY ({})", key.join(", ")));
            format!("CREATE TABLE {name} (\n{}\n);\n", lines.join(",\n"))
        }
        table("meta", &META, META_KEY) + &table("packages", self.packages(), PACKAGES_KEY)
    }
}

/// A column as `PRAGMA table_xinfo` reports it.
#[derive(Debug)]
struct Found {
    name: String,
    ty: String,
    not_null: bool,
    has_default: bool,
    /// 1-based position in the primary key, 0 outside it.
    pk: i64,
    /// 0 for an ordinary column (1: hidden, 2 and 3: generated).
    hidden: i64,
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<Found>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden FROM pragma_table_xinfo(?1)",
    )?;
    let rows = stmt.query_map([table], |r| {
        Ok(Found {
            name: r.get(0)?,
            ty: r.get(1)?,
            not_null: r.get(2)?,
            has_default: r.get(3)?,
            pk: r.get(4)?,
            hidden: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Whether `found` is exactly `cols` with primary key `key`.
fn same_columns(found: &[Found], cols: &[Column], key: &[&str]) -> bool {
    found.len() == cols.len()
        && found.iter().zip(cols).all(|(f, (name, ty, not_null))| {
            let pk = key
                .iter()
                .position(|k| k == name)
                .map_or(0, |i| i as i64 + 1);
            f.name.eq_ignore_ascii_case(name)
                && f.ty.eq_ignore_ascii_case(ty)
                && f.not_null == *not_null
                && !f.has_default
                && f.pk == pk
                && f.hidden == 0
        })
}

/// The words and punctuation of an SQL statement: comments and whitespace dropped, bare words
/// lowercased, quoted identifiers (`"…"`, `` `…` ``, `[…]`) unquoted; a string literal is kept
/// quoted (it never belongs to a column list).
fn tokens(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let until = |from: usize, end: &[u8]| {
        (from..b.len())
            .find(|&j| b[j..].starts_with(end))
            .map_or(b.len(), |j| j + end.len())
    };
    while i < b.len() {
        let c = b[i];
        let next = if c.is_ascii_whitespace() {
            i + 1
        } else if b[i..].starts_with(b"--") {
            until(i, b"\n")
        } else if b[i..].starts_with(b"/*") {
            until(i + 2, b"*/")
        } else if let Some(close) = match c {
            b'"' => Some(b"\"".as_slice()),
            b'`' => Some(b"`".as_slice()),
            b'[' => Some(b"]".as_slice()),
            b'\'' => Some(b"'".as_slice()),
            _ => None,
        } {
            let end = until(i + 1, close);
            let inner = String::from_utf8_lossy(&b[i + 1..end.saturating_sub(1).max(i + 1)]);
            out.push(if c == b'\'' {
                format!("'{inner}'")
            } else {
                inner.to_ascii_lowercase()
            });
            end
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let end = (i..b.len())
                .find(|&j| {
                    !(b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80)
                })
                .unwrap_or(b.len());
            out.push(String::from_utf8_lossy(&b[i..end]).to_ascii_lowercase());
            end
        } else {
            out.push((c as char).to_string());
            i + 1
        };
        i = next;
    }
    out
}

/// Refuses a `CREATE TABLE` statement with any word but those of a plain column list of
/// `table` with `cols`: what the pragmas cannot show (a `CHECK`, a `COLLATE`, …) is refused here.
fn plain_statement(sql: &str, table: &str, cols: &[Column]) -> Result<()> {
    const WORDS: [&str; 8] = [
        "create", "table", "primary", "key", "not", "null", "text", "integer",
    ];
    for t in tokens(sql) {
        let plain = WORDS.contains(&t.as_str())
            || matches!(t.as_str(), "(" | ")" | ",")
            || t.eq_ignore_ascii_case(table)
            || cols.iter().any(|(name, _, _)| t.eq_ignore_ascii_case(name));
        if !plain {
            bail!(
                "its `{table}` table has `{}`, which a snapshot's schema never holds (store-format.md §5.1)",
                t.escape_default()
            );
        }
    }
    Ok(())
}

/// Which format's tables a table of the file is, if it is one: `Some(None)` for `meta`.
fn known_table(conn: &Connection, name: &str, sql: &str) -> Result<Option<Option<Schema>>> {
    let (cols, key, which): (Vec<&[Column]>, &[&str], _) = if name.eq_ignore_ascii_case("meta") {
        (vec![&META[..]], META_KEY, None)
    } else if name.eq_ignore_ascii_case("packages") {
        let shapes = SCHEMAS.iter().map(|s| s.packages()).collect();
        (shapes, PACKAGES_KEY, Some(()))
    } else {
        return Ok(None);
    };
    let found = columns(conn, name)?;
    let Some(k) = cols.iter().position(|c| same_columns(&found, c, key)) else {
        let list: Vec<String> = found
            .iter()
            .map(|f| format!("{} {}", f.name, f.ty))
            .collect();
        bail!(
            "its `{name}` table ({}) has the columns of no index format (store-format.md §5.1)",
            list.join(", ").escape_default()
        );
    };
    plain_statement(sql, name, cols[k])?;
    // A rowid table: deltas and the search table address rows by rowid.
    conn.prepare(&format!("SELECT rowid FROM \"{name}\" LIMIT 0"))
        .with_context(|| format!("its `{name}` table has no rowid"))?;
    Ok(Some(which.map(|()| SCHEMAS[k])))
}

/// Refuses a snapshot whose schema is anything but the tables `meta` and `packages` of one
/// index format and their automatic primary-key indexes, before a row is read. With `local`,
/// the client's own search table (`index::search`) is allowed too; a file as published never
/// has it.
pub(super) fn check_schema(conn: &Connection, local: bool) -> Result<Schema> {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut stmt = conn.prepare("SELECT type, name, sql FROM sqlite_master")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut meta, mut packages) = (false, None);
    for (kind, name, sql) in rows {
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
            ("table", Some(sql)) => match known_table(conn, &name, sql)? {
                Some(None) => !std::mem::replace(&mut meta, true),
                Some(Some(schema)) => packages.replace(schema).is_none(),
                None => false,
            },
            ("index", None) => {
                name.eq_ignore_ascii_case("sqlite_autoindex_meta_1")
                    || name.eq_ignore_ascii_case("sqlite_autoindex_packages_1")
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
    match (meta, packages) {
        (true, Some(schema)) => Ok(schema),
        _ => bail!("its schema lacks the tables of store-format.md §5"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(sql: &str) -> Result<Schema> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        check_schema(&conn, false)
    }

    #[test]
    fn every_format_is_known_by_its_columns() {
        for s in SCHEMAS {
            assert_eq!(schema_of(&s.create_sql()).unwrap(), s);
        }
        let published = crate::index::record::SNAPSHOT_SCHEMA;
        assert_eq!(schema_of(published).unwrap(), Schema::V5);
    }

    #[test]
    fn layout_case_quoting_and_comments_are_free_issue_25_finding_10() {
        let sql = "create table \"meta\" (key text, [value] TEXT not null, primary key (key));
            CREATE TABLE packages ( -- the rows
              name TEXT NOT NULL, version TEXT NOT NULL, `version_key` TEXT NOT NULL,
              description TEXT, blake3 TEXT NOT NULL, infohash TEXT NOT NULL,
              size INTEGER NOT NULL, added_at INTEGER NOT NULL /* unix */, depends TEXT,
              conflicts TEXT, executables TEXT, yanked TEXT, phase INTEGER,
              PRIMARY KEY (name, version_key));";
        assert_eq!(schema_of(sql).unwrap(), Schema::V5);
    }

    #[test]
    fn constraints_the_pragmas_do_not_show_are_refused_issue_25_finding_10() {
        let v5 = Schema::V5.create_sql();
        let edits = [
            (
                "value TEXT NOT NULL",
                "value TEXT NOT NULL CHECK (length(value) < 10)",
            ),
            ("name TEXT NOT NULL", "name TEXT NOT NULL COLLATE NOCASE"),
            ("description TEXT", "description TEXT DEFAULT 'x'"),
            ("phase INTEGER", "phase INTEGER, extra TEXT"),
            ("phase INTEGER", "phase BLOB"),
            ("size INTEGER NOT NULL", "size INTEGER"),
            (
                "PRIMARY KEY (name, version_key)\n);\n",
                "PRIMARY KEY (name, version_key)\n) WITHOUT ROWID;\n",
            ),
            ("yanked TEXT", "yanked TEXT UNIQUE"),
            (
                "yanked TEXT",
                "yanked TEXT GENERATED ALWAYS AS (name) VIRTUAL",
            ),
            (
                "PRIMARY KEY (name, version_key)",
                "PRIMARY KEY (version_key, name)",
            ),
        ];
        for (from, to) in edits {
            let sql = v5.replacen(from, to, 1);
            assert_ne!(sql, v5, "{from} not found");
            assert!(schema_of(&sql).is_err(), "accepted {to}");
        }
        let extra = format!("{v5}CREATE VIEW v AS SELECT 1;");
        assert!(schema_of(&extra)
            .unwrap_err()
            .to_string()
            .contains("unexpected view `v`"));
    }
}
