//! The index on the wire (a hostile but validly signed repository): the first byte picks the
//! parser, as in the stable harness: 0 the manifest (`wire::Manifest::parse`), 1 a delta as JSON
//! lines (compressed here, then `Delta::decode`), 2 raw bytes into `Delta::decode` (a broken
//! zstd stream). Properties: no panic; a decoded row has exactly the values of a row; an
//! accepted manifest's deltas chain to its serial and it reads back the same once written again.
#![no_main]

use dist::index::record::ROW_COLUMNS;
use dist::index::wire::{self, Delta, Manifest, Op};
use libfuzzer_sys::fuzz_target;

/// Small, so a zstd bomb is caught.
const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(m) = Manifest::parse(body) {
                check_manifest(&m);
            }
        }
        1 => decode(&wire::compress(body).expect("zstd compresses anything")),
        _ => decode(body),
    }
});

fn decode(bytes: &[u8]) {
    if let Ok(d) = Delta::decode(bytes, LIMIT) {
        for op in &d.ops {
            if let Op::Put(vals) = op {
                assert_eq!(vals.len(), ROW_COLUMNS.len(), "a decoded row");
            }
        }
    }
}

fn check_manifest(m: &Manifest) {
    let again = serde_json::to_vec(m).expect("a manifest serializes");
    assert_eq!(Manifest::parse(&again).ok().as_ref(), Some(m), "reads back");
    let mut next = None;
    for d in &m.deltas {
        assert_eq!(d.from.checked_add(1), Some(d.to), "{m:?}");
        assert!(next.is_none_or(|n| n == d.from), "{m:?}");
        next = Some(d.to);
    }
    assert!(next.is_none_or(|n| n == m.serial), "{m:?}");
}
