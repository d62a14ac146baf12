//! A mirror (`dist serve --mirror-of URL --public-key KEY`): a verified copy of another
//! repository in a root of its own, laid out like a repository so `serve` serves and seeds it
//! as it does its own.
//!
//! One [`sync`] brings the copy to the upstream's newest serial, trusting nothing the upstream
//! sent until checked: the manifest's signature with the configured key, the snapshot and every
//! delta against the BLAKE3 and size the manifest signs, the snapshot's content digest and every
//! row, and every object against its row's BLAKE3, size and infohash (the mirror computes the
//! torrent's info dictionary from the bytes it received). What it publishes are the upstream's
//! signed files, byte for byte, so clients verify them with the upstream's key whichever server
//! they came from. The order keeps a crash harmless: objects, then the master index, then the
//! published files, then `published/LATEST`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::Repo;
use crate::format::ids::{Digest, InfoHash};
use crate::index::keys::{self, PublicKey};
use crate::index::record::{PackageRecord, Snapshot};
use crate::index::sign::{self, RepositoryId};
use crate::index::wire::{self, Remote, SignedManifest};
use crate::net::ServerUrl;
use crate::store::fsx;

/// The largest manifest and snapshot a mirror accepts (a signed manifest can still be hostile:
/// a snapshot is held in memory while it is checked; 100,000 versions are ~9 MB, 32 MB raw).
const MAX_MANIFEST: u64 = 4 << 20;
const MAX_SNAPSHOT: u64 = 256 << 20;

/// How long one request may stall (connect, or between two reads).
const STALL: Duration = Duration::from_secs(30);

/// The repository a mirror copies.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Base URL, without trailing `/`.
    pub url: ServerUrl,
    /// The upstream's minisign public key, base64 (`dist key show` on the upstream).
    pub public_key: String,
}

impl Upstream {
    /// `key` is the base64 key, or the path of a file holding it (a minisign `.pub` file).
    pub fn new(url: &str, key: &str) -> Result<Upstream> {
        let url = ServerUrl::parse("--mirror-of", url)?;
        let public_key = if Path::new(key).is_file() {
            let text = std::fs::read_to_string(key)
                .with_context(|| format!("`--public-key`: cannot read {key}"))?;
            text.lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                .unwrap_or_default()
                .to_string()
        } else {
            key.trim().to_string()
        };
        minisign_verify::PublicKey::from_base64(&public_key).map_err(|e| {
            anyhow::anyhow!("`--public-key`: `{key}` is not a minisign public key: {e}")
        })?;
        Ok(Upstream { url, public_key })
    }
}

/// `ROOT/mirror.json`: that this root is a mirror, of what, and the upstream's last ETag.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MirrorState {
    upstream: String,
    etag: Option<String>,
    /// The upstream key reached by rotation (base64), while `--public-key` is still
    /// `configured_key` (store-format.md §5.7).
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    configured_key: Option<String>,
    /// The upstream repository the first copy was of (`repository=` of its signature): every
    /// later index must be of it too (issue 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repository: Option<RepositoryId>,
}

impl MirrorState {
    /// The key the upstream's index must be signed with: the rotated one, unless the operator
    /// configured another key since.
    fn trusted(state: Option<&MirrorState>, up: &Upstream) -> Result<PublicKey> {
        let configured = PublicKey::parse(&up.public_key)?;
        match state.and_then(|s| Some((s.configured_key.as_deref()?, s.key.as_deref()?))) {
            Some((c, k)) if PublicKey::parse(c)? == configured => PublicKey::parse(k),
            _ => Ok(configured),
        }
    }
}

fn state_path(root: &Path) -> PathBuf {
    root.join("mirror.json")
}

fn read_state(root: &Path) -> Result<Option<MirrorState>> {
    let path = state_path(root);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{} is not a mirror state file", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A mirror's root holds the upstream's signed index: publishing into it would need a key it
/// must not have, so `add` and republishing refuse it by name.
pub fn refuse_publishing(repo: &Repo) -> Result<()> {
    if let Some(s) = read_state(&repo.root)? {
        bail!(
            "{} is a mirror of {} ({}): publish on the upstream repository, the mirror copies it",
            repo.root.display(),
            s.upstream,
            state_path(&repo.root).display()
        );
    }
    Ok(())
}

/// What one [`sync`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrored {
    pub serial: u64,
    /// A new serial was published.
    pub changed: bool,
    pub packages: u64,
    /// Objects downloaded (and verified) by this sync, and their bytes.
    pub fetched: usize,
    pub fetched_bytes: u64,
}

/// The HTTP agent of a mirror's requests to `upstream`: a request may stall [`STALL`] at most
/// (through the environment's proxy, `net`).
fn agent(upstream: &str) -> Result<ureq::Agent> {
    crate::net::streaming_agent(upstream, STALL)
}

