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
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::index::{PackageRecord, Snapshot};
use super::keys::{self, PublicKey};
use super::sign;
use super::wire::{self, Remote, SignedManifest};
use super::Repo;
use crate::format::ids::InfoHash;
use crate::format::torrent::{Info, PieceHasher};
use crate::store::fsx;

/// How many objects a mirror downloads at once.
const PARALLEL: usize = 4;

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
    pub url: String,
    /// The upstream's minisign public key, base64 (`dist key show` on the upstream).
    pub public_key: String,
}

impl Upstream {
    /// `key` is the base64 key, or the path of a file holding it (a minisign `.pub` file).
    pub fn new(url: &str, key: &str) -> Result<Upstream> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("`--mirror-of`: `{url}` is not an http:// or https:// URL");
        }
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

/// Refuses a root that holds a repository of its own, and makes the mirror's directories.
fn prepare(repo: &Repo) -> Result<()> {
    let (secret, _) = sign::key_paths(&repo.root);
    if secret.exists() {
        bail!(
            "{} holds a repository of its own ({}): a mirror needs a root of its own",
            repo.root.display(),
            secret.display()
        );
    }
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
    let state = read_state(&repo.root)?.filter(|s| s.upstream == up.url);
    let key = MirrorState::trusted(state.as_ref(), up)?;
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
    let Some(SignedManifest {
        manifest: m,
        body,
        sig,
        etag: tag,
    }) = fetched
    else {
        let serial = local.expect("an etag implies a local copy");
        return unchanged(repo, serial);
    };
    if let Some(l) = local {
        if m.serial < l {
            bail!(
                "{} offers index serial {}, older than the serial {l} this mirror has: refusing a rollback",
                up.url,
                m.serial
            );
        }
        if m.serial == l
            && repo
                .manifest(l)?
                .is_some_and(|have| have.content == m.content)
        {
            save_state(repo, up, tag, &key)?;
            return unchanged(repo, l);
        }
    }

    let (next, records, snapshot) = next_index(repo, &mut remote, &m)?;
    let deltas = missing_deltas(repo, &mut remote, &m.deltas)?;

    // Every object, with its info dictionary: kept from the previous copy, computed from an
    // object already stored, or downloaded.
    let infos = Mutex::new(known_infos(repo, &records)?);
    let missing: Vec<&PackageRecord> = records
        .iter()
        .filter(|r| !infos.lock().expect("infos").contains_key(&r.infohash))
        .collect();
    let (fetched, fetched_bytes) = fetch_objects(repo, up, &remote.agent, &missing, &infos, stop)?;
    let infos = infos.into_inner().expect("infos");

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
    save_state(repo, up, tag, &key)?;
    Ok(Mirrored {
        serial: m.serial,
        changed: local != Some(m.serial),
        packages: m.packages,
        fetched,
        fetched_bytes,
    })
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
    content: &str,
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
        [content],
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
        let have =
            std::fs::read(&path).is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == d.blake3);
        if !have {
            let name = format!("index/{}.delta.zst", d.to);
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

fn save_state(repo: &Repo, up: &Upstream, etag: Option<String>, key: &PublicKey) -> Result<()> {
    let state = MirrorState {
        upstream: up.url.clone(),
        etag,
        key: Some(key.base64().to_string()),
        configured_key: Some(up.public_key.clone()),
    };
    fsx::write_atomic(
        &state_path(&repo.root),
        &serde_json::to_vec_pretty(&state)?,
        0o644,
    )
}

/// The info dictionaries (bencoded) of the objects this mirror already has: from the previous
/// master index, or computed from a stored object (checked like a download).
fn known_infos(repo: &Repo, records: &[PackageRecord]) -> Result<HashMap<InfoHash, Vec<u8>>> {
    let previous = if repo.index_path().exists() {
        Some(repo.read_index()?)
    } else {
        None
    };
    let has_torrents = |c: &Connection| {
        c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'torrents'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|n| n > 0)
    };
    let previous = previous.filter(has_torrents);
    let objects = repo.objects();
    let mut out = HashMap::new();
    for r in records {
        let path = objects.path(&r.blake3);
        if !path.exists() {
            continue;
        }
        let kept: Option<Vec<u8>> = match &previous {
            Some(c) => c
                .query_row(
                    "SELECT info FROM torrents WHERE infohash = ?1",
                    [&r.infohash],
                    |row| row.get(0),
                )
                .optional()?,
            None => None,
        };
        let info = match kept {
            Some(i) => i,
            None => {
                let mut file = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let mut check = Check::new(r);
                std::io::copy(&mut file, &mut check)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                check.finish(&path.display().to_string())?
            }
        };
        out.insert(r.infohash, info);
    }
    Ok(out)
}

