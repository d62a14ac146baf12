//! A user's Ctrl-C (or SIGTERM) during a long client operation. The CLI turns the signal into
//! [`request`]; the loops that wait (a download, a script) poll [`check`] and return
//! [`Interrupted`], so the install unwinds through its cleanup (torrents it added removed, the
//! script's process group killed, `current` untouched) instead of dying mid-way. Workers that
//! run side by side (the HTTP fetches of one install) also share an [`Abort`]: the first to fail
//! raises it, and the others stop where they would stop for a Ctrl-C.

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

/// Workers that stop together: the first of them to fail raises it, and every loop of the others
/// that polls [`check`] polls [`Abort::check`] instead, which sees both.
#[derive(Debug, Default)]
pub struct Abort(AtomicBool);

impl Abort {
    /// Asks the other workers to stop.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// `Err(Interrupted)` once the user interrupted or a fellow worker failed.
    pub fn check(&self) -> Result<(), Interrupted> {
        check()?;
        if self.0.load(Ordering::SeqCst) {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }
}

/// The HTTP downloads of an install stop together through it (`transfer::in_parallel`).
impl crate::transfer::Halt for Abort {
    fn raise(&self) {
        Abort::raise(self);
    }

    fn halted(&self) -> anyhow::Result<()> {
        Ok(self.check()?)
    }
}
