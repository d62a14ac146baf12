//! `dist sync` (store-format.md §5.3–5.5): fetch the signed manifest with a conditional GET,
//! verify it, refuse rollbacks, then bring the local index to the manifest's serial with the
//! published deltas when it can (checking the result against the signed content digest) or the
//! compressed snapshot when it cannot. The local index is replaced atomically or not at all.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::config::{RepoName, Repository, Settings};
use super::trust::Trust;
use super::Layout;
use crate::repo::index::{self, Snapshot, INDEX_FORMAT, ROW_COLUMNS};
use crate::repo::keys::{self, Followed, PublicKey};
use crate::repo::search;
use crate::repo::wire::{self, Delta, DeltaRef, Manifest, Op, Remote, SignedManifest};
use crate::store::fsx;

/// The largest manifest a client accepts.
const MAX_MANIFEST: u64 = 4 << 20;

/// What the client remembers about its copy of the index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexState {
    pub serial: u64,
    pub created: u64,
    pub etag: Option<String>,
    pub fetched_at: u64,
    /// Index format of the local copy (absent, so 0, before format 2).
    #[serde(default)]
    pub format: u32,
    /// Hex content digest of the local copy (format 2).
    #[serde(default)]
    pub content: Option<String>,
    /// The public key (base64) that verified the local copy; absent before it was recorded.
    #[serde(default)]
    pub key: Option<String>,
}

/// How a sync brought the local index up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The whole compressed snapshot.
    Full,
    /// The published deltas from the local serial.
    Delta,
    /// Nothing to fetch.
    Unchanged,
}

/// What a sync did; `sync --json` prints it as it is (see `commands/json.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub changed: bool,
    pub serial: u64,
    pub previous_serial: Option<u64>,
    pub created: u64,
    /// Body bytes received (the same as `bytes_on_wire`; kept for earlier readers).
    pub bytes: u64,
    pub packages: usize,
    /// Set when the index is older than `stale_after`.
    pub stale_warning: Option<String>,
    /// Every HTTP body byte this sync received: manifest, signature, deltas or snapshot.
    pub bytes_on_wire: u64,
    pub mode: SyncMode,
    /// Why deltas were not used although the local index could have taken them.
    pub fallback_reason: Option<String>,
    /// The server that delivered it.
    pub server: String,
    /// The id of the key that verified the index.
    pub key: String,
    /// The key rotations this sync followed, oldest first.
    pub key_rotations: Vec<KeyRotation>,
    /// Keys this sync learned are revoked (ids).
    pub revoked_keys: Vec<String>,
}

/// A key rotation a sync followed (key ids).
#[derive(Debug, Clone, Serialize)]
pub struct KeyRotation {
    pub from: String,
    pub to: String,
}

/// Where one repository's verified index lives: `ROOT/index` for the single-repository form
/// (`server_url` + `public_key`), `ROOT/repos/NAME` for an entry of `repositories`.
#[derive(Debug, Clone)]
pub struct IndexDir {
    pub dir: PathBuf,
}

impl Layout {
    pub fn index_dir(&self, repo: &Repository) -> IndexDir {
        IndexDir {
            dir: if repo.implicit {
                self.root.join("index")
            } else {
                self.root.join("repos").join(repo.name.as_str())
            },
        }
    }
}

impl IndexDir {
    pub fn db(&self) -> PathBuf {
        self.dir.join("index.db")
    }
    /// The verified manifest the local index matches, and its signature.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("index.json")
    }
    pub fn sig(&self) -> PathBuf {
        self.dir.join("index.json.minisig")
    }
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The keys trusted for this repository (store-format.md §5.7).
    pub fn trust_path(&self) -> PathBuf {
        self.dir.join("trust.json")
    }

    /// The trust of `repo`, from this directory's `trust.json`.
    pub fn trust(&self, repo: &Repository) -> Result<Trust> {
        Trust::load(&self.trust_path(), repo)
    }

    /// Refuses this copy unless the key `trust` trusts now verified it.
    pub fn check_copy(&self, trust: &Trust) -> Result<()> {
        trust.check_copy(self.state()?.as_ref().and_then(|s| s.key.as_deref()))
    }

    pub fn state(&self) -> Result<Option<IndexState>> {
        let p = self.state_path();
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("{} is corrupt", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Whether this repository was synced.
    pub fn exists(&self) -> bool {
        self.db().exists()
    }

    /// The synced index; an error telling the user to sync when there is none.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let p = self.db();
        if !p.exists() {
            bail!("no package index yet: run `dist sync` first");
        }
        Snapshot::open_local(&p)
    }
}

/// The local index, when it is a format-2 copy whose state and file agree.
fn usable_local(idx: &IndexDir, prev: Option<&IndexState>) -> Option<IndexState> {
    let p = prev.filter(|p| p.format == INDEX_FORMAT && p.content.is_some())?;
    let snap = Snapshot::open_local(&idx.db()).ok()?;
    (snap.format == INDEX_FORMAT && snap.serial == p.serial).then(|| p.clone())
}

