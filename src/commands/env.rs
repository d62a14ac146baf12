//! `dist env`: the shell lines that put the profile (`ROOT/current`) on `PATH`, `MANPATH` and
//! `XDG_DATA_DIRS`, each in front of what the shell had. Not `LD_LIBRARY_PATH`: a program of
//! the profile gets its generation's libraries from its launcher (ARCHITECTURE.md, "Libraries
//! in the profile"), and a global one would hand them to every program the user runs.
//!
//! `current`, not a generation, is named: a rollback or an upgrade is seen by shells already
//! running, with nothing to evaluate again.

use std::path::Path;

use anyhow::{bail, Result};
use dist::client::Layout;

use super::Global;
use crate::cli::EnvShell;

/// `dist env [--shell bash|zsh|fish]`.
pub fn print(g: &Global, shell: EnvShell) -> Result<i32> {
    print!("{}", text(&Layout::new(&g.root).current_link(), shell)?);
    Ok(0)
}

/// The lines for `current` (absolute) in `shell`'s syntax.
fn text(current: &Path, shell: EnvShell) -> Result<String> {
    let at = |rel: &str| -> Result<String> {
        let p = current.join(rel);
        match p.to_str() {
            Some(s) if !s.contains(':') => Ok(s.to_string()),
            _ => bail!(
                "{} cannot be on a search path (`:` or not UTF-8): choose another --root",
                p.display()
            ),
        }
    };
    let (bin, man, share) = (at("bin")?, at("share/man")?, at("share")?);
    Ok(match shell {
        // An empty MANPATH element (the trailing `:`) is where man-db puts the system's
        // manual path; XDG_DATA_DIRS unset means /usr/local/share:/usr/share.
        EnvShell::Bash | EnvShell::Zsh => format!(
            "export PATH={}\"${{PATH:+:$PATH}}\"\n\
             export MANPATH={}:\"${{MANPATH-}}\"\n\
             export XDG_DATA_DIRS={}:\"${{XDG_DATA_DIRS:-/usr/local/share:/usr/share}}\"\n",
            sh_quoted(&bin),
            sh_quoted(&man),
            sh_quoted(&share)
        ),
        // fish joins a variable whose name ends in PATH with `:` when it exports it; the
        // others need `--path`. The empty element keeps man-db's default, as above.
        EnvShell::Fish => format!(
            "set -gx PATH {bin} $PATH\n\
             if set -q MANPATH; set -gx MANPATH {man} $MANPATH; else; set -gx MANPATH {man} ''; end\n\
             if set -q XDG_DATA_DIRS; set -gx --path XDG_DATA_DIRS {share} $XDG_DATA_DIRS; \
             else; set -gx --path XDG_DATA_DIRS {share} /usr/local/share /usr/share; end\n",
            bin = fish_quoted(&bin),
            man = fish_quoted(&man),
            share = fish_quoted(&share)
        ),
    })
}

/// One single-quoted word of a POSIX shell.
fn sh_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One single-quoted word of fish (`\\` and `\'` are its only escapes there).
fn fish_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with bash, with only `vars` set, and returns what it printed.
    fn bash(script: &str, vars: &[(&str, &str)]) -> String {
        let out = std::process::Command::new("bash")
            .args(["-c", script])
            .env_clear()
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn posix_lines_put_the_profile_first_and_keep_the_system_defaults() {
        let lines = text(Path::new("/r/it's/current"), EnvShell::Bash).unwrap();
        let show = format!("{lines}echo \"$PATH|$MANPATH|$XDG_DATA_DIRS\"");
        assert_eq!(
            bash(&format!("set -u\n{show}"), &[("PATH", "/usr/bin:/bin")]).trim_end(),
            "/r/it's/current/bin:/usr/bin:/bin|/r/it's/current/share/man:|\
             /r/it's/current/share:/usr/local/share:/usr/share"
        );
        let set = [
            ("PATH", "/bin"),
            ("MANPATH", "/opt/man"),
            ("XDG_DATA_DIRS", "/opt/share"),
        ];
        assert_eq!(
            bash(&show, &set).trim_end(),
            "/r/it's/current/bin:/bin|/r/it's/current/share/man:/opt/man|\
             /r/it's/current/share:/opt/share"
        );
        assert_eq!(
            lines,
            text(Path::new("/r/it's/current"), EnvShell::Zsh).unwrap()
        );
    }

    #[test]
    fn fish_lines_and_roots_a_search_path_cannot_hold() {
        let lines = text(Path::new("/r/a'b/current"), EnvShell::Fish).unwrap();
        assert!(
            lines.starts_with("set -gx PATH '/r/a\\'b/current/bin' $PATH\n"),
            "{lines}"
        );
        assert!(lines.contains("set -gx MANPATH '/r/a\\'b/current/share/man' ''; end"));
        let err = text(Path::new("/r:x/current"), EnvShell::Bash).unwrap_err();
        assert!(
            err.to_string()
                .contains("/r:x/current/bin cannot be on a search path"),
            "{err}"
        );
    }
}
