//! `ROOT/client.yaml`: where the repository is, which key signs it, how to download. Every key
//! is also a flag; the file and the flags are merged into a [`ClientConfig`], which is resolved
//! once into [`Settings`] with every default below.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::index::keys::PublicKey;
use crate::net::ServerUrl;

/// How objects are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Per object, when it is fetched: the swarm when peers hold or fetch it or the origin is
    /// busy, else a direct download (and the swarm from `auto_threshold` on, when one is set).
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

/// The client's BitTorrent engine (`engine` in client.yaml, `--engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// transmission-daemon 3.00 over its RPC: a private daemon per root downloads and seeds.
    Transmission,
    /// libtorrent-rasterbar 2.0, linked in: the installing process downloads, a background
    /// `dist daemon` per root seeds what was installed. The default: faster in nearly every
    /// cell of `cargo xtask bench transport` (ARCHITECTURE.md, issue 20).
    #[default]
    Libtorrent,
}

impl Engine {
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Transmission => "transmission",
            Engine::Libtorrent => "libtorrent",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Engine> {
        match s {
            "transmission" => Ok(Engine::Transmission),
            "libtorrent" => Ok(Engine::Libtorrent),
            _ => bail!("engine `{s}` is not one of libtorrent, transmission"),
        }
    }
}

/// A transport an object is actually fetched with, once `auto` has been decided for its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fetcher {
    Torrent,
    Http,
}

impl std::fmt::Display for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fetcher::Torrent => "torrent",
            Fetcher::Http => "http",
        })
    }
}

/// Why an object is fetched the way it is: `install --json` prints it as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// `transport: torrent|http` (or `--transport`) says so.
    Configured,
    /// `auto`, and at least `auto_threshold` bytes (set by the user): the swarm whatever else
    /// goes on.
    Large { threshold: u64 },
    /// `auto`: decided when it is fetched (the swarm's and the origin's state), whatever its
    /// size.
    Small,
    /// `auto`, and the tracker knows peers fetching it now (a crowd).
    Swarm { peers: u64 },
    /// `auto`, smaller, no swarm, and the origin admitted a direct download.
    Lone,
    /// `auto`, smaller, and the origin refused a whole-object download (503: busy).
    OriginBusy,
    /// `auto`: the direct download was slow and a swarm formed; the swarm carries the rest from
    /// the bytes already in.
    Handover { peers: u64, have: u64 },
}

impl Why {
    pub fn text(&self, fetcher: Fetcher) -> String {
        match self {
            Why::Configured => format!("transport {fetcher} configured"),
            Why::Large { threshold } => {
                format!("at least auto_threshold ({}): the swarm", crate::text::size(*threshold))
            }
            Why::Small => {
                format!("auto: {fetcher} unless the swarm or the origin's load says otherwise")
            }
            Why::Swarm { peers } => format!(
                "the tracker knows {} fetching it now: a crowd, the swarm carries it",
                crate::text::count(*peers, "peer")
            ),
            Why::Lone => "no crowd fetching it, and the origin admitted a direct download".into(),
            Why::Handover { peers, have } => format!(
                "the direct download was slow and the tracker knows {}: the swarm carries the rest ({} were in)",
                crate::text::count(*peers, "peer"),
                crate::text::size(*have)
            ),
            Why::OriginBusy => {
                "the origin is busy (it refused a whole-object download): the swarm carries it"
                    .into()
            }
        }
    }
}

// Every default of the client, in one place.

