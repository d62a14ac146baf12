//! One file per command: each turns parsed arguments into library calls and prints the result.

// Every command module prints through these (they shadow `std`'s, see `out.rs`): a reader
// that closed standard output never makes a command panic.
macro_rules! println {
    () => { $crate::commands::out::stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::commands::out::stdout(format_args!($($arg)*), true) };
}
macro_rules! print {
    ($($arg:tt)*) => { $crate::commands::out::stdout(format_args!($($arg)*), false) };
}
macro_rules! eprintln {
    () => { $crate::commands::out::stderr(format_args!("")) };
    ($($arg:tt)*) => { $crate::commands::out::stderr(format_args!($($arg)*)) };
}

mod add;
mod client;
pub mod complete;
mod config;
mod daemon;
mod doctor;
mod env;
mod files;
mod fleet;
mod info;
mod json;
mod json_keys;
mod json_status;
mod key;
mod man;
mod notices;
pub mod out;
mod pack;
mod packages;
mod release;
mod remove;
mod repo;
mod reporter;
mod serve;
mod settings;
mod setup;
pub mod usage;

use std::path::PathBuf;

use anyhow::{Context, Result};

use dist::store::lock::{self, Mode};

use crate::cli::{Cli, Command, ConfigCommand, DaemonCommand, KeyCommand, RepoCommand};

/// Global options every command may need.
pub struct Global {
    pub root: PathBuf,
    pub quiet: bool,
    /// `--verbose`: the details a command has beyond its summary.
    pub verbose: bool,
}

/// Which lock a command takes on its root: exclusive for what changes it, shared for what only
/// reads it, none for what does not use it (`pack`) or must not block adds (`serve`).
fn lock_mode(c: &Command) -> Option<(Mode, &'static str)> {
    use Command::*;
    match c {
        Pack(a) if a.check => Some((Mode::Shared, "pack --check")),
        Pack(_) | Serve(_) => None,
        Add(_) => Some((Mode::Exclusive, "add")),
        Key(_) | Repo(_) => Some((Mode::Exclusive, "key")),
        Sync(_) => Some((Mode::Exclusive, "sync")),
        Install(a) if a.dry_run => Some((Mode::Shared, "install --dry-run")),
        Install(_) => Some((Mode::Exclusive, "install")),
        Bundle(_) => Some((Mode::Exclusive, "bundle")),
        Uninstall(a) if a.dry_run => Some((Mode::Shared, "uninstall --dry-run")),
        Uninstall(_) => Some((Mode::Exclusive, "uninstall")),
        Upgrade(a) if a.dry_run => Some((Mode::Shared, "upgrade --dry-run")),
        Upgrade(_) => Some((Mode::Exclusive, "upgrade")),
        // Listing the holds reads `holds.json`, replaced by rename.
        Hold { name: None, .. } => None,
        Hold { .. } | Unhold { .. } => Some((Mode::Exclusive, "hold")),
        Autoremove(a) if a.dry_run => Some((Mode::Shared, "autoremove --dry-run")),
        Autoremove(_) => Some((Mode::Exclusive, "autoremove")),
        Rollback { .. } => Some((Mode::Exclusive, "rollback")),
        Gc { dry_run: true, .. } => Some((Mode::Shared, "gc --dry-run")),
        Gc { .. } => Some((Mode::Exclusive, "gc")),
        Daemon(DaemonCommand::Stop(_)) => Some((Mode::Exclusive, "daemon stop")),
        // Runs for as long as it seeds: it must not hold the root.
        Daemon(DaemonCommand::Run(_)) => None,
        Repair { .. } => Some((Mode::Exclusive, "repair")),
        Yank(_) | Unyank(_) | Phase(_) => Some((Mode::Exclusive, "publish")),
        Apply(a) if a.dry_run => Some((Mode::Shared, "apply --dry-run")),
        Apply(_) => Some((Mode::Exclusive, "apply")),
        Init(_) => Some((Mode::Exclusive, "init")),
        Config(ConfigCommand::Set(_) | ConfigCommand::Unset(_)) => {
            Some((Mode::Exclusive, "config"))
        }
        Completions { .. } | Manpages { .. } | Env { .. } => None,
        // Reads only; a lock held by an install must not hide what is wrong.
        Doctor(_) => None,
        // Readers never wait (issue 23): what they read (`current`, generation.json, the index
        // copy, holds) is replaced by rename or changed inside an SQLite transaction, so each
        // read sees one consistent state while an install, sync or gc runs.
        Export(_)
        | Config(_)
        | Files { .. }
        | Owner { .. }
        | Why(_)
        | Daemon(DaemonCommand::Status(_))
        | Generations(_)
        | List { .. }
        | Info { .. }
        | Outdated(_)
        | Search { .. } => None,
        // Hashes store paths a gc could be deleting.
        Verify(_) => Some((Mode::Shared, "read")),
    }
}

