//! The typed errors of the command line: usage errors the parser cannot see (a verb's
//! required combination of flags) and the verbs people bring from other package managers
//! (`apt update`, …), answered with the dist command that does it, both exit 2 and kind
//! `usage`; and names that are not there (kind `not_found`, exit 1).

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// A command line that parsed but cannot be run as given: exit 2, `--json` kind `usage`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] saying `message`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Something named on the command line that is not there (a package that is not installed, a
/// file that does not exist): `--json` kind `not_found`, exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// A [`NotFound`] saying `message`.
pub fn not_found(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(NotFound(message.into()))
}

/// What a verb of apt (or dnf, brew, pacman) is called here, when it is not the same word.
fn habit(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "update" | "refresh" => {
            "`dist sync` fetches and verifies the index (what `apt update` does); then `dist outdated` lists what is newer and `dist upgrade` installs it"
        }
        "full-upgrade" | "dist-upgrade" => "`dist upgrade` (it resolves dependencies as a whole)",
        "reinstall" => "`dist install --reinstall NAME`",
        "purge" => "`dist uninstall --purge NAME` (it removes ROOT/var/NAME and ROOT/etc/NAME too)",
        "depends" | "policy" | "madison" => {
            "`dist info NAME`: every version, its dependencies, conflicts and commands"
        }
        "rdepends" => "`dist why NAME`: the requested packages that need it",
        "installed" => "`dist list --installed`",
        "upgradable" => "`dist outdated` (also `dist list --upgradable`)",
        _ => return None,
    })
}

/// A message for a verb dist does not know but another package manager does: what to type
/// here instead, as the whole usage error.
pub fn habit_message(e: &clap::Error) -> Option<String> {
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(verb)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let hint = habit(verb)?;
    Some(format!(
        "`{verb}` is not a dist verb: {hint}\n\nFor more information, try 'dist --help'."
    ))
}
