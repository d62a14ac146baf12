//! The publisher's repository under `--root` (store-format.md §4): objects by BLAKE3, the master
//! SQLite index, and the signed snapshots published after every change.

pub mod browse;
mod keyring;
pub mod mirror;
mod mirror_objects;
mod publish;
pub mod status_edit;

pub use keyring::{Created, Revoked, Rotated};
pub use publish::DEFAULT_RETENTION;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::clock::now_unix;
use crate::format::ids::{InfoHash, ObjectId, PackageName};
use crate::format::pack::Packed;
use crate::format::package::Package;
use crate::format::torrent::Info;
use crate::index::record::{self, Distribution, PackageRecord, SNAPSHOT_SCHEMA};
use crate::index::status;
use crate::index::wire::{self, Op};
use crate::store::archive;
use crate::store::fsx::{self, Durability};
use crate::store::objects::ObjectStore;

/// From this many packages on, `add` syncs the filesystem twice instead of every file.
const BATCH_SYNC: usize = 64;

/// The repository layout.
pub struct Repo {
    pub root: PathBuf,
    /// How many deltas stay published (store-format.md §4.2).
    retention: usize,
    /// `add` accepts packages whose dependencies the repository cannot satisfy.
    allow_unresolved: bool,
    /// `add --phase`: the rollout of the versions an `add` publishes.
    phase: Option<status::Phase>,
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
            retention: DEFAULT_RETENTION,
            allow_unresolved: false,
            phase: None,
        }
    }

    /// The same repository, whose `add` publishes new versions rolled out to `phase` of the
    /// machines (`--phase`); versions already in the index keep theirs.
    pub fn with_phase(mut self, phase: Option<status::Phase>) -> Repo {
        self.phase = phase;
        self
    }

    /// The same repository, whose `add` accepts dependencies it cannot satisfy
    /// (`--allow-unresolved`).
    pub fn allowing_unresolved(mut self, allow: bool) -> Repo {
        self.allow_unresolved = allow;
        self
    }

    /// The same repository, keeping `deltas` deltas published (at least 1).
    pub fn with_retention(mut self, deltas: usize) -> Repo {
        self.retention = deltas.max(1);
        self
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
        let conn = self.read_index()?;
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

    /// Opens the master index read-only: what reading needs, without `open_index`'s directory
    /// creation, schema statements and migration (`serve` reads it on every `.torrent` request).
    fn read_index(&self) -> Result<Connection> {
        let path = self.index_path();
        Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the repository index {}", path.display()))
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
            // The index on `infohash` answers `serve`'s lookups of one torrent.
            "{}\nCREATE TABLE IF NOT EXISTS torrents (infohash TEXT PRIMARY KEY, info BLOB NOT NULL);\nCREATE INDEX IF NOT EXISTS packages_by_infohash ON packages (infohash);",
            SNAPSHOT_SCHEMA
                .replace("CREATE TABLE meta", "CREATE TABLE IF NOT EXISTS meta")
                .replace("CREATE TABLE packages", "CREATE TABLE IF NOT EXISTS packages")
        ))
        .with_context(|| format!("cannot set up {}", path.display()))?;
        migrate_master(&conn).with_context(|| format!("cannot upgrade {}", path.display()))?;
        Ok(conn)
    }

    /// Validates every package, then packs, stores and indexes them in one transaction, and
    /// publishes a new signed snapshot if anything changed. All or nothing.
    pub fn add(&self, dirs: &[PathBuf]) -> Result<Vec<Added>> {
        self.add_valid(validate(dirs)?)
    }

    /// [`Repo::add`] of packages [`validate`] accepted (`add --create` validates before it
    /// creates the repository, so a bad package leaves no new repository behind).
    pub fn add_valid(&self, pkgs: Valid) -> Result<Vec<Added>> {
        // 1. Everything was validated before the repository was touched.
        let Valid(pkgs) = pkgs;
        let key = self.require_key()?;
        let mut conn = self.open_index()?;
        // 2. Pack into staging files inside objects/ (same filesystem, so the rename is atomic).
        let objects = self.objects();
        let staging = objects.staging()?;
        // A large batch is made durable by two filesystem syncs (after packing, after the
        // renames) instead of several fsyncs per package: 100,000 small packages spent most of
        // their time waiting for fsync.
        let batch = pkgs.len() >= BATCH_SYNC;
        let durability = if batch {
            Durability::AtomicOnly
        } else {
            Durability::Durable
        };
        let mut packed = Vec::new();
        for (i, p) in pkgs.iter().enumerate() {
            let tmp = staging.path().join(format!("{i}.tar"));
            let result = archive::pack_file(p, &tmp, durability)
                .with_context(|| format!("cannot pack {}", p.root.display()))?;
            packed.push((tmp, result));
        }
        if batch {
            fsx::sync_filesystem(staging.path())?;
        }
        // 3. One transaction: check immutability, store objects, insert rows, publish.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_unix() as i64;
        let mut out = Vec::new();
        let mut ops = Vec::new();
        for (tmp, p) in &packed {
            let added = index_one(&tx, &objects, tmp, p, (now, self.phase), batch)?;
            if let Added::New(p) = &added {
                ops.push(publish::put_op(
                    &tx,
                    p.name.as_str(),
                    &record::version_key(&p.version),
                )?);
            }
            out.push(added);
        }
        if !self.allow_unresolved {
            check_dependencies(&tx, &out)?;
        }
        if batch {
            // The renames, before the index commits to them.
            fsx::sync_filesystem(objects.dir())?;
        }
        if !ops.is_empty() {
            self.publish_in(&tx, &key, ops)?;
        }
        tx.commit().context("cannot commit the index")?;
        self.finish_publish(&conn)?;
        Ok(out)
    }

    /// Publishes a new serial when `dist` (trackers and web-seed base, from which clients
    /// render magnets) differs from the published one, or when the newest serial is not
    /// published in the current format. Returns the serial now published.
    pub fn republish_for(&self, dist: &Distribution) -> Result<u64> {
        let key = self.require_key()?;
        let mut conn = self.open_index()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let text = dist.encode();
        let current = meta_text(&tx, "distribution")?;
        let serial = meta_u64(&tx, "serial")?;
        let current_format = match serial {
            Some(s) => self
                .manifest(s)?
                .is_some_and(|m| m.format == record::INDEX_FORMAT),
            None => false,
        };
        if current.as_deref() != Some(text.as_str()) || !current_format {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('distribution', ?1)",
                [&text],
            )?;
            self.publish_in(&tx, &key, vec![Op::Distribution(text)])?;
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
        let conn = self.read_index()?;
        let dist = current_distribution(&conn)?;
        record::read_records(&conn, &dist)
            .with_context(|| format!("cannot read {}", self.index_path().display()))
    }

    /// The trackers and web-seed base the master index names (`meta.distribution`): this
    /// server's own, or, in a mirror, the upstream's.
    pub fn distribution(&self) -> Result<Distribution> {
        let conn = self.read_index()?;
        current_distribution(&conn)
            .with_context(|| format!("cannot read {}", self.index_path().display()))
    }

    /// The info dictionary of one indexed object; `None` when no package has that infohash.
    pub fn torrent_info(&self, infohash: &InfoHash) -> Result<Option<Info>> {
        let conn = self.read_index()?;
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

    /// The newest published snapshot, decompressed into a temp file that lives as long as the
    /// returned value (what clients see).
    pub fn published(&self) -> Result<Option<PublishedSnapshot>> {
        let Some(serial) = self.latest_serial()? else {
            return Ok(None);
        };
        let path = self.snapshot_path(serial);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut file = tempfile::NamedTempFile::new()?;
        wire::decompress_to(&bytes, u64::MAX / 2, file.as_file_mut())
            .with_context(|| path.display().to_string())?;
        let snapshot = record::Snapshot::open(file.path())?;
        Ok(Some(PublishedSnapshot {
            snapshot,
            _file: file,
        }))
    }
}

