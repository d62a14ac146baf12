//! Which background process keeps seeding what this root installed (issue 23, finding 2): the
//! libtorrent engine's seeder (`dist daemon run`) or the private transmission-daemon. Either
//! outlives the install that started it, on purpose, and uploads to other clients up to
//! `upload_limit`: an install that starts one says so once ([`Started`]), and `daemon status`
//! and `doctor` read the same facts from here.

use super::config::{Engine, Settings};
use super::{daemon, seeder, Layout};
use crate::format::ids::PackageId;

/// A running process that seeds this root's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub engine: Engine,
    pub pid: u32,
    /// Its upload cap, kB/s (1000 bytes); `None`: unlimited.
    pub upload_limit: Option<u32>,
}

/// What an install reports when what it installed is seeded by a process that was not running
/// before it: that process, and the packages it seeds for this install.
#[derive(Debug, Clone)]
pub struct Started {
    pub daemon: Daemon,
    pub packages: Vec<PackageId>,
}

/// The recorded cap (0: none), else `configured` (kB/s, `None`: none) for a state written
/// before caps were recorded.
fn limit(recorded: Option<u32>, configured: Option<u32>) -> Option<u32> {
    match recorded {
        Some(0) => None,
        Some(n) => Some(n),
        None => configured,
    }
}

/// The seeding processes of this root that run now: the libtorrent seeder, the private
/// transmission-daemon (not one named by `rpc_url`, which is the user's own), or both.
/// `configured` is the configured `upload_limit`, for a process that did not record its own.
pub fn running(layout: &Layout, configured: Option<u32>) -> Vec<Daemon> {
    let mut out = Vec::new();
    if let Some(st) = seeder::running(layout) {
        out.push(Daemon {
            engine: Engine::Libtorrent,
            pid: st.pid,
            upload_limit: limit(st.upload_limit, configured),
        });
    }
    if let Some((st, _)) = daemon::running(layout) {
        out.push(Daemon {
            engine: Engine::Transmission,
            pid: st.pid,
            upload_limit: limit(st.upload_limit, configured),
        });
    }
    out
}

/// After an install: the process that seeds `packages` for it, when it was not running before
/// the install (`before`); `None` when nothing is seeded or it ran already.
pub fn started(
    layout: &Layout,
    settings: &Settings,
    before: &[Daemon],
    packages: Vec<PackageId>,
) -> Option<Started> {
    if packages.is_empty() || !settings.seed {
        return None;
    }
    let now = running(layout, settings.upload_limit);
    let new = now
        .into_iter()
        .find(|d| !before.iter().any(|b| b.pid == d.pid))?;
    Some(Started {
        daemon: new,
        packages,
    })
}