/// Syncs every repository, each on its own: one that fails keeps its last verified index and
/// does not stop the others. In the order of `Settings::repositories` (highest priority first).
pub fn sync_all(layout: &Layout, cfg: &Settings) -> Vec<(RepoName, Result<SyncReport>)> {
    cfg.repositories
        .iter()
        .map(|r| {
            let result = sync(&layout.index_dir(r), r, cfg).map_err(|e| {
                if cfg.repositories.len() > 1 {
                    e.context(format!("repository `{}`", r.name))
                } else {
                    e
                }
            });
            (r.name.clone(), result)
        })
        .collect()
}

/// Syncs one repository from the first of its servers (`server_url`, then `server_urls`) that
/// delivers a verified index: which server sent it never matters, only the signature (with
/// the key this client trusts for the repository, see `client::trust`) and the digests do.
pub fn sync(idx: &IndexDir, repo: &Repository, cfg: &Settings) -> Result<SyncReport> {
    let servers = repo.servers()?;
    let trust = idx.trust(repo)?;
    let mut failures = Vec::new();
    for server in servers {
        match sync_from(idx, cfg, server, &trust) {
            Ok(mut r) => {
                r.server = server.clone();
                return Ok(r);
            }
            Err(e) if servers.len() == 1 => return Err(e),
            Err(e) => failures.push(format!("{server}: {e:#}")),
        }
    }
    bail!(
        "no server delivered a verified index; the local index is unchanged:\n  {}",
        failures.join("\n  ")
    )
}

fn sync_from(idx: &IndexDir, cfg: &Settings, server: &str, trust: &Trust) -> Result<SyncReport> {
    let mut wire = Remote::new(crate::net::agent(server, cfg.http_timeout)?, server);
    let prev = idx.state()?;
    // A copy another key verified is fetched and verified again, whole (no `If-None-Match`).
    let bound = trust
        .check_copy(prev.as_ref().and_then(|p| p.key.as_deref()))
        .is_ok();
    let local = usable_local(idx, prev.as_ref()).filter(|_| bound);
    let etag = local.as_ref().and_then(|p| p.etag.clone());
    let limit = MAX_MANIFEST.min(cfg.max_index_size);
    let unchanged = |e: anyhow::Error| anyhow::anyhow!("{e:#}; the local index is unchanged");
    let (fetched, rotated) = keys::fetch_manifest(
        &mut wire,
        trust.key(),
        trust.revoked(),
        etag.as_deref(),
        limit,
    )
    .map_err(unchanged)?;
    let Some(fetched) = fetched else {
        let p = local.clone().expect("an etag implies a local index");
        return Ok(SyncReport {
            changed: false,
            serial: p.serial,
            previous_serial: Some(p.serial),
            created: p.created,
            bytes: 0,
            packages: idx.snapshot().and_then(|s| s.count()).unwrap_or(0),
            stale_warning: stale(cfg, p.created),
            bytes_on_wire: wire.bytes,
            mode: SyncMode::Unchanged,
            fallback_reason: None,
            server: String::new(),
            key: trust.key().id().to_string(),
            key_rotations: Vec::new(),
            revoked_keys: Vec::new(),
        });
    };
    let followed = match rotated {
        Some(f) => f,
        None => learn_revocations(&mut wire, trust).map_err(unchanged)?,
    };
    // Serials continue across a rotation and across a copy that recorded no key; a key the
    // user configured by hand (a new repository, `dist init --force`) starts them afresh.
    let continues =
        bound || !followed.rotations.is_empty() || prev.as_ref().is_some_and(|p| p.key.is_none());
    let floor = prev.as_ref().filter(|_| continues).map(|p| p.serial);
    let mut report = update(
        idx,
        cfg,
        &mut wire,
        (prev, floor),
        local,
        fetched,
        &followed.key,
    )?;
    trust.record(&idx.trust_path(), &followed)?;
    report.key = followed.key.id().to_string();
    report.key_rotations = followed
        .rotations
        .iter()
        .map(|(from, to)| KeyRotation {
            from: from.id().to_string(),
            to: to.id().to_string(),
        })
        .collect();
    report.revoked_keys = followed
        .revoked
        .difference(trust.revoked())
        .map(|k| k.id().to_string())
        .collect();
    Ok(report)
}

