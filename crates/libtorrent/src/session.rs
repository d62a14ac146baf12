//! [`Session`]: one libtorrent session and the operations dist needs on its torrents, with its
//! [`Config`] and the [`AddOptions`] of one torrent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::bridge::ffi;
use crate::{Error, State, Status};

/// A torrent's v1 info hash (SHA-1 of its info dict); for a v2-only torrent, the truncated v2 hash.
pub type InfoHash20 = [u8; 20];

/// How long [`Session::resume_data`] and [`Session::remove`] wait for libtorrent's answer.
pub const WAIT: Duration = Duration::from_secs(10);

/// A session's settings (see the crate docs for why each is set as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The one address to listen on and connect from (`listen_interfaces`,
    /// `outgoing_interfaces`); unspecified (`0.0.0.0`, `::`) listens on all and connects from any.
    pub bind: IpAddr,
    /// Port to listen on; 0: any free port ([`Session::listen_port`] tells which).
    pub port: u16,
    /// uTP in and out, besides TCP.
    pub utp: bool,
    /// Upload slots; -1: unlimited, every interested peer is unchoked at once.
    pub unchoke_slots_limit: i32,
    /// Rate limits in bytes/s, 0 unlimited; they apply to every peer, loopback and LAN included.
    pub upload_limit: u64,
    pub download_limit: u64,
    /// Web seeds a torrent connects to at once (libtorrent's default: 3).
    pub max_web_seed_connections: u32,
    /// Largest HTTP range request to a web seed (libtorrent's default: 16 MiB).
    pub urlseed_max_request_bytes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            utp: true,
            unchoke_slots_limit: -1,
            upload_limit: 0,
            download_limit: 0,
            max_web_seed_connections: 3,
            urlseed_max_request_bytes: 16 * 1024 * 1024,
        }
    }
}

/// How to add one torrent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// Trust that the files are complete and correct: no hashing before seeding (libtorrent then
    /// checks each piece the first time a peer asks for it). For objects already verified.
    pub seed_mode: bool,
    /// Resume data from [`Session::resume_data`]: which pieces are on disk, so they are not
    /// hashed again. libtorrent 2.0.8 trusts it: for a complete torrent it only checks that each
    /// file exists and is not smaller than expected (no hashing, no mtime), so a changed byte goes
    /// unnoticed; check the files yourself (dist: the object's hash) before resuming a seed.
    pub resume: Option<Vec<u8>>,
    /// Add it paused ([`Session::set_paused`] lets it run).
    pub paused: bool,
    /// Use the torrent's web seeds (`url-list`, `httpseeds`); false drops them.
    pub web_seeds: bool,
    /// `(k, n)`: pieces `i` with `i % n == k` get top priority, the others the default one.
    pub stripe: Option<(u32, u32)>,
}

/// One libtorrent session. `Send + Sync`: the C++ session lives in the shim's table and every
/// call goes through the shim's locking. Dropping it shuts libtorrent down (it blocks until then).
#[derive(Debug)]
pub struct Session {
    id: u64,
}

fn rate(bytes_per_sec: u64) -> i32 {
    i32::try_from(bytes_per_sec).unwrap_or(i32::MAX)
}

fn saturating_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn wait_ms() -> u32 {
    u32::try_from(WAIT.as_millis()).unwrap_or(u32::MAX)
}

impl Session {
    /// Starts a session listening on `cfg.bind:cfg.port` only, with DHT, local service discovery,
    /// UPnP and NAT-PMP off: dist finds its peers itself and opens no ports on routers.
    pub fn new(cfg: &Config) -> Result<Session, Error> {
        let outgoing = if cfg.bind.is_unspecified() {
            String::new()
        } else {
            cfg.bind.to_string()
        };
        let settings = ffi::SessionConfig {
            listen_interfaces: SocketAddr::new(cfg.bind, cfg.port).to_string(),
            outgoing_interfaces: outgoing,
            utp: cfg.utp,
            unchoke_slots_limit: cfg.unchoke_slots_limit,
            upload_limit: rate(cfg.upload_limit),
            download_limit: rate(cfg.download_limit),
            max_web_seed_connections: saturating_i32(cfg.max_web_seed_connections),
            urlseed_max_request_bytes: saturating_i32(cfg.urlseed_max_request_bytes),
        };
        Ok(Session {
            id: ffi::session_new(&settings)?,
        })
    }