/// A published snapshot, decompressed.
pub struct PublishedSnapshot {
    pub snapshot: record::Snapshot,
    _file: tempfile::NamedTempFile,
}

/// Package directories [`validate`] loaded and checked, ready for [`Repo::add_valid`].
pub struct Valid(Vec<Package>);

/// Loads every package directory (all errors name the directory) and refuses two directories
/// with the same name and version in one batch.
pub fn validate(dirs: &[PathBuf]) -> Result<Valid> {
    // The same directory named twice (a repeated line of `add --from`, or `./a` and `a`) is
    // read, checked and packed once (issue 25: it was packed again for every line).
    let mut unique: Vec<&PathBuf> = Vec::new();
    let mut seen_dirs = BTreeSet::new();
    for d in dirs {
        if seen_dirs.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())) {
            unique.push(d);
        }
    }
    let mut pkgs = Vec::new();
    for d in unique {
        pkgs.push(Package::load(d)?);
    }
    let mut seen: BTreeMap<(PackageName, String), &Path> = BTreeMap::new();
    for p in &pkgs {
        let key = (
            p.manifest.name.clone(),
            record::version_key(&p.manifest.version),
        );
        if let Some(prev) = seen.insert(key, &p.root) {
            bail!(
                "{} and {} are both {}: one version per batch",
                prev.display(),
                p.root.display(),
                p.manifest
            );
        }
    }
    Ok(Valid(pkgs))
}

