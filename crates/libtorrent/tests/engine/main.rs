//! dist-libtorrent against the real libtorrent: two sessions on 127.0.0.1 exchanging a file,
//! a web seed served by the test, resume data, piece priorities and errors. Hermetic: temporary
//! directories, ports picked by the OS, loopback only; every wait is bounded and polls a
//! condition on the torrent's status.

mod common;
mod errors;
mod resume;
mod stripe;
mod transfer;
mod web_seed;
