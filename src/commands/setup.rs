//! First run and the command line itself: `dist init`, `dist config show`, `dist completions`,
//! and the man pages (`dist manpages DIR`, hidden: `cargo xtask man` runs it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use dist::client::config::{check_key, check_url, config_path, ClientConfig, ConfigError};
use dist::store::fsx;

use super::client::flags_only;
use super::{json, Global};
use crate::cli::{Cli, ClientFlags, InitArgs};

/// `dist init --server-url URL --public-key KEY [--force]`: checks both at once and writes
/// `ROOT/client.yaml` (with any other client flag given).
pub fn init(g: &Global, f: &ClientFlags, a: &InitArgs) -> Result<i32> {
    let path = config_path(&g.root);
    let (Some(url), Some(key)) = (&f.server_url, &f.public_key) else {
        bail!("`dist init` needs --server-url URL and --public-key KEY (the line `dist key show` prints on the repository)");
    };
    check_url("--server-url", url).map_err(ConfigError::wrap)?;
    check_key("--public-key", key).map_err(ConfigError::wrap)?;
    if path.exists() && !a.force {
        bail!(
            "{} exists already: pass --force to replace it",
            path.display()
        );
    }
    // The flags, checked the way every command will read them.
    let c = flags_only(f).map_err(ConfigError::wrap)?;
    c.clone().resolve(&path).map_err(ConfigError::wrap)?;
    let text = serde_yaml::to_string(&Sparse(&c)).context("cannot write the configuration")?;
    std::fs::create_dir_all(&g.root)
        .with_context(|| format!("cannot create {}", g.root.display()))?;
    fsx::write_atomic(&path, text.as_bytes(), 0o644)?;
    if a.json {
        json::print(&json::Init {
            path: path.display().to_string(),
            server_url: url,
            public_key: key,
        })?;
    } else {
        println!("wrote {}", path.display());
        println!("next: dist sync, then dist install NAME");
    }
    Ok(0)
}

/// A configuration without its unset keys.
struct Sparse<'a>(&'a ClientConfig);

impl serde::Serialize for Sparse<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let v = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        let map: serde_json::Map<String, serde_json::Value> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        map.serialize(s)
    }
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

/// `dist completions SHELL`: the completion script on standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dist", &mut script);
    print!("{}", String::from_utf8_lossy(&script));
    Ok(0)
}

/// Writes `dist.1` and `dist-VERB.1` (and `dist-VERB-SUB.1`) into `dir`.
pub fn manpages(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = Cli::command();
    write_page(dir, "dist", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("dist-{}", sub.get_name());
        write_page(dir, &name, sub.clone().name(name.clone()))?;
        for inner in sub.get_subcommands() {
            let name = format!("{name}-{}", inner.get_name());
            write_page(dir, &name, inner.clone().name(name.clone()))?;
        }
    }
    Ok(0)
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    fsx::write_atomic(&dir.join(format!("{name}.1")), &out, 0o644)
}
