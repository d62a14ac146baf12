//! transmission-daemon's state at rest, for a daemon that is not running: the torrents it will
//! load on start (`torrents/<infohash>.torrent` + `resume/<infohash>.resume`, the names 3.00
//! uses), and preloading complete torrents there so the daemon starts seeding them without a
//! verification.
//!
//! Why: a torrent added over RPC is always verified, and 3.00's verifier sleeps 100 ms after the
//! first piece of every torrent (`MSEC_TO_SLEEP_PER_SECOND_DURING_VERIFY` in `verify.c`, the
//! "last slept" second starts at 0): ten torrents a second whatever their size, 100 s for a
//! thousand. A resume file that says every block is present and checked after the file's
//! mtime (`progress` → `blocks: all`, `time-checked`, as `resume.c` writes them) is trusted as
//! is. Only data this server hashed itself (its own objects, by BLAKE3 when added) is preloaded.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::format::bencode::Value;
use crate::format::ids::InfoHash;

/// One complete torrent to preload.
pub struct Preload<'a> {
    pub infohash: InfoHash,
    /// The `.torrent` bytes (info dictionary and trackers).
    pub metainfo: &'a [u8],
    /// The directory holding the torrent's file under its torrent name.
    pub download_dir: &'a Path,
}

fn torrents_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("torrents")
}

fn resume_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("resume")
}

/// The infohashes of the torrents a daemon with this config dir loads when it starts.
pub fn stored_torrents(config_dir: &Path) -> Result<HashSet<InfoHash>> {
    let dir = torrents_dir(config_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = HashSet::new();
    for e in entries {
        let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = e.file_name();
        let hash = name
            .to_str()
            .and_then(|n| n.strip_suffix(".torrent"))
            .and_then(|h| InfoHash::parse(h).ok());
        if let Some(h) = hash {
            out.insert(h);
        }
    }
    Ok(out)
}

/// Forgets a torrent of a stopped daemon (its `.torrent` and resume file; not its data).
pub fn forget(config_dir: &Path, infohash: &InfoHash) -> Result<()> {
    for path in [
        torrents_dir(config_dir).join(format!("{infohash}.torrent")),
        resume_dir(config_dir).join(format!("{infohash}.resume")),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(())
}

/// Writes the `.torrent` and a resume file saying "complete, checked at `checked_at`, running"
/// for each torrent, so a daemon started on `config_dir` seeds them at once. `checked_at` must
/// not be older than the data files' mtime (else the daemon re-checks those pieces).
pub fn preload(config_dir: &Path, torrents: &[Preload<'_>], checked_at: i64) -> Result<()> {
    for dir in [torrents_dir(config_dir), resume_dir(config_dir)] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for t in torrents {
        // The resume file first: a torrent file without one would be verified on start. No
        // fsync (a thousand of them would cost seconds): this is the daemon's cache, and a file
        // a crash truncated is a torrent the daemon does not load, which the server then adds
        // over RPC.
        let resume = resume_file(t.download_dir, checked_at)?;
        let path = resume_dir(config_dir).join(format!("{}.resume", t.infohash));
        std::fs::write(&path, resume)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let path = torrents_dir(config_dir).join(format!("{}.torrent", t.infohash));
        std::fs::write(&path, t.metainfo)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The resume dictionary of a complete, running, single-file torrent.
fn resume_file(download_dir: &Path, checked_at: i64) -> Result<Vec<u8>> {
    let dir = download_dir.to_str().with_context(|| {
        format!(
            "{}: transmission needs a UTF-8 path",
            download_dir.display()
        )
    })?;
    let dict = |pairs: Vec<(&str, Value)>| {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let progress = dict(vec![
        ("blocks", Value::str("all")),
        ("have", Value::str("all")),
        ("time-checked", Value::List(vec![Value::Int(checked_at)])),
    ]);
    let top = dict(vec![
        ("added-date", Value::Int(checked_at)),
        ("destination", Value::str(dir)),
        ("paused", Value::Int(0)),
        ("progress", progress),
    ]);
    Ok(top.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_file_says_complete_checked_and_running() {
        let r = resume_file(Path::new("/srv/seed/ab"), 1_800_000_000).unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "d10:added-datei1800000000e11:destination12:/srv/seed/ab6:pausedi0e\
             8:progressd6:blocks3:all4:have3:all12:time-checkedli1800000000eeee"
        );
    }

    #[test]
    fn preloaded_torrents_are_listed_and_forgotten() {
        let tmp = tempfile::tempdir().unwrap();
        let h = InfoHash::from_bytes([7; 20]);
        assert!(stored_torrents(tmp.path()).unwrap().is_empty());
        let p = Preload {
            infohash: h,
            metainfo: b"d4:infod4:name1:xee",
            download_dir: tmp.path(),
        };
        preload(tmp.path(), &[p], 1).unwrap();
        assert_eq!(stored_torrents(tmp.path()).unwrap(), [h].into());
        forget(tmp.path(), &h).unwrap();
        assert!(stored_torrents(tmp.path()).unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(tmp.path().join("resume"))
                .unwrap()
                .count(),
            0
        );
    }
}
