//! The fleet operator's verbs: a version's release status (`yank`, `unyank`, `phase`) and a
//! machine's installed set as a file (`export`, `apply`).

use std::path::PathBuf;

use dist::index::status::Phase;

use super::{parse_phase, ClientFlags};

/// `dist yank`.
#[derive(clap::Args, Debug)]
pub struct YankArgs {
    /// The version to withdraw.
    #[arg(value_name = "NAME@VERSION", add = super::complete::repo_versions())]
    pub package: String,
    /// Why, for the machines that have it and the catalog (one line, at most 1024 bytes).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `dist unyank`.
#[derive(clap::Args, Debug)]
pub struct UnyankArgs {
    /// The yanked version to publish again.
    #[arg(value_name = "NAME@VERSION", add = super::complete::repo_versions())]
    pub package: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `dist phase`.
#[derive(clap::Args, Debug)]
pub struct PhaseArgs {
    /// The version whose rollout changes.
    #[arg(value_name = "NAME@VERSION", add = super::complete::repo_versions())]
    pub package: String,
    /// The share of machines that take it, 0 to 100.
    #[arg(value_name = "PERCENT", value_parser = parse_phase)]
    pub percent: Phase,
    /// Allow a lower percentage than the current one.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `dist export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write the set to FILE (replaced atomically) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the set as one JSON object instead of the file's text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

/// `dist apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// A file `dist export` wrote.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON array (`install --json`'s entries, removals with action `remove`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}
