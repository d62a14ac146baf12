//! The man pages (`dist manpages DIR`, hidden: `cargo xtask man` runs it): dist(1) and one page
//! per verb from the command-line definition, and the two files a person writes,
//! client.yaml(5) and manifest.yaml(5). clap_mangen renders NAME, DESCRIPTION, OPTIONS and
//! the subcommands; written here: a SYNOPSIS with each flag's value, EXAMPLES (a verb's
//! examples), EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use dist::client::config as defaults;
use dist::store::fsx;
use roff::{bold, italic, roman, Inline, Roff};

use crate::cli::Cli;

/// What roff puts before a page so that `'` prints as an apostrophe (clap_mangen writes it
/// before each section it renders; a page has it once).
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Writes `dist.1`, `dist-VERB.1` (and `dist-VERB-SUB.1`), `client.yaml.5` and
/// `manifest.yaml.5` into `dir`.
pub fn manpages(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = Cli::command();
    write(dir, "dist.1", &verb_page(&["dist"], &cmd)?)?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let path = ["dist", sub.get_name()];
        write(
            dir,
            &format!("{}.1", path.join("-")),
            &verb_page(&path, sub)?,
        )?;
        for inner in sub.get_subcommands().filter(|c| !c.is_hide_set()) {
            let path = ["dist", sub.get_name(), inner.get_name()];
            let page = verb_page(&path, inner)?;
            write(dir, &format!("{}.1", path.join("-")), &page)?;
        }
    }
    write(dir, "client.yaml.5", &client_yaml())?;
    write(dir, "manifest.yaml.5", &manifest_yaml())?;
    Ok(0)
}

fn write(dir: &Path, name: &str, page: &str) -> Result<()> {
    fsx::write_atomic(&dir.join(name), page.as_bytes(), 0o644)
}

/// The page of `dist` (`path` = `["dist"]`) or of one verb.
fn verb_page(path: &[&str], cmd: &clap::Command) -> Result<String> {
    let name = path.join("-");
    let man = clap_mangen::Man::new(cmd.clone().name(name.clone()));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    out.extend(synopsis(path, cmd).render().into_bytes());
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    let mut rest = examples(cmd);
    common(&mut rest, path);
    out.extend(rest.render().into_bytes());
    let text = String::from_utf8(out).context("a man page is not UTF-8")?;
    Ok(format!("{PREAMBLE}{}", text.replace(PREAMBLE, "")))
}

/// `dist [GLOBAL OPTIONS] VERB [--flag VALUE]… ARG…`: every flag with its value (or its
/// choices), the client settings as one item.
fn synopsis(path: &[&str], cmd: &clap::Command) -> Roff {
    let mut line = vec![bold("dist")];
    if path.len() > 1 {
        line.extend([roman(" ["), italic("GLOBAL OPTIONS"), roman("] ")]);
        line.push(bold(path[1..].join(" ")));
    }
    let mut client = false;
    let mut args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    // Flags first, then the arguments, each group as declared.
    args.sort_by_key(|a| a.is_positional());
    for a in args {
        if a.get_help_heading()
            .is_some_and(|h| h.starts_with("Client settings"))
        {
            if !client {
                line.extend([roman(" ["), italic("CLIENT SETTINGS"), roman("]")]);
                client = true;
            }
            continue;
        }
        line.push(roman(" "));
        line.extend(arg_synopsis(a));
    }
    if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
        line.extend([roman(" "), italic("COMMAND")]);
    }
    let mut r = Roff::new();
    r.control("SH", ["SYNOPSIS"]).text(line);
    r
}

