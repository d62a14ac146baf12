//! Web seeds: B downloads from the test's HTTP server alone and counts the bytes as from web
//! seeds; with `web_seeds: false`, or after `remove_web_seeds`, the server is never asked.

use std::sync::Arc;

use dist_libtorrent::AddOptions;

use crate::common::{self, WebSeed, MIB};

#[test]
fn downloads_from_a_web_seed_alone() {
    let data = Arc::new(common::content(4 * MIB, 3));
    let server = WebSeed::start("/object.bin", data.clone());
    let torrent = common::torrent("object.bin", &data, Some(&server.url("/object.bin")));
    let dir = tempfile::tempdir().unwrap();
    let b = common::session(false);
    let opts = AddOptions {
        web_seeds: true,
        ..AddOptions::default()
    };
    let ih = b.add(&torrent, dir.path(), &opts).unwrap();
    let done = common::wait_for(&b, &ih, "B completes from the web seed", |s| {
        s.is_seeding && s.downloaded_from_peers + s.downloaded_from_web_seeds == s.downloaded
    });
    eprintln!("B from the web seed: {done:?}; served {}", server.served());
    assert!(
        done.downloaded_from_web_seeds >= data.len() as u64,
        "{done:#?}"
    );
    assert_eq!(done.downloaded_from_peers, 0, "{done:#?}");
    assert!(server.served() >= data.len() as u64);
    let got = std::fs::read(dir.path().join("object.bin")).unwrap();
    assert!(got == *data, "the downloaded file differs");
}

/// A seeds in seed mode; B adds the torrent (whose url-list names a live server) either with
/// `web_seeds: false` or paused, then `remove_web_seeds`, and gets everything from A.
fn from_peer_not_web(remove_later: bool, seed: u64) {
    let data = Arc::new(common::content(2 * MIB, seed));
    let server = WebSeed::start("/object.bin", data.clone());
    let torrent = common::torrent("object.bin", &data, Some(&server.url("/object.bin")));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::put(dir_a.path(), "object.bin", &data);
    let (a, b) = (common::session(false), common::session(false));
    let seed_mode = AddOptions {
        seed_mode: true,
        ..AddOptions::default()
    };
    let ih = a.add(&torrent, dir_a.path(), &seed_mode).unwrap();
    let opts = AddOptions {
        web_seeds: remove_later,
        paused: remove_later,
        ..AddOptions::default()
    };
    b.add(&torrent, dir_b.path(), &opts).unwrap();
    if remove_later {
        assert!(b.status(&ih).unwrap().paused);
        b.remove_web_seeds(&ih).unwrap();
        b.set_paused(&ih, false).unwrap();
    }
    b.connect_peer(&ih, common::addr_of(&a)).unwrap();
    let done = common::wait_for(&b, &ih, "B completes from A", |s| s.is_seeding);
    assert_eq!(done.downloaded_from_web_seeds, 0, "{done:#?}");
    assert!(done.downloaded_from_peers >= data.len() as u64, "{done:#?}");
    assert_eq!(server.served(), 0, "the web seed was asked");
}

#[test]
fn web_seeds_false_ignores_the_url_list() {
    from_peer_not_web(false, 4);
}

#[test]
fn remove_web_seeds_drops_them() {
    from_peer_not_web(true, 5);
}