    /// The port the session listens on.
    pub fn listen_port(&self) -> u16 {
        ffi::listen_port(self.id)
    }

    /// Adds a torrent from its .torrent bytes, its files in `save_dir`; returns its info hash.
    pub fn add(
        &self,
        torrent: &[u8],
        save_dir: &Path,
        opts: &AddOptions,
    ) -> Result<InfoHash20, Error> {
        let save_path = save_dir.to_str().ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not UTF-8", save_dir.display()))
        })?;
        let (stripe_k, stripe_n) = opts.stripe.unwrap_or((0, 0));
        if opts.stripe.is_some() && stripe_k >= stripe_n {
            return Err(Error::InvalidArgument(format!(
                "stripe ({stripe_k}, {stripe_n}) needs k < n"
            )));
        }
        let params = ffi::AddParams {
            save_path: save_path.to_string(),
            seed_mode: opts.seed_mode,
            has_resume: opts.resume.is_some(),
            resume: opts.resume.clone().unwrap_or_default(),
            paused: opts.paused,
            web_seeds: opts.web_seeds,
            stripe_k,
            stripe_n,
        };
        let ih = ffi::add_torrent(self.id, torrent, &params)?;
        InfoHash20::try_from(ih.as_slice())
            .map_err(|_| Error::Libtorrent(format!("info hash of {} bytes", ih.len())))
    }

    /// The torrent's status (see [`Status`] for how bytes are told apart by source).
    pub fn status(&self, ih: &InfoHash20) -> Result<Status, Error> {
        Ok(ffi::torrent_status(self.id, ih)?.into())
    }

    /// Removes the torrent, and its files if `delete_files`; returns once libtorrent has done so
    /// (bounded by [`WAIT`]).
    pub fn remove(&self, ih: &InfoHash20, delete_files: bool) -> Result<(), Error> {
        Ok(ffi::remove_torrent(self.id, ih, delete_files, wait_ms())?)
    }

    /// Bencoded resume data (`write_resume_data_buf`), after asking libtorrent to flush its files
    /// and waiting for the answer (bounded by [`WAIT`]).
    pub fn resume_data(&self, ih: &InfoHash20) -> Result<Vec<u8>, Error> {
        Ok(ffi::resume_data(self.id, ih, wait_ms())?)
    }

    /// Drops every web seed of the torrent (closing their connections).
    pub fn remove_web_seeds(&self, ih: &InfoHash20) -> Result<(), Error> {
        Ok(ffi::remove_web_seeds(self.id, ih)?)
    }

    /// Pieces `i` with `i % n == k` get top priority (7), the others the default (4).
    pub fn prioritize_stripe(&self, ih: &InfoHash20, k: u32, n: u32) -> Result<(), Error> {
        Ok(ffi::prioritize_stripe(self.id, ih, k, n)?)
    }

    /// Every piece's priority, 0 (skip) ..= 7 (top), as libtorrent has them.
    pub fn piece_priorities(&self, ih: &InfoHash20) -> Result<Vec<u8>, Error> {
        Ok(ffi::piece_priorities(self.id, ih)?)
    }

    /// Pauses the torrent (closing its connections) or lets it run again.
    pub fn set_paused(&self, ih: &InfoHash20, paused: bool) -> Result<(), Error> {
        Ok(ffi::set_paused(self.id, ih, paused)?)
    }

    /// Connects the torrent to a peer at `addr`.
    pub fn connect_peer(&self, ih: &InfoHash20, addr: SocketAddr) -> Result<(), Error> {
        Ok(ffi::connect_peer(
            self.id,
            ih,
            &addr.ip().to_string(),
            addr.port(),
        )?)
    }

    /// New rate limits in bytes/s (0: unlimited), for every peer.
    pub fn set_limits(&self, upload: u64, download: u64) {
        ffi::set_limits(self.id, rate(upload), rate(download));
    }

    /// The states the torrent went through since it was added, from libtorrent's state-change
    /// alerts: the first state, then each new one (at most 64 entries). Shows, for instance,
    /// whether adding with resume data went through [`State::CheckingFiles`] (hashing).
    pub fn state_history(&self, ih: &InfoHash20) -> Result<Vec<State>, Error> {
        let states = ffi::state_history(self.id, ih)?;
        Ok(states.into_iter().map(State::from_lt).collect())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        ffi::session_free(self.id);
    }
}
