//! What `dist serve` answers about a repository's index, laid out as plain files for
//! [`super::files::FileServer`]: tests that need a server whose index they control byte for byte
//! (a hostile but validly signed snapshot) without the tracker and seeder.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use dist::format::ids::Digest;
use dist::index::sign::{Signed, SigningKey};
use dist::index::wire::{self, FileRef, Manifest};

/// Lays out in `www` what `dist serve` answers for the newest serial of the repository at
/// `repo`: `index.json` and its signature, `index/` (the published snapshots and deltas) and
/// `objects/`. Returns the serial.
pub fn lay_out(repo: &Path, www: &Path) -> u64 {
    let serial: u64 = fs::read_to_string(repo.join("published/LATEST"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    fs::create_dir_all(www.join("index")).unwrap();
    for e in fs::read_dir(repo.join("published")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), www.join("index").join(e.file_name())).unwrap();
    }
    for suffix in ["", ".minisig"] {
        fs::copy(
            repo.join(format!("published/{serial}.json{suffix}")),
            www.join(format!("index.json{suffix}")),
        )
        .unwrap();
    }
    if !www.join("objects").exists() {
        std::os::unix::fs::symlink(repo.join("objects"), www.join("objects")).unwrap();
    }
    serial
}

/// Publishes the SQLite file `db` in `www` as the whole index of `serial`, with a manifest
/// signed by the key of the repository at `repo` that names it by its digests: only the
/// content can be hostile. The content digest is the real one when it can be computed over a
/// `packages` table, else zeros (a client refuses such a file before it gets that far).
pub fn publish_db(repo: &Path, www: &Path, db: &Path, serial: u64) {
    let raw = fs::read(db).unwrap();
    let zst = wire::compress(&raw).unwrap();
    fs::create_dir_all(www.join("index")).unwrap();
    fs::write(www.join(format!("index/{serial}.db.zst")), &zst).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let is_table = conn
        .query_row(
            "SELECT type = 'table' FROM sqlite_master WHERE name = 'packages'",
            [],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false);
    let dist_text: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'distribution'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_default();
    let content = is_table
        .then(|| dist::index::record::content_digest(&conn, &dist_text).ok())
        .flatten()
        .map(Digest::from)
        .unwrap_or(Digest::from_bytes([0; 32]));
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let manifest = Manifest {
        format: dist::index::record::INDEX_FORMAT,
        serial,
        created,
        content,
        packages: 1,
        snapshot: FileRef {
            blake3: Digest::of(&zst),
            size: zst.len() as u64,
            raw_size: raw.len() as u64,
        },
        deltas: Vec::new(),
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let key = SigningKey::load(repo).unwrap();
    let sig = key
        .sign(
            &bytes,
            &Signed {
                format: manifest.format,
                serial,
                created,
                // The repository's own: only the content is hostile.
                repository: dist::repo::Repo::new(repo).repository_id().unwrap(),
            },
        )
        .unwrap();
    fs::write(www.join("index.json"), bytes).unwrap();
    fs::write(www.join("index.json.minisig"), sig).unwrap();
}

/// The newest published snapshot of the repository at `repo`, decompressed into `dest`.
pub fn snapshot_db(repo: &Path, dest: &Path) {
    let serial = fs::read_to_string(repo.join("published/LATEST")).unwrap();
    let zst = fs::read(repo.join(format!("published/{}.db.zst", serial.trim()))).unwrap();
    fs::write(dest, wire::decompress(&zst, 1 << 30).unwrap()).unwrap();
}
