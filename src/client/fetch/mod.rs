//! Transports: getting an object's bytes into `downloads/<infohash>/<name>-<version>.tar`,
//! either through transmission ([`torrent`], every torrent added at once and awaited together)
//! or straight from the web-seed URL ([`http`], resumable with Range). Nothing fetched here is
//! trusted: the installer verifies each result once before it is stored.

pub(crate) mod all;
pub mod http;
pub mod lt;
pub mod stall;
pub mod torrent;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::format::ids::{InfoHash, ObjectId};
use crate::format::torrent::Info;
use crate::index::record::PackageRecord;
use crate::net::ServerUrl;

/// The torrents one install added to its engine, to take back if the install fails: to the
/// transmission-daemon (`rpc`, `added`), or to this process's libtorrent session (`lt`).
#[derive(Default)]
pub(crate) struct Swarm {
    pub(crate) rpc: Option<crate::daemons::transmission::Rpc>,
    pub(crate) added: Vec<InfoHash>,
    pub(crate) lt: Option<lt::Downloads>,
}

impl Swarm {
    /// Removes these torrents from the engine: with their data (`delete`: the install failed,
    /// nothing of it is kept) or without (`seed: false`, or the libtorrent seeder takes them).
    pub(crate) fn remove(&self, delete: bool) -> anyhow::Result<()> {
        if let Some(lt) = &self.lt {
            lt.remove(delete)?;
        }
        match (&self.rpc, self.added.is_empty()) {
            (Some(rpc), false) => rpc.remove(&self.added, delete),
            _ => Ok(()),
        }
    }
}

/// A downloaded, not yet verified object file.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes_from_peers: u64,
    pub bytes_from_webseed: u64,
}

/// Why the server's `.torrent` of a package cannot be used. The caller branches on the kind: a
/// torrent that contradicts the signed index is an attack and fails the install at once; a
/// torrent the server cannot hand out is an outage, and the signed magnet link stands in.
#[derive(Debug, thiserror::Error)]
pub enum TorrentFileError {
    #[error(
        "{url}: the torrent's infohash is {found}, the signed index says {expected} for {package}"
    )]
    Infohash {
        url: String,
        package: String,
        found: InfoHash,
        expected: InfoHash,
    },
    #[error("{url}: the torrent's length {found} differs from the index's size {expected} for {package}")]
    Length {
        url: String,
        package: String,
        found: u64,
        expected: u64,
    },
    #[error("cannot get a usable torrent from {url}: {reason}")]
    Unavailable { url: String, reason: String },
}

impl TorrentFileError {
    /// The server contradicts the signed index (as opposed to being unreachable).
    pub fn is_attack(&self) -> bool {
        !matches!(self, TorrentFileError::Unavailable { .. })
    }
}

pub fn object_url(server: &str, blake3: &ObjectId) -> String {
    format!("{server}/objects/{}", blake3.rel_path())
}

/// A `.torrent` from a server, checked against the signed index.
#[derive(Debug, Clone)]
pub struct TorrentFile {
    pub bytes: Vec<u8>,
    /// `X-Dist-Stripe: k/n` from `dist serve`: this client should fetch the pieces `i` with
    /// `i % n == k` first, so a crowd starting together holds different pieces to trade.
    pub stripe: Option<(u32, u32)>,
}

/// The `X-Dist-Stripe` header's value: `k/n` with `k < n`, `n` at most 1024; anything else is
/// ignored (it only orders the pieces, it decides nothing about trust).
pub fn parse_stripe(value: &str) -> Option<(u32, u32)> {
    let (k, n) = value.trim().split_once('/')?;
    let (k, n): (u32, u32) = (k.parse().ok()?, n.parse().ok()?);
    (k < n && n <= 1024).then_some((k, n))
}

/// Fetches the `.torrent` from the first of `servers` that hands it out, checked like
/// [`fetch_torrent`] (what [`fetch_torrent_first`] says of the servers passed over is dropped).
pub fn fetch_torrent_any(
    servers: &[ServerUrl],
    timeout: Duration,
    rec: &PackageRecord,
) -> Result<TorrentFile, TorrentFileError> {
    fetch_torrent_first(servers, timeout, rec).0
}

/// The `.torrent` from the first of `servers` whose torrent agrees with the signed index, and
/// why each server before it was passed over. A torrent that contradicts the index is an attack
/// (issue 25, finding 4: the next server is still asked, and the error names the server that
/// sent it); when no server hands out a usable one, the error is the first attack if any, else
/// the last outage.
pub fn fetch_torrent_first(
    servers: &[ServerUrl],
    timeout: Duration,
    rec: &PackageRecord,
) -> (Result<TorrentFile, TorrentFileError>, Vec<TorrentFileError>) {
    let mut passed = Vec::new();
    for s in servers {
        match fetch_torrent(s, timeout, rec) {
            Ok(t) => return (Ok(t), passed),
            Err(e) => passed.push(e),
        }
    }
    let attack = passed.iter().position(TorrentFileError::is_attack);
    let err = match attack.or(passed.len().checked_sub(1)) {
        Some(i) => passed.remove(i),
        None => TorrentFileError::Unavailable {
            url: String::new(),
            reason: "no server configured".into(),
        },
    };
    (Err(err), passed)
}

