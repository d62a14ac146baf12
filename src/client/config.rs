//! `ROOT/client.yaml`: where the repository is, which key signs it, how to download. Every key
//! is also a flag.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// How objects are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// BitTorrent above `auto_threshold` bytes, HTTP below.
    #[default]
    Auto,
    Torrent,
    Http,
}

impl std::str::FromStr for Transport {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Transport> {
        match s {
            "auto" => Ok(Transport::Auto),
            "torrent" => Ok(Transport::Torrent),
            "http" => Ok(Transport::Http),
            _ => bail!("transport `{s}` is not one of auto, torrent, http"),
        }
    }
}

/// Default size above which `auto` uses BitTorrent. Below it a direct HTTP GET from the web seed
/// wins: transmission needs ~10 s before a peer sends the first byte (field notes), while HTTP
/// fetches a 64 MiB object in well under that on the same link.
pub const AUTO_THRESHOLD: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL of the repository's HTTP server.
    pub server_url: Option<String>,
    /// The repository's minisign public key (base64 line).
    pub public_key: Option<String>,
    /// Address the client's transmission-daemon binds and announces from.
    pub bind_address: Option<String>,
    pub transport: Option<Transport>,
    /// RPC URL of an existing transmission-daemon to use instead of a private one.
    pub rpc_url: Option<String>,
    /// Upload cap (kB/s) of the private daemon while it seeds installed objects.
    pub upload_limit: Option<u32>,
    /// Size above which `auto` picks BitTorrent.
    pub auto_threshold: Option<u64>,
    /// Warn when the index is older than this many seconds (default one week).
    pub stale_after: Option<u64>,
    /// Largest index accepted, in bytes (default 64 MiB).
    pub max_index_size: Option<u64>,
    /// Seconds to wait for a download before giving up (default 600).
    pub fetch_timeout: Option<u64>,
}

impl ClientConfig {
    pub fn load(root: &Path) -> Result<ClientConfig> {
        let path = root.join("client.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_yaml::from_str(&text)
                .with_context(|| format!("{}: invalid client configuration", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn server_url(&self) -> Result<String> {
        self.server_url
            .as_deref()
            .map(|s| s.trim_end_matches('/').to_string())
            .context("no `server_url`: set it in ROOT/client.yaml (server_url: http://HOST:PORT)")
    }

    pub fn public_key(&self) -> Result<&str> {
        self.public_key
            .as_deref()
            .context("no `public_key`: set it in ROOT/client.yaml to the output of `dist key show` on the repository")
    }
}
