//! The publisher's repository under `--root` (store-format.md §4): objects by BLAKE3, the master
//! SQLite index, and the signed snapshots published after every change.

pub mod index;
pub mod sign;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::format::ids::{InfoHash, ObjectId, PackageName};
use crate::format::pack::{self, Packed};
use crate::format::package::Package;
use crate::format::torrent::{self, Info};
use crate::repo::index::{PackageRecord, INDEX_FORMAT, SNAPSHOT_SCHEMA};
use crate::repo::sign::{Signed, SigningKey};
use crate::store::fsx::{self, Durability};
use crate::store::objects::ObjectStore;

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Trackers and web-seed base URL: configuration that goes into magnets and `.torrent` files
/// but never into the info dictionary.
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

    fn encode(&self) -> String {
        serde_json::json!({"trackers": self.trackers, "public_url": self.public_url}).to_string()
    }

    fn decode(s: &str) -> Result<Distribution> {
        let v: serde_json::Value =
            serde_json::from_str(s).context("meta `distribution` is corrupt")?;
        Ok(Distribution {
            trackers: v["trackers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            public_url: v["public_url"].as_str().map(str::to_string),
        })
    }

    pub fn magnet(&self, r: &PackageRecord, info_name: &str) -> String {
        let ws: Vec<String> = self.web_seed(&r.blake3).into_iter().collect();
        torrent::magnet(&r.infohash, info_name, r.size, &self.trackers, &ws)
    }
}

/// The repository layout.
pub struct Repo {
    pub root: PathBuf,
}

/// What `add` did with one package.
#[derive(Debug, Clone)]
pub enum Added {
    New(Packed),
    Unchanged(Packed),
}

