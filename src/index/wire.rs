//! The index on the wire (store-format.md §5.3–5.5): the signed manifest that names the newest
//! serial, its content digest, the compressed snapshot and the deltas that lead to it; the delta
//! file format; bounded zstd; and [`Remote`], a server's published files over HTTP with the
//! manifest's verification ([`fetch_manifest`]). Shared by the publisher (`repo::publish`),
//! `client::sync` and the mirror (`repo::mirror`).

use std::io::{BufRead, Read, Write};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::format::ids::Digest;
use crate::index::record::ROW_COLUMNS;
use crate::index::sign::RepositoryId;

/// zstd level of snapshots and deltas: at 100,000 rows level 3 compresses within 1 % of level 9
/// in a third of the time (0.2 s against 0.57 s), and publishing sits on `add`'s path.
const ZSTD_LEVEL: i32 = 3;

/// The signed document a client fetches first (`GET /index.json`, signed by
/// `/index.json.minisig`). Everything else is trusted through the digests it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub serial: u64,
    pub created: u64,
    /// BLAKE3 of the canonical content (§5.2) at `serial`.
    pub content: Digest,
    /// How many package versions the index holds.
    pub packages: u64,
    /// `index/<serial>.db.zst`.
    pub snapshot: FileRef,
    /// Deltas still published, oldest first; `deltas[i].to == deltas[i + 1].from`, and the last
    /// one ends at `serial`.
    pub deltas: Vec<DeltaRef>,
}

/// A published file: its BLAKE3 and size as sent (compressed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub blake3: Digest,
    pub size: u64,
    /// Bytes once decompressed.
    pub raw_size: u64,
}

/// `index/<to>.delta.zst`: what changed from serial `from` to serial `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaRef {
    pub from: u64,
    pub to: u64,
    pub blake3: Digest,
    pub size: u64,
}

impl Manifest {
    /// Parses and checks the manifest's own consistency (a signed manifest can still be hostile).
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest =
            serde_json::from_slice(bytes).context("the index manifest is not valid")?;
        let mut next = None;
        for d in &m.deltas {
            if d.from.checked_add(1) != Some(d.to) || next.is_some_and(|n| n != d.from) {
                bail!(
                    "the index manifest lists deltas out of order ({} to {})",
                    d.from,
                    d.to
                );
            }
            next = Some(d.to);
        }
        if next.is_some_and(|n| n != m.serial) {
            bail!(
                "the index manifest's deltas do not end at its serial {}",
                m.serial
            );
        }
        Ok(m)
    }

    /// The deltas from `serial` to the manifest's serial, when all are still published.
    pub fn chain_from(&self, serial: u64) -> Option<&[DeltaRef]> {
        let start = self.deltas.iter().position(|d| d.from == serial)?;
        Some(&self.deltas[start..])
    }
}

impl Manifest {
    /// The manifest's own format, serial and time are the ones its signature vouches for.
    pub fn check_signed(&self, signed: &crate::index::sign::Signed) -> Result<()> {
        if (self.format, self.serial, self.created)
            != (signed.format, signed.serial, signed.created)
        {
            bail!(
                "the index manifest says format {} serial {} created {}, its signature format {} serial {} created {}",
                self.format,
                self.serial,
                self.created,
                signed.format,
                signed.serial,
                signed.created
            );
        }
        Ok(())
    }

    /// `digest` (of rows and distribution, §5.2) is the content signed for this serial.
    pub fn check_content(&self, digest: &blake3::Hash) -> Result<()> {
        if Digest::from(*digest) != self.content {
            bail!(
                "the index content (digest {}) is not the content signed for serial {} ({})",
                digest.to_hex(),
                self.serial,
                self.content
            );
        }
        Ok(())
    }

    /// A decompressed snapshot (`what` names it in errors) is the one this manifest signs: its
    /// format and serial, its content digest, and every row parses (a signed index can still
    /// be hostile).
    pub fn check_snapshot(&self, snap: &crate::index::record::Snapshot, what: &str) -> Result<()> {
        use crate::index::record::INDEX_FORMAT;
        if snap.format != INDEX_FORMAT || snap.serial != self.serial {
            bail!(
                "{what} says format {} serial {}, its signed manifest format {INDEX_FORMAT} serial {}",
                snap.format,
                snap.serial,
                self.serial
            );
        }
        self.check_content(&snap.content_digest()?)?;
        snap.all()?;
        Ok(())
    }
}

