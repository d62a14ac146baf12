//! The `dist` binary: parse, dispatch, print the error chain, exit non-zero on failure.

mod cli;
mod commands;

fn main() {
    let cli = <cli::Cli as clap::Parser>::parse();
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", commands::printable_error(&format!("{e:#}")));
            std::process::exit(1);
        }
    }
}