impl Repo {
    pub fn new(root: &Path) -> Repo {
        Repo {
            root: root.to_path_buf(),
        }
    }
    /// `objects/`: the archives by BLAKE3, the same store type the client uses.
    pub fn objects(&self) -> ObjectStore {
        ObjectStore::new(self.root.join("objects"))
    }
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }
    pub fn published_dir(&self) -> PathBuf {
        self.root.join("published")
    }
    pub fn snapshot_path(&self, serial: u64) -> PathBuf {
        self.published_dir().join(format!("index-{serial}.db"))
    }
    pub fn signature_path(&self, serial: u64) -> PathBuf {
        self.published_dir()
            .join(format!("index-{serial}.db.minisig"))
    }
    /// `published/LATEST` holds the serial of the newest snapshot.
    pub fn latest_path(&self) -> PathBuf {
        self.published_dir().join("LATEST")
    }

    /// Every object the master index references, when this root is a repository (empty
    /// otherwise). A client `gc` in the same root keeps them: they are the repository's data.
    pub fn indexed_objects(&self) -> Result<BTreeSet<ObjectId>> {
        let path = self.index_path();
        if !path.exists() {
            return Ok(BTreeSet::new());
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the repository index {}", path.display()))?;
        let mut stmt = conn.prepare("SELECT blake3 FROM packages")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = BTreeSet::new();
        for r in rows {
            let hex = r?;
            out.insert(ObjectId::parse(&hex).with_context(|| {
                format!("{}: a `blake3` of the packages table", path.display())
            })?);
        }
        Ok(out)
    }

    pub fn latest_serial(&self) -> Result<Option<u64>> {
        match std::fs::read_to_string(self.latest_path()) {
            Ok(s) => Ok(Some(s.trim().parse().with_context(|| {
                format!("{} is corrupt", self.latest_path().display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read {}", self.latest_path().display()))
            }
        }
    }

    /// Opens (creating if needed) the master index.
    pub fn open_index(&self) -> Result<Connection> {
        for d in [
            self.root.clone(),
            self.objects().dir().to_path_buf(),
            self.published_dir(),
        ] {
            std::fs::create_dir_all(&d).with_context(|| {
                format!("cannot create {} (is the root writable?)", d.display())
            })?;
        }
        let path = self.index_path();
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(&format!(
            // The index on `infohash` keeps republishing (one UPDATE per row) linear.
            "{}\nCREATE TABLE IF NOT EXISTS torrents (infohash TEXT PRIMARY KEY, info BLOB NOT NULL);\nCREATE INDEX IF NOT EXISTS packages_by_infohash ON packages (infohash);",
            SNAPSHOT_SCHEMA
                .replace("CREATE TABLE meta", "CREATE TABLE IF NOT EXISTS meta")
                .replace("CREATE TABLE packages", "CREATE TABLE IF NOT EXISTS packages")
        ))
        .with_context(|| format!("cannot set up {}", path.display()))?;
        Ok(conn)
    }

    /// Validates every package, then packs, stores and indexes them in one transaction, and
    /// publishes a new signed snapshot if anything changed. All or nothing.
    pub fn add(&self, dirs: &[PathBuf]) -> Result<Vec<Added>> {
        // 1. Validate everything before touching the repository.
        let pkgs = validate(dirs)?;
        let mut conn = self.open_index()?;
        let key = SigningKey::load_or_create(&self.root)?;
        // 2. Pack into staging files inside objects/ (same filesystem, so the rename is atomic).
        let objects = self.objects();
        let staging = objects.staging()?;
        let mut packed = Vec::new();
        for (i, p) in pkgs.iter().enumerate() {
            let tmp = staging.path().join(format!("{i}.tar"));
            let result = pack::pack_file(p, &tmp, Durability::Durable)
                .with_context(|| format!("cannot pack {}", p.root.display()))?;
            packed.push((tmp, result));
        }
        // 3. One transaction: check immutability, store objects, insert rows, publish.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let dist = current_distribution(&tx)?;
        let now = now_unix() as i64;
        let mut out = Vec::new();
        for (tmp, p) in &packed {
            out.push(index_one(&tx, &dist, &objects, tmp, p, now)?);
        }
        if out.iter().any(|a| matches!(a, Added::New(_))) {
            self.publish_in(&tx, &key)?;
        }
        tx.commit().context("cannot commit the index")?;
        self.finish_publish(&conn)?;
        Ok(out)
    }

    /// Re-renders every magnet link for `dist` and publishes a new snapshot if they changed.
    /// Returns the serial now published.
    pub fn republish_for(&self, dist: &Distribution) -> Result<u64> {
        let mut conn = self.open_index()?;
        let key = SigningKey::load_or_create(&self.root)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'distribution'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let serial: Option<u64> = meta_u64(&tx, "serial")?;
        if current.as_deref() != Some(dist.encode().as_str()) || serial.is_none() {
            let records = index::read_records(&tx)?;
            for r in &records {
                let info = self.info(&tx, &r.infohash)?;
                let magnet = dist.magnet(r, &info.name);
                tx.execute(
                    "UPDATE packages SET magnet = ?1 WHERE infohash = ?2",
                    params![magnet, r.infohash],
                )?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('distribution', ?1)",
                [dist.encode()],
            )?;
            self.publish_in(&tx, &key)?;
        }
        tx.commit()?;
        self.finish_publish(&conn)?;
        Ok(meta_u64(&conn, "serial")?.unwrap_or(0))
    }

    fn info(&self, conn: &Connection, infohash: &InfoHash) -> Result<Info> {
        let bytes: Vec<u8> = conn
            .query_row(
                "SELECT info FROM torrents WHERE infohash = ?1",
                [infohash],
                |r| r.get(0),
            )
            .with_context(|| format!("the index has no torrent info for {infohash}"))?;
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(&bytes);
        t.push(b'e');
        Info::parse_torrent(&t).map_err(|e| anyhow::anyhow!("torrent info of {infohash}: {e}"))
    }

    /// Every package the master index holds (committed state, which is at least what
    /// `published/LATEST` names), sorted by name and version precedence.
    pub fn records(&self) -> Result<Vec<PackageRecord>> {
        let conn = self.open_index()?;
        index::read_records(&conn)
            .with_context(|| format!("cannot read {}", self.index_path().display()))
    }

    /// The info dictionary of one indexed object; `None` when no package has that infohash.
    pub fn torrent_info(&self, infohash: &InfoHash) -> Result<Option<Info>> {
        let conn = self.open_index()?;
        let known: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM torrents WHERE infohash = ?1",
                [infohash],
                |r| r.get(0),
            )
            .optional()?;
        match known {
            Some(_) => Ok(Some(self.info(&conn, infohash)?)),
            None => Ok(None),
        }
    }

    /// The info dictionaries of every indexed object, by infohash.
    pub fn all_infos(&self) -> Result<BTreeMap<InfoHash, Info>> {
        let conn = self.open_index()?;
        let mut stmt = conn.prepare("SELECT infohash FROM torrents")?;
        let hashes: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = BTreeMap::new();
        for h in hashes {
            let h = InfoHash::parse(&h).context("the master index's `torrents` table")?;
            let info = self.info(&conn, &h)?;
            out.insert(h, info);
        }
        Ok(out)
    }

    /// Bumps the serial and writes `published/index-<serial>.db` + `.minisig` (inside the
    /// caller's transaction, so the snapshot is exactly the committed state).
    fn publish_in(&self, tx: &Connection, key: &SigningKey) -> Result<()> {
        let serial = meta_u64(tx, "serial")?.unwrap_or(0) + 1;
        let created = now_unix();
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('serial', ?1)",
            [serial.to_string()],
        )?;
        let dir = self.published_dir();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{}snapshot-", fsx::TMP))
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
        let tmp_path = tmp.path().to_path_buf();
        {
            let snap = Connection::open(&tmp_path)?;
            snap.pragma_update(None, "journal_mode", "DELETE")?;
            snap.execute_batch(SNAPSHOT_SCHEMA)?;
            let mut meta = snap.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
            for (k, v) in [
                ("format", INDEX_FORMAT.to_string()),
                ("serial", serial.to_string()),
                ("created", created.to_string()),
            ] {
                meta.execute([k, &v])?;
            }
            let mut stmt = tx.prepare(
                "SELECT name, version, version_key, description, blake3, infohash, size, magnet, added_at FROM packages ORDER BY name, version_key",
            )?;
            let mut ins = snap.prepare(
                "INSERT INTO packages (name, version, version_key, description, blake3, infohash, size, magnet, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            snap.execute_batch("BEGIN")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                ins.execute(params![
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?
                ])?;
            }
            snap.execute_batch("COMMIT")?;
        }
        let bytes = std::fs::read(&tmp_path)?;
        let sig = key.sign(
            &bytes,
            &Signed {
                format: INDEX_FORMAT,
                serial,
                created,
            },
        )?;
        fsx::write_atomic(&self.signature_path(serial), sig.as_bytes(), 0o644)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o644))?;
        let (_, path) = tmp.keep().map_err(|e| e.error)?;
        fsx::persist_file(&path, &self.snapshot_path(serial))?;
        Ok(())
    }

    /// Points `published/LATEST` at the committed serial (after the commit, so it never names
    /// a snapshot whose transaction rolled back).
    fn finish_publish(&self, conn: &Connection) -> Result<()> {
        if let Some(serial) = meta_u64(conn, "serial")? {
            if self.latest_serial()? != Some(serial) && self.snapshot_path(serial).exists() {
                fsx::write_atomic(&self.latest_path(), format!("{serial}\n").as_bytes(), 0o644)?;
            }
        }
        Ok(())
    }

    /// Index records of the newest published snapshot (what clients see).
    pub fn published(&self) -> Result<Option<index::Snapshot>> {
        match self.latest_serial()? {
            Some(s) => Ok(Some(index::Snapshot::open(&self.snapshot_path(s))?)),
            None => Ok(None),
        }
    }
}