/// `{"error": {"message": …, "kind": …}}` on standard output: how a `--json` command fails.
pub fn print_json_error(message: &str, kind: &str) {
    let failure = json::Failure {
        error: json::FailureBody { message, kind },
    };
    println!(
        "{}",
        serde_json::to_string(&failure).expect("strings serialize")
    );
}

/// The command line, parsed; or the process ends as a usage error (exit 2). With `--json`
/// anywhere on the line (clap could not say whether it was given) the error is also a JSON
/// object on standard output.
pub fn parse_or_exit(json: bool) -> Cli {
    let e = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    match usage::habit_message(&e) {
        Some(text) => {
            if json {
                print_json_error(text.lines().next().unwrap_or(""), "usage");
            }
            out::stderr(format_args!("error: {text}"));
            std::process::exit(2);
        }
        None if json && e.use_stderr() => {
            let text = e.to_string();
            print_json_error(text.trim().trim_start_matches("error: "), "usage");
            e.exit();
        }
        None => e.exit(),
    }
}

/// The exit code of a command that ran: its own, 1 when standard output failed, else the
/// error reported on stderr (and with `json` as a JSON object on stdout) with 2 for a usage
/// error and 1 for any other.
pub fn exit_code(result: Result<i32>, json: bool) -> i32 {
    match result {
        Ok(code) => match out::failure() {
            Some(e) => {
                out::stderr(format_args!("error: cannot write to standard output: {e}"));
                1
            }
            None => code,
        },
        Err(e) => {
            let kind = error_kind(&e);
            // On stderr always (a person, or a script reading stderr as before); with
            // `--json` also as a JSON object on stdout.
            if json {
                print_json_error(&format!("{e:#}"), kind);
            }
            out::stderr(format_args!(
                "{} {}",
                out::error_prefix(),
                printable_error(&format!("{e:#}"))
            ));
            if kind == "usage" {
                2
            } else {
                1
            }
        }
    }
}

/// What kind of failure an error is, for `--json` callers that branch on it: the first typed
/// cause in its chain decides (`resolution`, `resolve`, `not_found`, `signature`, `index`, `verification`,
/// `locked`, `interrupted`, `config`), else `error`.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
    use dist::client::resolve::ResolveError;
    for cause in e.chain() {
        if let Some(r) = cause.downcast_ref::<ResolveError>() {
            return match r {
                ResolveError::NoSolution(_) => "resolution",
                ResolveError::Index(_) => "index",
                ResolveError::RequestedTwice(_) => "usage",
                ResolveError::Interrupted(_) => "interrupted",
                ResolveError::GaveUp(_) => "resolve",
            };
        }
        if cause.is::<dist::client::request::UnknownPackage>() || cause.is::<usage::NotFound>() {
            return "not_found";
        }
        if cause.is::<dist::index::sign::VerifyError>() || cause.is::<dist::index::keys::KeyError>()
        {
            return "signature";
        }
        if cause.is::<dist::index::record::RowError>()
            || cause.is::<dist::index::conflict::Conflict>()
        {
            return "index";
        }
        if cause.is::<dist::object::ObjectError>() || cause.is::<dist::client::BadObject>() {
            return "verification";
        }
        if cause.is::<dist::store::lock::LockError>() {
            return "locked";
        }
        if cause.is::<dist::client::interrupt::Interrupted>() {
            return "interrupted";
        }
        if cause.is::<dist::client::config::ConfigError>() {
            return "config";
        }
        if cause.is::<usage::UsageError>() {
            return "usage";
        }
        if let Some(u) = cause.downcast_ref::<dist::client::index_copy::IndexUnchanged>() {
            return error_kind(&u.0);
        }
    }
    "error"
}

/// Text from an index or a user, made safe for a terminal: control characters (ESC, BEL, CR,
/// newlines...) are shown escaped, never sent raw. A signed index can still be hostile.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(s, |_| false)
}

/// An error message for the terminal: control characters escaped as in [`printable`], except
/// line breaks and tabs (a failing script's last lines keep their shape). Errors can quote a
/// hostile index or a SQLite message about one.
pub fn printable_error(s: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(s, |c| c == '\n' || c == '\t')
}

fn escape_controls(s: &str, keep: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let escape = |c: char| c.is_control() && !keep(c);
    if !s.chars().any(escape) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Turns SIGINT and SIGTERM into `dist::client::interrupt::request()`, so an install that is
/// downloading or running a script unwinds through its cleanup (its torrents removed, the
/// script's process group killed, `current` untouched) instead of dying mid-way.
fn catch_interrupts() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        dist::client::interrupt::request();
    });
}

/// Takes the root's lock the command needs (`lock_mode`), waiting at most `timeout` seconds
/// (default `lock::default_timeout`); under an exclusive lock, removes what killed commands left.
fn lock_root(g: &Global, c: &Command, timeout: Option<f64>) -> Result<Option<lock::RootLock>> {
    let Some((mode, what)) = lock_mode(c) else {
        return Ok(None);
    };
    let timeout = timeout
        .map(std::time::Duration::from_secs_f64)
        .unwrap_or_else(lock::default_timeout);
    let quiet = g.quiet;
    let l = lock::acquire(&g.root, mode, what, timeout, &|m: &str| {
        if !quiet {
            eprintln!("{m}")
        }
    })?;
    if mode == Mode::Exclusive {
        dist::client::maintain::clean_leftovers(&dist::client::Layout::new(&g.root))?;
    }
    Ok(Some(l))
}

