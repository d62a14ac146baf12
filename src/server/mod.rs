//! `dist serve`: runs opentracker (through `tracker`), a seeding transmission-daemon (through
//! `transmission`) and the HTTP server (`http`), and keeps all three in step with the published
//! index by watching `published/LATEST`. Reports what happens through `ServeEvent`s.

pub mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::daemons::tracker::{self, Tracker, TrackerConfig};
use crate::daemons::transmission::{self, DaemonConfig, Rpc};
use crate::format::ids::{InfoHash, PackageId};
use crate::format::torrent::Info;
use crate::repo::index::PackageRecord;
use crate::repo::{Distribution, Repo};

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
    /// How many index deltas stay published.
    pub index_retention: Option<usize>,
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
            index_retention: over.index_retention.or(self.index_retention),
        }
    }
}

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
    pub index_retention: usize,
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
            None => crate::daemons::supervise::free_port(
                &bind
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
            )?,
        };
        let rpc_port = match f.rpc_port {
            Some(p) => p,
            None => crate::daemons::supervise::free_port("127.0.0.1")?,
        };
        Ok(ServeConfig {
            http,
            tracker,
            bind,
            public_url,
            announce_url,
            peer_port,
            rpc_port,
            upload_limit: f.upload_limit,
            index_retention: f.index_retention.unwrap_or(crate::repo::DEFAULT_RETENTION),
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
    Listening {
        http: SocketAddr,
        tracker: SocketAddr,
        announce_url: String,
        public_url: String,
        peer: String,
        rpc_port: u16,
    },
    Published {
        serial: u64,
        packages: usize,
    },
    Seeding {
        package: PackageId,
        infohash: InfoHash,
    },
    Healthy,
    Problem(String),
    Stopping,
}

/// Runs the server until SIGINT or SIGTERM, then stops every child it started.
pub fn serve(root: &Path, cfg: &ServeConfig, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
    let repo = Repo::new(root).with_retention(cfg.index_retention);
    let serial = repo
        .republish_for(&cfg.distribution())
        .with_context(|| format!("cannot publish the index under {}", root.display()))?;
    report(ServeEvent::Published {
        serial,
        packages: repo.records()?.len(),
    });
    let runtime_dir = root.join("serve");
    std::fs::create_dir_all(&runtime_dir)
        .with_context(|| format!("cannot create {}", runtime_dir.display()))?;
    let _one_server = lock_runtime_dir(&runtime_dir)?;
    stop_leftovers(&runtime_dir, report)?;

    // Bind HTTP first: a port in use fails before any child starts.
    let listener = std::net::TcpListener::bind(cfg.http).with_context(|| {
        format!(
            "cannot listen for HTTP on {} (is another server running there?)",
            cfg.http
        )
    })?;
    listener.set_nonblocking(true)?;

    let (tracker, daemon) = start_children(&repo, cfg, &runtime_dir)?;
    write_state(cfg, &runtime_dir, tracker.pid(), daemon.pid)?;
    report(ServeEvent::Listening {
        http: cfg.http,
        tracker: cfg.tracker,
        announce_url: cfg.announce_url.clone(),
        public_url: cfg.public_url.clone(),
        peer: format!(
            "{}:{}",
            cfg.bind
                .map(|b| b.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
            cfg.peer_port
        ),
        rpc_port: cfg.rpc_port,
    });

    let shared: http::SharedState = Arc::new(RwLock::new(http::Shared::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let result = std::thread::scope(|s| -> Result<()> {
        let watcher = s.spawn(|| {
            let mut w = Watcher {
                repo: &repo,
                cfg,
                tracker: &tracker,
                rpc: &daemon.rpc,
                seed_dir: runtime_dir.join("seed"),
                shared: &shared,
                seeded: BTreeMap::new(),
                serial: None,
                healthy: false,
            };
            w.run(&stop, report)
        });
        let served = run_http(listener, shared.clone(), &repo);
        stop.store(true, Ordering::SeqCst);
        let watched = watcher.join().expect("watcher thread");
        served.and(watched)
    });
    report(ServeEvent::Stopping);
    let stopped_daemon = daemon.stop();
    let stopped_tracker = tracker.stop();
    result.and(stopped_daemon).and(stopped_tracker)
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
    use crate::daemons::supervise::{alive, find_by_arg, terminate_pid};
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

/// Starts the tracker (whitelisting what is published) and the seeder; if the seeder cannot
/// start, the tracker is stopped again.
fn start_children(
    repo: &Repo,
    cfg: &ServeConfig,
    runtime_dir: &Path,
) -> Result<(Tracker, transmission::DaemonHandle)> {
    let hashes: Vec<InfoHash> = repo.records()?.iter().map(|p| p.infohash).collect();
    let tracker = tracker::start_tracker(
        &TrackerConfig::new(runtime_dir.join("tracker"), cfg.tracker),
        &hashes,
    )?;
    let mut dcfg = DaemonConfig::new(
        runtime_dir.join("transmission"),
        runtime_dir.join("seed"),
        cfg.peer_port,
        cfg.rpc_port,
    );
    dcfg.bind_ipv4 = cfg.bind;
    dcfg.upload_limit_kbps = cfg.upload_limit;
    // transmission keeps every torrent, with the announce URLs it was added with, in its resume
    // files: started again with another tracker or public URL it would keep announcing to the
    // old ones. Forget them; the watcher adds every published torrent again, rendered for the
    // configuration of this start (the data stays where it is and is verified in place).
    for state in ["resume", "torrents"] {
        let dir = dcfg.config_dir.join(state);
        if let Err(e) = crate::store::fsx::remove_tree(&dir) {
            let _ = tracker.stop();
            return Err(e);
        }
    }
    match transmission::start_daemon(&dcfg) {
        Ok(d) => Ok((tracker, d)),
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

/// Serves HTTP until SIGINT/SIGTERM.
fn run_http(listener: std::net::TcpListener, shared: http::SharedState, repo: &Repo) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let app = http::router(
        shared,
        repo.published_dir(),
        repo.objects().dir().to_path_buf(),
    );
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            })
            .await
            .context("the HTTP server failed")
    })
}

/// Keeps tracker whitelist, seeder and HTTP state in step with the newest snapshot.
struct Watcher<'a> {
    repo: &'a Repo,
    cfg: &'a ServeConfig,
    tracker: &'a Tracker,
    rpc: &'a Rpc,
    seed_dir: PathBuf,
    shared: &'a http::SharedState,
    /// infohash -> (name, version) of what the daemon seeds.
    seeded: BTreeMap<InfoHash, PackageId>,
    serial: Option<u64>,
    healthy: bool,
}

impl Watcher<'_> {
    fn run(&mut self, stop: &AtomicBool, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
        let mut last_problem = String::new();
        while !stop.load(Ordering::SeqCst) {
            match self.tick(report) {
                Ok(()) => {}
                Err(e) => {
                    let msg = format!("{e:#}");
                    if msg != last_problem {
                        report(ServeEvent::Problem(msg.clone()));
                        last_problem = msg;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }

    fn tick(&mut self, report: &(dyn Fn(ServeEvent) + Sync)) -> Result<()> {
        let latest = self.repo.latest_serial()?;
        if latest != self.serial {
            if let Some(serial) = latest {
                let records = self.repo.records()?;
                self.sync_to(&records, report)?;
                self.shared.write().expect("state lock").serial = Some(serial);
                if self.serial.is_some() {
                    report(ServeEvent::Published {
                        serial,
                        packages: records.len(),
                    });
                }
            }
            self.serial = latest;
        }
        let health = self.check_health();
        let ok = health.is_ok();
        self.shared.write().expect("state lock").health = health;
        if ok && !self.healthy {
            report(ServeEvent::Healthy);
        }
        self.healthy = ok;
        Ok(())
    }

    /// Whitelists, renders and seeds every package of `snap` not yet seeded.
    fn sync_to(
        &mut self,
        records: &[PackageRecord],
        report: &(dyn Fn(ServeEvent) + Sync),
    ) -> Result<()> {
        let all: BTreeSet<InfoHash> = records.iter().map(|p| p.infohash).collect();
        let list: Vec<InfoHash> = all.iter().copied().collect();
        self.tracker.set_whitelist(&list)?;
        // What the newest snapshot no longer lists stops being seeded and served.
        let gone: Vec<InfoHash> = self
            .seeded
            .keys()
            .filter(|h| !all.contains(*h))
            .copied()
            .collect();
        if !gone.is_empty() {
            self.rpc.remove(&gone, false)?;
            let mut shared = self.shared.write().expect("state lock");
            for h in &gone {
                self.seeded.remove(h);
                shared.torrents.remove(h);
            }
        }
        let infos: BTreeMap<InfoHash, Info> = self.repo.all_infos()?;
        let dist = self.cfg.distribution();
        for p in records {
            if self.seeded.contains_key(&p.infohash) {
                continue;
            }
            let info = infos
                .get(&p.infohash)
                .with_context(|| format!("no torrent info for {}", p.id()))?;
            let web_seeds: Vec<String> = dist.web_seed(&p.blake3).into_iter().collect();
            let rendered = info.render(&dist.trackers, &web_seeds);
            // transmission wants the file under its torrent name: hard-link the object there.
            let dir = self.seed_dir.join(p.infohash.to_hex());
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let link = dir.join(&info.name);
            if !link.exists() {
                std::fs::hard_link(self.repo.objects().path(&p.blake3), &link)
                    .with_context(|| format!("cannot link {} for seeding", link.display()))?;
            }
            let hash = self.rpc.add_torrent(&rendered, &dir, false)?;
            if hash != p.infohash {
                bail!(
                    "transmission reports infohash {hash} for {}, the index says {}",
                    p.id(),
                    p.infohash
                );
            }
            self.rpc.verify(std::slice::from_ref(&hash))?;
            self.shared
                .write()
                .expect("state lock")
                .torrents
                .insert(p.infohash, rendered);
            self.seeded.insert(p.infohash, p.id());
            report(ServeEvent::Seeding {
                package: p.id(),
                infohash: p.infohash,
            });
        }
        Ok(())
    }

    fn check_health(&self) -> Result<(), String> {
        let hashes: Vec<InfoHash> = self.seeded.keys().copied().collect();
        if self.serial.is_none() {
            return Err("nothing published yet".into());
        }
        // Packages published since the last tick are not seeded yet.
        match self.repo.latest_serial() {
            Ok(s) if s == self.serial => {}
            Ok(s) => return Err(format!("catching up with index serial {}", s.unwrap_or(0))),
            Err(e) => return Err(format!("{e:#}")),
        }
        for h in &hashes {
            match self.tracker.authorizes(h) {
                Ok(true) => {}
                Ok(false) => return Err(format!("the tracker does not authorize {h} yet")),
                Err(e) => return Err(format!("the tracker does not answer: {e:#}")),
            }
        }
        let status = self
            .rpc
            .get(&hashes)
            .map_err(|e| format!("transmission does not answer: {e:#}"))?;
        for h in &hashes {
            let Some(t) = status.iter().find(|t| &t.hash_string == h) else {
                return Err(format!("transmission does not have {h}"));
            };
            if !t.is_seeding() {
                return Err(format!(
                    "{} is not seeding yet (status {}, {:.0}%)",
                    self.seeded[h],
                    t.status,
                    t.percent_done * 100.0
                ));
            }
        }
        // A client that announces before the seeder has is listed to the seeder as a seed (a
        // magnet client reports left=0 until it has the metadata), and transmission then refuses
        // it as "another seed" for good. So healthy also means the seeder's announce went through.
        let announced = self
            .rpc
            .announced(&hashes)
            .map_err(|e| format!("transmission does not answer: {e:#}"))?;
        if let Some(h) = hashes.iter().find(|h| !announced.contains(*h)) {
            return Err(format!(
                "the seeder has not announced {} to the tracker yet",
                self.seeded[h]
            ));
        }
        Ok(())
    }
}
