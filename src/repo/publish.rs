//! Publishing (store-format.md §4.2, §5): inside the transaction that changed the master index,
//! write the compressed snapshot of the new serial, the delta from the previous serial, and the
//! signed manifest; after the commit, point `published/LATEST` at it and apply the retention.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use super::{meta_text, meta_u64, Repo};
use crate::clock::now_unix;
use crate::format::ids::Digest;
use crate::index::record::{
    self, sql_to_json, Distribution, INDEX_FORMAT, ROW_COLUMNS, SNAPSHOT_SCHEMA,
};
use crate::index::sign::{RepositoryId, Signed, SigningKey};
use crate::index::wire::{self, Delta, DeltaHeader, DeltaRef, FileRef, Manifest, Op};
use crate::store::fsx;

/// How many deltas (and so publishes a client may lag behind) stay published by default; fewer
/// when together they would outweigh the snapshot.
pub const DEFAULT_RETENTION: usize = 32;

/// What one file of `published/` is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublishedFile {
    Snapshot(u64),
    Delta(u64),
    Manifest(u64),
    /// Format 1: `index-<serial>.db` and its `.minisig`, replaced by format 2.
    Legacy,
}

impl PublishedFile {
    fn parse(name: &str) -> Option<PublishedFile> {
        if name.starts_with("index-") && (name.ends_with(".db") || name.ends_with(".db.minisig")) {
            return Some(PublishedFile::Legacy);
        }
        let (num, rest) = name.split_once('.')?;
        let n: u64 = num.parse().ok()?;
        match rest {
            "db.zst" => Some(PublishedFile::Snapshot(n)),
            "delta.zst" => Some(PublishedFile::Delta(n)),
            "json" | "json.minisig" => Some(PublishedFile::Manifest(n)),
            _ => None,
        }
    }
}

impl Repo {
    /// `published/<serial>.db.zst`: the whole index at `serial`, zstd-compressed.
    pub fn snapshot_path(&self, serial: u64) -> PathBuf {
        self.published_dir().join(format!("{serial}.db.zst"))
    }
    /// `published/<serial>.delta.zst`: the changes from `serial - 1` to `serial`.
    pub fn delta_path(&self, serial: u64) -> PathBuf {
        self.published_dir().join(format!("{serial}.delta.zst"))
    }
    /// `published/<serial>.json`: the manifest, signed by `<serial>.json.minisig`.
    pub fn manifest_path(&self, serial: u64) -> PathBuf {
        self.published_dir().join(format!("{serial}.json"))
    }
    pub fn manifest_sig_path(&self, serial: u64) -> PathBuf {
        self.published_dir().join(format!("{serial}.json.minisig"))
    }

    /// This repository's id (`meta.repository`, signed into every index since issue 25);
    /// `None` until the first publish that drew it.
    pub fn repository_id(&self) -> Result<Option<RepositoryId>> {
        let conn = self.read_index()?;
        Ok(meta_u64(&conn, "repository")?.map(RepositoryId))
    }