/// The distribution the last publish used (trackers and base URL), empty before any `serve`.
/// Loads every package directory (all errors name the directory) and refuses two directories
/// with the same name and version in one batch.
fn validate(dirs: &[PathBuf]) -> Result<Vec<Package>> {
    let mut pkgs = Vec::new();
    for d in dirs {
        pkgs.push(Package::load(d)?);
    }
    let mut seen: BTreeMap<(PackageName, String), &Path> = BTreeMap::new();
    for p in &pkgs {
        let key = (
            p.manifest.name.clone(),
            index::version_key(&p.manifest.version),
        );
        if let Some(prev) = seen.insert(key, &p.root) {
            if prev != p.root {
                bail!(
                    "{} and {} are both {}: one version per batch",
                    prev.display(),
                    p.root.display(),
                    p.manifest
                );
            }
        }
    }
    Ok(pkgs)
}

/// Inside the add transaction: an identical version is unchanged, a different one with the same
/// version is refused (versions are immutable), a new one enters the object store and the index.
fn index_one(
    tx: &Connection,
    dist: &Distribution,
    objects: &ObjectStore,
    tmp: &Path,
    p: &Packed,
    now: i64,
) -> Result<Added> {
    let vkey = index::version_key(&p.version);
    let existing: Option<(String, String)> = tx
        .query_row(
            "SELECT blake3, version FROM packages WHERE name = ?1 AND version_key = ?2",
            params![p.name, vkey],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match existing {
        Some((b3, _)) if b3 == p.blake3.to_hex() => return Ok(Added::Unchanged(p.clone())),
        Some((b3, v)) => bail!(
            "{}@{} is already in the index with different content (blake3 {b3}, this one {}); versions are immutable: bump the version",
            p.name,
            v,
            p.blake3
        ),
        None => {}
    }
    objects.insert_file(tmp, &p.blake3)?;
    let rec = PackageRecord {
        name: p.name.clone(),
        version: p.version.clone(),
        description: p.description.clone(),
        blake3: p.blake3,
        infohash: p.infohash,
        size: p.size,
        magnet: String::new(),
        added_at: now,
    };
    let magnet = dist.magnet(&rec, &p.info.name);
    tx.execute(
        "INSERT INTO packages (name, version, version_key, description, blake3, infohash, size, magnet, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![rec.name, rec.version.to_string(), vkey, rec.description, rec.blake3, rec.infohash, rec.size as i64, magnet, now],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO torrents (infohash, info) VALUES (?1, ?2)",
        params![p.infohash, p.info.to_value().encode()],
    )?;
    Ok(Added::New(p.clone()))
}

fn current_distribution(conn: &Connection) -> Result<Distribution> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'distribution'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    v.map(|s| Distribution::decode(&s))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn meta_u64(conn: &Connection, key: &str) -> Result<Option<u64>> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    v.map(|s| {
        s.parse()
            .with_context(|| format!("meta `{key}` is corrupt"))
    })
    .transpose()
}