/// Hashes an object's bytes as they pass: BLAKE3 and the torrent's pieces.
struct Check<'a> {
    rec: &'a PackageRecord,
    blake3: blake3::Hasher,
    pieces: PieceHasher,
}

impl<'a> Check<'a> {
    fn new(rec: &'a PackageRecord) -> Check<'a> {
        Check {
            rec,
            blake3: blake3::Hasher::new(),
            pieces: PieceHasher::new(rec.size),
        }
    }

    /// The bencoded info dictionary, if the bytes are the object the row names (`what` is
    /// where they came from).
    fn finish(self, what: &str) -> Result<Vec<u8>> {
        let r = self.rec;
        let found = self.blake3.finalize();
        let info: Info = self.pieces.finish(&format!("{}-{}.tar", r.name, r.version));
        if info.length != r.size || found.to_hex().as_str() != r.blake3.to_hex() {
            bail!(
                "{what}: {} bytes with blake3 {}, the signed index says {} bytes with blake3 {} for {}",
                info.length,
                found.to_hex(),
                r.size,
                r.blake3,
                r.id()
            );
        }
        if info.infohash() != r.infohash {
            bail!(
                "{what}: the torrent of these bytes has infohash {}, the signed index says {} for {}",
                info.infohash(),
                r.infohash,
                r.id()
            );
        }
        Ok(info.to_value().encode())
    }
}

impl Write for Check<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.blake3.update(buf);
        self.pieces.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Downloads `missing` from the upstream, [`PARALLEL`] at a time, each checked as it arrives
/// and stored; their info dictionaries go into `infos`. The first failure stops the others.
fn fetch_objects(
    repo: &Repo,
    up: &Upstream,
    agent: &ureq::Agent,
    missing: &[&PackageRecord],
    infos: &Mutex<HashMap<InfoHash, Vec<u8>>>,
    stop: &AtomicBool,
) -> Result<(usize, u64)> {
    if missing.is_empty() {
        return Ok((0, 0));
    }
    let objects = repo.objects();
    let staging = objects.staging()?;
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(missing.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(r) = missing.get(i) else { return };
                let tmp = staging.path().join(format!("{i}.tar"));
                let result = fetch_object(agent, up, r, &tmp, &failed, stop).and_then(|info| {
                    objects.insert_file(&tmp, &r.blake3)?;
                    Ok(info)
                });
                match result {
                    Ok(info) => {
                        bytes.fetch_add(r.size, Ordering::SeqCst);
                        infos.lock().expect("infos").insert(r.infohash, info);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error.lock().expect("error").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error") {
        return Err(e);
    }
    if stop.load(Ordering::SeqCst) {
        bail!("stopped while mirroring objects");
    }
    Ok((missing.len(), bytes.load(Ordering::SeqCst)))
}

/// How long a mirror waits for a busy upstream (503) to admit one download, in all.
const BUSY_PATIENCE: Duration = Duration::from_secs(600);

/// GETs one object into `tmp`, hashing as it writes; the info dictionary if it is the object
/// the index names. A busy upstream (503) is asked again after its `Retry-After`.
fn fetch_object(
    agent: &ureq::Agent,
    up: &Upstream,
    r: &PackageRecord,
    tmp: &Path,
    failed: &AtomicBool,
    stop: &AtomicBool,
) -> Result<Vec<u8>> {
    let url = format!("{}/objects/{}", up.url, r.blake3.rel_path());
    let start = std::time::Instant::now();
    let resp = loop {
        match agent.get(&url).call() {
            Ok(resp) => break resp,
            Err(ureq::Error::Status(503, resp)) if start.elapsed() < BUSY_PATIENCE => {
                let wait =
                    wire::retry_after(&resp, Duration::from_secs(1), Duration::from_secs(10));
                for _ in 0..wait.as_secs() * 10 {
                    if failed.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
                        bail!("stopped while waiting for {url}");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(ureq::Error::Status(code, _)) => {
                bail!("GET {url} ({}): HTTP {code}", r.id())
            }
            Err(e) => return Err(wire::http_error(&url, e).context(r.id().to_string())),
        }
    };
    let mut file =
        std::fs::File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut check = Check::new(r);
    let mut body = resp.into_reader().take(r.size.saturating_add(1));
    let mut buf = vec![0u8; 256 << 10];
    loop {
        if stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst) {
            bail!("stopped while downloading {url}");
        }
        let n = body
            .read(&mut buf)
            .with_context(|| format!("GET {url} ({}): the body was cut off", r.id()))?;
        if n == 0 {
            break;
        }
        check.write_all(&buf[..n])?;
        file.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("cannot fsync {}", tmp.display()))?;
    check.finish(&url)
}
