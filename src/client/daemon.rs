//! The client's transmission-daemon: a private one under `ROOT/daemon/` (started on first need,
//! reused while it runs, its pid and ports in `ROOT/daemon/state.json`), or an existing one
//! given by `rpc_url`.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::config::Settings;
use super::Layout;
use crate::daemons::transmission::{self, DaemonConfig, Kicker, Rpc};
use crate::process;
use crate::store::fsx;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonState {
    pub pid: u32,
    pub rpc_port: u16,
    pub peer_port: u16,
    /// The upload cap it was started with, kB/s (0: none); absent in states written before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u32>,
}

impl Layout {
    pub fn daemon_dir(&self) -> PathBuf {
        self.root.join("daemon")
    }
    fn daemon_state_path(&self) -> PathBuf {
        self.daemon_dir().join("state.json")
    }

    pub fn daemon_state(&self) -> Option<DaemonState> {
        let bytes = std::fs::read(self.daemon_state_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The running private daemon, if any.
pub fn running(layout: &Layout) -> Option<(DaemonState, Rpc)> {
    let st = layout.daemon_state()?;
    if !process::alive(st.pid) {
        return None;
    }
    let rpc = Rpc::local(st.rpc_port);
    rpc.ping().then_some((st, rpc))
}

/// An RPC connection to the daemon to use, starting the private one if needed.
pub fn ensure(layout: &Layout, settings: &Settings) -> Result<Rpc> {
    if let Some(url) = &settings.rpc_url {
        let rpc = Rpc::new(url);
        if !rpc.ping() {
            anyhow::bail!("the transmission-daemon at {url} (rpc_url) does not answer");
        }
        return Ok(rpc);
    }
    if let Some((_, rpc)) = running(layout) {
        return Ok(rpc);
    }
    let bind = settings.bind_address;
    let rpc_port = process::free_port("127.0.0.1")?;
    let peer_port =
        process::free_port(&bind.map_or_else(|| "0.0.0.0".to_string(), |b| b.to_string()))?;
    std::fs::create_dir_all(layout.daemon_dir())?;
    let mut dcfg = DaemonConfig::new(
        layout.daemon_dir().join("config"),
        layout.root.join("downloads"),
        peer_port,
        rpc_port,
    );
    dcfg.bind_ipv4 = bind;
    dcfg.upload_limit_kbps = settings.upload_limit;
    dcfg.download_limit_kbps = settings.download_limit;
    let handle = transmission::start_daemon(&dcfg)?;
    let st = DaemonState {
        pid: handle.pid,
        rpc_port,
        peer_port,
        upload_limit: Some(settings.upload_limit.unwrap_or(0)),
    };
    fsx::write_atomic(
        &layout.daemon_state_path(),
        &serde_json::to_vec(&st)?,
        0o644,
    )?;
    // The daemon outlives this process on purpose: it keeps seeding what was installed.
    handle.detach();
    let rpc = Rpc::local(rpc_port);
    relocate_strays(layout, &rpc)?;
    Ok(rpc)
}

/// Puts every torrent the daemon loaded back into its `downloads/<infohash>/` and re-checks
/// it. transmission keeps a torrent's directory in its resume file, written some seconds after
/// the add: a daemon killed before that reloads the torrent (from `config/torrents/`) into its
/// default directory, `downloads/`, and fetches everything again there, while the installer
/// looks in `downloads/<infohash>/` and found the killed daemon's stale `.part` instead.
fn relocate_strays(layout: &Layout, rpc: &Rpc) -> Result<()> {
    for t in rpc.all()? {
        if Kicker::is_dummy(&t.hash_string) {
            continue;
        }
        let dir = layout.download_dir(&t.hash_string);
        if std::path::Path::new(&t.download_dir) != dir {
            rpc.set_location(&t.hash_string, &dir)?;
            rpc.verify(&[t.hash_string])?;
        }
    }
    Ok(())
}

/// Stops the private daemon gracefully (torrents stopped first so the tracker hears it).
pub fn stop(layout: &Layout) -> Result<bool> {
    match running(layout) {
        Some((st, rpc)) => {
            transmission::stop_daemon_by_pid(st.pid, &rpc)?;
            let _ = std::fs::remove_file(layout.daemon_state_path());
            Ok(true)
        }
        None => Ok(false),
    }
}
