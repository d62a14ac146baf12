//! A mirror's objects (`repo::mirror`): the info dictionaries of those it already has (from its
//! previous master index, or computed from the stored object), and the download of the others
//! from the upstream (through `transfer`: the mirror's part is its patience with a busy upstream,
//! its stop and its messages), each accepted only once its BLAKE3, size and recomputed infohash
//! are the row's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OptionalExtension};

use super::Repo;
use crate::format::ids::{InfoHash, ObjectId};
use crate::format::torrent::{Info, PieceHasher};
use crate::index::record::PackageRecord;
use crate::transfer::{self, Busy, Ended, Error, Halt, Hashes};

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
            None => stored_info(&path, r)?,
        };
        out.insert(r.infohash, info);
    }
    Ok(out)
}

/// `len` bytes with BLAKE3 `found` are not the object `r` names (`what`: where they came from).
fn not_the_object(what: &str, r: &PackageRecord, len: u64, found: ObjectId) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: {len} bytes with blake3 {found}, the signed index says {} bytes with blake3 {} for {}",
        r.size,
        r.blake3,
        r.id()
    )
}

/// The bencoded info dictionary of `r`'s object, if `len` bytes with BLAKE3 `found` and these
/// `pieces` are the object the row names (`what` is where they came from).
fn accept(
    what: &str,
    r: &PackageRecord,
    (len, found): (u64, ObjectId),
    pieces: PieceHasher,
) -> Result<Vec<u8>> {
    if len != r.size || found != r.blake3 {
        return Err(not_the_object(what, r, len, found));
    }
    let info: Info = pieces.finish(&format!("{}-{}.tar", r.name, r.version));
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

/// The info dictionary of a stored object, checked like a download.
fn stored_info(path: &Path, r: &PackageRecord) -> Result<Vec<u8>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hashes = Hashes::new(r.size, true);
    let len = std::io::copy(&mut file, &mut hashes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (found, pieces) = hashes.finish();
    let pieces = pieces.expect("asked for");
    accept(&path.display().to_string(), r, (len, found), pieces)
}

/// Workers of one sync: raised by the first failure, or by the server stopping (`stop`).
struct Stops<'a> {
    failed: AtomicBool,
    stop: &'a AtomicBool,
}

impl Stops<'_> {
    fn any(&self) -> bool {
        self.failed.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst)
    }
}

impl Halt for Stops<'_> {
    fn raise(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    fn halted(&self) -> Result<()> {
        if self.any() {
            bail!("stopped while mirroring objects");
        }
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
    infos: &mut HashMap<InfoHash, Vec<u8>>,
    stop: &AtomicBool,
) -> Result<(usize, u64)> {
    if missing.is_empty() {
        return Ok((0, 0));
    }
    let objects = repo.objects();
    let staging = objects.staging()?;
    let stops = Stops {
        failed: AtomicBool::new(false),
        stop,
    };
    let each: Vec<usize> = (0..missing.len()).collect();
    let got = transfer::in_parallel(&each, PARALLEL, &stops, |&i| {
        let r = missing[i];
        let tmp = staging.path().join(format!("{i}.tar"));
        let info = fetch_object(agent, upstream, r, &tmp, &stops)?;
        objects.insert_file(&tmp, &r.blake3)?;
        Ok(info)
    })?;
    if stop.load(Ordering::SeqCst) {
        bail!("stopped while mirroring objects");
    }
    for (r, info) in missing.iter().zip(got) {
        infos.insert(r.infohash, info);
    }
    Ok((missing.len(), missing.iter().map(|r| r.size).sum()))
}

/// How long a mirror waits for a busy upstream (503) to admit one download, in all.
const BUSY_PATIENCE: Duration = Duration::from_secs(600);

/// A mirror's policy for one download ([`transfer::Watch`]): a busy upstream asked again after
/// its `Retry-After` (1 to 10 s) for [`BUSY_PATIENCE`]; stopped with the sync's workers.
struct Upstream<'a> {
    stops: &'a Stops<'a>,
    start: Instant,
}

impl transfer::Watch for Upstream<'_> {
    fn stopped(&self) -> bool {
        self.stops.any()
    }

    fn busy(&mut self, busy: &Busy) -> Option<Duration> {
        (self.start.elapsed() < BUSY_PATIENCE)
            .then(|| busy.wait(Duration::from_secs(1), Duration::from_secs(10)))
    }
}

/// GETs one object into `tmp`, hashing as it writes (BLAKE3 and the torrent's pieces); the info
/// dictionary if it is the object the index names.
fn fetch_object(
    agent: &ureq::Agent,
    upstream: &str,
    r: &PackageRecord,
    tmp: &Path,
    stops: &Stops<'_>,
) -> Result<Vec<u8>> {
    let url = format!("{upstream}/objects/{}", r.blake3.rel_path());
    let target = transfer::Target {
        url: &url,
        part: tmp,
        size: r.size,
        blake3: r.blake3,
        pieces: true,
    };
    let mut watch = Upstream {
        stops,
        start: Instant::now(),
    };
    let id = r.id();
    let bad = |len, found| Err(not_the_object(&url, r, len, found));
    match transfer::download(agent, &target, &mut watch) {
        Ok(Ended::Whole {
            pieces: Some(pieces),
            ..
        }) => accept(&url, r, (r.size, r.blake3), pieces),
        Ok(ended) => unreachable!("pieces asked for, never paused: {ended:?}"),
        Err(Error::Busy { .. }) => bail!("GET {url} ({id}): HTTP 503"),
        Err(Error::NotFound { .. }) => bail!("GET {url} ({id}): HTTP 404"),
        Err(Error::Status { code, .. }) => bail!("GET {url} ({id}): HTTP {code}"),
        Err(e @ Error::Transport { .. }) => Err(anyhow::Error::new(e).context(id.to_string())),
        Err(Error::Cut { source, .. }) => {
            Err(anyhow::Error::new(source)
                .context(format!("GET {url} ({id}): the body was cut off")))
        }
        Err(Error::TooLarge { size, found, .. }) => bad(size + 1, found),
        Err(Error::Short { got, found, .. }) => bad(got, found),
        Err(Error::HashMismatch { found, .. }) => bad(r.size, found),
        Err(e) => Err(e.into()),
    }
}
