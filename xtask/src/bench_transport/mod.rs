//! `cargo xtask bench transport [--quick]`: the transports side by side in one run, as a matrix
//! of cells: the origin's link (64 mbit/s, 1 gbit/s, not capped) × N clients (1, 8, 24) ×
//! package size (1, 16, 128, 512 MiB; 512 only up to 8 clients) × scenario (`default`: no
//! flag; `http`; each engine forced, `--transport torrent` with `engine:` in client.yaml; the
//! list is `plan::SCENARIOS`).
//!
//! Everything runs in a network namespace the bench makes, with the lab of `bench swarm`
//! (`crate::lab`): one `dist serve` at 10.77.0.1, its every byte counted by an HTB class on the
//! namespace's `lo` whose rate is set to the cell's link before the cell, one package per size
//! published once (fresh random content), and per cell N clients on fresh addresses
//! (10.78.x.y, never reused in a run: transmission refuses a peer that completed the torrent
//! before) with fresh roots, synced, released together, their daemons stopped and roots
//! deleted afterwards. The plan (`plan`) is printed first with its estimate; groups that would
//! take the run over its budget (30 min; `--quick` 5 min) are skipped, saying so.
//!
//! A cell that cannot run (e.g. `dist sync` refusing an `engine:` key it does not know yet) is a
//! failed row with its reason, and the run goes on. Per cell: the wall of the slowest client,
//! the origin's bytes / (N × size), the clients' `bytes_from_peers` and `bytes_from_webseed`
//! summed, how many succeeded (`report`). Then the table, and last:
//! `transport: worst_default_vs_http=… origin_128=… wall_16=… origin_16_24=…`. Failed cells
//! are rows of the result (the line before the last counts them), so the bench exits 0 once
//! the matrix ran to its end; it fails (after the last line, on stderr) only when the run itself
//! broke: set-up, the server unhealthy or not stopping cleanly, a process left in the
//! namespace.

mod cell;
mod plan;
mod report;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use self::cell::{Addresses, CellRun};
use self::plan::{Cell, Link, Plan};
use crate::lab::campaign as c;
use crate::lab::env::{in_namespace_with, Env};
use crate::lab::server::Server;
use crate::lab::{self, secs1, Published};
use crate::netns::SERVER_IP;
use crate::util::mib;

/// How long `dist serve` may take to be healthy at the start (it checks every package).
const SERVE_LIMIT: Duration = Duration::from_secs(300);
/// How long it may take to be healthy again before a cell.
const SERVE_AGAIN_LIMIT: Duration = Duration::from_secs(60);

pub fn run(args: &[&str]) -> Result<()> {
    let plan = plan::from_args(args)?;
    plan.print();
    in_namespace_with("transport", &[SERVER_IP], |env| measure(env, &plan))
}

/// The package of `mib` MiB.
fn package_name(mib: usize) -> String {
    format!("transport-{mib}mib")
}

fn measure(env: &Env, plan: &Plan) -> Result<()> {
    let t = Instant::now();
    println!("dist {}", env.dist.display());
    let repo = env.tmp.join("repo");
    let names: Vec<(String, usize)> = plan::sizes(&plan.cells)
        .into_iter()
        .map(|m| (package_name(m), m))
        .collect();
    let (published, took) = lab::publish(env, &repo, &names)?;
    println!(
        "published {} packages ({}) in {}",
        published.len(),
        published
            .iter()
            .map(|p| format!("{:.0} MiB", mib(p.size)))
            .collect::<Vec<_>>()
            .join(", "),
        c::secs(took)
    );
    let key = c::ok(env, &repo, &["key", "show"])?.trim().to_string();
    // Shaped at 64 mbit/s here; `set_link` sets each cell's rate before it runs.
    c::shape(env, 64, &[(SERVER_IP, c::ORIGIN_CLASS)])?;
    let mut server = Server::bench_origin(env, &repo, &[], "serve.log")?;
    let mut runs: Vec<CellRun> = Vec::new();
    let mut not_run = plan.skipped.clone();
    let result = cells(
        env,
        plan,
        &published,
        &key,
        &mut server,
        &mut runs,
        &mut not_run,
    );
    let stopped = server.stop();
    let left = env.ns.pids();
    for pid in &left {
        println!("left running: {pid} {}", c::cmdline(*pid));
        c::terminate(*pid);
    }
    report::table(&runs, &not_run);
    let failed = runs.iter().filter(|r| !r.succeeded()).count();
    println!(
        "{} cells run in {:.1} min (estimate ~{:.1} min), {failed} failed, {} not run",
        runs.len(),
        t.elapsed().as_secs_f64() / 60.0,
        plan.estimate().as_secs_f64() / 60.0,
        not_run.iter().map(|(g, _)| g.len()).sum::<usize>()
    );
    println!("{}", report::last_line(&runs));
    result?;
    check_stopped(stopped)?;
    if !left.is_empty() {
        bail!("{} processes were left running", left.len());
    }
    Ok(())
}

/// Every cell in plan order, each printed as soon as it is over. The server must be healthy
/// before each; when it is not, the rest is left out (`not_run`) and the run ends with an error.
fn cells(
    env: &Env,
    plan: &Plan,
    published: &[Published],
    key: &str,
    server: &mut Server,
    runs: &mut Vec<CellRun>,
    not_run: &mut Vec<(Vec<Cell>, String)>,
) -> Result<()> {
    let t = server.wait_healthy(env, SERVE_LIMIT)?;
    println!("dist serve healthy after {}", c::secs(t));
    let mut addresses = Addresses::new();
    let mut link: Option<&Link> = None;
    for (k, cell) in plan.cells.iter().enumerate() {
        if let Err(e) = server.wait_healthy(env, SERVE_AGAIN_LIMIT) {
            not_run.push((
                plan.cells[k..].to_vec(),
                "dist serve was not healthy before this cell".into(),
            ));
            return Err(e.context("dist serve is no longer healthy"));
        }
        if link != Some(cell.link) {
            cell::set_link(env, cell.link)?;
            link = Some(cell.link);
        }
        let package = published
            .iter()
            .find(|p| p.name == package_name(cell.mib))
            .expect("every size of the plan was published");
        let t = Instant::now();
        let r = cell::run(env, *cell, package, key, &mut addresses)?;
        report::cell_line(k, plan.cells.len(), &r);
        if r.outcome().is_none() {
            println!("  (cell over after {})", secs1(t.elapsed()));
        }
        runs.push(r);
    }
    Ok(())
}

/// The server's exit on SIGTERM must be clean.
fn check_stopped(stopped: Result<ExitStatus>) -> Result<()> {
    match stopped {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("dist serve exited {s} on SIGTERM"),
        Err(e) => Err(e.context("dist serve")),
    }
}