// `auto_threshold` has no default any more (issue 20; it was 64 MiB): a lone client of a fast
// origin gets even a 512 MiB object over HTTP at line speed (transmission needs ~10 s before a
// peer sends its first byte), and a crowd goes to the swarm through the origin's admission
// (`503`) or the tracker's scrape, whatever the size.
/// Warn when the index is older than this (one week).
pub const STALE_AFTER_SECS: u64 = 7 * 24 * 3600;
/// Largest index accepted.
pub const MAX_INDEX_SIZE: u64 = 64 << 20;
/// How long a download may take before it is given up.
pub const FETCH_TIMEOUT_SECS: u64 = 600;
/// The default `resolve_timeout`: how long one dependency resolution may run.
pub const RESOLVE_TIMEOUT_SECS: u64 = 30;
/// How long an install or uninstall script may run before its process group is killed.
pub const SCRIPT_TIMEOUT_SECS: u64 = 300;
/// Default upload cap of the client's daemon, kB/s (1000 bytes): 100 Mbit/s, so a machine that
/// seeds never gives all of a fast uplink away; `upload_limit: 0` lifts it.
pub const DEFAULT_UPLOAD_LIMIT: u32 = 12_500;
/// How long one HTTP request (index, signature, `.torrent`) may stay silent.
pub const HTTP_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL of the repository's HTTP server.
    pub server_url: Option<String>,
    /// More servers of the same repository (mirrors), tried in order after `server_url`: the
    /// signature and the digests decide what is trusted, never which server sent it.
    pub server_urls: Option<Vec<String>>,
    /// The repository's minisign public key (base64 line).
    pub public_key: Option<String>,
    /// Address the client's transmission-daemon binds and announces from.
    pub bind_address: Option<String>,
    pub transport: Option<Transport>,
    /// The BitTorrent engine: `libtorrent` or `transmission`.
    pub engine: Option<Engine>,
    /// RPC URL of an existing transmission-daemon to use instead of a private one.
    pub rpc_url: Option<String>,
    /// Upload cap (kB/s) of the private daemon; 0 for none (default `DEFAULT_UPLOAD_LIMIT`).
    pub upload_limit: Option<u32>,
    /// Download cap (kB/s) of every transfer of an install: BitTorrent (either engine) and
    /// HTTP; 0 or unset for none.
    pub download_limit: Option<u32>,
    /// Whether installed objects keep seeding (default true); false: leech only.
    pub seed: Option<bool>,
    /// Size from which `auto` always picks BitTorrent (default: none, decided per object).
    pub auto_threshold: Option<u64>,
    /// Warn when the index is older than this many seconds (default one week).
    pub stale_after: Option<u64>,
    /// Largest index accepted, in bytes (default 64 MiB).
    pub max_index_size: Option<u64>,
    /// Seconds to wait for a download before giving up (default 600).
    pub fetch_timeout: Option<u64>,
    /// Seconds an install or uninstall script may run (default 300).
    pub script_timeout: Option<u64>,
    /// Seconds one HTTP request to the server may take (default 60).
    pub http_timeout: Option<u64>,
    /// Seconds dependency resolution may take before it gives up (default 30).
    pub resolve_timeout: Option<u64>,
    /// Several repositories, each with its own servers, key and priority (instead of
    /// `server_url`, `server_urls` and `public_key`, which are one repository named `default`).
    pub repositories: Option<Vec<RepositoryConfig>>,
}

/// One entry of `repositories:` in client.yaml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// What `install REPO/NAME` and every message call it.
    pub name: String,
    pub server_url: Option<String>,
    pub server_urls: Option<Vec<String>>,
    /// Its minisign public key (base64 line): its index is verified with this key only.
    pub public_key: String,
    /// The larger wins when several repositories have a matching version (default 0).
    #[serde(default)]
    pub priority: i64,
    /// Names only this repository may provide, whatever the priorities (issue 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
}

/// A client configuration that cannot be used (unreadable or malformed client.yaml, a bad flag
/// value, a URL or key that is not one): what `--json` reports as kind `config`. The message
/// is the whole explanation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `e`, explained as it would be printed, as a configuration error.
    pub fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(ConfigError(format!("{e:#}")))
    }
}

/// The configuration file of a client root.
pub fn config_path(root: &Path) -> PathBuf {
    root.join("client.yaml")
}

