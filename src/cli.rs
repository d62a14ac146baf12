//! Command-line syntax: every flag and subcommand of `dist`, and nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use dist::client::config::{Engine, Transport};
use dist::index::status::Phase;
pub(crate) use values::default_root;
use values::{engine_parser, transport_parser};

pub mod complete;
mod everyday;
mod fleet;
mod serve;
mod values;
pub use everyday::{ConfigSetArgs, ConfigUnsetArgs, RepoCommand, WhyArgs};
pub use fleet::{ApplyArgs, ExportArgs, PhaseArgs, UnyankArgs, YankArgs};
pub use serve::ServeArgs;

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

    /// Say more: how each object was fetched, where a sync went, what a gc removed.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t)]
    pub color: crate::commands::out::ColorChoice,

    /// Seconds to wait for another dist holding this root's lock (default 300, or
    /// DIST_LOCK_TIMEOUT).
    #[arg(long, global = true, value_name = "SECS")]
    pub lock_timeout: Option<f64>,

    /// Client settings given before the verb (`dist --server-url URL sync`); the same flags
    /// after the verb win.
    #[command(flatten, next_help_heading = "Client settings (also after the verb)")]
    pub client: ClientFlags,

    #[command(subcommand)]
    pub command: Command,
}

/// Client settings; each overrides the same key of `ROOT/client.yaml`. Only the verbs that
/// read the client's configuration take them.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(next_help_heading = "Client settings (override client.yaml)")]
pub struct ClientFlags {
    /// Base URL of the repository's HTTP server (`server_url`).
    #[arg(long, value_name = "URL")]
    pub server_url: Option<String>,
    /// The repository's public key, base64, as `dist key show` prints it (`public_key`).
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// Address the client's transmission-daemon binds and announces from (`bind_address`).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// How objects are fetched: auto, torrent or http (`transport`, default auto).
    #[arg(long, value_name = "TRANSPORT", value_parser = transport_parser())]
    pub transport: Option<Transport>,
    /// The BitTorrent engine: libtorrent or transmission (`engine`).
    #[arg(long, value_name = "ENGINE", value_parser = engine_parser())]
    pub engine: Option<Engine>,
    /// RPC URL of an existing transmission-daemon to use instead of a private one (`rpc_url`).
    #[arg(long, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// Seconds an install or uninstall script may run before it is killed (`script_timeout`,
    /// default 300).
    #[arg(long, value_name = "SECS")]
    pub script_timeout: Option<u64>,
    /// Take phased versions whatever this machine's place in their rollout (no client.yaml key).
    #[arg(long)]
    pub no_phasing: bool,
}

impl ClientFlags {
    /// These flags with `after`'s (given after the verb) on top.
    pub fn with(&self, after: &ClientFlags) -> ClientFlags {
        ClientFlags {
            server_url: after.server_url.clone().or_else(|| self.server_url.clone()),
            public_key: after.public_key.clone().or_else(|| self.public_key.clone()),
            bind: after.bind.clone().or_else(|| self.bind.clone()),
            transport: after.transport.or(self.transport),
            engine: after.engine.or(self.engine),
            rpc_url: after.rpc_url.clone().or_else(|| self.rpc_url.clone()),
            script_timeout: after.script_timeout.or(self.script_timeout),
            no_phasing: after.no_phasing || self.no_phasing,
        }
    }
}

