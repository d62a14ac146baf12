//! `dist daemon status|stop|run`: the background processes that seed what this root installed
//! (the libtorrent seeder, the private transmission-daemon). `status` is where a user looks
//! (issue 23, finding 2): which process, its pid, its upload cap, what it seeds and sent, and
//! how to stop it.

use anyhow::{Context, Result};
use dist::client::config::{config_path, ClientConfig, Engine};
use dist::client::{daemon, seeder, seeding, Layout};

use super::out::{self, Cell, Style, Table};
use super::settings::config;
use super::{json, printable, reporter, Global};
use crate::cli::{ClientFlags, DaemonCommand};

/// `dist daemon run`: the libtorrent engine's seeder, until SIGTERM (its warnings go to
/// stderr, which is its log).
pub fn seeder(g: &Global, f: &ClientFlags) -> Result<i32> {
    let settings = config(g, f)?;
    let reporter = reporter::Cli::new(true);
    dist::client::seeder::run(&Layout::new(&g.root), &settings, &reporter)?;
    Ok(0)
}

pub fn daemon(g: &Global, cmd: &DaemonCommand) -> Result<i32> {
    let layout = Layout::new(&g.root);
    match cmd {
        DaemonCommand::Stop(j) => stop(&layout, j.json),
        DaemonCommand::Status(j) => status(g, &layout, j.json),
        DaemonCommand::Run(_) => unreachable!("dispatched to `seeder`"),
    }
}

fn stop(layout: &Layout, json_out: bool) -> Result<i32> {
    let stopped = daemon::stop(layout)?;
    let seeder = seeder::stop(layout)?;
    if json_out {
        json::print(&json::DaemonStop {
            stopped: stopped || seeder,
        })?;
        return Ok(0);
    }
    if !stopped && !seeder {
        println!("no daemon is running for this root");
    }
    if stopped {
        println!("transmission-daemon stopped");
    }
    if seeder {
        println!("libtorrent seeder stopped");
    }
    Ok(0)
}

/// The engine `daemon status --json` reports on: the configured one (client.yaml), unless only
/// the other one runs.
fn json_engine(g: &Global, running: &[seeding::Daemon]) -> Engine {
    let configured = ClientConfig::load(&g.root)
        .ok()
        .and_then(|c| c.engine)
        .unwrap_or_default();
    match running {
        [only] => only.engine,
        _ => configured,
    }
}

/// The configured upload cap (kB/s, `None`: none), for a daemon that did not record its own.
fn configured_limit(g: &Global) -> Option<u32> {
    config(g, &ClientFlags::default())
        .map(|s| s.upload_limit)
        .unwrap_or(Some(dist::client::config::DEFAULT_UPLOAD_LIMIT))
}

fn status(g: &Global, layout: &Layout, json_out: bool) -> Result<i32> {
    let running = seeding::running(layout, configured_limit(g));
    if json_out {
        let engine = json_engine(g, &running);
        let d = running.iter().find(|d| d.engine == engine);
        let v = match (engine, d) {
            (Engine::Transmission, Some(d)) => transmission_json(layout, d)?,
            (Engine::Libtorrent, Some(d)) => seeder_json(layout, d)?,
            (engine, None) => json::DaemonStatus::not_running(engine),
        };
        json::print(&v)?;
        return Ok(0);
    }
    if running.is_empty() {
        println!(
            "nothing is seeding for this root: no libtorrent seeder or transmission-daemon runs"
        );
        if seeder::has_offers(layout) {
            println!("(the next install starts the seeder again for what was installed before; `seed: false` in client.yaml stops that)");
        }
        return Ok(0);
    }
    for d in &running {
        match d.engine {
            Engine::Transmission => transmission_text(layout, d)?,
            Engine::Libtorrent => seeder_text(layout, d),
        }
    }
    println!(
        "stop it: dist daemon stop; keep installs from seeding: `seed: false` in {}",
        config_path(&g.root).display()
    );
    Ok(0)
}

/// `upload_limit` as status shows it.
fn limit_text(d: &seeding::Daemon) -> String {
    match d.upload_limit {
        Some(k) => format!("at most {k} kB/s (upload_limit)"),
        None => "unlimited (upload_limit: 0)".to_string(),
    }
}

/// One torrent's row: name, state, done, uploaded, peers.
struct Row {
    name: String,
    state: &'static str,
    percent_done: f64,
    uploaded: u64,
    peers: u64,
}

