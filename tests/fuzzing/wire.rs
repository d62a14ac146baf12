//! Target `wire` (issue 10): the index on the wire, as a hostile but validly signed repository
//! could shape it. The first byte of an input picks the parser: the manifest
//! (`index::wire::Manifest::parse`), a delta as JSON lines (compressed here, then
//! `Delta::decode`), or raw bytes straight into `Delta::decode` (a broken zstd stream). Seeds are
//! the manifest and delta a real `Repo::add` published.
//!
//! Properties: no panic; a decoded delta has rows of exactly the eight values of a row and never
//! more than the decompression limit; an accepted manifest's deltas form a chain ending at its
//! serial, and it reads back the same once written again (its digests are typed: 32 bytes
//! each, whatever hex case they came in).

use std::fs;

use dist::index::wire::{self, Delta, Manifest, Op};

use super::{kind_of, mutate_bytes, Rng, Target};

/// The decompression limit of the target: small, so a zstd bomb is caught.
const LIMIT: u64 = 1 << 20;

const TOKENS: &[&[u8]] = &[
    b"{\"put\":",
    b"{\"del\":",
    b"{\"distribution\":",
    b"\"from\":",
    b"\"to\":",
    b"\"deltas\":",
    b"\"serial\":",
    b"\"blake3\":",
    b"\"size\":",
    b"\"raw_size\":",
    b"null",
    b"18446744073709551615",
    b"-1",
    b"1e308",
    b"[]",
    b"{}",
    b"\n",
    b"\"\\u0000\"",
    b"0123456789abcdef",
    b"\xff",
    b"\"a\"",
];

pub struct Wire {
    seeds: Vec<Vec<u8>>,
}

impl Wire {
    pub fn new() -> Wire {
        let (_tmp, repo) = super::published_twice();
        let manifest = fs::read(repo.manifest_path(2)).unwrap();
        let delta = wire::decompress(&fs::read(repo.delta_path(2)).unwrap(), LIMIT).unwrap();
        let tag = |t: u8, body: &[u8]| [&[t][..], body].concat();
        Wire {
            seeds: vec![tag(0, &manifest), tag(1, &delta), tag(2, &delta)],
        }
    }
}

impl Target for Wire {
    const NAME: &'static str = "wire";

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.seeds).clone();
        let mut body = data.split_off(1);
        mutate_bytes(rng, &mut body, TOKENS);
        data.extend(body);
        data
    }

    fn execute(&mut self, input: &[u8]) -> Result<String, String> {
        let Some((&which, body)) = input.split_first() else {
            return Ok("empty".into());
        };
        match which % 3 {
            0 => match Manifest::parse(body) {
                Ok(m) => check_manifest(&m).map(|()| "manifest ok".into()),
                Err(e) => Ok(kind_of(&format!("{e:#}"), "")),
            },
            1 => {
                let bytes = wire::compress(body).map_err(|e| format!("{e:#}"))?;
                decode(&bytes)
            }
            _ => decode(body),
        }
    }
}

fn decode(bytes: &[u8]) -> Result<String, String> {
    match Delta::decode(bytes, LIMIT) {
        Ok(d) => {
            for op in &d.ops {
                if let Op::Put(vals) = op {
                    if vals.len() != dist::index::record::ROW_COLUMNS.len() {
                        return Err(format!("a decoded row has {} values", vals.len()));
                    }
                }
            }
            Ok(format!("delta ok ({} ops)", d.ops.len().min(10)))
        }
        Err(e) => Ok(kind_of(&format!("{e:#}"), "")),
    }
}

fn check_manifest(m: &Manifest) -> Result<(), String> {
    let again = serde_json::to_vec(m).map_err(|e| e.to_string())?;
    match Manifest::parse(&again) {
        Ok(back) if back == *m => {}
        other => {
            return Err(format!(
                "an accepted manifest reads back as {other:?}: {m:?}"
            ))
        }
    }
    let mut next = None;
    for d in &m.deltas {
        if d.from.checked_add(1) != Some(d.to) || next.is_some_and(|n| n != d.from) {
            return Err(format!(
                "an accepted manifest's deltas are out of order: {m:?}"
            ));
        }
        next = Some(d.to);
    }
    if next.is_some_and(|n| n != m.serial) {
        return Err(format!(
            "an accepted manifest's deltas do not end at its serial: {m:?}"
        ));
    }
    Ok(())
}
