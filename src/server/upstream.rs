//! A mirror's side of `serve`: the first verified copy of the upstream before anything else
//! starts, then a thread that follows the upstream's new serials (`repo::mirror` does the
//! copying and checking).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use super::ServeEvent;
use crate::repo::mirror::{self, Upstream};
use crate::repo::Repo;

/// A mirror's first copy: the upstream's newest serial, or, when the upstream cannot be
/// reached or verified, the copy this mirror already has (said as a problem). With no copy at
/// all it tries again every `interval` until it has one; `None` when stopped meanwhile.
pub(super) fn first_mirror(
    repo: &Repo,
    up: &Upstream,
    interval: Duration,
    stop: &AtomicBool,
    report: &(dyn Fn(ServeEvent) + Sync),
) -> Result<Option<u64>> {
    loop {
        match mirror::sync(repo, up, stop) {
            Ok(m) => {
                report(mirrored(up, &m));
                return Ok(Some(m.serial));
            }
            Err(e) => {
                if let Some(have) = repo.latest_serial()? {
                    report(ServeEvent::Problem(format!(
                        "cannot update the mirror of {}: {e:#}; serving serial {have}, the copy it has",
                        up.url
                    )));
                    return Ok(Some(have));
                }
                report(ServeEvent::Problem(format!(
                    "cannot mirror {}: {e:#}; trying again in {} s",
                    up.url,
                    interval.as_secs()
                )));
            }
        }
        if sleep_unless_stopped(interval, stop) {
            return Ok(None);
        }
    }
}

/// Keeps a mirror in step with its upstream until `stop`: one conditional GET every
/// `interval`, a sync when the upstream published. Problems are reported once each.
pub(super) fn follow_upstream(
    repo: &Repo,
    up: &Upstream,
    interval: Duration,
    stop: &AtomicBool,
    report: &(dyn Fn(ServeEvent) + Sync),
) {
    let mut last_problem = String::new();
    while !sleep_unless_stopped(interval, stop) {
        match mirror::sync(repo, up, stop) {
            Ok(m) => {
                if m.changed {
                    report(mirrored(up, &m));
                }
                last_problem.clear();
            }
            Err(_) if stop.load(Ordering::SeqCst) => return,
            Err(e) => {
                let msg = format!(
                    "cannot update the mirror of {}: {e:#}; still serving the copy it has",
                    up.url
                );
                if msg != last_problem {
                    report(ServeEvent::Problem(msg.clone()));
                    last_problem = msg;
                }
            }
        }
    }
}

fn mirrored(up: &Upstream, m: &mirror::Mirrored) -> ServeEvent {
    ServeEvent::Mirrored {
        upstream: up.url.to_string(),
        serial: m.serial,
        packages: m.packages,
        fetched: m.fetched,
        fetched_bytes: m.fetched_bytes,
    }
}

/// Sleeps `d` in small steps; true when `stop` was set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.load(Ordering::SeqCst)
}