fn print_rows(header: &str, d: &seeding::Daemon, rows: &[Row]) {
    let uploaded: u64 = rows.iter().map(|r| r.uploaded).sum();
    println!("{}", out::paint(Style::Bold, header));
    println!(
        "  seeding {}, uploaded {} in all, upload {}",
        out::count(rows.len() as u64, "object"),
        out::size(uploaded),
        limit_text(d)
    );
    if rows.is_empty() {
        return;
    }
    let mut t = Table::new().right_aligned(&[2, 3, 4]);
    let heading = |s: &str| Cell::styled(s, Style::Dim);
    t.row(
        ["NAME", "STATE", "DONE", "UPLOADED", "PEERS"]
            .map(heading)
            .into(),
    );
    for r in rows {
        let state = match r.state {
            "seeding" => Cell::styled(r.state, Style::Green),
            "downloading" | "verifying" => Cell::styled(r.state, Style::Yellow),
            s => s.into(),
        };
        t.row(vec![
            printable(&r.name).into_owned().into(),
            state,
            format!("{:.0}%", r.percent_done * 100.0).into(),
            out::size(r.uploaded).into(),
            r.peers.to_string().into(),
        ]);
    }
    t.print("  ");
}

fn transmission_text(layout: &Layout, d: &seeding::Daemon) -> Result<()> {
    let Some((st, rpc)) = daemon::running(layout) else {
        return Ok(());
    };
    let mut all = rpc.all().context("cannot query the daemon")?;
    all.retain(|t| !dist::daemons::transmission::Kicker::is_dummy(&t.hash_string));
    let rows: Vec<Row> = all
        .iter()
        .map(|t| Row {
            name: t.name.clone(),
            state: t.state().name(),
            percent_done: t.percent_done,
            uploaded: t.uploaded_ever,
            peers: t.peers.len() as u64,
        })
        .collect();
    let header = format!(
        "transmission-daemon, pid {} (RPC 127.0.0.1:{}, peer port {})",
        st.pid, st.rpc_port, st.peer_port
    );
    print_rows(&header, d, &rows);
    Ok(())
}

fn seeder_text(layout: &Layout, d: &seeding::Daemon) {
    let Some(st) = seeder::running(layout) else {
        return;
    };
    let rows: Vec<Row> = seeder::status(layout)
        .torrents
        .iter()
        .map(|t| Row {
            name: t.name.clone(),
            state: seeder_state(&t.state),
            percent_done: t.percent_done,
            uploaded: t.uploaded,
            peers: u64::from(t.peers),
        })
        .collect();
    let header = format!(
        "libtorrent seeder (`dist daemon run`), pid {}, peer port {}",
        st.pid, st.peer_port
    );
    print_rows(&header, d, &rows);
}

fn transmission_json(layout: &Layout, d: &seeding::Daemon) -> Result<json::DaemonStatus> {
    let Some((st, rpc)) = daemon::running(layout) else {
        return Ok(json::DaemonStatus::not_running(Engine::Transmission));
    };
    let mut all = rpc.all().context("cannot query the daemon")?;
    all.retain(|t| !dist::daemons::transmission::Kicker::is_dummy(&t.hash_string));
    let torrents = all
        .iter()
        .map(|t| json::DaemonTorrent {
            infohash: t.hash_string,
            name: t.name.clone(),
            peers: t.peers.iter().map(|p| p.address.clone()).collect(),
            percent_done: t.percent_done,
            status: Some(t.status),
            state: t.state().name(),
            uploaded: t.uploaded_ever,
        })
        .collect();
    Ok(json::DaemonStatus {
        engine: Engine::Transmission.name(),
        peer_port: Some(st.peer_port),
        pid: Some(st.pid),
        rpc_port: Some(st.rpc_port),
        running: true,
        torrents,
        upload_limit: Some(d.upload_limit.unwrap_or(0)),
    })
}

fn seeder_json(layout: &Layout, d: &seeding::Daemon) -> Result<json::DaemonStatus> {
    let Some(st) = seeder::running(layout) else {
        return Ok(json::DaemonStatus::not_running(Engine::Libtorrent));
    };
    let torrents = seeder::status(layout)
        .torrents
        .iter()
        .map(|t| json::DaemonTorrent {
            infohash: t.infohash,
            name: t.name.clone(),
            peers: Vec::new(),
            percent_done: t.percent_done,
            status: None,
            state: seeder_state(&t.state),
            uploaded: t.uploaded,
        })
        .collect();
    Ok(json::DaemonStatus {
        engine: Engine::Libtorrent.name(),
        peer_port: Some(st.peer_port),
        pid: Some(st.pid),
        rpc_port: None,
        running: true,
        torrents,
        upload_limit: Some(d.upload_limit.unwrap_or(0)),
    })
}

/// The libtorrent seeder's state word as a `state` of `daemon status`.
fn seeder_state(s: &str) -> &'static str {
    match s {
        "verifying" => "verifying",
        "downloading" => "downloading",
        "seeding" => "seeding",
        _ => "unknown",
    }
}
