//! Shell completion, dynamic: `dist completions SHELL` prints a script that registers `dist`
//! as its own completer, and at every TAB the shell runs `DIST_COMPLETE=SHELL dist -- WORDS…`,
//! answered here from the command-line definition and the state on disk (`cli/complete.rs`
//! says what fits each argument: package names, versions, generations, enum values).

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use clap_complete::Shell;

use crate::cli::Cli;

/// The variable the registration scripts set when they ask for completions.
const VAR: &str = "DIST_COMPLETE";

/// Answers a completion request and exits, when the shell made one (`DIST_COMPLETE` is set);
/// returns at once otherwise.
pub fn complete_env() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .complete();
}

/// `dist completions SHELL`: the registration script on standard output.
pub fn completions(shell: Shell) -> Result<i32> {
    let c: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::PowerShell => &Powershell,
        other => anyhow::bail!("no completion for {other}"),
    };
    let mut script = Vec::new();
    c.write_registration(VAR, "dist", "dist", "dist", &mut script)?;
    print!("{}", String::from_utf8_lossy(&script));
    Ok(0)
}
