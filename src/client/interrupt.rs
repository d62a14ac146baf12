//! A user's Ctrl-C (or SIGTERM) during a long client operation. The CLI turns the signal into
//! [`request`]; the loops that wait (a download, a script) poll [`check`] and return
//! [`Interrupted`], so the install unwinds through its cleanup (torrents it added removed, the
//! script's process group killed, `current` untouched) instead of dying mid-way.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
#[error("interrupted; nothing was switched")]
pub struct Interrupted;

/// Asks every waiting loop to stop.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// `Err(Interrupted)` once an interruption was requested.
pub fn check() -> Result<(), Interrupted> {
    if REQUESTED.load(Ordering::SeqCst) {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
