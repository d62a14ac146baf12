//! Writing to standard output and standard error without panicking: `std`'s `println!` panics
//! when the reader went away (`dist list | head -1`: "failed printing to stdout: Broken pipe",
//! exit 101). The `println!`, `print!` and `eprintln!` that every command module uses are the
//! macros of `commands/mod.rs`, which come here: a closed output ends the printing quietly (the
//! command still finishes what it does, a mutation included, and exits as it would have), and
//! any other write error on standard output is reported once at the end by `main`.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Standard output was closed by its reader: later lines are not even formatted.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error on standard output other than a closed pipe.
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// What `println!`/`print!` do: write `args` (and a newline) to standard output.
pub fn stdout(args: fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => CLOSED.store(true, Ordering::Relaxed),
        Err(e) => {
            CLOSED.store(true, Ordering::Relaxed);
            let mut failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// What `eprintln!` does: write a line to standard error; if that fails there is nowhere left
/// to say so.
pub fn stderr(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// The write error standard output met, if any (a closed pipe is none: the reader chose to
/// stop reading).
pub fn failure() -> Option<String> {
    let _ = std::io::stdout().flush();
    FAILED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