impl ClientConfig {
    pub fn load(root: &Path) -> Result<ClientConfig> {
        let path = config_path(root);
        match std::fs::read_to_string(&path) {
            Ok(text) => ClientConfig::parse(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Parses the text of a client.yaml; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<ClientConfig> {
        serde_yaml::from_str(text)
            .with_context(|| format!("{}: invalid client configuration", path.display()))
    }

    /// Every key with its default value (`None` where there is none): what `config show`
    /// reports for a key nobody set.
    pub fn defaults() -> ClientConfig {
        ClientConfig {
            transport: Some(Transport::default()),
            engine: Some(Engine::default()),
            upload_limit: Some(DEFAULT_UPLOAD_LIMIT),
            download_limit: Some(0),
            seed: Some(true),
            stale_after: Some(STALE_AFTER_SECS),
            max_index_size: Some(MAX_INDEX_SIZE),
            fetch_timeout: Some(FETCH_TIMEOUT_SECS),
            script_timeout: Some(SCRIPT_TIMEOUT_SECS),
            http_timeout: Some(HTTP_TIMEOUT_SECS),
            resolve_timeout: Some(RESOLVE_TIMEOUT_SECS),
            ..ClientConfig::default()
        }
    }

    /// Every value made concrete: defaults filled in, addresses parsed, server URLs and public
    /// keys checked (a malformed one is an error now, with the fix, not after a download).
    /// What is required only by some commands (the server, the key) stays optional here and is
    /// asked for where needed. `path` is the configuration file messages name.
    pub fn resolve(self, path: &Path) -> Result<Settings> {
        let servers = server_list(
            (self.server_url.clone(), "server_url"),
            (self.server_urls.clone(), "server_urls"),
        )?;
        let public_key = self
            .public_key
            .as_deref()
            .map(|k| parse_key("public_key", k))
            .transpose()?;
        let bind_address = self
            .bind_address
            .as_deref()
            .map(|b| {
                b.parse::<Ipv4Addr>()
                    .with_context(|| format!("`bind_address`: `{b}` is not an IPv4 address"))
            })
            .transpose()?;
        let repositories = match self.repositories {
            None => vec![Repository {
                name: RepoName::default_name(),
                servers,
                public_key,
                priority: 0,
                packages: Default::default(),
                implicit: true,
                config: path.to_path_buf(),
            }],
            Some(list) => {
                if self.server_url.is_some()
                    || self.server_urls.is_some()
                    || self.public_key.is_some()
                {
                    bail!("`repositories` and `server_url`/`server_urls`/`public_key` (in client.yaml or as flags) are two ways to name the repository: use one (a `repositories` entry takes `name`, `server_url`, `public_key` and `priority`)");
                }
                repositories(list, path)?
            }
        };
        Ok(Settings {
            repositories,
            bind_address,
            transport: self.transport.unwrap_or_default(),
            engine: self.engine.unwrap_or_default(),
            rpc_url: self.rpc_url,
            upload_limit: match self.upload_limit.unwrap_or(DEFAULT_UPLOAD_LIMIT) {
                0 => None,
                n => Some(n),
            },
            download_limit: self.download_limit.filter(|n| *n > 0),
            seed: self.seed.unwrap_or(true),
            auto_threshold: self.auto_threshold,
            stale_after: self.stale_after.unwrap_or(STALE_AFTER_SECS),
            max_index_size: self.max_index_size.unwrap_or(MAX_INDEX_SIZE),
            fetch_timeout: Duration::from_secs(self.fetch_timeout.unwrap_or(FETCH_TIMEOUT_SECS)),
            script_timeout: Duration::from_secs(self.script_timeout.unwrap_or(SCRIPT_TIMEOUT_SECS)),
            http_timeout: Duration::from_secs(self.http_timeout.unwrap_or(HTTP_TIMEOUT_SECS)),
            resolve_timeout: Duration::from_secs(
                self.resolve_timeout.unwrap_or(RESOLVE_TIMEOUT_SECS),
            ),
        })
    }
}

/// The client's configuration, resolved once ([`ClientConfig::resolve`]): the rest of the client
/// sees only concrete values.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every repository, the highest `priority` first (in the order written among equals).
    pub repositories: Vec<Repository>,
    pub bind_address: Option<Ipv4Addr>,
    pub transport: Transport,
    pub engine: Engine,
    pub rpc_url: Option<String>,
    /// kB/s; `None`: unlimited.
    pub upload_limit: Option<u32>,
    /// kB/s; `None`: unlimited.
    pub download_limit: Option<u32>,
    pub seed: bool,
    pub auto_threshold: Option<u64>,
    pub stale_after: u64,
    pub max_index_size: u64,
    pub fetch_timeout: Duration,
    pub script_timeout: Duration,
    pub http_timeout: Duration,
    /// How long one resolution may take before it gives up.
    pub resolve_timeout: Duration,
}

/// `server_url`, then `server_urls` (`field` and `more_field` name them in errors), parsed,
/// without duplicates.
fn server_list(
    (first, field): (Option<String>, &str),
    (more, more_field): (Option<Vec<String>>, &str),
) -> Result<Vec<ServerUrl>> {
    let mut servers: Vec<ServerUrl> = Vec::new();
    let named = first.iter().map(|u| (u, field));
    for (u, f) in named.chain(more.iter().flatten().map(|u| (u, more_field))) {
        let s = ServerUrl::parse(f, u)?;
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    Ok(servers)
}

/// A server URL as the client will use it ([`ServerUrl::parse`]), checked only.
pub fn check_url(field: &str, url: &str) -> Result<()> {
    ServerUrl::parse(field, url).map(|_| ())
}

/// A minisign public key (the base64 line `dist key show` prints), checked before it is used.
pub fn check_key(field: &str, key: &str) -> Result<()> {
    parse_key(field, key).map(|_| ())
}

/// A minisign public key, parsed once where configuration is read.
fn parse_key(field: &str, key: &str) -> Result<PublicKey> {
    crate::index::sign::check_public_key(key)
        .map_err(anyhow::Error::from)
        .and_then(|()| PublicKey::parse(key.trim()))
        .map_err(|e| {
            anyhow::anyhow!("`{field}`: {e}: use the line `dist key show` prints on the repository")
        })
}

/// The `repositories:` entries checked (names, servers, keys) and ordered by priority.
fn repositories(list: Vec<RepositoryConfig>, path: &Path) -> Result<Vec<Repository>> {
    if list.is_empty() {
        bail!(
            "`repositories` is empty: list at least one {{name, server_url, public_key, priority}}"
        );
    }
    let mut out: Vec<Repository> = Vec::with_capacity(list.len());
    for (i, r) in list.into_iter().enumerate() {
        let name = RepoName::parse(&r.name).with_context(|| format!("`repositories[{i}].name`"))?;
        if out.iter().any(|o| o.name == name) {
            bail!("`repositories[{i}].name`: `{name}` is named twice");
        }
        let field = format!("repositories[{i}].server_url");
        let servers = server_list((r.server_url, &field), (r.server_urls, &field))?;
        let public_key = parse_key(&format!("repositories[{i}].public_key"), &r.public_key)?;
        if servers.is_empty() {
            bail!("`repositories[{i}]` ({name}) has no `server_url`");
        }
        let mut packages = std::collections::BTreeSet::new();
        for (j, p) in r.packages.iter().flatten().enumerate() {
            packages.insert(
                crate::format::ids::PackageName::parse(p)
                    .with_context(|| format!("`repositories[{i}].packages[{j}]`"))?,
            );
        }
        out.push(Repository {
            name,
            servers,
            public_key: Some(public_key),
            priority: r.priority,
            packages,
            implicit: false,
            config: path.to_path_buf(),
        });
    }
    // Stable: equal priorities keep the order written.
    out.sort_by_key(|r| std::cmp::Reverse(r.priority));
    Ok(out)
}

/// A repository's name: what `install REPO/NAME` and messages call it, and the directory of its
/// index (`ROOT/repos/NAME`): lowercase letters, digits, `-`, `_` and `.`, at most 64, not
/// starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<RepoName> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !ok {
            bail!("`{s}` is not a repository name (lowercase letters, digits, `-`, `_`, `.`; 1 to 64; not starting with `.`)");
        }
        Ok(RepoName(s.to_string()))
    }

