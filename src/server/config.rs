//! `dist serve`'s configuration: `ROOT/server.yaml` with the flags on top (`ServerFile`),
//! resolved once into `ServeConfig` (addresses parsed, defaults filled in, the announce URL
//! and web seeds decided).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::ledger;
use crate::index::record::Distribution;
use crate::net::ServerUrl;
use crate::repo::mirror::Upstream;

/// The default size of the hot set: how many of the newest package versions the seeder holds
/// (and, separately, how many objects clients asked for). transmission 3.00 announces at most
/// 48 torrents at a time (`MAX_CONCURRENT_TASKS` in its announcer), and `/health` waits until
/// every hot torrent has announced; see ARCHITECTURE.md for the figures behind this number.
pub const DEFAULT_HOT_SET: usize = 500;

/// The default number of whole-object downloads the origin serves at once. A lone client never
/// meets the limit; in a crowd, the clients beyond it are told (503) to take the swarm, which
/// the origin feeds once instead of sending every client a copy.
pub const DEFAULT_HTTP_SLOTS: usize = 2;

/// The default number of web-seed range requests per object the origin serves at once (0: no
/// limit); see ARCHITECTURE.md for what was measured.
pub const DEFAULT_WEBSEED_SLOTS: usize = 0;

/// `ROOT/server.yaml`; every key is also a flag of `dist serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub announce_url: Option<String>,
    pub http: Option<String>,
    pub tracker: Option<String>,
    pub bind: Option<String>,
    pub public_url: Option<String>,
    pub peer_port: Option<u16>,
    pub rpc_port: Option<u16>,
    pub upload_limit: Option<u32>,
    pub hot_set: Option<usize>,
    /// How many index deltas stay published.
    pub index_retention: Option<usize>,
    /// How many whole-object downloads the origin serves at once (more get 503).
    pub http_slots: Option<usize>,
    /// How many web-seed (range) requests per object the origin serves at once; 0: no limit.
    pub webseed_slots: Option<usize>,
    /// Seconds a piece sent through the web seed counts as in the swarm (repeat requests for it
    /// get 503); 0 (the default): every range request is served.
    pub webseed_window: Option<u64>,
    /// Mirror this repository (its base URL) instead of publishing one.
    pub mirror_of: Option<String>,
    /// The mirrored repository's public key (base64, or a file holding it).
    pub public_key: Option<String>,
    /// Seconds between two checks of the mirrored repository.
    pub mirror_interval: Option<u64>,
    /// More web-seed base URLs (mirrors of this repository) listed in every `.torrent`.
    pub web_seeds: Option<Vec<String>>,
}

