//! The libtorrent engine's seeder: one background process per root (`dist daemon run`, started
//! on first need like transmission's daemon, found again by its pid) that seeds what was
//! installed. An install offers it an object by writing `ROOT/daemon/libtorrent/seeds/
//! <infohash>.json` (the `.torrent`, the object's BLAKE3, the file name); the seeder looks at that
//! directory twice a second, adds what is new and drops what was withdrawn (`gc`), and writes
//! what it does to `status.json` for `dist daemon status`. An offered object was verified by the
//! install: when its file in `downloads/<infohash>/` is the very inode of `objects/<blake3>`, it
//! is added in seed mode (no hashing, so a restart of the seeder costs nothing); otherwise
//! libtorrent hashes it first.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dist_libtorrent::{AddOptions, Session, State};
use serde::{Deserialize, Serialize};

use super::config::Settings;
use super::fetch::lt;
use super::{interrupt, Layout, Reporter};
use crate::format::ids::{InfoHash, ObjectId};
use crate::process;
use crate::store::fsx;

/// What `state.json` records of the running seeder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeederState {
    pub pid: u32,
    pub peer_port: u16,
    /// The upload cap it runs with, kB/s (0: none); absent in states written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u32>,
}

/// One object offered to the seeder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offer {
    pub infohash: InfoHash,
    pub blake3: ObjectId,
    /// The file's name in `downloads/<infohash>/`.
    pub file: String,
    /// The `.torrent`, hex.
    pub torrent: String,
}

/// One torrent as `status.json` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seeding {
    pub infohash: InfoHash,
    pub name: String,
    pub state: String,
    pub percent_done: f64,
    pub uploaded: u64,
    pub peers: u32,
}

/// `status.json`: what the seeder does, rewritten every second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeederStatus {
    pub torrents: Vec<Seeding>,
}

impl Layout {
    fn seeder_dir(&self) -> PathBuf {
        self.daemon_dir().join("libtorrent")
    }
    fn seeds_dir(&self) -> PathBuf {
        self.seeder_dir().join("seeds")
    }
    fn seeder_state_path(&self) -> PathBuf {
        self.seeder_dir().join("state.json")
    }
    fn seeder_status_path(&self) -> PathBuf {
        self.seeder_dir().join("status.json")
    }
}

/// The running seeder, if any.
pub fn running(layout: &Layout) -> Option<SeederState> {
    let bytes = std::fs::read(layout.seeder_state_path()).ok()?;
    let st: SeederState = serde_json::from_slice(&bytes).ok()?;
    process::alive(st.pid).then_some(st)
}

