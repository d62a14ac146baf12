//! The client's settings for a command: client.yaml with the command-line flags on top,
//! resolved once (every client command starts here).

use anyhow::Result;
use dist::client::config::{config_path, ClientConfig, ConfigError, Settings};

use super::Global;
use crate::cli::ClientFlags;

/// client.yaml with the flags on top, resolved once.
pub fn config(g: &Global, f: &ClientFlags) -> Result<Settings> {
    let c = ClientConfig::load(&g.root).map_err(ConfigError::wrap)?;
    with_flags(c, f)
        .and_then(|c| c.resolve(&config_path(&g.root)))
        .map_err(ConfigError::wrap)
}

/// Only what the flags set, as a configuration (for `config show`).
pub fn flags_only(f: &ClientFlags) -> Result<ClientConfig> {
    with_flags(ClientConfig::default(), f)
}

fn with_flags(mut c: ClientConfig, f: &ClientFlags) -> Result<ClientConfig> {
    if let Some(v) = &f.server_url {
        c.server_url = Some(v.clone());
    }
    if let Some(v) = &f.public_key {
        c.public_key = Some(v.clone());
    }
    if let Some(v) = &f.bind {
        c.bind_address = Some(v.clone());
    }
    if let Some(v) = f.transport {
        c.transport = Some(v);
    }
    if let Some(v) = f.engine {
        c.engine = Some(v);
    }
    if let Some(v) = &f.rpc_url {
        c.rpc_url = Some(v.clone());
    }
    if let Some(v) = f.script_timeout {
        c.script_timeout = Some(v);
    }
    Ok(c)
}
