//! Command-line syntax: every flag and subcommand of `dist`, and nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "dist",
    version,
    about = "Packages shipped peer to peer over BitTorrent"
)]
pub struct Cli {
    /// Where all state lives (repository, client store, configuration).
    #[arg(long, global = true, env = "DIST_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Print no progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the canonical tarball and torrent of a package directory.
    Pack(PackArgs),
}

#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The package directory (manifest.yaml, assets/, scripts/).
    pub dir: PathBuf,
    /// Where to write the tarball (`FILE.torrent` is written beside it);
    /// default `<name>-<version>.tar` in the current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
