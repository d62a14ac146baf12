//! The deterministic torrent (store-format.md, "Torrent"): the info dictionary built from the
//! content alone, the infohash, `.torrent` rendering with trackers and web seeds kept outside
//! the info dictionary, and magnet links.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use crate::format::bencode::{self, Value};
use crate::format::ids::InfoHash;

/// The content-only part of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `<name>-<version>.tar`
    pub name: String,
    pub length: u64,
    pub piece_length: u64,
    /// Concatenated 20-byte SHA-1 piece hashes.
    pub pieces: Vec<u8>,
}

impl Info {
    pub fn to_value(&self) -> Value {
        let mut d = BTreeMap::new();
        d.insert(b"length".to_vec(), Value::Int(self.length as i64));
        d.insert(b"name".to_vec(), Value::str(&self.name));
        d.insert(
            b"piece length".to_vec(),
            Value::Int(self.piece_length as i64),
        );
        d.insert(b"pieces".to_vec(), Value::Bytes(self.pieces.clone()));
        Value::Dict(d)
    }

    /// SHA-1 of the bencoded info dictionary.
    pub fn infohash(&self) -> InfoHash {
        InfoHash::from_bytes(Sha1::digest(self.to_value().encode()).into())
    }

    /// A `.torrent` file: the info dictionary plus, outside it, the announce URLs (first one in
    /// `announce`, all in `announce-list`) and the web seeds (`url-list`, BEP 19).
    pub fn render(&self, trackers: &[String], web_seeds: &[String]) -> Vec<u8> {
        let mut d = BTreeMap::new();
        d.insert(b"info".to_vec(), self.to_value());
        if let Some(first) = trackers.first() {
            d.insert(b"announce".to_vec(), Value::str(first));
            let tiers = trackers
                .iter()
                .map(|t| Value::List(vec![Value::str(t)]))
                .collect();
            d.insert(b"announce-list".to_vec(), Value::List(tiers));
        }
        if !web_seeds.is_empty() {
            let seeds = web_seeds.iter().map(|s| Value::str(s)).collect();
            d.insert(b"url-list".to_vec(), Value::List(seeds));
        }
        Value::Dict(d).encode()
    }

    /// Reads the info dictionary back from a `.torrent` file.
    pub fn parse_torrent(bytes: &[u8]) -> Result<Info, String> {
        let v = bencode::decode(bytes).map_err(|e| e.to_string())?;
        let info = v.get("info").ok_or("no `info` dictionary")?;
        let int = |k: &str| {
            info.get(k)
                .and_then(Value::as_int)
                .filter(|i| *i >= 0)
                .map(|i| i as u64)
                .ok_or_else(|| format!("`info.{k}` missing or not an integer"))
        };
        let name = info
            .get("name")
            .and_then(Value::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or("`info.name` missing or not UTF-8")?
            .to_string();
        let pieces = info
            .get("pieces")
            .and_then(Value::as_bytes)
            .ok_or("`info.pieces` missing")?
            .to_vec();
        let parsed = Info {
            name,
            length: int("length")?,
            piece_length: int("piece length")?,
            pieces,
        };
        if parsed.to_value() != *info {
            return Err(
                "the info dictionary has fields beyond length, name, piece length and pieces"
                    .into(),
            );
        }
        Ok(parsed)
    }
}

/// Builds the info dictionary of bytes written to it in order (what a mirror computes while it
/// downloads an object whose size the index gives): the pieces of [`canon::piece_length`].
///
/// [`canon::piece_length`]: crate::format::canon::piece_length
#[derive(Debug)]
pub struct PieceHasher {
    piece_length: u64,
    in_piece: u64,
    length: u64,
    sha: Sha1,
    pieces: Vec<u8>,
}

impl PieceHasher {
    /// For an archive of `size` bytes (which decides the piece length).
    pub fn new(size: u64) -> PieceHasher {
        PieceHasher {
            piece_length: crate::format::canon::piece_length(size),
            in_piece: 0,
            length: 0,
            sha: Sha1::new(),
            pieces: Vec::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        while !data.is_empty() {
            let room = (self.piece_length - self.in_piece) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.sha.update(now);
            self.in_piece += now.len() as u64;
            if self.in_piece == self.piece_length {
                self.pieces.extend_from_slice(&self.sha.finalize_reset());
                self.in_piece = 0;
            }
            data = rest;
        }
    }

    /// The info dictionary of everything written, named `name`.
    pub fn finish(mut self, name: &str) -> Info {
        if self.in_piece > 0 {
            self.pieces.extend_from_slice(&self.sha.finalize_reset());
        }
        Info {
            name: name.to_string(),
            length: self.length,
            piece_length: self.piece_length,
            pieces: self.pieces,
        }
    }
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters (uppercase hex).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// `magnet:?xt=urn:btih:<infohash>&dn=<name>&xl=<size>` then one `tr=` per tracker and one `ws=`
/// per web seed, each percent-encoded.
pub fn magnet(
    infohash: &InfoHash,
    name: &str,
    size: u64,
    trackers: &[String],
    web_seeds: &[String],
) -> String {
    let mut m = format!(
        "magnet:?xt=urn:btih:{infohash}&dn={}&xl={size}",
        percent_encode(name)
    );
    for t in trackers {
        m.push_str("&tr=");
        m.push_str(&percent_encode(t));
    }
    for w in web_seeds {
        m.push_str("&ws=");
        m.push_str(&percent_encode(w));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Info {
        Info {
            name: "hello-1.0.0.tar".into(),
            length: 3,
            piece_length: 16384,
            pieces: vec![7u8; 20],
        }
    }

    #[test]
    fn trackers_do_not_change_the_infohash() {
        let i = info();
        let plain = i.render(&[], &[]);
        let full = i.render(&["http://t/announce".into()], &["http://w/o".into()]);
        let a = Info::parse_torrent(&plain).unwrap();
        let b = Info::parse_torrent(&full).unwrap();
        assert_eq!(a.infohash(), b.infohash());
        assert_eq!(a, i);
    }

    #[test]
    fn piece_hasher_matches_whole_pieces_in_any_chunking() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let expected: Vec<u8> = data
            .chunks(16 * 1024)
            .flat_map(|p| Sha1::digest(p).to_vec())
            .collect();
        for chunk in [1, 1000, 16 * 1024, 40_000] {
            let mut h = PieceHasher::new(data.len() as u64);
            for c in data.chunks(chunk) {
                h.update(c);
            }
            let info = h.finish("x-1.0.0.tar");
            assert_eq!(info.pieces, expected, "chunks of {chunk}");
            assert_eq!((info.length, info.piece_length), (40_000, 16 * 1024));
        }
    }

    #[test]
    fn magnet_is_percent_encoded() {
        let ih = InfoHash::from_bytes([0xab; 20]);
        let m = magnet(&ih, "a b+c.tar", 9, &["http://t:1/announce".into()], &[]);
        assert_eq!(
            m,
            format!(
                "magnet:?xt=urn:btih:{}&dn=a%20b%2Bc.tar&xl=9&tr=http%3A%2F%2Ft%3A1%2Fannounce",
                "ab".repeat(20)
            )
        );
    }
}