/// Refuses a root that holds a repository of its own (its signing key): a mirror needs a root
/// of its own, and `serve --mirror-of` checks it before anything starts.
pub fn refuse_own_repository(root: &Path) -> Result<()> {
    let (secret, _) = sign::key_paths(root);
    if secret.exists() {
        bail!(
            "{} holds a repository of its own ({}): a mirror needs a root of its own",
            root.display(),
            secret.display()
        );
    }
    Ok(())
}

/// Refuses a root that holds a repository of its own, and makes the mirror's directories.
fn prepare(repo: &Repo) -> Result<()> {
    refuse_own_repository(&repo.root)?;
    for d in [
        repo.root.clone(),
        repo.objects().dir().to_path_buf(),
        repo.published_dir(),
    ] {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    Ok(())
}

/// Brings the mirror in `repo` to the upstream's newest serial (see the module comment). On an
/// error nothing the mirror publishes has changed; verified objects it stored stay.
pub fn sync(repo: &Repo, up: &Upstream, stop: &AtomicBool) -> Result<Mirrored> {
    prepare(repo)?;
    let local = repo.latest_serial()?;
    let state = read_state(&repo.root)?.filter(|s| s.upstream == up.url.as_str());
    let key = MirrorState::trusted(state.as_ref(), up)?;
    // The repository recorded for the key configured now (another key starts afresh).
    let recorded = state
        .as_ref()
        .filter(|s| s.configured_key.as_deref() == Some(up.public_key.as_str()))
        .and_then(|s| s.repository);
    let etag = state.and_then(|s| s.etag).filter(|_| local.is_some());
    let mut remote = Remote::new(agent(&up.url)?, &up.url);
    let (fetched, rotated) = keys::fetch_manifest(
        &mut remote,
        &key,
        &BTreeSet::new(),
        etag.as_deref(),
        MAX_MANIFEST,
    )
    .map_err(|e| anyhow::anyhow!("{e:#}; the mirror is unchanged"))?;
    let key = rotated.map_or(key, |f| f.key);
    let Some(fetched) = fetched else {
        let serial = local.expect("an etag implies a local copy");
        return unchanged(repo, serial);
    };
    check_offer(repo, up, local, recorded, &fetched)?;
    let repository = recorded.or(fetched.repository);
    let SignedManifest {
        manifest: m,
        body,
        sig,
        etag: tag,
        ..
    } = fetched;
    if local == Some(m.serial) {
        save_state(repo, up, tag, &key, repository)?;
        return unchanged(repo, m.serial);
    }

    let (next, records, snapshot) = next_index(repo, &mut remote, &m)?;
    let deltas = missing_deltas(repo, &mut remote, &m.deltas)?;

    // Every object, with its info dictionary: kept from the previous copy, computed from an
    // object already stored, or downloaded.
    let mut infos = super::mirror_objects::known_infos(repo, &records)?;
    let missing: Vec<&PackageRecord> = records
        .iter()
        .filter(|r| !infos.contains_key(&r.infohash))
        .collect();
    let (fetched, fetched_bytes) = super::mirror_objects::fetch_objects(
        repo,
        &up.url,
        &remote.agent,
        &missing,
        &mut infos,
        stop,
    )?;

    write_master(&next, &m.content, &records, &infos)?;
    next.set_mode(0o644)?;
    next.commit()?;

    // The upstream's files as they came, the signature before the manifest, LATEST last.
    // Its key statements too, for the mirror's clients to follow (best effort: each one is
    // verified by the client that reads it).
    if let Ok(Some((_, bytes))) = keys::fetch_log(&mut remote) {
        fsx::write_atomic(&repo.keys_path(), &bytes, 0o644)?;
    }
    for (path, bytes) in &deltas {
        fsx::write_atomic(path, bytes, 0o644)?;
    }
    fsx::write_atomic(&repo.snapshot_path(m.serial), &snapshot, 0o644)?;
    fsx::write_atomic(&repo.manifest_sig_path(m.serial), sig.as_bytes(), 0o644)?;
    fsx::write_atomic(&repo.manifest_path(m.serial), &body, 0o644)?;
    fsx::write_atomic(
        &repo.latest_path(),
        format!("{}\n", m.serial).as_bytes(),
        0o644,
    )?;
    repo.apply_retention(m.serial)?;
    save_state(repo, up, tag, &key, repository)?;
    Ok(Mirrored {
        serial: m.serial,
        changed: local != Some(m.serial),
        packages: m.packages,
        fetched,
        fetched_bytes,
    })
}

/// Refuses an upstream manifest that contradicts the copy this mirror has (`local`, its
/// serial): an older serial, another index for that serial, or an index of another repository
/// than `recorded`.
fn check_offer(
    repo: &Repo,
    up: &Upstream,
    local: Option<u64>,
    recorded: Option<RepositoryId>,
    fetched: &SignedManifest,
) -> Result<()> {
    let held = match local {
        Some(l) => repo.manifest(l)?.map(|have| (l, have.content)),
        None => None,
    };
    fetched.check_continues(
        &up.url,
        "this mirror",
        held,
        recorded,
        &state_path(&repo.root),
    )?;
    if let Some(l) = local.filter(|l| fetched.manifest.serial < *l) {
        bail!(
            "{} offers index serial {}, older than the serial {l} this mirror has: refusing a rollback",
            up.url,
            fetched.manifest.serial
        );
    }
    Ok(())
}

/// The snapshot of `m`, checked against the manifest and decompressed into the next master
/// index (not yet in place); its records and its compressed bytes.
fn next_index(
    repo: &Repo,
    remote: &mut Remote,
    m: &wire::Manifest,
) -> Result<(fsx::AtomicFile, Vec<PackageRecord>, Vec<u8>)> {
    let url = remote.server;
    if m.snapshot.size > MAX_SNAPSHOT || m.snapshot.raw_size > MAX_SNAPSHOT {
        bail!(
            "{url}: the index of serial {} is larger than a mirror accepts ({} bytes)",
            m.serial,
            m.snapshot.raw_size
        );
    }
    let snap_path = format!("index/{}.db.zst", m.serial);
    let snapshot = remote.get_checked(&snap_path, m.snapshot.size, &m.snapshot.blake3)?;
    let mut next = fsx::AtomicFile::create(&repo.index_path())?;
    wire::decompress_to(&snapshot, m.snapshot.raw_size, next.file())
        .with_context(|| format!("{url}/{snap_path} cannot be decompressed"))?;
    let records = {
        let snap = Snapshot::open(next.path())
            .with_context(|| format!("{url}/{snap_path}: the signed index cannot be read"))?;
        m.check_snapshot(&snap, &format!("{url}/{snap_path}"))?;
        snap.all()?
    };
    Ok((next, records, snapshot))
}

/// The master index: the verified snapshot in `next` plus the torrents table `serve` renders
/// `.torrent`s from, and the content digest.
fn write_master(
    next: &fsx::AtomicFile,
    content: &Digest,
    records: &[PackageRecord],
    infos: &HashMap<InfoHash, Vec<u8>>,
) -> Result<()> {
    let conn = Connection::open(next.path())?;
    conn.execute_batch(
        "CREATE TABLE torrents (infohash TEXT PRIMARY KEY, info BLOB NOT NULL);
         CREATE INDEX packages_by_infohash ON packages (infohash);",
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('content', ?1)",
        [content.to_hex()],
    )?;
    conn.execute_batch("BEGIN")?;
    {
        let mut ins =
            conn.prepare("INSERT OR REPLACE INTO torrents (infohash, info) VALUES (?1, ?2)")?;
        for r in records {
            ins.execute(params![r.infohash, infos[&r.infohash]])?;
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// The upstream's deltas the mirror does not hold yet (checked against the manifest).
fn missing_deltas(
    repo: &Repo,
    remote: &mut Remote,
    deltas: &[wire::DeltaRef],
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for d in deltas {
        let path = repo.delta_path(d.to);
        let have = std::fs::read(&path).is_ok_and(|b| Digest::of(&b) == d.blake3);
        if !have {
            let name = format!("index/{}.delta.zst", d.to);
            if d.size > MAX_SNAPSHOT {
                bail!(
                    "{}/{name} is {} bytes by the signed manifest, more than a mirror accepts ({MAX_SNAPSHOT} bytes)",
                    remote.server,
                    d.size
                );
            }
            out.push((path, remote.get_checked(&name, d.size, &d.blake3)?));
        }
    }
    Ok(out)
}

fn unchanged(repo: &Repo, serial: u64) -> Result<Mirrored> {
    Ok(Mirrored {
        serial,
        changed: false,
        packages: repo.manifest(serial)?.map_or(0, |m| m.packages),
        fetched: 0,
        fetched_bytes: 0,
    })
}

fn save_state(
    repo: &Repo,
    up: &Upstream,
    etag: Option<String>,
    key: &PublicKey,
    repository: Option<RepositoryId>,
) -> Result<()> {
    let state = MirrorState {
        upstream: up.url.to_string(),
        etag,
        key: Some(key.base64().to_string()),
        configured_key: Some(up.public_key.clone()),
        repository,
    };
    fsx::write_atomic(
        &state_path(&repo.root),
        &serde_json::to_vec_pretty(&state)?,
        0o644,
    )
}
