//! The `--json` shapes of `dist config set|unset`, `dist repo init` and `dist why` (part of
//! `commands::json`, which re-exports them).

use serde::Serialize;

/// `dist config set|unset --json`.
#[derive(Serialize)]
pub struct ConfigSet<'a> {
    pub path: String,
    pub key: &'a str,
    /// The value now in client.yaml (null: removed, its default applies).
    pub value: serde_json::Value,
    /// Whether the file changed.
    pub changed: bool,
}

/// `dist repo init --json`.
#[derive(Serialize)]
pub struct RepoCreated<'a> {
    pub root: String,
    pub public_key: &'a str,
    pub key_id: String,
    /// The secret key to back up.
    pub secret_key: String,
    /// The root had a master index already: a new key for an existing repository.
    pub had_index: bool,
}

/// `dist why NAME --json`.
#[derive(Serialize)]
pub struct Why<'a> {
    pub name: &'a str,
    /// Installed by name.
    pub requested: bool,
    /// Each chain from a requested package down to NAME, by name.
    pub paths: Vec<Vec<&'a str>>,
}
