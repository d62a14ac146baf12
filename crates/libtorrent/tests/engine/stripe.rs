//! Piece priorities: a stripe `(k, n)` at add time and later, read back from libtorrent.

use dist_libtorrent::{AddOptions, Error};

use crate::common::{self, MIB, PIECE};

fn stripe(pieces: usize, k: usize, n: usize) -> Vec<u8> {
    (0..pieces)
        .map(|i| if i % n == k { 7 } else { 4 })
        .collect()
}

#[test]
fn stripes_get_top_priority() {
    let data = common::content(4 * MIB, 7);
    let pieces = data.len() / PIECE;
    let torrent = common::torrent("object.bin", &data, None);
    let dir = tempfile::tempdir().unwrap();
    let s = common::session(false);
    let opts = AddOptions {
        paused: true,
        stripe: Some((1, 4)),
        ..AddOptions::default()
    };
    let ih = s.add(&torrent, dir.path(), &opts).unwrap();
    assert_eq!(s.piece_priorities(&ih).unwrap(), stripe(pieces, 1, 4));

    s.prioritize_stripe(&ih, 2, 3).unwrap();
    assert_eq!(s.piece_priorities(&ih).unwrap(), stripe(pieces, 2, 3));

    assert!(matches!(
        s.prioritize_stripe(&ih, 3, 3),
        Err(Error::InvalidArgument(_))
    ));
    let bad = AddOptions {
        stripe: Some((0, 0)),
        ..AddOptions::default()
    };
    let other = common::torrent("other.bin", &data[..MIB], None);
    assert!(matches!(
        s.add(&other, dir.path(), &bad),
        Err(Error::InvalidArgument(_))
    ));
}
