//! Two sessions in one process: A seeds a file in seed mode, B downloads it from A over TCP and
//! over uTP, and B's status counts the bytes as from BitTorrent peers.

use dist_libtorrent::{AddOptions, Session, State};

use crate::common::{self, MIB};

#[test]
fn session_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Session>();
}

#[test]
fn downloads_from_a_peer_over_tcp() {
    peer_to_peer(false, 1);
}

#[test]
fn downloads_from_a_peer_over_utp() {
    peer_to_peer(true, 2);
}

fn peer_to_peer(utp: bool, seed: u64) {
    let data = common::content(4 * MIB, seed);
    let torrent = common::torrent("object.bin", &data, None);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::put(dir_a.path(), "object.bin", &data);
    let (a, b) = (common::session(utp), common::session(utp));
    assert_ne!(a.listen_port(), 0);

    let seed_mode = AddOptions {
        seed_mode: true,
        ..AddOptions::default()
    };
    let ih = a.add(&torrent, dir_a.path(), &seed_mode).unwrap();
    assert_eq!(ih, common::info_hash("object.bin", &data));
    common::wait_for(&a, &ih, "A seeds", |s| s.is_seeding);

    assert_eq!(
        b.add(&torrent, dir_b.path(), &AddOptions::default())
            .unwrap(),
        ih
    );
    b.connect_peer(&ih, common::addr_of(&a)).unwrap();
    let done = common::wait_for(&b, &ih, "B completes from A", |s| {
        s.is_seeding && s.downloaded_from_peers + s.downloaded_from_web_seeds == s.downloaded
    });
    eprintln!("B (utp {utp}): {done:?}");
    assert_eq!(done.state, State::Seeding);
    assert_eq!(done.total_done, data.len() as u64);
    assert!(done.downloaded_from_peers >= data.len() as u64, "{done:#?}");
    assert_eq!(done.downloaded_from_web_seeds, 0, "{done:#?}");
    assert_eq!(done.error, None);
    let got = std::fs::read(dir_b.path().join("object.bin")).unwrap();
    assert!(got == data, "B's file differs from A's");

    let up = common::wait_for(&a, &ih, "A counts its upload", |s| {
        s.uploaded >= data.len() as u64
    });
    assert_eq!(up.downloaded, 0);
}
