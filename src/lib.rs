//! dist: a package manager that ships content-addressed packages peer to peer over BitTorrent.
//!
//! The library never prints; the binary (`src/main.rs` and `src/commands/`) parses arguments,
//! draws progress and maps errors to exit codes. See ARCHITECTURE.md for the code map: each
//! folder below is one section of it.

pub mod client;
pub mod clock;
pub mod daemons;
pub mod format;
pub mod index;
pub mod net;
pub mod object;
pub(crate) mod process;
pub mod repo;
pub mod server;
pub mod store;
pub mod text;
pub mod transfer;
