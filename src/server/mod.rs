//! `dist serve`: runs opentracker (through `tracker`), a seeding transmission-daemon (through
//! `transmission`) and the HTTP server (`http`), and keeps all three in step with the published
//! index by watching `published/LATEST` (`watcher`). The seeder holds a bounded hot set
//! (`hot`), not every object; `catalog` is the compact view of the index that the watcher and
//! the HTTP handlers share; `web` is the catalog a browser sees at `/`; `config` is server.yaml
//! and the flags, resolved once. Reports what happens through `ServeEvent`s.

pub mod catalog;
mod config;
pub mod hot;
pub mod http;
pub mod ledger;
pub mod listen;
pub mod stripes;
mod upstream;
mod watcher;
pub mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::daemons::tracker::{self, Tracker, TrackerConfig};
use crate::daemons::transmission::{self, DaemonConfig};
use crate::format::ids::InfoHash;
use crate::repo::Repo;
use catalog::Catalog;
pub use config::{
    ServeConfig, ServerFile, DEFAULT_HOT_SET, DEFAULT_HTTP_SLOTS, DEFAULT_MIRROR_INTERVAL,
    DEFAULT_WEBSEED_SLOTS,
};

/// What `serve` reports while it runs.
#[derive(Debug, Clone)]
pub enum ServeEvent {
    /// HTTP answers (the index from the first second; torrents once the index is read).
    Http {
        http: SocketAddr,
        public_url: String,
        /// How many connections it serves at once, in all and per address.
        connections: listen::Limits,
    },
    Listening {
        tracker: SocketAddr,
        announce_url: String,
        peer: String,
        rpc_port: u16,
        hot_set: usize,
    },
    Published {
        serial: u64,
        packages: usize,
    },
    /// A mirror copied (and verified) a new serial of its upstream.
    Mirrored {
        upstream: String,
        serial: u64,
        packages: u64,
        /// Objects it downloaded for it, and their bytes.
        fetched: usize,
        fetched_bytes: u64,
    },
    /// The seeder changed to hold the hot set (`hot` torrents wanted now).
    Seeder {
        hot: usize,
        added: usize,
        removed: usize,
        repointed: usize,
        resumed: usize,
    },
    /// A client asked for an object outside the hot set: the seeder takes it.
    Promoted {
        infohash: InfoHash,
        evicted: Option<InfoHash>,
    },
    Healthy {
        seeding: usize,
    },
    /// Was healthy, is not any more (why).
    Unhealthy(String),
    Problem(String),
    Stopping,
}

