//! The blocking client of transmission's JSON RPC: one keep-alive connection, the 409
//! session-id dance, a timeout on every request, and typed torrent actions and queries.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::types::{
    SeederTorrent, TorrentStatus, TorrentTrackers, Uploaded, SEEDER_FIELDS, TORRENT_FIELDS,
    TRACKER_FIELDS, UPLOADED_FIELDS,
};
use crate::format::ids::InfoHash;

/// Per-request timeout of ordinary RPC calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Per-request timeout of the readiness probe.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const SESSION_HEADER: &str = "X-Transmission-Session-Id";

/// The RPC URL of a daemon on this host.
pub fn rpc_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/transmission/rpc")
}

/// A transmission RPC client: one keep-alive agent, the session id kept between calls, a
/// timeout on every request.
pub struct Rpc {
    url: String,
    agent: ureq::Agent,
    session_id: Mutex<Option<String>>,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc").field("url", &self.url).finish()
    }
}

impl Rpc {
    /// A client for the RPC at `url` (e.g. `http://127.0.0.1:9091/transmission/rpc`). The host
    /// must be an IP or `localhost`: transmission answers other names with 421.
    pub fn new(url: &str) -> Rpc {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(CALL_TIMEOUT)
            .max_idle_connections_per_host(2)
            .build();
        Rpc {
            url: url.to_string(),
            agent,
            session_id: Mutex::new(None),
        }
    }

    /// A client for the daemon whose RPC listens on 127.0.0.1:`port`.
    pub fn local(port: u16) -> Rpc {
        Rpc::new(&rpc_url(port))
    }

    /// Calls `method` and returns its `arguments`; a `result` other than "success" is an error
    /// carrying that string.
    pub fn call(&self, method: &str, arguments: Value) -> Result<Value> {
        self.call_with_timeout(method, arguments, CALL_TIMEOUT)
    }

    fn call_with_timeout(
        &self,
        method: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value> {
        let body = json!({ "method": method, "arguments": arguments }).to_string();
        // The first call learns the session id from a 409; one more retry covers a daemon
        // that restarted between two calls.
        for _ in 0..3 {
            let id = self.session_id().clone();
            let mut req = self
                .agent
                .post(&self.url)
                .timeout(timeout)
                .set("Content-Type", "application/json");
            if let Some(id) = &id {
                req = req.set(SESSION_HEADER, id);
            }
            match req.send_string(&body) {
                Ok(resp) => {
                    let reply: Value =
                        serde_json::from_reader(resp.into_reader()).with_context(|| {
                            format!("{method}: cannot decode the reply of {}", self.url)
                        })?;
                    return check_result(method, reply);
                }
                Err(ureq::Error::Status(409, resp)) => {
                    let new_id = resp.header(SESSION_HEADER).map(str::to_string);
                    // Read the body so the connection goes back to the pool.
                    let _ = resp.into_string();
                    match new_id {
                        Some(new_id) => *self.session_id() = Some(new_id),
                        None => bail!("{method}: {} answered 409 without a session id", self.url),
                    }
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let text: String = text.chars().take(200).collect();
                    bail!("{method}: {} answered http {code}: {text}", self.url);
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(anyhow!(t)).with_context(|| {
                        format!("{method}: cannot reach transmission rpc at {}", self.url)
                    });
                }
            }
        }
        bail!("{method}: {} keeps changing its session id", self.url)
    }

    fn session_id(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.session_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the daemon answers `session-get` (within 2 s).
    pub fn ping(&self) -> bool {
        self.call_with_timeout(
            "session-get",
            json!({ "fields": ["version"] }),
            PING_TIMEOUT,
        )
        .is_ok()
    }

    /// Adds a torrent from its `.torrent` bytes, with its data in (or downloading to)
    /// `download_dir`; returns the infohash. A torrent the daemon already has is not an error.
    pub fn add_torrent(
        &self,
        metainfo: &[u8],
        download_dir: &Path,
        paused: bool,
    ) -> Result<InfoHash> {
        let args = json!({
            "metainfo": base64(metainfo),
            "download-dir": utf8(download_dir)?,
            "paused": paused,
        });
        let reply = self.call("torrent-add", args)?;
        added_hash(&reply)
    }

    /// Adds a magnet link downloading to `download_dir`; returns the infohash.
    pub fn add_magnet(&self, magnet: &str, download_dir: &Path) -> Result<InfoHash> {
        let args = json!({ "filename": magnet, "download-dir": utf8(download_dir)? });
        let reply = self.call("torrent-add", args)?;
        added_hash(&reply)
    }

    /// The status of the torrents with these infohashes (those the daemon does not have are
    /// simply absent); no hashes means none, not all.
    pub fn get(&self, hashes: &[InfoHash]) -> Result<Vec<TorrentStatus>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        self.torrent_get(json!({ "ids": hashes, "fields": TORRENT_FIELDS }))
    }

    /// The status of every torrent the daemon has.
    pub fn all(&self) -> Result<Vec<TorrentStatus>> {
        self.torrent_get(json!({ "fields": TORRENT_FIELDS }))
    }

    /// Every torrent the daemon has, with the few fields a seeder's health needs: one call,
    /// whatever the number of torrents.
    pub fn seeder_state(&self) -> Result<Vec<SeederTorrent>> {
        self.torrent_get(json!({ "fields": SEEDER_FIELDS }))
    }

    /// How many bytes the daemon sent to peers for each of these torrents (those it does not have
    /// are absent), asked with the short timeout of [`Rpc::ping`]: a web page waits for it.
    pub fn uploaded(&self, hashes: &[InfoHash]) -> Result<Vec<Uploaded>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let args = json!({ "ids": hashes, "fields": UPLOADED_FIELDS });
        let mut reply = self.call_with_timeout("torrent-get", args, PING_TIMEOUT)?;
        serde_json::from_value(reply["torrents"].take())
            .with_context(|| format!("torrent-get: cannot decode the torrents of {}", self.url))
    }

