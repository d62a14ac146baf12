//! What the command line knows beyond its shape: the default root, and the parsers that turn
//! `--transport` and `--engine` into typed settings (clap still lists and completes the names).

use std::path::PathBuf;

use dist::client::config::{Engine, Transport};

/// `--root`, else `DIST_ROOT` (clap reads it), else `$XDG_DATA_HOME/dist`, else
/// `~/.local/share/dist`.
pub(crate) fn default_root() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("dist"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| {
        anyhow::anyhow!("neither --root, DIST_ROOT, XDG_DATA_HOME nor HOME is set")
    })?;
    Ok(PathBuf::from(home).join(".local/share/dist"))
}

/// `--transport`: the names clap lists and completes, parsed into the typed setting.
pub(super) fn transport_parser() -> impl clap::builder::TypedValueParser<Value = Transport> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["auto", "torrent", "http"])
        .map(|s| s.parse::<Transport>().expect("every listed value parses"))
}

/// `--engine`: as `--transport`.
pub(super) fn engine_parser() -> impl clap::builder::TypedValueParser<Value = Engine> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["libtorrent", "transmission"])
        .map(|s| s.parse::<Engine>().expect("every listed value parses"))
}
