//! Bencoding and `.torrent` parsing (`torrent::Info::parse_torrent`). Properties: no panic; an
//! accepted torrent renders and parses back to the same `Info`, and its infohash is the SHA-1
//! of the info dictionary as the input spells it (what a BitTorrent client computes).
#![no_main]

use dist::format::torrent::Info;
use libfuzzer_sys::fuzz_target;
use sha1::{Digest, Sha1};

fuzz_target!(|data: &[u8]| {
    let Ok(info) = Info::parse_torrent(data) else {
        return;
    };
    let again = Info::parse_torrent(&info.render(&[], &[])).expect("the re-rendered torrent");
    assert_eq!(again, info, "rendering changed the info");
    let raw = raw_info(data).expect("accepted, yet no `info` value in the input");
    assert_eq!(
        hex::encode(Sha1::digest(raw)),
        info.infohash().to_hex(),
        "the infohash is not that of the info dictionary as spelled"
    );
});

/// The bytes of the value of key `info` in the top-level dictionary, found by shape alone.
fn raw_info(b: &[u8]) -> Option<&[u8]> {
    if b.first() != Some(&b'd') {
        return None;
    }
    let mut p = 1;
    while *b.get(p)? != b'e' {
        let key_end = skip(b, p, 0)?;
        let colon = b[p..key_end].iter().position(|&c| c == b':')? + p;
        let value_end = skip(b, key_end, 0)?;
        if &b[colon + 1..key_end] == b"info" {
            return Some(&b[key_end..value_end]);
        }
        p = value_end;
    }
    None
}

/// Where the bencoded value at `at` ends (shape only).
fn skip(b: &[u8], at: usize, depth: u32) -> Option<usize> {
    if depth > 100 {
        return None;
    }
    match *b.get(at)? {
        b'i' => Some(at + b[at..].iter().position(|&c| c == b'e')? + 1),
        b'l' | b'd' => {
            let mut p = at + 1;
            while *b.get(p)? != b'e' {
                p = skip(b, p, depth + 1)?;
            }
            Some(p + 1)
        }
        _ => {
            let colon = at + b[at..].iter().position(|&c| c == b':')?;
            let len: usize = std::str::from_utf8(&b[at..colon]).ok()?.parse().ok()?;
            colon.checked_add(1 + len).filter(|&e| e <= b.len())
        }
    }
}
