//! Resume data: B downloads a file, saves resume data and stops; a new session adds the torrent
//! with it and seeds at once, without hashing the file. To show that no hashing happened, a byte
//! of the file is changed before the new session starts (same size): it still seeds everything,
//! while the same file added without resume data is hashed and the changed piece found missing.

use std::sync::Arc;

use dist_libtorrent::{AddOptions, State};

use crate::common::{self, WebSeed, MIB, PIECE};

/// Flips one byte in piece `piece` of `path`.
fn corrupt(path: &std::path::Path, piece: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[piece * PIECE + 5] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn resume_data_seeds_at_once_without_hashing() {
    let data = Arc::new(common::content(4 * MIB, 6));
    let server = WebSeed::start("/object.bin", data.clone());
    let torrent = common::torrent("object.bin", &data, Some(&server.url("/object.bin")));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.bin");
    let web = AddOptions {
        web_seeds: true,
        ..AddOptions::default()
    };
    let b = common::session(false);
    let ih = b.add(&torrent, dir.path(), &web).unwrap();
    common::wait_for(&b, &ih, "B completes", |s| s.is_seeding);
    let resume = b.resume_data(&ih).unwrap();
    assert!(
        resume.starts_with(b"d") && resume.ends_with(b"e"),
        "not bencoded"
    );
    drop(b);
    drop(server); // from here on, nothing can be downloaded: seeding comes from the resume data
    corrupt(&file, 10);

    let c = common::session(false);
    let opts = AddOptions {
        resume: Some(resume),
        ..AddOptions::default()
    };
    assert_eq!(c.add(&torrent, dir.path(), &opts).unwrap(), ih);
    let first = c.status(&ih).unwrap();
    eprintln!("with resume data, right after add: {:?}", first.state);
    let seeding = common::wait_for(&c, &ih, "C seeds from resume data", |s| s.is_seeding);
    assert_eq!(seeding.total_done, data.len() as u64);
    assert_eq!(seeding.downloaded, 0);
    let states = c.state_history(&ih).unwrap();
    eprintln!("with resume data: states {states:?}");
    assert!(
        !states.contains(&State::CheckingFiles),
        "hashed: {states:?}"
    );
    assert_eq!(states.last(), Some(&State::Seeding), "{states:?}");

    // The control: without resume data the file is hashed and the changed piece is missing.
    c.remove(&ih, false).unwrap();
    assert!(matches!(
        c.status(&ih),
        Err(dist_libtorrent::Error::UnknownTorrent(_))
    ));
    c.add(&torrent, dir.path(), &AddOptions::default()).unwrap();
    let checked = common::wait_for(&c, &ih, "C hashes the file", |s| {
        s.state == State::Downloading && s.total_done == (data.len() - PIECE) as u64
    });
    assert!(!checked.is_seeding);
    let states = c.state_history(&ih).unwrap();
    eprintln!("without resume data: states {states:?}");
    assert!(states.contains(&State::CheckingFiles), "{states:?}");

    c.remove(&ih, true).unwrap();
    assert!(!file.exists(), "remove(delete_files) left the file");
}
