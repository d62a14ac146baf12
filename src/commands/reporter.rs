//! The CLI's reporter, the only place that draws: one indicatif bar per package on stderr (the
//! torrents of an install download side by side, so the bars share a `MultiProgress`), and plain
//! phase lines; nothing with `--quiet` or `--json`.

use std::collections::HashMap;
use std::sync::Mutex;

use dist::client::{Phase, Progress, Reporter};
use dist::format::ids::PackageId;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Cli {
    quiet: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<PackageId, ProgressBar>>,
}

impl Cli {
    pub fn new(quiet: bool) -> Cli {
        Cli {
            quiet,
            multi: MultiProgress::new(),
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
    fn phase(&self, package: &PackageId, phase: Phase) {
        if self.quiet {
            return;
        }
        if let Some(b) = self.bars.lock().expect("bars").remove(package) {
            b.finish_and_clear();
        }
        let line = format!("{:>14}  {package}", phase.to_string());
        // Above the bars still drawing (a plain line when stderr is not a terminal).
        if self.multi.println(&line).is_err() || self.multi.is_hidden() {
            eprintln!("{line}");
        }
    }

    fn progress(&self, package: &PackageId, p: &Progress) {
        if self.quiet {
            return;
        }
        let mut bars = self.bars.lock().expect("bars");
        let bar = bars.entry(package.clone()).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(p.total));
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
