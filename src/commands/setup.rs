//! First run: `dist init`.

use anyhow::{bail, Result};
use dist::client::config::{check_key, check_url, config_path, ConfigError};

use super::{json, Global};
use crate::cli::{ClientFlags, InitArgs};

/// `dist init --server-url URL --public-key KEY [--force]`: checks both at once and writes
/// them (with any other client flag given) into `ROOT/client.yaml`; with `--force` into the
/// file there is, keeping every key it does not set.
pub fn init(g: &Global, f: &ClientFlags, a: &InitArgs) -> Result<i32> {
    let path = config_path(&g.root);
    let (Some(url), Some(key)) = (&f.server_url, &f.public_key) else {
        return Err(super::usage::usage(
            "`dist init` needs --server-url URL and --public-key KEY (the line `dist key show` prints on the repository)",
        ));
    };
    check_url("--server-url", url).map_err(ConfigError::wrap)?;
    check_key("--public-key", key).map_err(ConfigError::wrap)?;
    if path.exists() && !a.force {
        bail!(
            "{} exists already: pass --force to set these keys in it (the others are kept), or `dist config set KEY VALUE`",
            path.display()
        );
    }
    let (_, dropped) = super::config::init_edits(g, f)?;
    if a.json {
        json::print(&json::Init {
            path: path.display().to_string(),
            server_url: url,
            public_key: key,
        })?;
    } else {
        println!("wrote {}", path.display());
        if dropped {
            println!("removed `repositories`: this file now names one repository");
        }
        println!("next: dist sync, then dist install NAME");
    }
    Ok(0)
}