/// The commands that unwind through their cleanup on SIGINT and SIGTERM.
fn interruptible(c: &Command) -> bool {
    matches!(
        c,
        Command::Install(_)
            | Command::Uninstall { .. }
            | Command::Rollback { .. }
            | Command::Upgrade(_)
            | Command::Autoremove(_)
            | Command::Gc { .. }
            | Command::Repair { .. }
            | Command::Apply(_)
            | Command::Daemon(DaemonCommand::Run(_))
    )
}

/// Runs the command; `Ok(code)` is the exit code of a command that finished (0 unless it has a
/// verdict to report, like `verify`).
pub fn run(cli: Cli) -> Result<i32> {
    let root = cli.root.map_or_else(crate::cli::default_root, Ok)?;
    // Store paths, symlinks and transmission's download dirs are absolute.
    let root =
        std::path::absolute(&root).with_context(|| format!("invalid root {}", root.display()))?;
    let g = Global {
        root,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    repo::require(&g, &cli.command)?;
    let _lock = lock_root(&g, &cli.command, cli.lock_timeout)?;
    if interruptible(&cli.command) {
        catch_interrupts();
    }
    let top = cli.client;
    match cli.command {
        Command::Pack(args) => pack::run(&g, &args),
        Command::Add(args) => add::run(&g, &args),
        Command::Key(KeyCommand::Show(j)) => key::show(&g, j.json),
        Command::Key(KeyCommand::Rotate(j)) => key::rotate(&g, j.json),
        Command::Key(KeyCommand::Revoke(a)) => key::revoke(&g, &a.key, a.json),
        Command::Repo(RepoCommand::Init(j)) => repo::init(&g, j.json),
        Command::Init(a) => setup::init(&g, &top.with(&a.client), &a),
        Command::Config(c) => config::run(&g, &top, c),
        Command::Completions { shell } => complete::completions(shell),
        Command::Manpages { dir } => man::manpages(&dir),
        Command::Files { name, json } => files::files(&g, &name, json),
        Command::Why(a) => info::why(&g, &a.name, a.json),
        Command::Owner { path, json } => files::owner(&g, &path, json),
        Command::Env { shell } => env::print(&g, shell),
        Command::Doctor(a) => doctor::run(&g, &top.with(&a.client), a.json),
        Command::Repair {
            names,
            json,
            client,
        } => files::repair(&g, &top.with(&client), &names, json),
        Command::Serve(args) => {
            let bind = args.bind.clone().or(top.bind);
            let key = args.public_key.clone().or(top.public_key);
            serve::run(&g, &args, bind, key)
        }
        Command::Sync(a) => client::sync(&g, &top.with(&a.client), a.json),
        Command::Install(a) => packages::install(&g, &top.with(&a.client), &a),
        Command::Bundle(a) => packages::bundle(&g, &top.with(&a.client), &a),
        Command::Uninstall(a) => remove::uninstall(&g, &top.with(&a.client), &a),
        Command::Upgrade(a) => packages::upgrade(&g, &top.with(&a.client), &a),
        Command::Outdated(a) => packages::outdated(&g, &top.with(&a.client), a.json),
        Command::Hold { name, json } => remove::hold(&g, name.as_deref(), true, json),
        Command::Unhold { name, json } => remove::hold(&g, Some(&name), false, json),
        Command::Autoremove(a) => remove::autoremove(&g, &top.with(&a.client), &a),
        Command::Rollback { to, json, client } => {
            client::rollback(&g, &top.with(&client), to, json)
        }
        Command::Generations(j) => client::generations(&g, j.json),
        Command::List {
            installed,
            upgradable,
            held,
            json,
            client,
        } => client::list(&g, &top.with(&client), (installed, upgradable, held), json),
        Command::Info { name, json, client } => info::info(&g, &top.with(&client), &name, json),
        Command::Daemon(DaemonCommand::Run(f)) => daemon::seeder(&g, &top.with(&f)),
        Command::Daemon(d) => daemon::daemon(&g, &d),
        Command::Gc {
            keep,
            dry_run,
            json,
            client,
        } => client::gc(&g, &top.with(&client), keep, dry_run, json),
        Command::Verify(j) => client::verify(&g, j.json),
        Command::Search { term, json, client } => {
            client::search(&g, &top.with(&client), &term, json)
        }
        Command::Yank(a) => release::yank(&g, &a),
        Command::Unyank(a) => release::unyank(&g, &a),
        Command::Phase(a) => release::phase(&g, &a),
        Command::Export(a) => fleet::export(&g, &top.with(&a.client), &a),
        Command::Apply(a) => fleet::apply(&g, &top.with(&a.client), &a),
    }
}
