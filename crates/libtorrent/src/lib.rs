//! `dist-libtorrent`: a small safe binding to libtorrent-rasterbar 2.0 (Debian 12: 2.0.8), for
//! dist's client BitTorrent engine. A [`Session`] adds torrents from .torrent bytes (optionally
//! in seed mode, from resume data, without web seeds, with a stripe of pieces first), connects
//! them to peers, reports their [`Status`], saves resume data and removes them.
//!
//! Built with `cxx`: the bridge is in `bridge.rs`, the C++ shim (written for this crate) in
//! `cpp/`; libtorrent is found with pkg-config (`libtorrent-rasterbar`) and linked dynamically. No
//! hand-written `unsafe` in the Rust code (`unsafe_code` is denied; only the cxx bridge module,
//! whose generated glue is unsafe by nature, is exempt).
//!
//! # Settings and why
//!
//! Every session gets:
//! - `enable_dht`, `enable_lsd`, `enable_upnp`, `enable_natpmp` = false: dist tells each torrent
//!   its peers ([`Session::connect_peer`], or its tracker); a package manager must not announce
//!   what it installs to the DHT or the LAN, nor open ports on the user's router.
//! - `listen_interfaces` = `IP:PORT` of [`Config::bind`] / [`Config::port`] (port 0: any) and
//!   `outgoing_interfaces` = the bind IP (when not unspecified): listen and connect on that
//!   address only, so a test (or a network namespace) controls exactly where traffic goes.
//!   `listen_system_port_fallback` = false and `max_retry_port_bind` = 0: a busy fixed port is an
//!   error, not another port (by default libtorrent quietly tries the next 10 ports, then any).
//! - `enable_incoming_utp` / `enable_outgoing_utp` = [`Config::utp`]; TCP is always on.
//! - `unchoke_slots_limit` = [`Config::unchoke_slots_limit`], -1 by default: unlimited slots, so
//!   libtorrent unchokes an interested peer at once instead of at its next unchoke round (every
//!   15 s); a dist seed serves everyone who asks.
//! - `allow_multiple_connections_per_ip` = true: several peers behind one address (tests run
//!   several sessions on 127.0.0.1; hosts behind one NAT) may all connect.
//! - `max_web_seed_connections`, `urlseed_max_request_bytes`: from [`Config`], how hard a torrent
//!   pulls from a web seed (dist's repository mirrors).
//! - `upload_rate_limit` / `download_rate_limit` from [`Config`] (and [`Session::set_limits`]),
//!   with every address put in libtorrent's global peer class: by default loopback and private
//!   networks fall in a "local" class that ignores the limits.
//! - `alert_mask` = status | storage | error: only the alerts the shim reads (state changes,
//!   resume data, removal, deletion, listen failures), so the queue stays small.
//!
//! Torrents are added neither auto-managed (libtorrent's queue would keep only a few active and
//! pause the rest) nor with flags taken from resume data: [`AddOptions`] decides.
//!
//! # Bytes from peers and from web seeds
//!
//! libtorrent counts payload per connection (`peer_info::total_download`) and knows each one's
//! kind (`connection_type`: BitTorrent, url seed, http seed), but forgets a connection when it
//! closes — and it closes web seeds and seeds when the torrent completes. The shim therefore adds
//! a small torrent plugin: each connection's `on_disconnect` adds its final total to a per-torrent
//! tally by kind, and [`Session::status`] adds the live connections' totals from `get_peer_info`.
//! This is exact to the byte for payload received (redundant or hash-failed bytes included, as
//! in libtorrent's own total), and in a quiet torrent `downloaded_from_peers +
//! downloaded_from_web_seeds == downloaded`; while bytes flow the two readings are taken a few
//! microseconds apart from `downloaded`.

mod error;
// cxx's generated glue is `unsafe` (the FFI calls it wraps); this module holds only the bridge
// declaration, no hand-written unsafe code.
#[allow(unsafe_code)]
mod bridge;
mod session;
mod status;

pub use error::Error;
pub use session::{AddOptions, Config, InfoHash20, Session, WAIT};
pub use status::{State, Status};