/// `--json` and the client settings, for the verbs that take nothing else.
#[derive(clap::Args, Debug)]
pub struct ClientJson {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the canonical tarball and torrent of a package directory.
    Pack(PackArgs),
    /// Publisher: validate, pack, store and index packages (all or nothing), then publish.
    #[command(
        after_help = "Examples:\n  dist --root /srv/dist add ./hello ./tool\n  find pkgs -mindepth 1 -maxdepth 1 -type d | dist --root /srv/dist add --from -"
    )]
    Add(AddArgs),
    /// The repository's signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Publisher: make the repository at --root (`dist repo init`).
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Publisher: run the tracker, the seeder and the HTTP server for the index and objects.
    #[command(
        after_help = "Example:\n  dist --root /srv/dist serve --http 0.0.0.0:7380 --tracker 0.0.0.0:6969 --public-url http://repo.example:7380 --bind 10.0.0.1"
    )]
    Serve(ServeArgs),
    /// Write ROOT/client.yaml for one repository (checks the URL and the key first).
    #[command(
        after_help = "Example:\n  dist init --server-url http://10.0.0.1:7380 --public-key RWQ...\n  dist sync"
    )]
    Init(InitArgs),
    /// The client's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Fetch and verify the signed index (of every configured repository).
    #[command(after_help = "Example:\n  dist sync && dist outdated")]
    Sync(ClientJson),
    /// Install packages: NAME, NAME@VERSION or NAME@REQUIREMENT (REPO/ first: from that
    /// repository), with their dependencies.
    #[command(
        after_help = "Examples:\n  dist install hello\n  dist install 'hello@^1.2' tool@2.0.0\n  dist install --dry-run app\n  dist install extra/tool"
    )]
    Install(InstallArgs),
    /// Write one file holding packages, their dependencies and the signed index that verifies
    /// them, for `dist install --from-bundle FILE NAME...` on a machine with no network.
    #[command(
        after_help = "Example:\n  dist bundle hello tool@1.2.0 -o offline.bundle\n  (elsewhere) dist install --from-bundle offline.bundle hello tool"
    )]
    Bundle(BundleArgs),
    /// Remove packages (one new generation without them); refused while others depend on them.
    #[command(
        visible_alias = "remove",
        after_help = "Examples:\n  dist uninstall hello tool\n  dist remove app --with-dependents\n  dist uninstall --purge svc"
    )]
    Uninstall(UninstallArgs),
    /// Why a package is installed: each chain of requested packages down to it.
    #[command(after_help = "Example:\n  dist why libfoo")]
    Why(WhyArgs),
    /// The files an installed package put into the store (not installed: what the index and
    /// a cached object tell).
    Files {
        #[arg(add = complete::packages())]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Which installed package a file belongs to (a profile link such as
    /// ROOT/current/bin/tool, or a path inside a store path).
    Owner {
        path: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Shell lines that put the profile on PATH, MANPATH and XDG_DATA_DIRS (the programs,
    /// manual pages, completions and desktop files of ROOT/current).
    #[command(
        after_help = "Examples:\n  eval \"$(dist env)\"              # in ~/.bashrc, ~/.zshrc or ~/.profile\n  dist env --shell fish | source   # in ~/.config/fish/config.fish"
    )]
    Env {
        /// The syntax: bash (the default, also for zsh and any POSIX sh), zsh or fish.
        #[arg(long, value_enum, default_value_t = EnvShell::Bash)]
        shell: EnvShell,
    },
    /// Re-unpack installed packages whose store paths `verify` finds changed (from the verified
    /// object, fetched again when it is not cached).
    #[command(after_help = "Example:\n  dist verify || dist repair")]
    Repair {
        /// Installed packages to check and repair (default: every installed package).
        #[arg(value_name = "NAME", add = complete::installed_names())]
        names: Vec<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Check what can keep this root from working: the configuration, each server (reachable,
    /// its index verifies with the trusted key), the index copy, the seeding process, PATH,
    /// disk space, the clock. Exit 1 when a check fails.
    #[command(after_help = "Example:\n  dist doctor || dist doctor --json")]
    Doctor(ClientJson),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    #[command(
        after_help = "Example:\n  dist completions bash > ~/.local/share/bash-completion/completions/dist"
    )]
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (dist.1 and one per verb) into DIR.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Move installed packages (all, or the named) to the newest versions their constraints and
    /// holds allow.
    #[command(after_help = "Examples:\n  dist upgrade\n  dist upgrade --dry-run hello")]
    Upgrade(UpgradeArgs),
    /// Installed packages with a newer version in the index.
    Outdated(ClientJson),
    /// Keep a package at its installed version through `upgrade` and resolution; without a
    /// name, list the held packages.
    #[command(after_help = "Examples:\n  dist hold hello\n  dist hold          # what is held")]
    Hold {
        /// An installed package (none: list the holds).
        #[arg(add = complete::installed_names())]
        name: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Release a hold.
    Unhold {
        /// A held package.
        #[arg(add = complete::installed_names())]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove the packages installed as dependencies that nothing requested needs any more.
    Autoremove(AutoremoveArgs),
    /// Switch back to the previous generation, or to generation N.
    #[command(
        after_help = "Examples:\n  dist rollback\n  dist generations && dist rollback --to 3"
    )]
    Rollback {
        /// The generation to switch to (default: the one before the current).
        #[arg(long, value_name = "N", add = complete::generations())]
        to: Option<u64>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// List generations.
    Generations(JsonFlag),
    /// List packages of the index, or the installed ones.
    #[command(after_help = "Examples:\n  dist list --installed\n  dist list --held")]
    List {
        /// The installed packages instead of the index's (with how each came: requested or
        /// as a dependency, and whether it is held).
        #[arg(long)]
        installed: bool,
        /// The installed packages with a newer version: what `dist outdated` prints.
        #[arg(long, conflicts_with = "installed")]
        upgradable: bool,
        /// Only the installed packages `dist hold` keeps at their version.
        #[arg(long, conflicts_with = "installed")]
        held: bool,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Every version of a package: size, date, dependencies, conflicts, commands, status, and
    /// which one is installed.
    #[command(visible_alias = "show")]
    Info {
        /// A package name.
        #[arg(add = complete::packages())]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// The background process that seeds what this root installed (the libtorrent seeder or
    /// transmission-daemon): what it seeds, its upload limit, stopping it.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Remove what `autoremove` would, delete generations beyond the newest N, then what no
    /// generation references.
    Gc {
        /// Keep the newest N generations (default: all of them; the current one always).
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Say what would be removed and freed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Re-hash every store path a generation references against its install record.
    Verify(JsonFlag),
    /// Publisher: withdraw a version and republish: resolution no longer picks it unless it is
    /// asked for exactly (NAME@=VERSION); the object stays, installed copies stay.
    #[command(
        after_help = "Example:\n  dist --root /srv/dist yank hello@2.0.0 --reason 'loses data on upgrade, use 2.0.1'"
    )]
    Yank(YankArgs),
    /// Publisher: take a yank back and republish.
    Unyank(UnyankArgs),
    /// Publisher: roll a version out to PERCENT of the machines (0 to 100; it only grows unless
    /// --force) and republish.
    #[command(after_help = "Example:\n  dist --root /srv/dist phase hello@2.0.0 50")]
    Phase(PhaseArgs),
    /// Write the installed set (repository, name, version, BLAKE3, requested or dependency) as
    /// the file `apply` takes (standard output, or -o FILE).
    #[command(after_help = "Example:\n  dist export -o web.set && git diff web.set")]
    Export(ExportArgs),
    /// Make the installed set exactly the one FILE names, in one generation: installs,
    /// upgrades, downgrades and removals, every object checked against the signed index.
    #[command(after_help = "Example:\n  dist apply --dry-run web.set && dist apply web.set")]
    Apply(ApplyArgs),
    /// Packages whose name or description contains TERM, newest version first.
    #[command(after_help = "Example:\n  dist search hello")]
    Search {
        /// Text to look for (case does not matter).
        #[arg(add = complete::packages())]
        term: String,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
}

#[derive(clap::Args, Debug)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Replace an existing client.yaml.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Every setting as resolved, and where it came from (flag, client.yaml or default).
    Show(ClientJson),
    /// Set one key of client.yaml (checked as every command reads it; comments and the other
    /// keys are kept).
    #[command(
        after_help = "Examples:\n  dist config set seed false\n  dist config set upload_limit 500"
    )]
    Set(ConfigSetArgs),
    /// Remove one key from client.yaml: its default applies again.
    Unset(ConfigUnsetArgs),
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Packages: NAME, NAME@VERSION, NAME@REQUIREMENT, each optionally REPO/ first.
    /// A local object file (`./NAME-VERSION.tar`: a path with `/` or ending in `.tar`) is
    /// accepted when the synced index names its BLAKE3.
    #[arg(
        required = true,
        value_name = "[REPO/]NAME[@VERSION|@REQ]|PATH.tar",
        add = complete::packages()
    )]
    pub packages: Vec<String>,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// Unpack the named packages again (from the verified object, fetched again when it is
    /// not cached) even when they are installed.
    #[arg(long)]
    pub reinstall: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Install from a file `dist bundle` wrote, with no server: its index is verified with the
    /// trusted key (and replaces the local copy if newer), its objects with that index.
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub from_bundle: Option<std::path::PathBuf>,
    /// Allow the resolution to move an installed package to a lower version that was not
    /// asked for by version (otherwise refused, naming it).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Remove installed packages that a package of this install conflicts with (declared
    /// `conflicts`), in the same transition, instead of refusing.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(clap::Args, Debug)]
