//! The only module that speaks to transmission-daemon: it writes the daemon's settings, starts
//! and stops it, and drives it over its JSON RPC (blocking, one keep-alive connection).
//!
//! Written against transmission 3.00 (RPC version 16), whose quirks shape the code: `torrent-get`
//! always gets an explicit field list (`types.rs`), the 409 session-id dance is handled in
//! [`Rpc::call`] (`rpc.rs`), a port already in use does not make the daemon exit (so it is checked
//! before the start), and a graceful stop pauses every torrent first so the tracker hears
//! "stopped" (`daemon.rs`).

mod daemon;
mod kick;
mod rpc;
mod state;
mod types;

pub use daemon::{
    settings, start_daemon, stop_daemon_by_pid, write_settings, DaemonConfig, DaemonHandle,
};
pub use kick::{Kicker, KICK_EVERY};
pub use rpc::{rpc_url, Rpc};
pub use state::{forget, preload, stored_torrents, Preload};
pub use types::{
    Peer, SeederTorrent, TorrentState, TorrentStatus, TrackerStat, Uploaded, SEEDER_FIELDS,
    TORRENT_FIELDS,
};