    /// The name of the one repository `server_url` and `public_key` describe.
    pub fn default_name() -> RepoName {
        RepoName("default".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One repository the client installs from.
#[derive(Debug, Clone)]
pub struct Repository {
    pub name: RepoName,
    /// Its origin and mirrors, in the order to try them.
    servers: Vec<ServerUrl>,
    public_key: Option<PublicKey>,
    pub priority: i64,
    /// `packages:`: names only this repository may provide.
    pub packages: std::collections::BTreeSet<crate::format::ids::PackageName>,
    /// The single-repository form (`server_url` + `public_key`): its index is `ROOT/index`.
    pub implicit: bool,
    /// The configuration file it comes from (for messages).
    config: PathBuf,
}

impl Repository {
    /// Every server of the repository, in the order to try them (never empty).
    pub fn servers(&self) -> Result<&[ServerUrl]> {
        if self.servers.is_empty() {
            bail!(
                "no `server_url`: set it in {} (server_url: http://HOST:PORT), or run `dist init --server-url URL --public-key KEY`",
                self.config.display()
            );
        }
        Ok(&self.servers)
    }

    pub fn public_key(&self) -> Result<&PublicKey> {
        self.public_key.as_ref().with_context(|| {
            format!(
                "no `public_key` for repository `{}`: set it in {} to the output of `dist key show` on the repository",
                self.name,
                self.config.display()
            )
        })
    }
}

impl Settings {
    /// The repository called `name`.
    pub fn repository(&self, name: &str) -> Result<&Repository> {
        self.repositories
            .iter()
            .find(|r| r.name.as_str() == name)
            .with_context(|| {
                let names: Vec<&str> = self.repositories.iter().map(|r| r.name.as_str()).collect();
                format!("no repository `{name}` (configured: {})", names.join(", "))
            })
    }

    /// The transport for an object of `size` bytes, as far as it can be known without asking
    /// anyone: configured, or `auto` by size (a small object may still go to the swarm when it
    /// is fetched, see [`Why::Small`]).
    pub fn fetcher_for(&self, size: u64) -> (Fetcher, Why) {
        match self.transport {
            Transport::Auto if self.auto_threshold.is_some_and(|t| size >= t) => (
                Fetcher::Torrent,
                Why::Large {
                    threshold: self.auto_threshold.unwrap_or_default(),
                },
            ),
            Transport::Auto => (Fetcher::Http, Why::Small),
            Transport::Http => (Fetcher::Http, Why::Configured),
            Transport::Torrent => (Fetcher::Torrent, Why::Configured),
        }
    }
}