pub struct BundleArgs {
    /// Packages to bundle, with every dependency: NAME, NAME@VERSION, NAME@REQUIREMENT, each
    /// optionally REPO/ first.
    #[arg(
        required = true,
        value_name = "[REPO/]NAME[@VERSION|@REQ]",
        add = complete::packages()
    )]
    pub packages: Vec<String>,
    /// The bundle file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: std::path::PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(clap::Args, Debug)]
pub struct UpgradeArgs {
    /// Installed packages to upgrade (default: every installed package).
    #[arg(value_name = "NAME", add = complete::installed_names())]
    pub packages: Vec<String>,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a package to move to a lower version (otherwise refused, naming it).
    #[arg(long)]
    pub allow_downgrade: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// What the daemon seeds, to whom, how much it uploaded.
    Status(JsonFlag),
    /// Stop it gracefully (torrents first, so the tracker hears it).
    Stop(JsonFlag),
    /// The libtorrent engine's seeder itself, in the foreground (installs start it on need).
    #[command(hide = true)]
    Run(ClientFlags),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Package directories.
    #[arg(required_unless_present = "from")]
    pub dirs: Vec<PathBuf>,
    /// Read package directories from FILE, one per line (`-`: standard input), for repositories
    /// too large for one command line; added with the directories given, all or nothing.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many index deltas stay published (also `index_retention` in server.yaml);
    /// default 32.
    #[arg(long, value_name = "N")]
    pub index_retention: Option<usize>,
    /// Publish packages whose dependencies the repository cannot satisfy (refused otherwise,
    /// so that what is published can be installed).
    #[arg(long)]
    pub allow_unresolved: bool,
    /// Roll the new versions out to PERCENT of the machines (0 to 100; `dist phase` grows it).
    #[arg(long, value_name = "PERCENT", value_parser = parse_phase)]
    pub phase: Option<Phase>,
    /// Make the repository first when --root has none (as `dist repo init` does).
    #[arg(long)]
    pub create: bool,
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    Phase::parse(s)
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print the public key (the base64 line `minisign -V -P KEY` takes).
    Show(JsonFlag),
    /// Make a new signing key and publish a rotation statement signed by the old key and the
    /// new one: clients that trust the old key move to the new one on their next sync.
    Rotate(JsonFlag),
    /// Publish, signed by the current key, that KEY (a public key, or the id of a key this
    /// repository rotated away from) must never be accepted again.
    Revoke(RevokeArgs),
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// The key: its base64 public key, or its 16-digit id.
    #[arg(value_name = "KEY")]
    pub key: String,
    #[arg(long)]
    pub json: bool,
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
    /// Rebuild and compare BLAKE3 and infohash with what the synced index of --root publishes
    /// for this name and version (writes nothing).
    #[arg(long)]
    pub check: bool,
}

/// `dist uninstall`.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// Installed packages to remove.
    #[arg(required = true, value_name = "NAME", add = complete::installed_names())]
    pub names: Vec<String>,
    /// Remove the installed packages that depend on them too.
    #[arg(long)]
    pub with_dependents: bool,
    /// Remove their state (ROOT/var/NAME) and configuration files (ROOT/etc/NAME) too; their
    /// uninstall scripts are told DIST_ACTION=purge.
    #[arg(long)]
    pub purge: bool,
    /// Say what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

/// `dist autoremove`.
#[derive(clap::Args, Debug)]
pub struct AutoremoveArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Say what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub client: ClientFlags,
}

/// The shells `dist env` writes for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvShell {
    Bash,
    Zsh,
    Fish,
}