/// The revocations the repository published, for a sync whose manifest the trusted key
/// verified: rotations are not taken here (only a manifest signed by the new key moves trust),
/// but a revocation of the trusted key refuses the sync. A server that cannot hand out
/// `keys.json` costs nothing but the news.
fn learn_revocations(wire: &mut Remote, trust: &Trust) -> Result<Followed> {
    let stay = |revoked| Followed {
        key: trust.key().clone(),
        rotations: Vec::new(),
        revoked,
    };
    let Ok(Some((log, _))) = keys::fetch_log(wire) else {
        return Ok(stay(trust.revoked().clone()));
    };
    let followed = keys::follow(trust.key(), trust.revoked(), &log)?;
    Ok(stay(followed.revoked))
}

/// Brings the local index to the fetched manifest; `floor` is the serial it must not go below.
fn update(
    idx: &IndexDir,
    cfg: &Settings,
    wire: &mut Remote,
    (prev, floor): (Option<IndexState>, Option<u64>),
    local: Option<IndexState>,
    fetched: SignedManifest,
    key: &PublicKey,
) -> Result<SyncReport> {
    let m = &fetched.manifest;
    if let Some(floor) = floor {
        if m.serial < floor {
            bail!(
                "the server offers index serial {}, older than the serial {floor} this client already has: refusing a rollback (replayed or stale index); the local index is unchanged",
                m.serial,
            );
        }
    }
    let dir = &idx.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut fallback_reason = None;
    let mode = match &local {
        Some(p) if p.serial == m.serial && p.content.as_deref() == Some(m.content.as_str()) => {
            SyncMode::Unchanged
        }
        Some(p) => match m.chain_from(p.serial) {
            Some(chain) if chain.iter().map(|d| d.size).sum::<u64>() < m.snapshot.size => {
                match apply_deltas(idx, cfg, wire, p, chain, m) {
                    Ok(()) => SyncMode::Delta,
                    Err(e) => {
                        fallback_reason = Some(format!(
                            "the deltas from serial {} were refused ({e:#}); fetched the whole index instead",
                            p.serial
                        ));
                        full(idx, cfg, wire, m)?;
                        SyncMode::Full
                    }
                }
            }
            _ => {
                full(idx, cfg, wire, m)?;
                SyncMode::Full
            }
        },
        None => {
            full(idx, cfg, wire, m)?;
            SyncMode::Full
        }
    };
    record_copy(idx, &fetched, key)?;
    let packages = idx.snapshot()?.count()?;
    Ok(SyncReport {
        changed: prev.as_ref().map(|p| p.serial) != Some(m.serial),
        serial: m.serial,
        previous_serial: prev.map(|p| p.serial),
        created: m.created,
        bytes: wire.bytes,
        packages,
        stale_warning: stale(cfg, m.created),
        bytes_on_wire: wire.bytes,
        mode,
        fallback_reason,
        server: String::new(),
        key: key.id().to_string(),
        key_rotations: Vec::new(),
        revoked_keys: Vec::new(),
    })
}

/// Records the verified manifest and signature the local index now matches, and its state
/// (with the key that verified it), once the index itself is in place.
pub(super) fn record_copy(idx: &IndexDir, fetched: &SignedManifest, key: &PublicKey) -> Result<()> {
    let m = &fetched.manifest;
    fsx::write_atomic(&idx.sig(), fetched.sig.as_bytes(), 0o644)?;
    fsx::write_atomic(&idx.manifest(), &fetched.body, 0o644)?;
    let state = IndexState {
        serial: m.serial,
        created: m.created,
        etag: fetched.etag.clone(),
        fetched_at: crate::repo::now_unix(),
        format: INDEX_FORMAT,
        content: Some(m.content.clone()),
        key: Some(key.base64().to_string()),
    };
    fsx::write_atomic(
        &idx.state_path(),
        &serde_json::to_vec_pretty(&state)?,
        0o644,
    )
}

/// Fetches the compressed snapshot the manifest names, checks it, and replaces the local index
/// with it by rename.
fn full(idx: &IndexDir, cfg: &Settings, wire: &mut Remote, m: &Manifest) -> Result<()> {
    let limit = cfg.max_index_size;
    if m.snapshot.size > limit || m.snapshot.raw_size > limit {
        bail!(
            "the index of serial {} is larger than the {limit}-byte limit (`max_index_size`): {} bytes, {} compressed; the local index is unchanged",
            m.serial,
            m.snapshot.raw_size,
            m.snapshot.size
        );
    }
    let path = format!("index/{}.db.zst", m.serial);
    let body = wire.get_checked(&path, m.snapshot.size, &m.snapshot.blake3)?;
    install_snapshot(idx, &body, m.snapshot.raw_size, m, &path)
}

