//! `dist sync` (store-format.md §5.3–5.5): the signed manifest from every configured server
//! with a conditional GET (`offers.rs`), verified; the newest serial taken; rollbacks, another
//! index for the serial held and another repository's index refused (`index::conflict`); then
//! the local index brought to the manifest's serial with the published deltas when it can
//! (`deltas.rs`, checking the result against the signed content digest) or the compressed
//! snapshot when it cannot. The local index is replaced atomically or not at all.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use serde::Serialize;

use super::config::{RepoName, Repository, Settings};
use super::index_copy::{IndexDir, IndexState, IndexUnchanged};
use super::offers::{ask_all, Held, Offer};
use super::trust::Trust;
use super::Layout;
use crate::index::keys::{self, Followed, PublicKey};
use crate::index::record::{Snapshot, INDEX_FORMAT};
use crate::index::search;
use crate::index::wire::{self, Manifest, Remote, SignedManifest};
use crate::store::fsx;

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
    /// The configured servers that offered an older serial than this one (a stale mirror).
    pub behind: Vec<Behind>,
}

/// A server that offered an older index than the one a sync took.
#[derive(Debug, Clone, Serialize)]
pub struct Behind {
    pub server: String,
    pub serial: u64,
}

/// A key rotation a sync followed (key ids).
#[derive(Debug, Clone, Serialize)]
pub struct KeyRotation {
    pub from: String,
    pub to: String,
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

/// Syncs one repository from the server of `server_url` and `server_urls` that offers the
/// newest verified index: every server is asked for its manifest at once (a conditional GET:
/// `304` from each that has the local serial), and the highest verified serial is taken, from
/// the first server in that order that delivers it; the others are named in `behind` when they
/// offer less (a stale mirror never holds the client back without a word). Which server sent
/// the index never matters for trust, only the signature (with the key this client trusts for
/// the repository, see `client::trust`) and the digests do.
pub fn sync(idx: &IndexDir, repo: &Repository, cfg: &Settings) -> Result<SyncReport> {
    let servers = repo.servers()?;
    let trust = idx.trust(repo)?;
    let held = Held::read(idx, &trust)?;
    let mut offers = ask_all(servers, cfg, &trust, &held);
    let have = held.local.as_ref().map(|p| p.serial);
    // The highest serial first (an unchanged copy before a download of the same serial), then
    // in configuration order (the sort is stable); servers that failed last.
    offers.sort_by_key(|o| (std::cmp::Reverse(o.serial(have)), !o.unchanged()));
    let offered: Vec<(String, Option<u64>)> = offers
        .iter()
        .map(|o| (o.server.to_string(), o.serial(have)))
        .collect();
    let mut failures = Vec::new();
    for offer in offers {
        let server = offer.server;
        match take(idx, cfg, &trust, &held, offer) {
            Ok(mut r) => {
                r.server = server.to_string();
                r.behind = offered
                    .iter()
                    .filter_map(|(s, n)| {
                        Some(Behind {
                            server: s.clone(),
                            serial: (*n)?,
                        })
                    })
                    .filter(|b| b.serial < r.serial)
                    .collect();
                return Ok(r);
            }
            Err(e) if servers.len() == 1 => return Err(e),
            Err(e) => failures.push((server, e)),
        }
    }
    // Every server failed: the first one's error (so its kind) with the others' beside it.
    let mut failures = failures.into_iter();
    let (first, e) = failures.next().expect("two servers or more");
    let others: Vec<String> = failures.map(|(s, e)| format!("{s}: {e:#}")).collect();
    Err(e.context(format!(
        "no server delivered a verified index; the local index is unchanged (other servers: {}); {first}",
        others.join("; ")
    )))
}

/// Brings the local index to what `offer` offers: refuses what contradicts the copy held (an
/// older serial, another index for the same serial, another repository's), then fetches and
/// checks the rest from that server.
fn take(
    idx: &IndexDir,
    cfg: &Settings,
    trust: &Trust,
    held: &Held,
    offer: Offer,
) -> Result<SyncReport> {
    let Offer {
        server,
        mut wire,
        answer,
    } = offer;
    let (fetched, rotated) = answer?;
    let unchanged = |e: anyhow::Error| anyhow::Error::new(IndexUnchanged(e));
    let Some(fetched) = fetched else {
        let p = held.local.clone().expect("an etag implies a local index");
        return Ok(unchanged_report(idx, cfg, trust, &p, wire.bytes));
    };
    let followed = match rotated {
        Some(f) => f,
        None => learn_revocations(&mut wire, trust).map_err(unchanged)?,
    };
    let prev = held.prev.clone();
    // Serials continue across a rotation and across a copy that recorded no key; a key the
    // user configured by hand (a new repository, `dist init --force`) starts them afresh.
    let continues = held.bound
        || !followed.rotations.is_empty()
        || prev.as_ref().is_some_and(|p| p.key.is_none());
    let floor = prev.as_ref().filter(|_| continues).map(|p| p.serial);
    if let Some(floor) = floor.filter(|f| fetched.manifest.serial < *f) {
        bail!(
            "{server} offers index serial {}, older than the serial {floor} this client already has: refusing a rollback (replayed or stale index); the local index is unchanged",
            fetched.manifest.serial,
        );
    }
    let held_copy = prev
        .as_ref()
        .filter(|_| continues)
        .and_then(|p| Some((p.serial, p.content?)));
    fetched
        .check_continues(
            server,
            &trust.name(),
            held_copy,
            trust.repository(),
            &idx.trust_path(),
        )
        .map_err(|e| anyhow::Error::new(e).context("the local index is unchanged"))?;
    let repository = fetched.repository;
    let mut report = update(
        idx,
        cfg,
        &mut wire,
        prev,
        held.local.clone(),
        fetched,
        &followed.key,
    )?;
    trust.record(&idx.trust_path(), &followed, repository)?;
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

/// What a sync that found nothing new reports.
fn unchanged_report(
    idx: &IndexDir,
    cfg: &Settings,
    trust: &Trust,
    p: &IndexState,
    bytes_on_wire: u64,
) -> SyncReport {
    SyncReport {
        changed: false,
        serial: p.serial,
        previous_serial: Some(p.serial),
        created: p.created,
        bytes: 0,
        packages: idx.snapshot().and_then(|s| s.count()).unwrap_or(0),
        stale_warning: stale(cfg, p.created),
        bytes_on_wire,
        mode: SyncMode::Unchanged,
        fallback_reason: None,
        server: String::new(),
        key: trust.key().id().to_string(),
        key_rotations: Vec::new(),
        revoked_keys: Vec::new(),
        behind: Vec::new(),
    }
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

/// Brings the local index to the fetched manifest (checked against the copy held by `take`).
fn update(
    idx: &IndexDir,
    cfg: &Settings,
    wire: &mut Remote,
    prev: Option<IndexState>,
    local: Option<IndexState>,
    fetched: SignedManifest,
    key: &PublicKey,
) -> Result<SyncReport> {
    let m = &fetched.manifest;
    let dir = &idx.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut fallback_reason = None;
    let mode = match &local {
        Some(p) if p.serial == m.serial && p.content == Some(m.content) => SyncMode::Unchanged,
        Some(p) => match m.chain_from(p.serial) {
            Some(chain) if wire::chain_size(chain) < m.snapshot.size => {
                match super::deltas::apply_deltas(idx, cfg, wire, p, chain, m) {
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
        behind: Vec::new(),
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
        fetched_at: crate::clock::now_unix(),
        format: INDEX_FORMAT,
        content: Some(m.content),
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

fn stale(cfg: &Settings, created: u64) -> Option<String> {
    let age = crate::clock::now_unix().saturating_sub(created);
    let limit = cfg.stale_after;
    (age > limit).then(|| {
        format!(
            "the index was published {} hours ago; the repository may be frozen or unreachable",
            age / 3600
        )
    })
}