/// The bytes of a chain of deltas together, as the manifest claims them (saturating: a hostile
/// manifest's sizes may add up past `u64::MAX`).
pub fn chain_size(chain: &[DeltaRef]) -> u64 {
    chain.iter().fold(0u64, |sum, d| sum.saturating_add(d.size))
}

/// A manifest as it came, verified: its bytes, its signature and its ETag.
#[derive(Debug, Clone)]
pub struct SignedManifest {
    pub manifest: Manifest,
    pub body: Vec<u8>,
    pub sig: String,
    pub etag: Option<String>,
    /// The repository its signature names (`None` before issue 25).
    pub repository: Option<RepositoryId>,
}

/// The manifest `body` whose signature verified as `signed`, accepted only if it is this
/// dist's format, parses, and agrees with its signature: the one check after the signature, for
/// a sync, a mirror and a bundle alike. `what` names the manifest in errors.
pub fn accept_signed(
    signed: &crate::index::sign::Signed,
    body: &[u8],
    what: &str,
) -> Result<Manifest> {
    use crate::index::record::INDEX_FORMAT;
    if signed.format != INDEX_FORMAT {
        bail!(
            "{what} is index format {}; this dist reads format {INDEX_FORMAT}: upgrade dist",
            signed.format
        );
    }
    let manifest = Manifest::parse(body).with_context(|| what.to_string())?;
    manifest.check_signed(signed)?;
    Ok(manifest)
}

/// GETs `index.json` (conditionally on `etag`: `None` when not modified) and its signature,
/// and accepts them only if the signature verifies with `key`, the format is this dist's, and
/// the manifest is consistent and agrees with its signature. A publish between the two
/// requests shows as a bad signature, so that is tried three times.
pub fn fetch_manifest(
    remote: &mut Remote<'_>,
    key: &str,
    etag: Option<&str>,
    limit: u64,
) -> Result<Option<SignedManifest>> {
    use crate::index::sign::{self, VerifyError};
    let server = remote.server;
    let mut last = None;
    for _ in 0..3 {
        let Some((body, etag)) = remote.get("index.json", etag, limit)? else {
            return Ok(None);
        };
        let (sig, _) = remote
            .get("index.json.minisig", None, 64 << 10)?
            .context("304 unasked")?;
        let sig = String::from_utf8(sig).context("the index signature is not text")?;
        let signed = match sign::verify(key, &body, &sig) {
            Ok(s) => s,
            // Only a signature that does not match the bytes can be a publish in between.
            Err(e @ VerifyError::BadSignature(_)) => {
                last = Some(e);
                continue;
            }
            Err(e) => {
                last = Some(e);
                break;
            }
        };
        let manifest = accept_signed(&signed, &body, &format!("{server}/index.json"))?;
        return Ok(Some(SignedManifest {
            manifest,
            body,
            sig,
            etag,
            repository: signed.repository,
        }));
    }
    Err(anyhow::Error::new(last.expect("a failed attempt"))
        .context(format!("the index from {server} failed verification")))
}

/// One server's published files over HTTP (a client's sync, a mirror's copy): the agent, the
/// server's base URL and the bytes received so far.
pub struct Remote<'a> {
    pub agent: ureq::Agent,
    pub server: &'a str,
    pub bytes: u64,
}

impl<'a> Remote<'a> {
    pub fn new(agent: ureq::Agent, server: &'a str) -> Remote<'a> {
        Remote {
            agent,
            server,
            bytes: 0,
        }
    }

    /// GETs `server/path`; `None` for 304 Not Modified. Refuses a body over `limit` bytes.
    pub fn get(
        &mut self,
        path: &str,
        etag: Option<&str>,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let url = format!("{}/{path}", self.server);
        let mut req = self.agent.get(&url);
        if let Some(e) = etag {
            req = req.set("If-None-Match", e);
        }
        let resp = match call(req) {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) if path == "index.json" => bail!(
                "GET {url}: HTTP 404 (a server older than index format {} publishes no index.json: upgrade dist on the server)",
                crate::index::record::INDEX_FORMAT
            ),
            Err(ureq::Error::Status(code, _)) => bail!("GET {url}: HTTP {code}"),
            Err(e) => return Err(http_error(&url, e)),
        };
        if resp.status() == 304 {
            return Ok(None);
        }
        let tag = resp.header("ETag").map(str::to_string);
        let body = self.read_body(resp, &url, limit)?;
        Ok(Some((body, tag)))
    }

