//! The rechoke kick. transmission 3.00 decides choking and its own interest only in
//! `rechokePulse` (`peer-mgr.c`), on a global 10 s timer; a received "interested" only sets a flag
//! and a choke state may not change again for 10 s. So a peer that connects waits up to 10 s
//! before the seeder unchokes it and up to 10 s before it declares interest itself: with one
//! seeder, data starts ~10 s after the add (field notes). The one hook is that starting any
//! torrent runs `rechokePulse` at once and restarts its timer. [`Kicker`] keeps a tiny paused
//! torrent of its own in the daemon (no tracker, no data, never announced) and starts and stops it
//! every [`KICK_EVERY`] while peers are being served: measured outside the project, the first
//! peer-to-peer byte moved from ~10.8 s to ~4.3 s.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Rpc;
use crate::format::ids::InfoHash;
use crate::format::torrent::Info;

/// How often a kick may run.
pub const KICK_EVERY: Duration = Duration::from_millis(500);

/// The dummy torrent's only piece.
const PIECE: u64 = 16 << 10;

/// A daemon's rechoke kick: its dummy torrent, and when it last ran.
#[derive(Debug)]
pub struct Kicker {
    hash: InfoHash,
    last: Option<Instant>,
}

/// The dummy torrent: one 16 KiB piece of zeros, named so that nobody mistakes it.
fn dummy() -> Info {
    use sha1::{Digest, Sha1};
    Info {
        name: "dist-rechoke-kick".into(),
        length: PIECE,
        piece_length: PIECE,
        pieces: Sha1::digest(vec![0u8; PIECE as usize]).to_vec(),
    }
}

impl Kicker {
    /// Adds the dummy torrent to the daemon, paused, its (never written) data under `dir`.
    pub fn new(rpc: &Rpc, dir: &Path) -> Result<Kicker> {
        let info = dummy();
        std::fs::create_dir_all(dir)?;
        let hash = rpc.add_torrent(&info.render(&[], &[]), dir, true)?;
        Ok(Kicker { hash, last: None })
    }

    /// Whether `hash` is the dummy (so listings can leave it out).
    pub fn is_dummy(hash: &InfoHash) -> bool {
        *hash == dummy().infohash()
    }

    /// Starts and stops the dummy torrent, unless that happened less than [`KICK_EVERY`] ago:
    /// the daemon rechokes now.
    pub fn kick(&mut self, rpc: &Rpc) -> Result<()> {
        if self.last.is_some_and(|t| t.elapsed() < KICK_EVERY) {
            return Ok(());
        }
        self.last = Some(Instant::now());
        rpc.start(&[self.hash])?;
        rpc.stop(&[self.hash])
    }

    /// Takes the dummy torrent out of the daemon again.
    pub fn remove(&self, rpc: &Rpc) -> Result<()> {
        rpc.remove(&[self.hash], true)
    }
}