/// Fetches the `.torrent` from the server and checks its infohash and length against the signed
/// index.
pub fn fetch_torrent(
    server: &str,
    timeout: Duration,
    rec: &PackageRecord,
) -> Result<TorrentFile, TorrentFileError> {
    let url = format!("{server}/torrents/{}.torrent", rec.infohash);
    let unavailable = |reason: String| TorrentFileError::Unavailable {
        url: url.clone(),
        reason,
    };
    let agent = crate::net::agent(&url, timeout).map_err(|e| unavailable(format!("{e:#}")))?;
    let resp = agent.get(&url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => unavailable(format!("HTTP {code}")),
        ureq::Error::Transport(t) => unavailable(crate::net::transport_cause(&t)),
    })?;
    let stripe = resp.header("x-dist-stripe").and_then(parse_stripe);
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(16 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable(e.to_string()))?;
    let info = Info::parse_torrent(&bytes)
        .map_err(|e| unavailable(format!("not a valid torrent: {e}")))?;
    let found = info.infohash();
    if found != rec.infohash {
        return Err(TorrentFileError::Infohash {
            url,
            package: rec.id().to_string(),
            found,
            expected: rec.infohash,
        });
    }
    if info.length != rec.size {
        return Err(TorrentFileError::Length {
            url,
            package: rec.id().to_string(),
            found: info.length,
            expected: rec.size,
        });
    }
    Ok(TorrentFile { bytes, stripe })
}

/// The file name inside a download directory: the torrent's name.
pub(crate) fn info_name(rec: &PackageRecord) -> String {
    format!("{}-{}.tar", rec.name, rec.version)
}

/// A partial HTTP download of `rec` in `dir` (what an `auto` download handed to the swarm left,
/// or an interrupted one) renamed to `<name>-<version>.tar<suffix>`, where a BitTorrent engine
/// finds it and checks its pieces instead of fetching them again; false when there is none.
pub(crate) fn adopt_http_partial(
    dir: &std::path::Path,
    rec: &PackageRecord,
    suffix: &str,
) -> std::io::Result<bool> {
    let part = dir.join(http_partial_name(rec));
    if !part.exists() {
        return Ok(false);
    }
    std::fs::rename(&part, dir.join(format!("{}{suffix}", info_name(rec))))?;
    Ok(true)
}

/// Where the HTTP transport keeps a partial download. Not transmission's `NAME.part` (its
/// partial file is preallocated with pieces in any order, never a prefix to resume from).
fn http_partial_name(rec: &PackageRecord) -> String {
    format!("{}.http-partial", info_name(rec))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;
    use crate::format::torrent::PieceHasher;

    /// A torrent of `data`, rendered.
    fn torrent_of(data: &[u8]) -> (Info, Vec<u8>) {
        let mut h = PieceHasher::new(data.len() as u64);
        h.update(data);
        let info = h.finish("x.tar");
        let bytes = info.render(&[], &[]);
        (info, bytes)
    }

    /// A loopback HTTP server that answers its first `n` requests with `body`; its URL.
    fn serve(body: Vec<u8>, n: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        url
    }

    #[test]
    fn a_torrent_that_contradicts_the_index_passes_to_the_next_server_issue_25_finding_4() {
        let (good, good_bytes) = torrent_of(b"the signed object");
        let (_, bad_bytes) = torrent_of(b"something else entirely");
        let mut rec = crate::server::catalog::tests::record("s1", "1.0.0", 0, 1);
        rec.infohash = good.infohash();
        rec.size = good.length;
        let (bad_url, good_url) = (serve(bad_bytes.clone(), 1), serve(good_bytes.clone(), 1));
        let url = |u: &str| ServerUrl::parse("test", u).unwrap();
        let servers = [url(&bad_url), url(&good_url)];
        let (got, passed) = fetch_torrent_first(&servers, Duration::from_secs(10), &rec);
        assert_eq!(got.unwrap().bytes, good_bytes);
        assert_eq!(passed.len(), 1);
        assert!(passed[0].is_attack());
        assert!(passed[0].to_string().starts_with(&bad_url), "{}", passed[0]);
        // When no server sends a good one, the attack is the error.
        let only_bad = [url(&serve(bad_bytes, 1))];
        let (got, _) = fetch_torrent_first(&only_bad, Duration::from_secs(10), &rec);
        assert!(got.unwrap_err().is_attack());
    }
}
