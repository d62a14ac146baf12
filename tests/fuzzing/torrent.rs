//! Target `torrent`: bencoding and `.torrent` parsing (`torrent::Info::parse_torrent`) on
//! mutated real `.torrent` files (the info dictionaries `pack` computes for the valid fixtures,
//! rendered without and with trackers and web seeds, as `dist pack` and `dist serve` do).
//!
//! Properties: no panic; on success, rendering the parsed `Info` again and parsing that gives
//! the same `Info` and infohash, and that infohash is the SHA-1 of the info dictionary's bytes
//! as the input spells them (what transmission computes from the same file: the client hands
//! these bytes to it after checking the infohash against the signed index).

use dist::format::torrent::Info;
use sha1::{Digest, Sha1};

use super::tar::packed_fixtures;
use super::{kind_of, mutate_bytes, Rng, Target};

const TOKENS: &[&[u8]] = &[
    b"d",
    b"l",
    b"e",
    b"i",
    b"0:",
    b"1:",
    b"i0e",
    b"i-1e",
    b"i9223372036854775807e",
    b"i9223372036854775808e",
    b"i-9223372036854775808e",
    b"4:info",
    b"6:length",
    b"4:name",
    b"12:piece length",
    b"6:pieces",
    b"8:announce",
    b"13:announce-list",
    b"8:url-list",
    b"d4:infodee",
    b"le",
    b"de",
    b"99999999999999999999:",
    b"18446744073709551615:",
    b"20:aaaaaaaaaaaaaaaaaaaa",
    b"4:\xff\xfe\xfd\xfc",
    b"i00e",
    b"i-0e",
    b"01:",
];

pub struct Torrent {
    seeds: Vec<Vec<u8>>,
}

impl Torrent {
    pub fn new() -> Torrent {
        let mut seeds = Vec::new();
        let trackers = ["http://10.0.0.1:6969/announce".to_string()];
        let seeds_url = ["http://10.0.0.1:8080/objects/ab/cd".to_string()];
        for (_, packed) in packed_fixtures() {
            let info = packed.info;
            seeds.push(info.render(&[], &[]));
            seeds.push(info.render(&trackers, &seeds_url));
        }
        // Many pieces, so that the pieces string is long.
        let big = Info {
            name: "big-1.0.0.tar".into(),
            length: 50 * 16384 - 7,
            piece_length: 16384,
            pieces: (0..50 * 20).map(|i| i as u8).collect(),
        };
        seeds.push(big.render(&trackers, &[]));
        Torrent { seeds }
    }
}

impl Target for Torrent {
    const NAME: &'static str = "torrent";

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.seeds).clone();
        for _ in 0..1 + rng.below(4) {
            mutate_bytes(rng, &mut data, TOKENS);
        }
        data
    }

    fn execute(&mut self, input: &[u8]) -> Result<String, String> {
        let info = match Info::parse_torrent(input) {
            Ok(info) => info,
            Err(e) => return Ok(kind_of(&e, "")),
        };
        let again = info.render(&[], &[]);
        let reparsed = Info::parse_torrent(&again)
            .map_err(|e| format!("the re-rendered torrent does not parse: {e}"))?;
        if reparsed != info {
            return Err(format!("re-rendered, {info:?} became {reparsed:?}"));
        }
        if reparsed.infohash() != info.infohash() {
            return Err("re-rendering changed the infohash".into());
        }
        let raw = raw_info(input).ok_or("accepted, yet no `info` value is found in the input")?;
        let spelled = hex::encode(Sha1::digest(raw));
        if spelled != info.infohash().to_hex() {
            return Err(format!(
                "accepted with infohash {}, but the info dictionary as spelled in the file hashes to {spelled} (what a BitTorrent client computes): {:?}",
                info.infohash(),
                String::from_utf8_lossy(raw)
            ));
        }
        Ok("ok".into())
    }
}

/// The bytes of the value of key `info` in the top-level dictionary, found by shape alone.
fn raw_info(b: &[u8]) -> Option<&[u8]> {
    if b.first() != Some(&b'd') {
        return None;
    }
    let mut p = 1;
    while *b.get(p)? != b'e' {
        let key_end = skip(b, p, 0)?;
        let key = &b[b[p..key_end].iter().position(|&c| c == b':')? + p + 1..key_end];
        let value_end = skip(b, key_end, 0)?;
        if key == b"info" {
            return Some(&b[key_end..value_end]);
        }
        p = value_end;
    }
    None
}

/// Where the bencoded value starting at `at` ends (shape only, no canonical checks).
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