impl ServerFile {
    pub fn load(root: &Path) -> Result<ServerFile> {
        let path = root.join("server.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_yaml::from_str(&text)
                .with_context(|| format!("{}: invalid server configuration", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServerFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Flags (`over`) win over the file.
    pub fn merge(self, over: ServerFile) -> ServerFile {
        ServerFile {
            announce_url: over.announce_url.or(self.announce_url),
            http: over.http.or(self.http),
            tracker: over.tracker.or(self.tracker),
            bind: over.bind.or(self.bind),
            public_url: over.public_url.or(self.public_url),
            peer_port: over.peer_port.or(self.peer_port),
            rpc_port: over.rpc_port.or(self.rpc_port),
            upload_limit: over.upload_limit.or(self.upload_limit),
            hot_set: over.hot_set.or(self.hot_set),
            index_retention: over.index_retention.or(self.index_retention),
            http_slots: over.http_slots.or(self.http_slots),
            webseed_slots: over.webseed_slots.or(self.webseed_slots),
            webseed_window: over.webseed_window.or(self.webseed_window),
            mirror_of: over.mirror_of.or(self.mirror_of),
            public_key: over.public_key.or(self.public_key),
            mirror_interval: over.mirror_interval.or(self.mirror_interval),
            web_seeds: over.web_seeds.or(self.web_seeds),
        }
    }
}

/// How often (seconds) a mirror asks the upstream for a new serial: a conditional GET, answered
/// 304 while nothing changed.
pub const DEFAULT_MIRROR_INTERVAL: u64 = 10;

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http: SocketAddr,
    pub tracker: SocketAddr,
    pub bind: Option<Ipv4Addr>,
    pub public_url: String,
    pub announce_url: String,
    pub peer_port: u16,
    pub rpc_port: u16,
    pub upload_limit: Option<u32>,
    /// How many newest versions the seeder holds, and how many requested objects besides.
    pub hot_set: usize,
    pub index_retention: usize,
    pub http_slots: usize,
    pub webseed_slots: usize,
    /// How long a piece sent through the web seed counts as in the swarm ([`ledger`]).
    pub webseed_window: Duration,
    /// The repository this server mirrors, if it is a mirror.
    pub mirror: Option<Upstream>,
    /// Pause between two checks of the mirrored repository.
    pub mirror_interval: Duration,
    /// This server's web-seed bases: its public URL, then `web_seeds` (its mirrors).
    pub web_seeds: Vec<String>,
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("`{what}`: `{s}` is not an IP:PORT address"))
}

/// The announce URL when none is given: the tracker's address, except that a tracker on every
/// address (`0.0.0.0`) is announced at the public URL's host (a `0.0.0.0` in a `.torrent`
/// names no machine a peer could reach).
fn default_announce(tracker: SocketAddr, public_url: &str) -> String {
    let public_host = url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| {
            h.parse::<std::net::IpAddr>()
                .map_or(true, |ip| !ip.is_unspecified())
        });
    match public_host {
        Some(host) if tracker.ip().is_unspecified() => {
            format!("http://{host}:{}/announce", tracker.port())
        }
        _ => format!("http://{tracker}/announce"),
    }
}

impl ServeConfig {
    pub fn resolve(f: ServerFile) -> Result<ServeConfig> {
        let http = parse_addr("http", f.http.as_deref().unwrap_or("127.0.0.1:7380"))?;
        let tracker = parse_addr("tracker", f.tracker.as_deref().unwrap_or("127.0.0.1:6969"))?;
        let bind = f
            .bind
            .as_deref()
            .map(|b| {
                b.parse::<Ipv4Addr>()
                    .with_context(|| format!("`bind`: `{b}` is not an IPv4 address"))
            })
            .transpose()?;
        let public_url = f
            .public_url
            .unwrap_or_else(|| format!("http://{http}"))
            .trim_end_matches('/')
            .to_string();
        let announce_url = f
            .announce_url
            .unwrap_or_else(|| default_announce(tracker, &public_url));
        let peer_port = match f.peer_port {
            Some(p) => p,
            None => crate::process::free_port(
                &bind
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
            )?,
        };
        let rpc_port = match f.rpc_port {
            Some(p) => p,
            None => crate::process::free_port("127.0.0.1")?,
        };
        let mirror = match (&f.mirror_of, &f.public_key) {
            (Some(url), Some(key)) => Some(Upstream::new(url, key)?),
            (Some(_), None) => bail!(
                "`--mirror-of` needs `--public-key`: the mirrored repository's key (`dist key show` there)"
            ),
            (None, Some(_)) => bail!("`--public-key` is for a mirror: give `--mirror-of URL` too"),
            (None, None) => None,
        };
        let mut web_seeds = vec![public_url.clone()];
        for w in f.web_seeds.unwrap_or_default() {
            // Checked as every server URL is (scheme, host), without its trailing `/`.
            let w = ServerUrl::parse("web_seeds", &w)?.to_string();
            if !web_seeds.contains(&w) {
                web_seeds.push(w);
            }
        }
        Ok(ServeConfig {
            http,
            tracker,
            bind,
            public_url,
            announce_url,
            peer_port,
            rpc_port,
            upload_limit: f.upload_limit,
            hot_set: f.hot_set.unwrap_or(DEFAULT_HOT_SET),
            index_retention: f.index_retention.unwrap_or(crate::repo::DEFAULT_RETENTION),
            http_slots: f.http_slots.unwrap_or(DEFAULT_HTTP_SLOTS).max(1),
            webseed_slots: f.webseed_slots.unwrap_or(DEFAULT_WEBSEED_SLOTS),
            webseed_window: f
                .webseed_window
                .map_or(ledger::DEFAULT_WINDOW, Duration::from_secs),
            mirror,
            mirror_interval: Duration::from_secs(
                f.mirror_interval.unwrap_or(DEFAULT_MIRROR_INTERVAL).max(1),
            ),
            web_seeds,
        })
    }

    pub fn distribution(&self) -> Distribution {
        Distribution {
            trackers: vec![self.announce_url.clone()],
            public_url: Some(self.public_url.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::default_announce;

    #[test]
    fn a_tracker_on_every_address_is_announced_at_the_public_host() {
        let t = |s: &str| s.parse().unwrap();
        assert_eq!(
            default_announce(t("0.0.0.0:6969"), "http://repo.example:7380"),
            "http://repo.example:6969/announce"
        );
        assert_eq!(
            default_announce(t("10.0.0.1:6969"), "http://repo.example:7380"),
            "http://10.0.0.1:6969/announce"
        );
        // No public host to take: the listening address stays (and `serve` warns).
        assert_eq!(
            default_announce(t("0.0.0.0:6969"), "http://0.0.0.0:7380"),
            "http://0.0.0.0:6969/announce"
        );
    }
}
