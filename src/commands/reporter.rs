//! The CLI's reporter: indicatif progress bars on stderr (none with `--quiet` or when stderr is
//! not a terminal... then plain phase lines).

use std::collections::HashMap;
use std::sync::Mutex;

use dist::client::{Progress, Reporter};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Cli {
    quiet: bool,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Cli {
    pub fn new(quiet: bool) -> Cli {
        Cli {
            quiet,
            bars: Mutex::new(HashMap::new()),
        }
    }

    pub fn finish(&self) {
        for (_, b) in self.bars.lock().expect("bars").drain() {
            b.finish_and_clear();
        }
    }
}

impl Reporter for Cli {
    fn phase(&self, package: &str, what: &str) {
        if self.quiet {
            return;
        }
        if let Some(b) = self.bars.lock().expect("bars").remove(package) {
            b.finish_and_clear();
        }
        eprintln!("{what:>14}  {package}");
    }

    fn progress(&self, package: &str, p: &Progress) {
        if self.quiet {
            return;
        }
        let mut bars = self.bars.lock().expect("bars");
        let bar = bars.entry(package.to_string()).or_insert_with(|| {
            let b = ProgressBar::new(p.total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>14}  {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("template"),
            );
            b.set_prefix(package.to_string());
            b
        });
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!(
            "{} peers{}",
            p.peers,
            if p.webseed { ", web seed" } else { "" }
        ));
    }

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}
