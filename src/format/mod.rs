//! The package and object formats (store-format.md §1–4): manifests and package directories,
//! the ustar header layout and the canonical archive bytes, the one-pass packer, bencoding,
//! torrents and magnet links, and the identifiers every other module uses.

pub(crate) mod bencode;
pub(crate) mod canon;
pub mod ids;
pub(crate) mod manifest;
pub mod pack;
pub mod package;
pub mod relations;
pub mod torrent;
pub(crate) mod ustar;

/// The version of the archive format this dist writes and reads (store-format.md).
pub use canon::FORMAT_VERSION;
