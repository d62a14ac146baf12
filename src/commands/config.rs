//! `dist config set KEY VALUE`, `dist config unset KEY`: one key of ROOT/client.yaml changed in
//! place (comments and the other keys kept), checked as every command reads the file; and
//! the edits `dist init` makes; `dist config show`.

use std::collections::BTreeMap;

use anyhow::Result;
use dist::client::config::{config_path, ClientConfig};
use dist::client::config_file::{self, Edit};

use super::settings::flags_only;
use super::{json, Global};
use crate::cli::{ClientFlags, ConfigCommand};

/// `dist config show|set|unset`.
pub fn run(g: &Global, top: &ClientFlags, c: ConfigCommand) -> Result<i32> {
    match c {
        ConfigCommand::Show(a) => config_show(g, &top.with(&a.client), a.json),
        ConfigCommand::Set(a) => set(g, &a.key, &a.value, a.json),
        ConfigCommand::Unset(a) => unset(g, &a.key, a.json),
    }
}

/// `dist config set KEY VALUE [--json]`.
pub fn set(g: &Global, key: &str, value: &str, json_out: bool) -> Result<i32> {
    let v = config_file::parse_value(key, value)?;
    let e = config_file::apply(&g.root, &[Edit::Set(key.into(), v.clone())])?;
    report(&e, key, serde_json::to_value(&v)?, json_out)
}

/// `dist config unset KEY [--json]`: the key goes back to its default.
pub fn unset(g: &Global, key: &str, json_out: bool) -> Result<i32> {
    let e = config_file::apply(&g.root, &[Edit::Unset(key.into())])?;
    report(&e, key, serde_json::Value::Null, json_out)
}

fn report(
    e: &config_file::Edited,
    key: &str,
    value: serde_json::Value,
    json_out: bool,
) -> Result<i32> {
    if json_out {
        return json::print(&json::ConfigSet {
            path: e.path.display().to_string(),
            key,
            value,
            changed: e.changed,
        })
        .map(|()| 0);
    }
    let path = e.path.display();
    match (&value, e.changed) {
        (_, false) => println!("{path}: `{key}` unchanged"),
        (serde_json::Value::Null, true) => {
            println!("{path}: `{key}` removed (its default applies)")
        }
        (serde_json::Value::String(v), true) => println!("{path}: {key} = {v}"),
        (v, true) => println!("{path}: {key} = {v}"),
    }
    Ok(0)
}

/// What `dist init` writes: every client flag given, set in client.yaml; every other key kept,
/// except `repositories` (init describes one repository by `server_url` and `public_key`).
/// Returns the keys it set and whether it dropped `repositories`.
pub fn init_edits(g: &Global, f: &ClientFlags) -> Result<(config_file::Edited, bool)> {
    let flags = serde_json::to_value(flags_only(f)?)?;
    let mut edits = Vec::new();
    for (k, v) in flags.as_object().into_iter().flatten() {
        if !v.is_null() {
            edits.push(Edit::Set(k.clone(), serde_yaml::to_value(v)?));
        }
    }
    let file = dist::client::config::ClientConfig::load(&g.root).unwrap_or_default();
    let dropped = file.repositories.is_some();
    if dropped {
        edits.push(Edit::Unset("repositories".into()));
    }
    Ok((config_file::apply(&g.root, &edits)?, dropped))
}

/// `dist config show [--json]`: every key, its value, and whether a flag, client.yaml or the
/// default decided it. The merged configuration is resolved too, so a bad value is reported.
pub fn config_show(g: &Global, f: &ClientFlags, json_out: bool) -> Result<i32> {
    let path = config_path(&g.root);
    let file = ClientConfig::load(&g.root)?;
    let flags = flags_only(f)?;
    super::settings::config(g, f)?;
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