/// Runs the server until SIGINT or SIGTERM, then stops every child it started.
///
/// The order makes it answer at once at any size: signals are caught first (a SIGTERM during
/// the start stops it within a second or two), then the HTTP port opens and serves the index
/// already published, then the index is republished for this configuration if needed, read
/// once, and the tracker and seeder start; the watcher fills the seeder's hot set.
pub fn serve(root: &Path, cfg: &ServeConfig, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
    if cfg.mirror.is_some() {
        // Mirroring into a publisher's root would serve its own index under the upstream's
        // name (issue 25, finding 8).
        crate::repo::mirror::refuse_own_repository(root)
            .context("`--mirror-of` cannot run on this root")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    catch_signals(&rt, stop.clone())?;

    let repo = Repo::new(root).with_retention(cfg.index_retention);
    if cfg.mirror.is_none() {
        // A mistyped --root is refused before anything is created under it.
        repo.require_key()?;
    }
    let runtime_dir = root.join("serve");
    std::fs::create_dir_all(&runtime_dir)
        .with_context(|| format!("cannot create {}", runtime_dir.display()))?;
    let _one_server = lock_runtime_dir(&runtime_dir)?;
    stop_leftovers(&runtime_dir, report)?;

    // As many connections as the open-file limit allows, once raised to the hard limit.
    let limits = listen::Limits::for_open_files(listen::raise_open_files());
    // Bind HTTP first: a port in use fails before any child starts.
    let listener = std::net::TcpListener::bind(cfg.http).with_context(|| {
        format!(
            "cannot listen for HTTP on {} (is another server running there?)",
            cfg.http
        )
    })?;
    listener.set_nonblocking(true)?;
    let shared: http::SharedState = Arc::new(RwLock::new(http::Shared::new()));
    // Until the republish below, the snapshot published before is served: it is signed and
    // whole, only its magnets may name an older address.
    shared.write().expect("state lock").serial = repo.latest_serial()?;
    let (requests, requested) = std::sync::mpsc::sync_channel(REQUEST_QUEUE);
    let upstream_key = cfg.mirror.as_ref().map(|m| m.public_key.as_str());
    let catalog = Arc::new(
        web::Web::new(
            root.to_path_buf(),
            shared.clone(),
            cfg.tracker,
            cfg.rpc_port,
        )
        .with_origin(&cfg.public_url, upstream_key),
    );
    let app = http::router(
        shared.clone(),
        repo.published_dir(),
        repo.objects().dir().to_path_buf(),
        http::Torrents {
            root: root.to_path_buf(),
            announce_url: cfg.announce_url.clone(),
            web_seeds: cfg.web_seeds.clone(),
            requests,
        },
        Arc::new(http::Admission::new(cfg.http_slots)),
        Arc::new(http::WebSeedGate::new(cfg.webseed_slots)),
        (!cfg.webseed_window.is_zero())
            .then(|| ledger::Ledger::new(cfg.webseed_window, std::time::Instant::now())),
    )
    .merge(web::router(catalog.clone()))
    // Outside `http`'s own layers: it sees the answers they let through (it counts 200 and
    // 206 bodies of `/objects`, nothing else).
    .layer(axum::middleware::from_fn_with_state(
        catalog.clone(),
        web::count_sent,
    ));
    rt.spawn(web::sample(catalog, stop.clone()));
    let http_task = listen::spawn(&rt, listener, app, limits, stop.clone())?;
    report(ServeEvent::Http {
        http: cfg.http,
        public_url: cfg.public_url.clone(),
        connections: limits,
    });

    let result = run(&repo, cfg, &runtime_dir, &shared, requested, &stop, report);
    // Whatever ended the run (a signal or an error), HTTP stops too.
    stop.store(true, Ordering::SeqCst);
    let served = rt
        .block_on(http_task)
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the HTTP server panicked: {e}")));
    rt.shutdown_timeout(Duration::from_secs(2));
    result.and(served)
}

/// How long the seeder's "stopped" announces may take when the server stops (see
/// `DaemonHandle::stop_within`): enough for a small hot set, and a stop within seconds at any size.
const SEEDER_STOP_BUDGET: Duration = Duration::from_secs(2);

/// How many object requests may wait for the watcher (one tick's worth at any sane load; more
/// are dropped, their objects still served over HTTP and the web seed).
const REQUEST_QUEUE: usize = 4096;

/// SIGINT and SIGTERM set `stop`, from now on, whatever the server is doing.
fn catch_signals(rt: &tokio::runtime::Runtime, stop: Arc<AtomicBool>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _in_rt = rt.enter();
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    rt.spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        stop.store(true, Ordering::SeqCst);
    });
    Ok(())
}

/// Everything after HTTP opened: republish, read the index, start tracker and seeder, watch
/// until `stop`, stop the children.
fn run(
    repo: &Repo,
    cfg: &ServeConfig,
    runtime_dir: &Path,
    shared: &http::SharedState,
    requested: std::sync::mpsc::Receiver<InfoHash>,
    stop: &AtomicBool,
    report: &(dyn Fn(ServeEvent) + Sync),
) -> Result<()> {
    let serial = match &cfg.mirror {
        None => repo
            .republish_for(&cfg.distribution())
            .with_context(|| format!("cannot publish the index under {}", repo.root.display()))?,
        Some(up) => match upstream::first_mirror(repo, up, cfg.mirror_interval, stop, report)? {
            Some(serial) => serial,
            None => return Ok(()),
        },
    };
    shared.write().expect("state lock").serial = Some(serial);
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let latest = repo.latest_serial()?;
    let records = repo.records()?;
    let catalog = Arc::new(Catalog::new(latest, &records).with_distribution(repo.distribution()?));
    drop(records);
    shared.write().expect("state lock").catalog = catalog.clone();
    report(ServeEvent::Published {
        serial,
        packages: catalog.len(),
    });
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }

    let Some((tracker, daemon)) = start_children(repo, &catalog, cfg, runtime_dir, stop, report)?
    else {
        return Ok(());
    };
    write_state(cfg, runtime_dir, tracker.pid(), daemon.pid)?;
    report(ServeEvent::Listening {
        tracker: cfg.tracker,
        announce_url: cfg.announce_url.clone(),
        peer: format!(
            "{}:{}",
            cfg.bind
                .map(|b| b.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
            cfg.peer_port
        ),
        rpc_port: cfg.rpc_port,
        hot_set: cfg.hot_set,
    });
    let mut watcher =
        watcher::Watcher::new(repo, cfg, &tracker, &daemon.rpc, shared, requested, catalog);
    std::thread::scope(|s| {
        if let Some(up) = &cfg.mirror {
            s.spawn(|| upstream::follow_upstream(repo, up, cfg.mirror_interval, stop, report));
        }
        watcher.run(stop, report);
    });
    drop(watcher);
    report(ServeEvent::Stopping);
    let stopped_daemon = daemon.stop_within(SEEDER_STOP_BUDGET);
    let stopped_tracker = tracker.stop();
    stopped_daemon.and(stopped_tracker)
}

