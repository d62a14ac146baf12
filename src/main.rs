//! The `dist` binary: parse, dispatch, report the error on stderr, exit non-zero on failure (2
//! for a usage error, 1 for any other). With `--json`, an error is also a JSON object on
//! standard output.

mod cli;
mod commands;

fn main() {
    // `DIST_COMPLETE=bash dist -- WORDS…`: the shell asks for completions (`dist completions`).
    commands::complete::complete_env();
    // `--json` anywhere: the caller reads standard output, errors included, even an error of
    // the command line itself (before clap could say whether `--json` was given).
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = commands::parse_or_exit(json);
    commands::out::set_color(cli.color);
    std::process::exit(commands::exit_code(commands::run(cli), json));
}
