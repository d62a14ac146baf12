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

/// Parses manifest text as `manifest.yaml` of a package directory is parsed (`path` only
/// names the file in errors). For the coverage-guided fuzz targets (`fuzz/`): the manifest
/// module is the crate's own.
#[doc(hidden)]
pub fn parse_manifest(
    path: &std::path::Path,
    text: &str,
) -> Result<manifest::Manifest, manifest::ManifestError> {
    manifest::Manifest::parse(path, text)
}