/// Holds `serve/lock` for the server's lifetime (the kernel releases it when the process dies,
/// even by SIGKILL): one server per root, so whatever runs on this root's state directories
/// without it holding the lock was left by a server that died.
fn lock_runtime_dir(runtime_dir: &Path) -> Result<crate::store::lock::RootLock> {
    use crate::store::lock::{self, LockError, Mode};
    lock::acquire(
        runtime_dir,
        Mode::Exclusive,
        "serve",
        Duration::ZERO,
        &|_| {},
    )
    .map_err(|e| match e {
        LockError::Timeout { holder, .. } => anyhow::anyhow!(
            "another dist serve runs on {} ({holder})",
            runtime_dir.display()
        ),
        other => other.into(),
    })
}

/// Stops the tracker and seeder a killed server left running. A server killed with SIGKILL
/// cannot stop its children: they outlive it, holding the tracker port (the next start then
/// failed with "tracker port ... is already in use") and the seeder's state. They are found by
/// the state directory on their command line; under the runtime lock no live server owns them.
fn stop_leftovers(runtime_dir: &Path, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
    use crate::process::{alive, find_by_arg, terminate_pid};
    let left = [
        ("opentracker", "-d", runtime_dir.join("tracker")),
        (
            "transmission-daemon",
            "-g",
            runtime_dir.join("transmission"),
        ),
    ];
    for (program, flag, dir) in left {
        for pid in find_by_arg(program, flag, &dir) {
            report(ServeEvent::Problem(format!(
                "stopping {program} (pid {pid}) left running by a dist serve that was killed"
            )));
            // SIGTERM, then SIGKILL after 10 s; only a process that survives both is an error.
            let _ = terminate_pid(pid, program, Duration::from_secs(10));
            if alive(pid) {
                bail!("{program} (pid {pid}) left by a killed dist serve does not stop");
            }
        }
    }
    Ok(())
}

/// Starts the tracker (whitelisting every indexed infohash: one file) and the seeder with the
/// state it kept (its resume files and torrents: a restart re-adds and re-verifies nothing),
/// the default hot set preloaded (`watcher::prepare_seeder`); if the seeder cannot start, the
/// tracker is stopped again. `None` when `stop` was set meanwhile (nothing left running).
fn start_children(
    repo: &Repo,
    catalog: &Catalog,
    cfg: &ServeConfig,
    runtime_dir: &Path,
    stop: &AtomicBool,
    report: &(dyn Fn(ServeEvent) + Sync),
) -> Result<Option<(Tracker, transmission::DaemonHandle)>> {
    let tracker = tracker::start_tracker(
        &TrackerConfig::new(runtime_dir.join("tracker"), cfg.tracker),
        &catalog.infohashes(),
    )?;
    let mut dcfg = DaemonConfig::new(
        runtime_dir.join("transmission"),
        runtime_dir.join("seed"),
        cfg.peer_port,
        cfg.rpc_port,
    );
    dcfg.bind_ipv4 = cfg.bind;
    dcfg.upload_limit_kbps = cfg.upload_limit;
    match watcher::prepare_seeder(repo, catalog, cfg, &dcfg.config_dir, stop) {
        Ok((preloaded, forgotten)) => report(ServeEvent::Seeder {
            hot: cfg.hot_set.min(catalog.newest().len()),
            added: preloaded,
            removed: forgotten,
            repointed: 0,
            resumed: 0,
        }),
        Err(e) => {
            let _ = tracker.stop();
            return Err(e);
        }
    }
    if stop.load(Ordering::SeqCst) {
        tracker.stop()?;
        return Ok(None);
    }
    match transmission::start_daemon(&dcfg) {
        Ok(d) => Ok(Some((tracker, d))),
        Err(e) => {
            let _ = tracker.stop();
            Err(e)
        }
    }
}

/// `ROOT/serve/state.json`: the pids and addresses of this server and its children.
fn write_state(
    cfg: &ServeConfig,
    runtime_dir: &Path,
    tracker_pid: u32,
    seeder_pid: u32,
) -> Result<()> {
    let state = serde_json::json!({
        "pid": std::process::id(),
        "tracker_pid": tracker_pid,
        "seeder_pid": seeder_pid,
        "http": cfg.http.to_string(),
        "tracker": cfg.tracker.to_string(),
        "rpc_port": cfg.rpc_port,
        "peer_port": cfg.peer_port,
    });
    crate::store::fsx::write_atomic(
        &runtime_dir.join("state.json"),
        state.to_string().as_bytes(),
        0o644,
    )
}
