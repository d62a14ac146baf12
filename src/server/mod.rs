//! `dist serve`: runs opentracker (through `tracker`), a seeding transmission-daemon (through
//! `transmission`) and the HTTP server (`http`), and keeps all three in step with the published
//! index by watching `published/LATEST` (`watcher`). The seeder holds a bounded hot set
//! (`hot`), not every object; `catalog` is the compact view of the index that the watcher and
//! the HTTP handlers share; `web` is the catalog a browser sees at `/`. Reports what happens
//! through `ServeEvent`s.

pub mod catalog;
pub mod hot;
pub mod http;
pub mod ledger;
pub mod listen;
pub mod stripes;
mod upstream;
mod watcher;
pub mod web;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::daemons::tracker::{self, Tracker, TrackerConfig};
use crate::daemons::transmission::{self, DaemonConfig};
use crate::format::ids::InfoHash;
use crate::index::record::Distribution;
use crate::repo::mirror::Upstream;
use crate::repo::Repo;
use catalog::Catalog;

/// The default size of the hot set: how many of the newest package versions the seeder holds
/// (and, separately, how many objects clients asked for). transmission 3.00 announces at most
/// 48 torrents at a time (`MAX_CONCURRENT_TASKS` in its announcer), and `/health` waits until
/// every hot torrent has announced; see ARCHITECTURE.md for the figures behind this number.
pub const DEFAULT_HOT_SET: usize = 500;

/// The default number of whole-object downloads the origin serves at once. A lone client never
/// meets the limit; in a crowd, the clients beyond it are told (503) to take the swarm, which
/// the origin feeds once instead of sending every client a copy.
pub const DEFAULT_HTTP_SLOTS: usize = 2;

/// The default number of web-seed range requests per object the origin serves at once (0: no
/// limit); see ARCHITECTURE.md for what was measured.
pub const DEFAULT_WEBSEED_SLOTS: usize = 0;

/// `ROOT/server.yaml`; every key is also a flag of `dist serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub announce_url: Option<String>,
    pub http: Option<String>,
    pub tracker: Option<String>,
    pub bind: Option<String>,
    pub public_url: Option<String>,
    pub peer_port: Option<u16>,
    pub rpc_port: Option<u16>,
    pub upload_limit: Option<u32>,
    pub hot_set: Option<usize>,
    /// How many index deltas stay published.
    pub index_retention: Option<usize>,
    /// How many whole-object downloads the origin serves at once (more get 503).
    pub http_slots: Option<usize>,
    /// How many web-seed (range) requests per object the origin serves at once; 0: no limit.
    pub webseed_slots: Option<usize>,
    /// Seconds a piece sent through the web seed counts as in the swarm (repeat requests for it
    /// get 503); 0 (the default): every range request is served.
    pub webseed_window: Option<u64>,
    /// Mirror this repository (its base URL) instead of publishing one.
    pub mirror_of: Option<String>,
    /// The mirrored repository's public key (base64, or a file holding it).
    pub public_key: Option<String>,
    /// Seconds between two checks of the mirrored repository.
    pub mirror_interval: Option<u64>,
    /// More web-seed base URLs (mirrors of this repository) listed in every `.torrent`.
    pub web_seeds: Option<Vec<String>>,
}