    /// Points the first tracker of each of these torrents at `announce_url`, in one call
    /// (`torrent-set` `trackerReplace`, RPC version 16; it rewrites the daemon's copy of each
    /// `.torrent`, so a restart keeps it). Torrents without a tracker are not changed.
    pub fn replace_first_tracker(&self, hashes: &[InfoHash], announce_url: &str) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let args = json!({ "ids": hashes, "trackerReplace": [0, announce_url] });
        self.call("torrent-set", args).map(drop)
    }

    /// The torrents among `hashes` whose last announce to some tracker succeeded.
    pub fn announced(&self, hashes: &[InfoHash]) -> Result<BTreeSet<InfoHash>> {
        let torrents = self.trackers(hashes)?;
        let ok = |t: &TorrentTrackers| t.tracker_stats.iter().any(|s| s.last_announce_succeeded);
        Ok(torrents
            .into_iter()
            .filter(ok)
            .map(|t| t.hash_string)
            .collect())
    }

    /// The announce state of the torrents with these infohashes; no hashes means none.
    pub(super) fn trackers(&self, hashes: &[InfoHash]) -> Result<Vec<TorrentTrackers>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        self.torrent_get(json!({ "ids": hashes, "fields": TRACKER_FIELDS }))
    }

    /// The announce state of every torrent the daemon has.
    pub(super) fn all_trackers(&self) -> Result<Vec<TorrentTrackers>> {
        self.torrent_get(json!({ "fields": TRACKER_FIELDS }))
    }

    fn torrent_get<T: DeserializeOwned>(&self, args: Value) -> Result<Vec<T>> {
        let mut reply = self.call("torrent-get", args)?;
        serde_json::from_value(reply["torrents"].take())
            .with_context(|| format!("torrent-get: cannot decode the torrents of {}", self.url))
    }

    /// Re-checks the local data of these torrents against their piece hashes.
    pub fn verify(&self, hashes: &[InfoHash]) -> Result<()> {
        self.act("torrent-verify", hashes)
    }

    /// Points a torrent at `dir` without moving anything (`torrent-set-location`, `move` false):
    /// its data is looked for there from now on.
    pub fn set_location(&self, hash: &InfoHash, dir: &Path) -> Result<()> {
        let args = json!({ "ids": [hash], "location": utf8(dir)?, "move": false });
        self.call("torrent-set-location", args).map(drop)
    }

    pub fn start(&self, hashes: &[InfoHash]) -> Result<()> {
        self.act("torrent-start", hashes)
    }

    pub fn stop(&self, hashes: &[InfoHash]) -> Result<()> {
        self.act("torrent-stop", hashes)
    }

    /// Stops every torrent the daemon has (each tells its trackers "stopped").
    pub(super) fn stop_all(&self) -> Result<()> {
        self.call("torrent-stop", json!({})).map(drop)
    }

    /// Forgets these torrents; with `delete_local_data` their files go too.
    pub fn remove(&self, hashes: &[InfoHash], delete_local_data: bool) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let args = json!({ "ids": hashes, "delete-local-data": delete_local_data });
        self.call("torrent-remove", args).map(drop)
    }

    /// Runs an action on these torrents; an empty list does nothing (it would mean "all" to
    /// transmission).
    fn act(&self, method: &str, hashes: &[InfoHash]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.call(method, json!({ "ids": hashes })).map(drop)
    }
}

fn check_result(method: &str, mut reply: Value) -> Result<Value> {
    match reply["result"].as_str() {
        Some("success") => Ok(reply["arguments"].take()),
        Some(other) => bail!("transmission refused {method}: {other}"),
        None => bail!("{method}: the reply has no result: {reply}"),
    }
}

fn added_hash(reply: &Value) -> Result<InfoHash> {
    let t = reply
        .get("torrent-added")
        .or_else(|| reply.get("torrent-duplicate"))
        .ok_or_else(|| anyhow!("torrent-add: the reply names no torrent: {reply}"))?;
    let hash = t["hashString"]
        .as_str()
        .ok_or_else(|| anyhow!("torrent-add: the reply has no hashString: {reply}"))?;
    InfoHash::parse(hash).context("torrent-add: the reply's hashString")
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow!("{}: transmission needs a UTF-8 path", path.display()))
}

/// Standard base64 with padding (RFC 4648), as `torrent-add`'s `metainfo` wants it.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_yields_the_arguments() {
        let reply = json!({"result": "success", "arguments": {"torrents": []}});
        let args = check_result("torrent-get", reply).unwrap();
        assert_eq!(args, json!({"torrents": []}));
    }

    #[test]
    fn refused_calls_carry_the_result_string() {
        let reply = json!({"result": "duplicate torrent", "arguments": {}});
        let e = check_result("torrent-add", reply).unwrap_err();
        assert_eq!(
            e.to_string(),
            "transmission refused torrent-add: duplicate torrent"
        );
    }

    #[test]
    fn duplicates_count_as_added() {
        let ab = "ab".repeat(20);
        let reply = json!({"torrent-duplicate": {"hashString": ab, "id": 1, "name": "x"}});
        assert_eq!(added_hash(&reply).unwrap().to_hex(), ab);
        let bad = json!({"torrent-added": {"hashString": "../x", "id": 1, "name": "x"}});
        assert!(added_hash(&bad).is_err());
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn an_rpc_url_is_on_loopback() {
        assert_eq!(rpc_url(9091), "http://127.0.0.1:9091/transmission/rpc");
    }
}
