//! One cell of `bench transport`: the origin's class set to the cell's link, N fresh client
//! addresses put on the namespace's `lo`, the lab's group of clients run, then the roots deleted
//! and the addresses taken off again.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::plan::{Cell, Link};
use crate::lab::campaign as c;
use crate::lab::env::Env;
use crate::lab::group::{self, Group, Outcome};
use crate::lab::Published;

/// The longest a client may take in any cell.
const CLIENT_LIMIT_MAX: Duration = Duration::from_secs(600);

/// Fresh client addresses, 10.78.x.1 to 10.78.x.254, each handed out once per run: transmission
/// refuses a peer address that completed the torrent before, and every size's package is shared
/// by its cells. The server stays at 10.77.0.1.
pub(super) struct Addresses {
    next: usize,
}

impl Addresses {
    pub fn new() -> Addresses {
        Addresses { next: 0 }
    }

    fn take(&mut self, n: usize) -> Result<Vec<String>> {
        if self.next + n > 256 * 254 {
            bail!("out of client addresses in 10.78.0.0/16");
        }
        let ips = (self.next..self.next + n)
            .map(|k| format!("10.78.{}.{}", k / 254, k % 254 + 1))
            .collect();
        self.next += n;
        Ok(ips)
    }
}

/// What a cell gave: its outcome, or why it could not run.
pub(super) struct CellRun {
    pub cell: Cell,
    pub result: std::result::Result<Outcome, String>,
}

impl CellRun {
    /// Ran, every client installed, nothing went wrong around them.
    pub fn succeeded(&self) -> bool {
        self.result.as_ref().is_ok_and(|o| !o.failed())
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.result.as_ref().ok()
    }

    /// Why it failed (`None`: it did not).
    pub fn failure(&self) -> Option<String> {
        match &self.result {
            Err(e) => Some(e.clone()),
            Ok(o) if !o.failed() => None,
            Ok(o) => {
                let failed: Vec<_> = o.clients.iter().filter(|r| !r.ok()).collect();
                Some(match failed.first() {
                    Some(r) => {
                        let err = r.last_error().unwrap_or_else(|| "stderr empty".into());
                        one_line(&format!(
                            "{} of {} clients failed; {}: {}: {err}",
                            failed.len(),
                            o.clients.len(),
                            r.ip,
                            r.why(o.limit)
                        ))
                    }
                    None => one_line(&o.notes.join("; ")),
                })
            }
        }
    }
}

/// Sets the origin's class to `link`'s rate (live: `tc class change`).
pub(super) fn set_link(env: &Env, link: &Link) -> Result<()> {
    let rate = link.tc_rate();
    env.ns
        .run(&[
            "tc",
            "class",
            "change",
            "dev",
            "lo",
            "parent",
            "1:",
            "classid",
            c::ORIGIN_CLASS,
            "htb",
            "rate",
            &rate,
            "ceil",
            &rate,
        ])
        .map(drop)
        .with_context(|| format!("cannot set the origin's class to {rate}"))
}

/// Runs `cell` with the package of its size on fresh addresses; a cell that cannot run is a
/// failed `CellRun` (the run goes on), a namespace that cannot take addresses is an error.
pub(super) fn run(
    env: &Env,
    cell: Cell,
    package: &Published,
    key: &str,
    addresses: &mut Addresses,
) -> Result<CellRun> {
    let ips = addresses.take(cell.clients)?;
    ip_batch(env, "add", &ips)?;
    let dir = env.tmp.join("cells").join(format!(
        "{}-{}x{}-{}",
        cell.link.name, cell.clients, cell.mib, cell.scenario.name
    ));
    let result = group::run(
        env,
        &Group {
            dir: dir.clone(),
            package,
            key,
            ips: &ips,
            install_args: cell.scenario.install_args,
            config: cell.scenario.config,
            mirrors: &[],
            mirror: None,
            timeline: false,
            limit: client_limit(&cell),
        },
    )
    // The roots' common directory is long and the same in every message: `…`.
    .map_err(|e| one_line(&format!("{e:#}").replace(&dir.display().to_string(), "…")));
    let removed = fs::remove_dir_all(&dir);
    ip_batch(env, "del", &ips)?;
    let mut run = CellRun { cell, result };
    if let (Err(e), Ok(o)) = (removed, run.result.as_mut()) {
        o.notes
            .push(format!("cannot delete the roots in {}: {e}", dir.display()));
    }
    Ok(run)
}

/// Three times the estimate and a minute, at most `CLIENT_LIMIT_MAX`: a stalled swarm costs
/// the run a bounded time.
fn client_limit(cell: &Cell) -> Duration {
    (cell.estimate() * 3 + Duration::from_secs(60)).min(CLIENT_LIMIT_MAX)
}

/// `ip addr VERB IP/32 dev lo` for every address, in one `ip -batch` inside the namespace.
fn ip_batch(env: &Env, verb: &str, ips: &[String]) -> Result<()> {
    let file = env.tmp.join("ip-batch");
    let lines: String = ips
        .iter()
        .map(|ip| format!("addr {verb} {ip}/32 dev lo\n"))
        .collect();
    fs::write(&file, lines)?;
    run_batch(env, &file).with_context(|| format!("ip addr {verb} of {} addresses", ips.len()))
}

fn run_batch(env: &Env, file: &Path) -> Result<()> {
    let file = file.to_str().context("temp path is not UTF-8")?;
    env.ns.run(&["ip", "-batch", file])?;
    Ok(())
}

/// `text` on one line, at most 300 characters (a row of the table).
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    match joined.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &joined[..at]),
        None => joined,
    }
}
