//! The `--json` shapes of `dist key` and `dist bundle` (part of `commands::json`, which
//! re-exports them).

use serde::Serialize;

/// `dist key show --json`.
#[derive(Serialize)]
pub struct Key {
    pub public_key: String,
    /// The key's id, as minisign shows it.
    pub key_id: String,
}

/// `dist key rotate --json`.
#[derive(Serialize)]
pub struct KeyRotated {
    pub old_key_id: String,
    pub new_key_id: String,
    pub public_key: String,
    pub serial: u64,
}

/// `dist key revoke --json`.
#[derive(Serialize)]
pub struct KeyRevoked {
    pub key_id: String,
    pub revoked_by: String,
    pub serial: u64,
}

/// `dist bundle --json`: `{path, bytes, packages: [{repository, name, version, blake3, size}]}`.
pub use dist::client::offline::Bundled;