    /// The manifest of `serial`, if it is (still) published.
    pub fn manifest(&self, serial: u64) -> Result<Option<Manifest>> {
        let path = self.manifest_path(serial);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(
                Manifest::parse(&b).with_context(|| path.display().to_string())?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Bumps the serial and writes the snapshot, the delta (`ops` turn the previous serial's
    /// content into this one's) and the signed manifest, inside the caller's transaction, so
    /// what is published is exactly the committed state.
    pub(super) fn publish_in(&self, tx: &Connection, key: &SigningKey, ops: Vec<Op>) -> Result<()> {
        let prev_serial = meta_u64(tx, "serial")?;
        let serial = prev_serial.unwrap_or(0) + 1;
        let created = now_unix();
        let dist_text =
            meta_text(tx, "distribution")?.unwrap_or_else(|| Distribution::default().encode());
        let content = Digest::from(record::content_digest(tx, &dist_text)?);
        let packages: i64 = tx.query_row("SELECT count(*) FROM packages", [], |r| r.get(0))?;

        let snapshot = self.write_snapshot(tx, serial, created, &dist_text)?;

        // The delta exists only when the previous serial was published in this format (its
        // content digest is known); otherwise clients of the previous serial sync in full.
        let prev_content = meta_text(tx, "content")?
            .map(|s| Digest::parse(&s))
            .transpose()
            .context("the master index's meta `content`")?;
        let mut deltas = Vec::new();
        // A previous serial of another format (a content digest of other rows) has no delta.
        let prev_manifest = match prev_serial {
            Some(prev) => self.manifest(prev)?,
            None => None,
        };
        let prev_content = prev_content.filter(|_| {
            prev_manifest
                .as_ref()
                .is_some_and(|m| m.format == INDEX_FORMAT)
        });
        if let (Some(prev), Some(prev_content)) = (prev_serial, prev_content) {
            if let Some(m) = prev_manifest {
                deltas = m.deltas;
            }
            let delta = Delta {
                header: DeltaHeader {
                    from: prev,
                    to: serial,
                    from_content: prev_content,
                    to_content: content,
                },
                ops,
            };
            let bytes = delta.encode()?;
            fsx::write_atomic(&self.delta_path(serial), &bytes, 0o644)?;
            deltas.push(DeltaRef {
                from: prev,
                to: serial,
                blake3: Digest::of(&bytes),
                size: bytes.len() as u64,
            });
            let keep = deltas.len().saturating_sub(self.retention);
            deltas.drain(..keep);
            // A client uses deltas only while they are smaller together than the snapshot:
            // older ones than that would never be fetched.
            while deltas.iter().map(|d| d.size).sum::<u64>() >= snapshot.size {
                deltas.remove(0);
            }
        }
        let manifest = Manifest {
            format: INDEX_FORMAT,
            serial,
            created,
            content,
            packages: packages as u64,
            snapshot,
            deltas,
        };
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        let sig = key.sign(
            &bytes,
            &Signed {
                format: INDEX_FORMAT,
                serial,
                created,
                repository: Some(repository_id(tx)?),
            },
        )?;
        // The signature first: a manifest is never visible without it.
        fsx::write_atomic(&self.manifest_sig_path(serial), sig.as_bytes(), 0o644)?;
        fsx::write_atomic(&self.manifest_path(serial), &bytes, 0o644)?;
        for (k, v) in [
            ("serial", serial.to_string()),
            ("content", content.to_hex()),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [k, &v],
            )?;
        }
        Ok(())
    }

    /// Writes `published/<serial>.db.zst`: a fresh rollback-journal SQLite file with the
    /// snapshot schema, its meta, and every row of the master index in key order.
    fn write_snapshot(
        &self,
        tx: &Connection,
        serial: u64,
        created: u64,
        dist_text: &str,
    ) -> Result<FileRef> {
        let dir = self.published_dir();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{}snapshot-", fsx::TMP))
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
        {
            let snap = Connection::open(tmp.path())?;
            snap.pragma_update(None, "journal_mode", "DELETE")?;
            snap.pragma_update(None, "synchronous", "OFF")?;
            snap.execute_batch(SNAPSHOT_SCHEMA)?;
            snap.execute_batch("BEGIN")?;
            {
                let mut meta = snap.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
                for (k, v) in [
                    ("format", INDEX_FORMAT.to_string()),
                    ("serial", serial.to_string()),
                    ("created", created.to_string()),
                    ("distribution", dist_text.to_string()),
                ] {
                    meta.execute([k, &v])?;
                }
                let cols = ROW_COLUMNS.join(", ");
                let mut stmt = tx.prepare(&format!(
                    "SELECT {cols} FROM packages ORDER BY name, version_key"
                ))?;
                let mut ins = snap.prepare(&format!(
                    "INSERT INTO packages ({cols}) VALUES ({})",
                    record::row_placeholders()
                ))?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let vals: [rusqlite::types::Value; ROW_COLUMNS.len()] =
                        std::array::from_fn(|i| r.get(i).unwrap_or(rusqlite::types::Value::Null));
                    ins.execute(rusqlite::params_from_iter(vals.iter()))?;
                }
            }
            snap.execute_batch("COMMIT")?;
        }
        let raw = std::fs::read(tmp.path())
            .with_context(|| format!("cannot read {}", tmp.path().display()))?;
        let bytes = wire::compress(&raw)?;
        fsx::write_atomic(&self.snapshot_path(serial), &bytes, 0o644)?;
        Ok(FileRef {
            blake3: Digest::of(&bytes),
            size: bytes.len() as u64,
            raw_size: raw.len() as u64,
        })
    }

    /// Points `published/LATEST` at the committed serial (after the commit, so it never names
    /// a manifest whose transaction rolled back), then removes what the retention lets go.
    pub(super) fn finish_publish(&self, conn: &Connection) -> Result<()> {
        let Some(serial) = meta_u64(conn, "serial")? else {
            return Ok(());
        };
        if self.latest_serial()? != Some(serial) && self.manifest_path(serial).exists() {
            fsx::write_atomic(&self.latest_path(), format!("{serial}\n").as_bytes(), 0o644)?;
        }
        if self.latest_serial()? == Some(serial) {
            self.apply_retention(serial)?;
        }
        Ok(())
    }

    /// Keeps, of what `published/` holds: the snapshots and manifests of the newest two serials
    /// (a client that read the previous manifest just before this publish can still finish),
    /// and the deltas the newest manifest lists. Format-1 snapshots go.
    pub(super) fn apply_retention(&self, serial: u64) -> Result<()> {
        let deltas: BTreeSet<u64> = self
            .manifest(serial)?
            .map(|m| m.deltas.iter().map(|d| d.to).collect())
            .unwrap_or_default();
        let dir = self.published_dir();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let Some(kind) = name.to_str().and_then(PublishedFile::parse) else {
                continue;
            };
            let keep = match kind {
                PublishedFile::Snapshot(n) | PublishedFile::Manifest(n) => {
                    n.saturating_add(1) >= serial
                }
                PublishedFile::Delta(n) => deltas.contains(&n),
                PublishedFile::Legacy => false,
            };
            if !keep {
                remove_published(&e.path())?;
            }
        }
        Ok(())
    }
}

