//! The package and object formats (store-format.md §1–4): manifests and package directories,
//! the ustar header layout and the canonical archive bytes, the one-pass packer, bencoding,
//! torrents and magnet links, and the identifiers every other module uses.

pub mod bencode;
pub mod canon;
pub mod ids;
pub mod manifest;
pub mod pack;
pub mod package;
pub mod torrent;
pub mod ustar;