    /// GETs a file that may not be published (`None` on 404), up to `limit` bytes.
    pub fn get_optional(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let url = format!("{}/{path}", self.server);
        match call(self.agent.get(&url)) {
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(ureq::Error::Status(code, _)) => bail!("GET {url}: HTTP {code}"),
            Err(e) => Err(http_error(&url, e)),
            Ok(resp) => self.read_body(resp, &url, limit).map(Some),
        }
    }

    /// Reads a response's body, refusing more than `limit` bytes.
    fn read_body(&mut self, resp: ureq::Response, url: &str, limit: u64) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        let read = resp
            .into_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut body);
        self.bytes += body.len() as u64;
        read.with_context(|| format!("GET {url}: the body was cut off"))?;
        if body.len() as u64 > limit {
            bail!("GET {url}: larger than the {limit}-byte limit; refusing it");
        }
        Ok(body)
    }

    /// GETs a published file and checks it is the one the manifest names.
    pub fn get_checked(&mut self, path: &str, size: u64, blake3: &Digest) -> Result<Vec<u8>> {
        let (body, _) = self
            .get(path, None, size)?
            .context("304 without a condition")?;
        let got = Digest::of(&body);
        if body.len() as u64 != size || got != *blake3 {
            bail!(
                "{path} is not the file the signed manifest names ({} bytes, blake3 {got}; expected {size} bytes, blake3 {blake3})",
                body.len()
            );
        }
        Ok(body)
    }
}

/// How many times a request answered `503` with `Retry-After` (a server at its connection
/// limit, store-format.md §5.6) is asked again.
const BUSY_RETRIES: usize = 3;

/// Makes the request, asking again after the wait a `503` with `Retry-After` names (1 to 10 s),
/// at most [`BUSY_RETRIES`] times. The error is ureq's own, as `call` gives it.
#[allow(clippy::result_large_err)]
fn call(req: ureq::Request) -> Result<ureq::Response, ureq::Error> {
    let mut tries = 0;
    loop {
        match req.clone().call() {
            Err(ureq::Error::Status(503, resp))
                if tries < BUSY_RETRIES && resp.header("Retry-After").is_some() =>
            {
                let wait = crate::net::retry_after(&resp)
                    .unwrap_or(std::time::Duration::from_secs(1))
                    .clamp(
                        std::time::Duration::from_secs(1),
                        std::time::Duration::from_secs(10),
                    );
                std::thread::sleep(wait);
                tries += 1;
            }
            other => return other,
        }
    }
}

/// One change of a delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Op {
    /// Insert or replace a row: the values of [`ROW_COLUMNS`], in order.
    Put(Vec<serde_json::Value>),
    /// Delete the row `(name, version_key)`.
    Del(String, String),
    /// Replace `meta.distribution` with this text.
    Distribution(String),
}

/// The first line of a delta file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaHeader {
    pub from: u64,
    pub to: u64,
    /// Content digests before and after.
    pub from_content: Digest,
    pub to_content: Digest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub header: DeltaHeader,
    pub ops: Vec<Op>,
}

impl Delta {
    /// JSON lines: the header, then one op per line; zstd-compressed.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut text = serde_json::to_vec(&self.header)?;
        text.push(b'\n');
        for op in &self.ops {
            serde_json::to_writer(&mut text, op)?;
            text.push(b'\n');
        }
        compress(&text)
    }

    /// Decodes a delta, refusing more than `limit` bytes once decompressed.
    pub fn decode(bytes: &[u8], limit: u64) -> Result<Delta> {
        let text = decompress(bytes, limit)?;
        let mut lines = text.lines();
        let header: DeltaHeader =
            serde_json::from_str(&lines.next().transpose()?.context("an empty delta")?)
                .context("the delta header is not valid")?;
        let mut ops = Vec::new();
        for (i, line) in lines.enumerate() {
            let op: Op = serde_json::from_str(&line?)
                .with_context(|| format!("delta line {} is not a valid change", i + 2))?;
            if let Op::Put(vals) = &op {
                if vals.len() != ROW_COLUMNS.len() {
                    bail!(
                        "delta line {}: a row has {} values, not {}",
                        i + 2,
                        vals.len(),
                        ROW_COLUMNS.len()
                    );
                }
            }
            ops.push(op);
        }
        Ok(Delta { header, ops })
    }
}

