//! The `dist` binary: parse, dispatch, report the error on stderr, exit non-zero on failure (2
//! for a usage error, 1 for any other). With `--json`, an error is also a JSON object on
//! standard output.

mod cli;
mod commands;

fn main() {
    // `DIST_COMPLETE=bash dist -- WORDS…`: the shell asks for completions (`dist completions`).
    commands::complete::complete_env();
    // `--json` anywhere: the caller reads standard output, errors included.
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match <cli::Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) => match commands::usage::habit_message(&e) {
            Some(text) => {
                if json {
                    commands::print_json_error(text.lines().next().unwrap_or(""), "usage");
                }
                commands::out::stderr(format_args!("error: {text}"));
                std::process::exit(2);
            }
            None if json && e.use_stderr() => {
                let text = e.to_string();
                commands::print_json_error(text.trim().trim_start_matches("error: "), "usage");
                e.exit();
            }
            None => e.exit(),
        },
    };
    commands::out::set_color(cli.color);
    match commands::run(cli) {
        Ok(code) => match commands::out::failure() {
            Some(e) => {
                commands::out::stderr(format_args!("error: cannot write to standard output: {e}"));
                std::process::exit(1);
            }
            None => std::process::exit(code),
        },
        Err(e) => {
            let kind = commands::error_kind(&e);
            // On stderr always (a person, or a script reading stderr as before); with
            // `--json` also as a JSON object on stdout.
            if json {
                commands::print_json_error(&format!("{e:#}"), kind);
            }
            commands::out::stderr(format_args!(
                "{} {}",
                commands::out::error_prefix(),
                commands::printable_error(&format!("{e:#}"))
            ));
            std::process::exit(if kind == "usage" { 2 } else { 1 });
        }
    }
}
