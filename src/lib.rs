//! dist: a package manager that ships content-addressed packages peer to peer over BitTorrent.
//!
//! The library never prints; the binary (`src/main.rs` and `src/commands/`) parses arguments,
//! draws progress and maps errors to exit codes. See ARCHITECTURE.md for the code map.

pub mod bencode;
pub mod canon;
pub mod client;
pub mod fsx;
pub mod index;
pub mod lock;
pub mod manifest;
pub mod object;
pub mod pack;
pub mod package;
pub mod repo;
pub mod server;
pub mod sign;
pub mod supervise;
pub mod torrent;
pub mod tracker;
pub mod transmission;
