//! First run: `dist init`, `dist config show`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use dist::client::config::{check_key, check_url, config_path, ClientConfig, ConfigError};

use super::client::flags_only;
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

/// `dist config show [--json]`: every key, its value, and whether a flag, client.yaml or the
/// default decided it. The merged configuration is resolved too, so a bad value is reported.
pub fn config_show(g: &Global, f: &ClientFlags, json_out: bool) -> Result<i32> {
    let path = config_path(&g.root);
    let file = ClientConfig::load(&g.root)?;
    let flags = flags_only(f)?;
    super::client::config(g, f)?;
    let as_map = |c: &ClientConfig| -> Result<serde_json::Map<String, serde_json::Value>> {
        Ok(serde_json::to_value(c)?
            .as_object()
            .cloned()
            .unwrap_or_default())
    };
    let (file, flags, defaults) = (
        as_map(&file)?,
        as_map(&flags)?,
        as_map(&ClientConfig::defaults())?,
    );
    let mut settings = BTreeMap::new();
    for (key, default) in &defaults {
        let set = |m: &serde_json::Map<String, serde_json::Value>| {
            m.get(key).filter(|v| !v.is_null()).cloned()
        };
        let (value, source) = if let Some(v) = set(&flags) {
            (v, "flag")
        } else if let Some(v) = set(&file) {
            (v, "file")
        } else if !default.is_null() {
            (default.clone(), "default")
        } else {
            (serde_json::Value::Null, "unset")
        };
        settings.insert(key.clone(), json::Setting { value, source });
    }
    if json_out {
        json::print(&json::ConfigShow {
            root: g.root.display().to_string(),
            config_file: path.display().to_string(),
            settings,
        })?;
        return Ok(0);
    }
    let mut t = super::out::Table::new();
    t.row(vec!["root".into(), g.root.display().to_string().into()]);
    let exists = if path.exists() { "" } else { " (absent)" };
    t.row(vec![
        "config file".into(),
        format!("{}{exists}", path.display()).into(),
    ]);
    for (key, s) in &settings {
        let from = match s.source {
            "file" => path.display().to_string(),
            other => other.to_string(),
        };
        let value = match &s.value {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(t) => t.clone(),
            v => v.to_string(),
        };
        let from = super::out::Cell::styled(format!("({from})"), super::out::Style::Dim);
        t.row(vec![key.as_str().into(), value.into(), from]);
    }
    t.print("");
    Ok(0)
}
