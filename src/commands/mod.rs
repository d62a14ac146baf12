//! One file per command: each turns parsed arguments into library calls and prints the result.

mod pack;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs the command; `Ok(code)` is the exit code of a command that finished (0 unless it has a
/// verdict to report, like `verify`).
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Pack(args) => pack::run(&args),
    }
}
