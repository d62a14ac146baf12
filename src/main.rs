//! The `dist` binary: parse, dispatch, report the error on stderr, exit non-zero on failure (2
//! for a usage error, 1 for any other). With `--json`, an error is also a JSON object on
//! standard output.

mod cli;
mod commands;

fn main() {
    // `--json` anywhere: the caller reads standard output, errors included.
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match <cli::Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let text = e.to_string();
            commands::print_json_error(text.trim().trim_start_matches("error: "), "usage");
            e.exit();
        }
        Err(e) => e.exit(),
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
            // On stderr always (a person, or a script reading stderr as before); with
            // `--json` also as a JSON object on stdout.
            if json {
                commands::print_json_error(&format!("{e:#}"), commands::error_kind(&e));
            }
            commands::out::stderr(format_args!(
                "{} {}",
                commands::out::error_prefix(),
                commands::printable_error(&format!("{e:#}"))
            ));
            std::process::exit(1);
        }
    }
}
