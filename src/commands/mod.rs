//! One file per command: each turns parsed arguments into library calls and prints the result.

mod add;
mod client;
mod key;
mod pack;
mod reporter;
mod serve;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command, KeyCommand};

/// Global options every command may need.
pub struct Global {
    pub root: PathBuf,
    pub quiet: bool,
}

/// `--root`, else `DIST_ROOT` (clap reads it), else `$XDG_DATA_HOME/dist`, else
/// `~/.local/share/dist`.
fn default_root() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("dist"));
    }
    let home = std::env::var_os("HOME")
        .context("neither --root, DIST_ROOT, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/dist"))
}

/// Runs the command; `Ok(code)` is the exit code of a command that finished (0 unless it has a
/// verdict to report, like `verify`).
pub fn run(cli: Cli) -> Result<i32> {
    let root = match cli.root {
        Some(r) => r,
        None => default_root()?,
    };
    // Store paths, symlinks and transmission's download dirs are absolute.
    let root =
        std::path::absolute(&root).with_context(|| format!("invalid root {}", root.display()))?;
    let g = Global {
        root,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Pack(args) => pack::run(&args),
        Command::Add(args) => add::run(&g, &args),
        Command::Key(KeyCommand::Show) => key::show(&g),
        Command::Serve(args) => serve::run(&g, &args, cli.client.bind.clone()),
        Command::Sync(j) => client::sync(&g, &cli.client, j.json),
        Command::Install(a) => client::install(&g, &cli.client, &a),
        Command::Uninstall { name } => client::uninstall(&g, &name),
        Command::Rollback { to } => client::rollback(&g, to),
        Command::Generations(j) => client::generations(&g, j.json),
        Command::List { installed, json } => client::list(&g, installed, json),
        Command::Info { name, json } => client::info(&g, &name, json),
        Command::Daemon(d) => client::daemon(&g, &d),
    }
}
