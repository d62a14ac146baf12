//! The CLI's reporter, the only place that draws: one indicatif bar per package on stderr (the
//! torrents of an install download side by side, so the bars share a `MultiProgress`) with the
//! current rate and an ETA, plain phase lines, and the lines install and uninstall scripts print
//! (`name@version | line`, control characters escaped); nothing with `--quiet` or `--json`.
//! When stderr is not a terminal, indicatif draws no bar and the lines are printed plainly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dist::client::{Phase, Progress, Reporter};
use dist::format::ids::PackageId;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{out, printable};

pub struct Cli {
    quiet: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<PackageId, Bar>>,
}

/// A package's bar and the rate it shows.
struct Bar {
    bar: ProgressBar,
    rate: Rate,
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
            b.bar.finish_and_clear();
        }
    }

    /// A line above the bars still drawing (a plain line when stderr is not a terminal).
    fn line(&self, line: &str) {
        if self.multi.println(line).is_err() || self.multi.is_hidden() {
            eprintln!("{line}");
        }
    }
}

impl Reporter for Cli {
    fn phase(&self, package: &PackageId, phase: Phase) {
        if self.quiet {
            return;
        }
        if let Some(b) = self.bars.lock().expect("bars").remove(package) {
            b.bar.finish_and_clear();
        }
        self.line(&format!("{:>14}  {package}", phase.to_string()));
    }

    fn progress(&self, package: &PackageId, p: &Progress) {
        if self.quiet {
            return;
        }
        let mut bars = self.bars.lock().expect("bars");
        let b = bars.entry(package.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(p.total));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>14}  {bar:30} {msg}").expect("template"),
            );
            bar.set_prefix(package.to_string());
            Bar {
                bar,
                rate: Rate::default(),
            }
        });
        b.rate.observe(Instant::now(), p.done);
        b.bar.set_length(p.total);
        b.bar.set_position(p.done);
        // Sizes, rates and counts as every other line prints them (`out`).
        let mut msg = vec![format!("{}/{}", out::size(p.done), out::size(p.total))];
        if let Some(r) = b.rate.per_sec() {
            msg.push(out::rate(r as u64));
        }
        if let Some(eta) = b.rate.eta((p.total > 0).then_some(p.total)) {
            msg.push(format!("ETA {}", clock(eta)));
        }
        msg.push(out::count(u64::from(p.peers), "peer"));
        if p.webseed {
            msg.push("web seed".to_string());
        }
        b.bar.set_message(msg.join(", "));
    }

    fn script_output(&self, package: &PackageId, line: &str) {
        if self.quiet {
            return;
        }
        self.line(&format!(
            "{:>14} | {}",
            package.to_string(),
            printable(line)
        ));
    }

    fn warn(&self, message: &str) {
        self.line(&format!("{} {message}", super::out::warning_prefix()));
    }
}

/// How fast the rate follows a change: the weight of what happened more than `TAU` ago falls
/// by e (after 3 `TAU`, 95 % of the rate shown is the new one).
const TAU: f64 = 2.0;
/// Samples closer together than this are not a rate (a download over HTTP reports every
/// read): the next one covers their interval too.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Beyond this an ETA says nothing (and `Duration` has limits).
const MAX_ETA: Duration = Duration::from_secs(100 * 3600);

/// The current rate of a transfer and the time it still needs, from (time, bytes done)
/// samples: an exponentially weighted moving average of the rate over each interval between
/// samples, weighted by how long the interval was. A transfer that speeds up or stalls shows it
/// within a few seconds, where the average since the start would lag by as long as the transfer
/// already ran.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    per_sec: Option<f64>,
}

impl Rate {
    fn observe(&mut self, at: Instant, done: u64) {
        let Some((then, before)) = self.last else {
            self.last = Some((at, done));
            return;
        };
        if done < before {
            // Started over (a re-check, another server): the old rate says nothing.
            *self = Rate {
                last: Some((at, done)),
                per_sec: None,
            };
            return;
        }
        let dt = at.saturating_duration_since(then);
        if dt < MIN_INTERVAL {
            return;
        }
        let secs = dt.as_secs_f64();
        let now = (done - before) as f64 / secs;
        self.per_sec = Some(match self.per_sec {
            None => now,
            Some(r) => r + (1.0 - (-secs / TAU).exp()) * (now - r),
        });
        self.last = Some((at, done));
    }

    /// Bytes a second lately; none before two samples far enough apart.
    fn per_sec(&self) -> Option<f64> {
        self.per_sec
    }

    /// What is left of `total` at the current rate: none for an unknown total, before a rate,
    /// while stalled (under a byte a second) or beyond [`MAX_ETA`].
    fn eta(&self, total: Option<u64>) -> Option<Duration> {
        let ((_, done), total) = (self.last?, total?);
        let left = total.saturating_sub(done);
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let rate = self.per_sec.filter(|r| *r >= 1.0)?;
        let secs = left as f64 / rate;
        (secs < MAX_ETA.as_secs_f64()).then(|| Duration::from_secs_f64(secs))
    }
}

