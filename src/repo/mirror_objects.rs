//! A mirror's objects (`repo::mirror`): the info dictionaries of those it already has (from its
//! previous master index, or computed from the stored object), and the download of the others
//! from the upstream, each accepted only once its BLAKE3, size and recomputed infohash are the
//! row's.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OptionalExtension};

use super::Repo;
use crate::format::ids::InfoHash;
use crate::format::torrent::{Info, PieceHasher};
use crate::index::record::PackageRecord;
use crate::index::wire;

/// How many objects a mirror downloads at once.
const PARALLEL: usize = 4;

/// The info dictionaries (bencoded) of the objects this mirror already has: from the previous
/// master index, or computed from a stored object (checked like a download).
pub(super) fn known_infos(
    repo: &Repo,
    records: &[PackageRecord],
) -> Result<HashMap<InfoHash, Vec<u8>>> {
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
pub(super) fn fetch_objects(
    repo: &Repo,
    upstream: &str,
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
                let result =
                    fetch_object(agent, upstream, r, &tmp, &failed, stop).and_then(|info| {
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
    upstream: &str,
    r: &PackageRecord,
    tmp: &Path,
    failed: &AtomicBool,
    stop: &AtomicBool,
) -> Result<Vec<u8>> {
    let url = format!("{upstream}/objects/{}", r.blake3.rel_path());
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
