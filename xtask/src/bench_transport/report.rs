//! What `bench transport` prints: one line per cell as soon as it is over, the table of every
//! cell, and the last line, `transport: worst_default_vs_http=… origin_128=… wall_16=…
//! origin_16_24=…`. A figure of a cell that did not run, or failed, is `nan`.

use super::cell::CellRun;
use super::plan::Cell;
use crate::lab::group::tally;
use crate::lab::secs1;
use crate::util::mib;

/// The cell's line: wall (the slowest client), origin bytes / (N × size), what the clients got
/// from peers and web seeds (their `install --json`), how many succeeded; why it failed.
pub(super) fn cell_line(k: usize, of: usize, r: &CellRun) {
    let head = format!("[{}/{of}] {}", k + 1, r.cell.label());
    match r.outcome() {
        Some(o) => println!(
            "{head}: {}/{} ok, wall {}, origin {:.3} × (N × size), from peers {:.1} MiB, from web seeds {:.1} MiB; transport {}",
            o.ok_count(),
            o.clients.len(),
            secs1(o.wall),
            o.origin_ratio(),
            mib(o.total("bytes_from_peers")),
            mib(o.total("bytes_from_webseed")),
            tally(&o.clients, "transport"),
        ),
        None => println!("{head}: could not start"),
    }
    if let Some(why) = r.failure() {
        println!("  FAILED: {why}");
    }
}

/// Every cell that ran (or tried to), then those that did not (groups the plan skipped, cells
/// after the server failed), with why.
pub(super) fn table(runs: &[CellRun], not_run: &[(Vec<Cell>, String)]) {
    println!();
    println!("| link | N | size | scenario | ok | wall | ÷ http wall | origin / (N × size) | from peers | from web seeds | transport | failure |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let c = r.cell;
        let lead = format!(
            "| {} | {} | {} MiB | {} |",
            c.link.name, c.clients, c.mib, c.scenario.name
        );
        let failure = r.failure().unwrap_or_default().replace('|', "/");
        match r.outcome() {
            Some(o) => println!(
                "{lead} {}/{} | {} | {} | {:.3} | {:.1} MiB | {:.1} MiB | {} | {failure} |",
                o.ok_count(),
                o.clients.len(),
                secs1(o.wall),
                fmt(vs_http(runs, &c)).replace("nan", "-"),
                o.origin_ratio(),
                mib(o.total("bytes_from_peers")),
                mib(o.total("bytes_from_webseed")),
                tally(&o.clients, "transport"),
            ),
            None => println!(
                "{lead} 0/{} | - | - | - | - | - | - | {failure} |",
                c.clients
            ),
        }
    }
    for (g, why) in not_run {
        let c = g[0];
        let names: Vec<&str> = g.iter().map(|c| c.scenario.name).collect();
        println!(
            "| {} | {} | {} MiB | {} | not run | - | - | - | - | - | - | {} |",
            c.link.name,
            c.clients,
            c.mib,
            names.join(", "),
            why.replace('|', "/")
        );
    }
}

/// The last line.
pub(super) fn last_line(runs: &[CellRun]) -> String {
    let worst = runs
        .iter()
        .filter(|r| r.cell.scenario.name == "default")
        .map(|r| vs_http(runs, &r.cell))
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, f64::max);
    let origin = |clients, size| {
        find(runs, "64mbit", clients, size, "default").map_or(f64::NAN, |r| {
            r.outcome().map_or(f64::NAN, |o| o.origin_ratio())
        })
    };
    let default_16 = find(runs, "64mbit", 8, 16, "default");
    format!(
        "transport: worst_default_vs_http={} origin_128={} wall_16={} origin_16_24={}",
        fmt(worst),
        fmt(origin(8, 128)),
        fmt(default_16.map_or(f64::NAN, |r| vs_http(runs, &r.cell))),
        fmt(origin(24, 16)),
    )
}

/// The cell's wall / the wall of `http` in its group (both succeeded), else NaN.
fn vs_http(runs: &[CellRun], c: &Cell) -> f64 {
    let http = find(runs, c.link.name, c.clients, c.mib, "http");
    let this = find(runs, c.link.name, c.clients, c.mib, c.scenario.name);
    match (
        this.and_then(CellRun::outcome),
        http.and_then(CellRun::outcome),
    ) {
        (Some(a), Some(h)) => a.wall.as_secs_f64() / h.wall.as_secs_f64(),
        _ => f64::NAN,
    }
}

/// The cell, if it ran and succeeded.
fn find<'a>(
    runs: &'a [CellRun],
    link: &str,
    clients: usize,
    mib: usize,
    scenario: &str,
) -> Option<&'a CellRun> {
    runs.iter()
        .find(|r| r.cell.is(link, clients, mib, scenario))
        .filter(|r| r.succeeded())
}

/// Three decimals, or `nan`.
fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "nan".into()
    }
}