/// Replaces the local index by the zstd-compressed snapshot `zst` (at most `raw_limit` bytes
/// once decompressed) if it is exactly the signed manifest's content (schema, format, serial,
/// content digest, every row); `what` names it in errors.
pub(super) fn install_snapshot(
    idx: &IndexDir,
    zst: &[u8],
    raw_limit: u64,
    m: &Manifest,
    what: &str,
) -> Result<()> {
    let mut tmp = fsx::AtomicFile::create(&idx.db())?;
    wire::decompress_to(zst, raw_limit, tmp.file())
        .with_context(|| format!("{what} cannot be decompressed"))?;
    let snap = Snapshot::open(tmp.path()).context("the signed index cannot be read")?;
    m.check_snapshot(&snap, what)?;
    drop(snap);
    let conn = Connection::open(tmp.path())?;
    search::build(&conn).context("cannot build the local search index")?;
    drop(conn);
    tmp.set_mode(0o644)?;
    tmp.commit()
}

/// Applies `chain` to the local index in one transaction and commits only if the result has
/// the signed content digest; any refused delta rolls everything back.
fn apply_deltas(
    idx: &IndexDir,
    cfg: &Settings,
    wire: &mut Remote,
    local: &IndexState,
    chain: &[DeltaRef],
    m: &Manifest,
) -> Result<()> {
    let mut conn = Connection::open(idx.db())
        .with_context(|| format!("cannot open {}", idx.db().display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut content = local.content.clone().unwrap_or_default();
    for d in chain {
        let path = format!("index/{}.delta.zst", d.to);
        let body = wire.get_checked(&path, d.size, &d.blake3)?;
        let delta = Delta::decode(&body, cfg.max_index_size).with_context(|| path.clone())?;
        let h = &delta.header;
        if (h.from, h.to) != (d.from, d.to) || h.from_content != content {
            bail!(
                "{path} is the delta from serial {} to {} of content {}, not from {} to {} of content {content}",
                h.from,
                h.to,
                h.from_content,
                d.from,
                d.to
            );
        }
        apply_ops(&tx, &delta.ops).with_context(|| path.clone())?;
        content = h.to_content.clone();
    }
    for (k, v) in [
        ("serial", m.serial.to_string()),
        ("created", m.created.to_string()),
    ] {
        tx.execute("UPDATE meta SET value = ?2 WHERE key = ?1", [k, &v])?;
    }
    let dist: String = tx.query_row(
        "SELECT value FROM meta WHERE key = 'distribution'",
        [],
        |r| r.get(0),
    )?;
    m.check_content(&index::content_digest(&tx, &dist)?)?;
    // A signed index can still be hostile: every row parses, or the deltas are not kept.
    index::read_records(&tx, &index::Distribution::decode(&dist)?)?;
    if !search::present(&tx)? {
        search::build(&tx)?;
    }
    tx.commit().context("cannot commit the local index")
}

/// Applies a delta's changes, keeping the local search table (when there is one) in step.
fn apply_ops(tx: &Connection, ops: &[Op]) -> Result<()> {
    let cols = ROW_COLUMNS.join(", ");
    let mut put = tx.prepare(&format!(
        "INSERT INTO packages ({cols}) VALUES ({})",
        index::row_placeholders()
    ))?;
    let mut find = tx.prepare("SELECT rowid FROM packages WHERE name = ?1 AND version_key = ?2")?;
    let searchable = search::present(tx)?;
    let mut remove = |name: &str, vkey: &str| -> Result<()> {
        let Some(rowid) = find
            .query_row([name, vkey], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            return Ok(());
        };
        if searchable {
            search::forget(tx, rowid)?;
        }
        tx.execute("DELETE FROM packages WHERE rowid = ?1", [rowid])?;
        Ok(())
    };
    for op in ops {
        match op {
            Op::Put(vals) => {
                let sql = vals
                    .iter()
                    .zip(ROW_COLUMNS)
                    .map(|(v, c)| json_to_sql(v, c))
                    .collect::<Result<Vec<_>>>()?;
                // The key is `name` and `version_key` (the first and third values).
                if let (Value::Text(name), Value::Text(vkey)) = (&sql[0], &sql[2]) {
                    remove(name, vkey)?;
                }
                put.execute(rusqlite::params_from_iter(sql.iter()))?;
                if searchable {
                    search::learn(tx, tx.last_insert_rowid())?;
                }
            }
            Op::Del(name, vkey) => remove(name, vkey)?,
            Op::Distribution(text) => {
                index::Distribution::decode(text)?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'distribution'",
                    [text],
                )?;
            }
        }
    }
    Ok(())
}

/// A delta row value: text, an integer or null, as the canonical content has them.
fn json_to_sql(v: &serde_json::Value, column: &str) -> Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() => Value::Integer(n.as_i64().unwrap_or(0)),
        other => bail!("a delta row's `{column}` is {other}, not text, an integer or null"),
    })
}

fn stale(cfg: &Settings, created: u64) -> Option<String> {
    let age = crate::repo::now_unix().saturating_sub(created);
    let limit = cfg.stale_after;
    (age > limit).then(|| {
        format!(
            "the index was published {} hours ago; the repository may be frozen or unreachable",
            age / 3600
        )
    })
}
