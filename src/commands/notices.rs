//! What a command says once about the machine it changed (issue 23, findings 2 and 11): that an
//! install left a background process seeding, and that the profile's programs are not on
//! `PATH`. On standard error, after the command's own lines, unless `--quiet`.

use dist::client::config::{config_path, Engine};
use dist::client::seeding;

use super::out::{self, note_prefix, Style};
use super::{printable, Global};

/// The notice of a seeding process an install started: what it seeds, its upload cap, and the
/// three ways to look at it, stop it, or never start it.
pub fn seeding(g: &Global, started: Option<&seeding::Started>) {
    let Some(s) = started else { return };
    if g.quiet {
        return;
    }
    let who = match s.daemon.engine {
        Engine::Libtorrent => "the libtorrent seeder, `dist daemon run`",
        Engine::Transmission => "transmission-daemon",
    };
    let limit = match s.daemon.upload_limit {
        Some(k) => format!("uploading at most {k} kB/s (upload_limit)"),
        None => "with no upload limit (upload_limit: 0)".to_string(),
    };
    let what: Vec<String> = s.packages.iter().map(|p| p.to_string()).collect();
    eprintln!(
        "{} {} {} now seeded to other clients by a background process ({who}, pid {}) that keeps running after dist exits, {limit}",
        note_prefix(),
        what.join(", "),
        if what.len() == 1 { "is" } else { "are" },
        s.daemon.pid
    );
    eprintln!(
        "      `dist daemon status` shows what it seeds; `dist daemon stop` stops it; `seed: false` in {} keeps installs from seeding",
        config_path(&g.root).display()
    );
}

/// What a command that changed the installed set says after its output, in text and with
/// `--json` alike (on stderr): the PATH hint when a new generation is current, then the
/// seeding notice.
pub fn after_change(g: &Global, generation: Option<u64>, started: Option<&seeding::Started>) {
    if generation.is_some() {
        path_hint(g);
    }
    seeding(g, started);
}

/// The hint an install gives when the profile's `bin/` is not on `PATH`: the line to add.
pub fn path_hint(g: &Global) {
    let bin = g.root.join("current/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    if g.quiet || !bin.is_dir() || dist::client::doctor::on_path(&bin, &path) {
        return;
    }
    eprintln!(
        "{} {} is not on your PATH, so the programs installed there are not found by name; add this line to ~/.bashrc (or ~/.zshrc, ~/.profile):",
        note_prefix(),
        bin.display()
    );
    eprintln!("      {}", out::epaint(Style::Bold, &env_line(g)));
}

/// The line that puts this root's profile on `PATH` (with `--root` unless it is the default).
pub fn env_line(g: &Global) -> String {
    let default = crate::cli::default_root().and_then(|r| Ok(std::path::absolute(r)?));
    let root = match default.is_ok_and(|d| d == g.root) {
        true => String::new(),
        false => format!(" --root {}", printable(&g.root.display().to_string())),
    };
    format!("eval \"$(dist{root} env)\"")
}
