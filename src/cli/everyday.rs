//! The arguments of issue 23's second-pass verbs: `config set|unset`, `repo init`, `why`.

use super::JsonFlag;

/// `dist config set KEY VALUE`.
#[derive(clap::Args, Debug)]
pub struct ConfigSetArgs {
    /// A client.yaml key (`dist config show` lists them).
    #[arg(value_name = "KEY", value_parser = config_keys())]
    pub key: String,
    /// Its value, as written in client.yaml (`false`, `12500`, `http://HOST:PORT`, `[a, b]`).
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    pub value: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `dist config unset KEY`.
#[derive(clap::Args, Debug)]
pub struct ConfigUnsetArgs {
    /// A client.yaml key: removed from the file, so its default applies.
    #[arg(value_name = "KEY", value_parser = config_keys())]
    pub key: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn config_keys() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(dist::client::config_file::keys())
}

/// `dist repo …`: the publisher's repository under --root.
#[derive(clap::Subcommand, Debug)]
pub enum RepoCommand {
    /// Make a repository at --root: its signing key (printed, to give to clients and to back
    /// up) and its empty index. The only way one is made (or `dist add --create`).
    #[command(
        after_help = "Example:\n  dist --root /srv/dist repo init\n  dist --root /srv/dist add ./hello"
    )]
    Init(JsonFlag),
}

/// `dist why NAME`.
#[derive(clap::Args, Debug)]
pub struct WhyArgs {
    /// An installed package.
    #[arg(value_name = "NAME", add = super::complete::installed_names())]
    pub name: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