/// What the running seeder last reported.
pub fn status(layout: &Layout) -> SeederStatus {
    std::fs::read(layout.seeder_status_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// How long ago the running seeder last wrote its status (it does every second).
pub fn status_age(layout: &Layout) -> Option<Duration> {
    let modified = std::fs::metadata(layout.seeder_status_path())
        .and_then(|m| m.modified())
        .ok()?;
    Some(modified.elapsed().unwrap_or_default())
}

/// Offers an installed (verified) object to the seeder, starting it if none runs.
pub fn offer(layout: &Layout, settings: &Settings, offer: &Offer) -> Result<()> {
    let dir = layout.seeds_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}.json", offer.infohash));
    fsx::write_atomic(&path, &serde_json::to_vec(offer)?, 0o644)?;
    ensure(layout, settings)
}

/// Whether anything is offered to the seeder (so it should run).
pub fn has_offers(layout: &Layout) -> bool {
    std::fs::read_dir(layout.seeds_dir()).is_ok_and(|mut d| d.next().is_some())
}

/// Withdraws an object from seeding (its download is being collected).
pub fn withdraw(layout: &Layout, infohash: &InfoHash) -> Result<()> {
    let path = layout.seeds_dir().join(format!("{infohash}.json"));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Starts the seeder (`dist --root ROOT daemon run`, in a process group of its own, its
/// output in `ROOT/daemon/libtorrent/log`) unless one runs; waits until it says it listens.
pub fn ensure(layout: &Layout, settings: &Settings) -> Result<()> {
    if running(layout).is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(layout.seeder_dir())?;
    let exe = std::env::current_exe().context("cannot find the dist binary to start the seeder")?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--root").arg(&layout.root).args(["daemon", "run"]);
    if let Some(b) = settings.bind_address {
        cmd.args(["--bind", &b.to_string()]);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let log = layout.seeder_dir().join("log");
    let mut child = process::spawn_logged(&mut cmd, &log, &exe, "dist")?;
    let started = Instant::now();
    loop {
        if running(layout).is_some_and(|s| s.pid == child.id()) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the libtorrent seeder exited at once ({status}): {}",
                process::log_tail(&log)
            );
        }
        if started.elapsed() > Duration::from_secs(10) {
            anyhow::bail!(
                "the libtorrent seeder did not start within 10 s: {}",
                process::log_tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the seeder (SIGTERM: it leaves its torrents, announcing so, then exits).
pub fn stop(layout: &Layout) -> Result<bool> {
    let Some(st) = running(layout) else {
        return Ok(false);
    };
    process::terminate_pid(st.pid, "the libtorrent seeder", Duration::from_secs(10))?;
    let _ = std::fs::remove_file(layout.seeder_state_path());
    Ok(true)
}

/// The seeder's own loop (`dist daemon run`): until SIGTERM or SIGINT. What it cannot seed is
/// reported (to its log) and not tried again while it is offered.
pub fn run(layout: &Layout, settings: &Settings, report: &dyn Reporter) -> Result<()> {
    let port = process::free_port(
        &settings
            .bind_address
            .map_or_else(|| "0.0.0.0".to_string(), |b| b.to_string()),
    )?;
    let session = Session::new(&lt::config(settings, port)).context("cannot start libtorrent")?;
    let st = SeederState {
        pid: std::process::id(),
        peer_port: session.listen_port(),
        upload_limit: Some(settings.upload_limit.unwrap_or(0)),
    };
    fsx::write_atomic(
        &layout.seeder_state_path(),
        &serde_json::to_vec(&st)?,
        0o644,
    )?;
    let mut seeding: BTreeMap<InfoHash, Offer> = BTreeMap::new();
    let mut refused: BTreeMap<InfoHash, String> = BTreeMap::new();
    let mut last_status = Instant::now() - Duration::from_secs(10);
    while interrupt::check().is_ok() {
        let offers = read_offers(layout);
        for (h, offer) in &offers {
            if seeding.contains_key(h) || refused.contains_key(h) {
                continue;
            }
            match add(layout, &session, offer) {
                Ok(()) => {
                    seeding.insert(*h, offer.clone());
                }
                Err(e) => {
                    report.warn(&format!("cannot seed {}: {e:#}", offer.file));
                    refused.insert(*h, format!("{e:#}"));
                }
            }
        }
        seeding
            .retain(|h, _| offers.contains_key(h) || session.remove(h.as_bytes(), false).is_err());
        refused.retain(|h, _| offers.contains_key(h));
        if last_status.elapsed() >= Duration::from_secs(1) {
            write_status(layout, &session, &seeding);
            last_status = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::fs::remove_file(layout.seeder_state_path());
    Ok(())
}

fn read_offers(layout: &Layout) -> BTreeMap<InfoHash, Offer> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(layout.seeds_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(h) = name
            .strip_suffix(".json")
            .and_then(|h| InfoHash::parse(h).ok())
        else {
            continue;
        };
        let offer: Option<Offer> = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(o) = offer.filter(|o| o.infohash == h && !o.file.contains('/')) {
            out.insert(h, o);
        }
    }
    out
}

/// Adds one offer: in seed mode when its file is the verified object's very inode.
fn add(layout: &Layout, session: &Session, offer: &Offer) -> Result<()> {
    let dir = layout.download_dir(&offer.infohash);
    let torrent = hex::decode(&offer.torrent).context("the offer's torrent is not hex")?;
    let options = AddOptions {
        seed_mode: same_file(
            &dir.join(&offer.file),
            &layout.objects().path(&offer.blake3),
        ),
        web_seeds: false,
        ..AddOptions::default()
    };
    let added = session.add(&torrent, &dir, &options)?;
    if added != *offer.infohash.as_bytes() {
        let _ = session.remove(&added, false);
        anyhow::bail!("its torrent has another infohash than {}", offer.infohash);
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn write_status(layout: &Layout, session: &Session, seeding: &BTreeMap<InfoHash, Offer>) {
    let torrents = seeding
        .iter()
        .filter_map(|(h, o)| {
            let st = session.status(h.as_bytes()).ok()?;
            Some(Seeding {
                infohash: *h,
                name: o.file.clone(),
                state: state_name(st.state).to_string(),
                percent_done: f64::from(st.progress),
                uploaded: st.uploaded,
                peers: st.num_peers,
            })
        })
        .collect();
    let status = SeederStatus { torrents };
    if let Ok(bytes) = serde_json::to_vec(&status) {
        let _ = fsx::write_atomic(&layout.seeder_status_path(), &bytes, 0o644);
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::CheckingFiles | State::CheckingResumeData => "verifying",
        State::DownloadingMetadata | State::Downloading => "downloading",
        State::Finished | State::Seeding => "seeding",
        State::Other(_) => "unknown",
    }
}