impl ServerFile {
    pub fn load(root: &Path) -> Result<ServerFile> {
        let path = root.join("server.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_yaml::from_str(&text)
                .with_context(|| format!("{}: invalid server configuration", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServerFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Flags (`over`) win over the file.
    pub fn merge(self, over: ServerFile) -> ServerFile {
        ServerFile {
            announce_url: over.announce_url.or(self.announce_url),
            http: over.http.or(self.http),
            tracker: over.tracker.or(self.tracker),
            bind: over.bind.or(self.bind),
            public_url: over.public_url.or(self.public_url),
            peer_port: over.peer_port.or(self.peer_port),
            rpc_port: over.rpc_port.or(self.rpc_port),
            upload_limit: over.upload_limit.or(self.upload_limit),
            hot_set: over.hot_set.or(self.hot_set),
            index_retention: over.index_retention.or(self.index_retention),
            http_slots: over.http_slots.or(self.http_slots),
            webseed_slots: over.webseed_slots.or(self.webseed_slots),
            webseed_window: over.webseed_window.or(self.webseed_window),
            mirror_of: over.mirror_of.or(self.mirror_of),
            public_key: over.public_key.or(self.public_key),
            mirror_interval: over.mirror_interval.or(self.mirror_interval),
            web_seeds: over.web_seeds.or(self.web_seeds),
        }
    }
}

/// How often (seconds) a mirror asks the upstream for a new serial: a conditional GET, answered
/// 304 while nothing changed.
pub const DEFAULT_MIRROR_INTERVAL: u64 = 10;

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http: SocketAddr,
    pub tracker: SocketAddr,
    pub bind: Option<Ipv4Addr>,
    pub public_url: String,
    pub announce_url: String,
    pub peer_port: u16,
    pub rpc_port: u16,
    pub upload_limit: Option<u32>,
    /// How many newest versions the seeder holds, and how many requested objects besides.
    pub hot_set: usize,
    pub index_retention: usize,
    pub http_slots: usize,
    pub webseed_slots: usize,
    /// How long a piece sent through the web seed counts as in the swarm ([`ledger`]).
    pub webseed_window: Duration,
    /// The repository this server mirrors, if it is a mirror.
    pub mirror: Option<Upstream>,
    /// Pause between two checks of the mirrored repository.
    pub mirror_interval: Duration,
    /// This server's web-seed bases: its public URL, then `web_seeds` (its mirrors).
    pub web_seeds: Vec<String>,
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("`{what}`: `{s}` is not an IP:PORT address"))
}

impl ServeConfig {
    pub fn resolve(f: ServerFile) -> Result<ServeConfig> {
        let http = parse_addr("http", f.http.as_deref().unwrap_or("127.0.0.1:7380"))?;
        let tracker = parse_addr("tracker", f.tracker.as_deref().unwrap_or("127.0.0.1:6969"))?;
        let bind = f
            .bind
            .as_deref()
            .map(|b| {
                b.parse::<Ipv4Addr>()
                    .with_context(|| format!("`bind`: `{b}` is not an IPv4 address"))
            })
            .transpose()?;
        let public_url = f
            .public_url
            .unwrap_or_else(|| format!("http://{http}"))
            .trim_end_matches('/')
            .to_string();
        let announce_url = f
            .announce_url
            .unwrap_or_else(|| format!("http://{tracker}/announce"));
        let peer_port = match f.peer_port {
            Some(p) => p,
            None => crate::process::free_port(
                &bind
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
            )?,
        };
        let rpc_port = match f.rpc_port {
            Some(p) => p,
            None => crate::process::free_port("127.0.0.1")?,
        };
        let mirror = match (&f.mirror_of, &f.public_key) {
            (Some(url), Some(key)) => Some(Upstream::new(url, key)?),
            (Some(_), None) => bail!(
                "`--mirror-of` needs `--public-key`: the mirrored repository's key (`dist key show` there)"
            ),
            (None, Some(_)) => bail!("`--public-key` is for a mirror: give `--mirror-of URL` too"),
            (None, None) => None,
        };
        let mut web_seeds = vec![public_url.clone()];
        for w in f.web_seeds.unwrap_or_default() {
            let w = w.trim_end_matches('/').to_string();
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                bail!("`web_seeds`: `{w}` is not an http:// or https:// URL");
            }
            if !web_seeds.contains(&w) {
                web_seeds.push(w);
            }
        }
        Ok(ServeConfig {
            http,
            tracker,
            bind,
            public_url,
            announce_url,
            peer_port,
            rpc_port,
            upload_limit: f.upload_limit,
            hot_set: f.hot_set.unwrap_or(DEFAULT_HOT_SET),
            index_retention: f.index_retention.unwrap_or(crate::repo::DEFAULT_RETENTION),
            http_slots: f.http_slots.unwrap_or(DEFAULT_HTTP_SLOTS).max(1),
            webseed_slots: f.webseed_slots.unwrap_or(DEFAULT_WEBSEED_SLOTS),
            webseed_window: f
                .webseed_window
                .map_or(ledger::DEFAULT_WINDOW, Duration::from_secs),
            mirror,
            mirror_interval: Duration::from_secs(
                f.mirror_interval.unwrap_or(DEFAULT_MIRROR_INTERVAL).max(1),
            ),
            web_seeds,
        })
    }

    pub fn distribution(&self) -> Distribution {
        Distribution {
            trackers: vec![self.announce_url.clone()],
            public_url: Some(self.public_url.clone()),
        }
    }
}

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