/// Inside the add transaction: an identical version is unchanged, a different one with the same
/// version is refused (versions are immutable), a new one enters the object store and the index.
fn index_one(
    tx: &Connection,
    objects: &ObjectStore,
    tmp: &Path,
    p: &Packed,
    (now, phase): (i64, Option<status::Phase>),
    unsynced: bool,
) -> Result<Added> {
    let vkey = record::version_key(&p.version);
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
    if unsynced {
        objects.insert_file_unsynced(tmp, &p.blake3)?;
    } else {
        objects.insert_file(tmp, &p.blake3)?;
    }
    tx.execute(
        "INSERT INTO packages (name, version, version_key, description, blake3, infohash, size, added_at, depends, conflicts, executables, phase)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            p.name,
            p.version.to_string(),
            vkey,
            p.description,
            p.blake3,
            p.infohash,
            p.size as i64,
            now,
            p.relations.depends_text(),
            p.relations.conflicts_text(),
            record::executables_text(&p.executables),
            phase.map(|p| p.percent())
        ],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO torrents (infohash, info) VALUES (?1, ?2)",
        params![p.infohash, p.info.to_value().encode()],
    )?;
    Ok(Added::New(p.clone()))
}

/// Inside the add transaction: every dependency of a new package has a version in the index
/// (after this add) that its requirement admits, so what is published can be installed.
fn check_dependencies(tx: &Connection, added: &[Added]) -> Result<()> {
    let mut problems = Vec::new();
    let mut stmt = tx.prepare("SELECT version FROM packages WHERE name = ?1")?;
    for a in added {
        let Added::New(p) = a else { continue };
        for (dep, req) in &p.relations.depends {
            let texts: Vec<String> = stmt
                .query_map([dep.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut versions: Vec<semver::Version> = texts
                .iter()
                .filter_map(|v| semver::Version::parse(v).ok())
                .collect();
            versions.sort_by(|a, b| a.cmp_precedence(b));
            if !versions.iter().any(|v| req.matches(v)) {
                let has = if versions.is_empty() {
                    "no version of it".to_string()
                } else {
                    let list: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
                    format!("only {}", list.join(", "))
                };
                problems.push(format!(
                    "{} depends on {dep} {req}, and the repository has {has}",
                    p.id()
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}; add the dependencies in the same batch (or first), or pass --allow-unresolved (nothing was added)",
            problems.join("; ")
        );
    }
    Ok(())
}

/// The distribution the last publish used (trackers and base URL), empty before any `serve`.
fn current_distribution(conn: &Connection) -> Result<Distribution> {
    meta_text(conn, "distribution")?
        .map(|s| Distribution::decode(&s))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// A master index made before index format 2 has a `magnet` column: magnets are rendered
/// from `meta.distribution` now, so it goes. One made before format 3 lacks `depends` and
/// `conflicts`, one made before format 4 `executables`, one made before format 5 `yanked` and
/// `phase`: they are added.
fn migrate_master(conn: &Connection) -> Result<()> {
    let has_magnet: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('packages') WHERE name = 'magnet'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if has_magnet {
        conn.execute_batch("ALTER TABLE packages DROP COLUMN magnet")?;
    }
    // Format 3: `depends` and `conflicts` (NULL for every package added before: its manifest
    // could not have them).
    let has_depends: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('packages') WHERE name = 'depends'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !has_depends {
        conn.execute_batch(
            "ALTER TABLE packages ADD COLUMN depends TEXT; ALTER TABLE packages ADD COLUMN conflicts TEXT;",
        )?;
    }
    // Format 4: `executables` (NULL, "not known", for every package added before).
    let has_executables: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('packages') WHERE name = 'executables'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !has_executables {
        conn.execute_batch("ALTER TABLE packages ADD COLUMN executables TEXT;")?;
    }
    // Format 5: `yanked` and `phase` (NULL: nothing was yanked or phased before).
    let has_yanked: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('packages') WHERE name = 'yanked'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !has_yanked {
        conn.execute_batch(
            "ALTER TABLE packages ADD COLUMN yanked TEXT; ALTER TABLE packages ADD COLUMN phase INTEGER;",
        )?;
    }
    Ok(())
}

fn meta_text(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn meta_u64(conn: &Connection, key: &str) -> Result<Option<u64>> {
    meta_text(conn, key)?
        .map(|s| {
            s.parse()
                .with_context(|| format!("meta `{key}` is corrupt"))
        })
        .transpose()
}