pub fn compress(raw: &[u8]) -> Result<Vec<u8>> {
    zstd::bulk::compress(raw, ZSTD_LEVEL).context("zstd compression failed")
}

/// Decompresses a zstd stream, refusing more than `limit` bytes of output.
pub fn decompress(bytes: &[u8], limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_to(bytes, limit, &mut out)?;
    Ok(out)
}

/// Decompresses a zstd stream into `out`, refusing more than `limit` bytes of output.
pub fn decompress_to(bytes: &[u8], limit: u64, out: &mut impl Write) -> Result<u64> {
    let dec = zstd::stream::read::Decoder::new(bytes).context("not a zstd stream")?;
    let mut r = dec.take(limit.saturating_add(1));
    let n = std::io::copy(&mut r, out).context("the zstd stream is corrupt")?;
    if n > limit {
        bail!("larger than {limit} bytes once decompressed; refusing it");
    }
    Ok(n)
}

/// A failed request in one line, each part once: `cannot reach URL: Connection refused (os
/// error 111)` or `GET URL: HTTP 404`. (ureq's own text repeats the URL, and its cause chain
/// repeats the innermost cause.)
pub fn http_error(url: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, _) => anyhow::anyhow!("GET {url}: HTTP {code}"),
        ureq::Error::Transport(t) => {
            anyhow::anyhow!("cannot reach {url}: {}", crate::net::transport_cause(&t))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(deltas: Vec<(u64, u64)>, serial: u64) -> Manifest {
        let h = Digest::from_bytes([0xaa; 32]);
        Manifest {
            format: 2,
            serial,
            created: 1,
            content: h,
            packages: 1,
            snapshot: FileRef {
                blake3: h,
                size: 1,
                raw_size: 1,
            },
            deltas: deltas
                .into_iter()
                .map(|(from, to)| DeltaRef {
                    from,
                    to,
                    blake3: h,
                    size: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn manifest_chains_are_checked() {
        let ok = manifest(vec![(3, 4), (4, 5)], 5);
        let bytes = serde_json::to_vec(&ok).unwrap();
        let parsed = Manifest::parse(&bytes).unwrap();
        assert_eq!(parsed.chain_from(4).unwrap().len(), 1);
        assert_eq!(parsed.chain_from(3).unwrap().len(), 2);
        assert!(parsed.chain_from(2).is_none());
        for bad in [
            manifest(vec![(4, 5), (3, 4)], 5),
            manifest(vec![(3, 4), (4, 5)], 6),
            manifest(vec![(3, 5)], 5),
        ] {
            let bytes = serde_json::to_vec(&bad).unwrap();
            assert!(Manifest::parse(&bytes).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn delta_round_trip_and_limits() {
        let d = Delta {
            header: DeltaHeader {
                from: 1,
                to: 2,
                from_content: Digest::from_bytes([0xaa; 32]),
                to_content: Digest::from_bytes([0xbb; 32]),
            },
            ops: vec![
                Op::Put(vec![serde_json::Value::Null; ROW_COLUMNS.len()]),
                Op::Del("x".into(), "1.0.0".into()),
                Op::Distribution("{}".into()),
            ],
        };
        let bytes = d.encode().unwrap();
        assert_eq!(Delta::decode(&bytes, 1 << 20).unwrap(), d);
        assert!(Delta::decode(&bytes, 10).is_err());
        assert!(Delta::decode(b"not zstd", 1 << 20).is_err());
        let short = Delta {
            ops: vec![Op::Put(vec![serde_json::Value::Null; 3])],
            ..d
        };
        assert!(Delta::decode(&short.encode().unwrap(), 1 << 20).is_err());
    }
}