fn remove_published(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// The delta op that puts the master's row `(name, version_key)` as it is now.
pub(super) fn put_op(tx: &Connection, name: &str, version_key: &str) -> Result<Op> {
    let cols = ROW_COLUMNS.join(", ");
    let vals = tx.query_row(
        &format!("SELECT {cols} FROM packages WHERE name = ?1 AND version_key = ?2"),
        params![name, version_key],
        |r| {
            Ok((0..ROW_COLUMNS.len())
                .map(|i| r.get::<_, rusqlite::types::Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>())
        },
    )??;
    let json = vals
        .into_iter()
        .zip(ROW_COLUMNS)
        .map(|(v, c)| sql_to_json(v, c))
        .collect::<Result<Vec<_>>>()?;
    Ok(Op::Put(json))
}

/// The repository's id: `meta.repository`, drawn at random and stored inside the caller's
/// transaction the first time it publishes (a repository published before issue 25 gets one
/// with its next serial). Two roots never share one, even when they share a key.
fn repository_id(tx: &Connection) -> Result<RepositoryId> {
    if let Some(id) = meta_u64(tx, "repository")? {
        return Ok(RepositoryId(id));
    }
    let id = RepositoryId::random()?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('repository', ?1)",
        [id.to_string()],
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_names() {
        assert_eq!(
            PublishedFile::parse("12.db.zst"),
            Some(PublishedFile::Snapshot(12))
        );
        assert_eq!(
            PublishedFile::parse("3.delta.zst"),
            Some(PublishedFile::Delta(3))
        );
        assert_eq!(
            PublishedFile::parse("3.json"),
            Some(PublishedFile::Manifest(3))
        );
        assert_eq!(
            PublishedFile::parse("3.json.minisig"),
            Some(PublishedFile::Manifest(3))
        );
        assert_eq!(
            PublishedFile::parse("index-4.db"),
            Some(PublishedFile::Legacy)
        );
        assert_eq!(
            PublishedFile::parse("index-4.db.minisig"),
            Some(PublishedFile::Legacy)
        );
        assert_eq!(PublishedFile::parse("LATEST"), None);
        assert_eq!(PublishedFile::parse(".tmp-snapshot-x"), None);
        assert_eq!(PublishedFile::parse("x.db.zst"), None);
    }
}