/// `m:ss`, or `h:mm:ss` from an hour, rounded up to the second.
fn clock(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1_000_000.0;

    /// Feeds `rate` samples of a transfer at `per_sec[i]` bytes a second during second `i`,
    /// one sample every `step`; returns the meter and the bytes done.
    fn transfer(per_sec: &[f64], step: Duration) -> (Rate, Instant, u64) {
        let t0 = Instant::now();
        let mut rate = Rate::default();
        let (mut t, mut done) = (Duration::ZERO, 0f64);
        rate.observe(t0, 0);
        for &speed in per_sec {
            let end = t + Duration::from_secs(1);
            while t < end {
                t += step;
                done += speed * step.as_secs_f64();
                rate.observe(t0 + t, done as u64);
            }
        }
        (rate, t0 + t, done as u64)
    }

    fn close(a: f64, b: f64, within: f64) -> bool {
        (a - b).abs() <= within * b
    }

    #[test]
    fn a_steady_transfer_shows_its_rate_and_eta() {
        let (rate, _, done) = transfer(&[2.0 * MB; 5], Duration::from_millis(250));
        let r = rate.per_sec().unwrap();
        assert!(close(r, 2.0 * MB, 0.01), "{r}");
        let eta = rate.eta(Some(done + 20_000_000)).unwrap();
        assert!(close(eta.as_secs_f64(), 10.0, 0.01), "{eta:?}");
        assert_eq!(rate.eta(Some(done)), Some(Duration::ZERO));
        assert_eq!(rate.eta(Some(done / 2)), Some(Duration::ZERO));
    }

    #[test]
    fn a_transfer_that_speeds_up_shows_the_new_rate_within_seconds() {
        // Ten seconds at 1 MB/s, then 10 MB/s: five seconds later the average since the start
        // would be 4 MB/s; the rate shown is within 10 % of the new one.
        let mut speeds = vec![MB; 10];
        speeds.extend([10.0 * MB; 5]);
        let (rate, _, _) = transfer(&speeds, Duration::from_millis(250));
        let r = rate.per_sec().unwrap();
        assert!(close(r, 10.0 * MB, 0.1), "{r}");
        // And one that slows down, the same.
        let mut speeds = vec![10.0 * MB; 10];
        speeds.extend([MB; 5]);
        let (rate, _, _) = transfer(&speeds, Duration::from_millis(250));
        let r = rate.per_sec().unwrap();
        assert!(r > MB && r < 2.0 * MB, "{r}");
    }

    #[test]
    fn samples_of_every_read_give_the_same_rate() {
        // Over HTTP a sample comes with every read: thousands a second, some at the same instant.
        let (rate, at, done) = transfer(&[3.0 * MB; 3], Duration::from_micros(100));
        assert!(close(rate.per_sec().unwrap(), 3.0 * MB, 0.01));
        let mut same = rate;
        same.observe(at, done + 1000);
        same.observe(at, done + 2000);
        assert!(same.per_sec().unwrap().is_finite());
    }

    #[test]
    fn no_rate_no_eta_and_no_division_by_zero() {
        let t0 = Instant::now();
        let mut rate = Rate::default();
        assert_eq!((rate.per_sec(), rate.eta(Some(100))), (None, None));
        rate.observe(t0, 0);
        rate.observe(t0, 50);
        assert_eq!((rate.per_sec(), rate.eta(Some(100))), (None, None));
        // Stalled: a rate of zero, no ETA.
        rate.observe(t0 + Duration::from_secs(1), 0);
        rate.observe(t0 + Duration::from_secs(2), 0);
        assert_eq!(rate.per_sec(), Some(0.0));
        assert_eq!(rate.eta(Some(100)), None);
        // Unknown total: no ETA, whatever the rate.
        let (fast, _, _) = transfer(&[MB; 2], Duration::from_millis(250));
        assert_eq!(fast.eta(None), None);
        // A trickle with much to go: beyond what an ETA can say.
        let (slow, _, _) = transfer(&[2.0; 3], Duration::from_millis(500));
        assert_eq!(slow.eta(Some(u64::MAX)), None);
        // Started over: the old rate is forgotten.
        let (mut again, at, _) = transfer(&[MB; 2], Duration::from_millis(250));
        again.observe(at + Duration::from_secs(1), 10);
        assert_eq!(again.per_sec(), None);
    }

    #[test]
    fn an_eta_reads_as_a_clock() {
        assert_eq!(clock(Duration::ZERO), "0:00");
        assert_eq!(clock(Duration::from_millis(4200)), "0:05");
        assert_eq!(clock(Duration::from_secs(125)), "2:05");
        assert_eq!(clock(Duration::from_secs(3 * 3600 + 62)), "3:01:02");
    }
}