/// One flag or argument as the synopsis shows it: `[--from FILE]`, `NAME...`, `[--shell
/// bash|zsh|fish]`.
fn arg_synopsis(a: &clap::Arg) -> Vec<Inline> {
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    let value = if !values.is_empty() && values.len() <= 6 {
        values.join("|")
    } else {
        a.get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
    };
    let many = a.get_num_args().is_some_and(|n| n.max_values() > 1)
        || matches!(a.get_action(), clap::ArgAction::Append);
    let mut out = Vec::new();
    let optional = !a.is_required_set();
    if optional {
        out.push(roman("["));
    }
    match a.get_long() {
        Some(long) => {
            out.push(bold(format!("--{long}")));
            if a.get_action().takes_values() {
                out.extend([roman(" "), italic(value)]);
            }
        }
        None => out.push(italic(value)),
    }
    if optional {
        out.push(roman("]"));
    }
    if many {
        out.push(roman("..."));
    }
    out
}

/// EXAMPLES: the lines of the verb's `after_help` below its `Example:` line.
fn examples(cmd: &clap::Command) -> Roff {
    let mut r = Roff::new();
    let Some(text) = cmd.get_after_help().map(|t| t.to_string()) else {
        return r;
    };
    r.control("SH", ["EXAMPLES"]).control("nf", []);
    for l in text.lines().filter(|l| !l.starts_with("Example")) {
        r.text([roman(l.trim_start())]);
    }
    r.control("fi", []);
    r
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO: the same on every page of dist(1).
fn common(r: &mut Roff, path: &[&str]) {
    r.control("SH", ["EXIT STATUS"]);
    for (code, what) in EXIT {
        r.control("TP", []).text([bold(*code)]).text([roman(*what)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    for (var, what) in ENVIRONMENT {
        r.control("TP", []).text([bold(*var)]).text([roman(*what)]);
    }
    r.control("SH", ["FILES"]);
    for (file, what) in FILES {
        r.control("TP", [])
            .text([italic(*file)])
            .text([roman(*what)]);
    }
    let mut also = Vec::new();
    if path.len() > 1 {
        also.push(format!("{}(1)", path[..path.len() - 1].join("-")));
    }
    also.extend(["client.yaml(5)".into(), "manifest.yaml(5)".into()]);
    r.control("SH", ["SEE ALSO"]).text([roman(also.join(", "))]);
}

const EXIT: &[(&str, &str)] = &[
    ("0", "Success."),
    ("1", "The command failed: the reason is on standard error, and with --json also on standard output as {\"error\": {\"message\", \"kind\"}} (kind: not_found, resolution, signature, index, verification, locked, interrupted, config, error). A failed add, sync, install, upgrade, uninstall, repair or rollback changed nothing. verify exits 1 when a store path differs."),
    ("2", "Usage: an unknown verb or flag, a missing argument, a value that is not one of a flag's choices (with --json: kind usage)."),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("DIST_ROOT", "The root when --root is not given."),
    ("XDG_DATA_HOME", "Without --root and DIST_ROOT, the root is $XDG_DATA_HOME/dist, else ~/.local/share/dist."),
    ("HOME", "See XDG_DATA_HOME."),
    ("DIST_LOCK_TIMEOUT", "Seconds to wait for the root's lock when --lock-timeout is not given (default 300)."),
    ("DIST_COMPLETE", "Set by the scripts of dist completions when the shell asks dist for completions; never set it otherwise."),
];

const FILES: &[(&str, &str)] = &[
    ("ROOT/client.yaml", "The client's configuration: client.yaml(5); dist init, dist config set and unset edit it."),
    ("ROOT/current", "The profile: a link to the current generation (bin/, lib/, share/man, ...): eval \"$(dist env)\" puts it on PATH, MANPATH and XDG_DATA_DIRS."),
    ("ROOT/generations/N", "Every generation; dist rollback switches current between them."),
    ("ROOT/store, ROOT/objects", "Unpacked store paths (read-only) and verified objects by BLAKE3."),
    ("ROOT/etc/NAME, ROOT/var/NAME", "A package's configuration files (the user's) and state; removed by uninstall --purge only."),
    ("ROOT/logs", "The output of the latest run of each package's scripts."),
    ("ROOT/lock", "Held by the command that changes the root."),
    ("ROOT/keys/secret.key", "A repository's signing key (dist repo init makes it): back it up, clients trust no other key."),
    ("ROOT/index.sqlite, ROOT/published", "A repository's master index and the signed serials it publishes."),
    ("ROOT/server.yaml", "dist serve's settings, each also a flag."),
];

/// client.yaml(5).
fn client_yaml() -> String {
    let mut r = Roff::new();
    r.control("TH", ["client.yaml", "5", "", "dist"]);
    r.control("SH", ["NAME"]).text([roman(
        "client.yaml - the configuration of a dist client root",
    )]);
    r.control("SH", ["SYNOPSIS"])
        .text([italic("ROOT/client.yaml")]);
    r.control("SH", ["DESCRIPTION"]).text([roman(
        "A YAML mapping of the keys below; an unknown key is an error. Every key is optional in the file; a command that needs the server or the key says so. Each key is also a flag of the verbs that read the configuration (dist config show lists every key, its value and where it came from: flag, file, default). dist init writes the file; dist config set KEY VALUE and dist config unset KEY change one key in place, keeping comments and the other keys, and check the result as every command reads it.",
    )]);
    r.control("SH", ["KEYS"]);
    for (key, kind, what) in client_keys() {
        r.control("TP", [])
            .text([bold(key), roman(" ("), italic(kind), roman(")")])
            .text([roman(what)]);
    }
    r.control("SH", ["EXAMPLE"]).control("nf", []);
    for l in CLIENT_EXAMPLE.lines() {
        r.text([roman(l)]);
    }
    r.control("fi", []);
    r.control("SH", ["SEE ALSO"]).text([roman(
        "dist(1), dist-init(1), dist-config-set(1), dist-config-show(1), manifest.yaml(5)",
    )]);
    r.render()
}

/// Every key of client.yaml: name, type, meaning with its default.
fn client_keys() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("server_url", "URL", "The repository's HTTP server: http:// or https:// and a host.".into()),
        ("server_urls", "list of URLs", "More servers of the same repository (mirrors), tried in order after server_url; the signature decides what is trusted, never which server sent it.".into()),
        ("public_key", "base64", "The repository's minisign public key, the line dist key show prints on it.".into()),
        ("bind_address", "IPv4 address", "The address the BitTorrent engine binds and announces from (not 127.x: transmission ignores peers there).".into()),
        ("transport", "auto|torrent|http", "How objects are fetched; default auto: per object, the swarm when it pays, else a direct download.".into()),
        ("engine", "libtorrent|transmission", "The BitTorrent engine; default libtorrent.".into()),
        ("rpc_url", "URL", "An existing transmission-daemon's RPC URL, used instead of a private one.".into()),
        ("upload_limit", "kB/s", format!("The upload cap of what the client seeds; default {}; 0: none.", defaults::DEFAULT_UPLOAD_LIMIT)),
        ("download_limit", "kB/s", "The download cap of an install, shared by its HTTP downloads and given to the BitTorrent engine; default 0: none.".into()),
        ("resolve_timeout", "seconds", format!("How long dependency resolution may run before it gives up with the packages most in conflict (kind resolve); default {}.", dist::client::config::RESOLVE_TIMEOUT_SECS)),
        ("seed", "true|false", "Whether installed objects keep seeding; default true; false: leech only.".into()),
        ("auto_threshold", "bytes", "From this size on, auto always takes the swarm; no default.".into()),
        ("stale_after", "seconds", format!("Warn when the index is older; default {}.", defaults::STALE_AFTER_SECS)),
        ("max_index_size", "bytes", format!("The largest index accepted; default {}.", defaults::MAX_INDEX_SIZE)),
        ("fetch_timeout", "seconds", format!("How long a download may take; default {}.", defaults::FETCH_TIMEOUT_SECS)),
        ("script_timeout", "seconds", format!("How long an install or uninstall script may run before its process group is killed; default {}.", defaults::SCRIPT_TIMEOUT_SECS)),
        ("http_timeout", "seconds", format!("How long one request to a server may stay silent; default {}.", defaults::HTTP_TIMEOUT_SECS)),
        ("repositories", "list", "Several repositories instead of server_url, server_urls and public_key: each {name, server_url or server_urls, public_key, priority (the larger wins, default 0), packages (names only it may provide)}. A name comes from one repository: the highest-priority one that has it.".into()),
    ]
}

const CLIENT_EXAMPLE: &str = "server_url: http://10.0.0.1:7380
public_key: RWQ...          # dist key show, on the repository
seed: false                 # a metered laptop: leech only
upload_limit: 500";

/// manifest.yaml(5).
fn manifest_yaml() -> String {
    let mut r = Roff::new();
    r.control("TH", ["manifest.yaml", "5", "", "dist"]);
    r.control("SH", ["NAME"]).text([roman(
        "manifest.yaml - what a dist package is: its name, version and relations",
    )]);
    r.control("SH", ["SYNOPSIS"])
        .text([italic("PKGDIR/manifest.yaml")]);
    r.control("SH", ["DESCRIPTION"]).text([roman(
        "A package is a directory: manifest.yaml, assets/ (the payload: assets/bin/* become commands on PATH; lib/, etc/, share/man, completions and the other trees of the profile are merged into it) and scripts/install.sh and scripts/uninstall.sh (run with /bin/sh; DIST_ACTION says why). The manifest is a YAML mapping of exactly these keys; an unknown key is an error. dist pack checks it, dist add publishes it.",
    )]);
    r.control("SH", ["KEYS"]);
    for (key, kind, what) in MANIFEST_KEYS {
        r.control("TP", [])
            .text([bold(*key), roman(" ("), italic(*kind), roman(")")])
            .text([roman(*what)]);
    }
    r.control("SH", ["EXAMPLE"]).control("nf", []);
    for l in MANIFEST_EXAMPLE.lines() {
        r.text([roman(l)]);
    }
    r.control("fi", []);
    r.control("SH", ["SEE ALSO"]).text([roman(
        "dist(1), dist-pack(1), dist-add(1), client.yaml(5); store-format.md, section 1",
    )]);
    r.render()
}

const MANIFEST_KEYS: &[(&str, &str, &str)] = &[
    ("name", "string", "1 to 64 bytes of ASCII letters, digits, ., -, _ and +, starting with a letter or a digit; bin is reserved. Case-sensitive."),
    ("version", "SemVer", "A SemVer 2.0 version (pre-release and build metadata allowed), kept verbatim; build metadata is ignored for identity (1.0.0+a is 1.0.0+b)."),
    ("description", "string, optional", "At most 4096 bytes; dist search looks in it."),
    ("depends", "mapping, optional", "Package name to SemVer requirement, quoted (\"^1.2\", \">=2, <4\", \"=1.0.0\", \"*\"): installed first, resolved with the installed set."),
    ("conflicts", "list, optional", "Names it cannot be installed with (none also in depends)."),
    ("config", "list, optional", "Configuration files, paths under assets/: copied on the first install to ROOT/etc/NAME/PATH and the user's from then on (a changed one is kept on upgrade, the new version's written beside it as PATH.dist-new)."),
];

const MANIFEST_EXAMPLE: &str = "name: app
version: 1.0.0
description: the app
depends: {libfoo: \"^1.2\", tool: \">=2, <4\"}
conflicts: [old-app]
config: [etc/app.conf]";

#[cfg(test)]
mod tests {
    #[test]
    fn client_yaml_5_documents_every_key() {
        let mut documented: Vec<&str> = super::client_keys().iter().map(|k| k.0).collect();
        documented.sort();
        let mut keys = dist::client::config_file::keys();
        keys.sort();
        assert_eq!(documented, keys, "client.yaml(5) and ClientConfig differ");
    }
}
