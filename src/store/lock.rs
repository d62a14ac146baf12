//! One lock per root: commands that change a root hold `ROOT/lock` exclusively for their whole
//! run, read-only commands hold it shared (they do not block each other). A second command
//! waits, saying what it waits for, and gives up after a configurable timeout.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Changes the root (add, install, uninstall, rollback, gc, sync).
    Exclusive,
    /// Only reads (list, info, generations, verify, search).
    Shared,
}

/// Why the lock was not taken: a caller can tell a busy root (retry later, or wait longer) from
/// a root it cannot use at all.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("timed out after {waited:.0?} waiting for the lock on {path} (held by {holder}); set DIST_LOCK_TIMEOUT to wait longer")]
    Timeout {
        path: PathBuf,
        holder: String,
        waited: Duration,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped (the kernel releases it if the process dies, even by SIGKILL).
pub struct RootLock {
    _file: Option<File>,
    path: PathBuf,
}

impl RootLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `DIST_LOCK_TIMEOUT` (seconds) or 300.
pub fn default_timeout() -> Duration {
    std::env::var("DIST_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(300))
}

/// Takes the lock of `root`, calling `waiting` once (with who holds it) if it has to wait.
pub fn acquire(
    root: &Path,
    mode: Mode,
    what: &str,
    timeout: Duration,
    waiting: &dyn Fn(&str),
) -> Result<RootLock, LockError> {
    let io = |what: String| move |source| LockError::Io { what, source };
    let path = root.join("lock");
    if mode == Mode::Shared {
        if let Some(read_only) = shared_without_write(root, &path) {
            return read_only;
        }
    }
    std::fs::create_dir_all(root).map_err(io(format!(
        "cannot create {} (is the root writable?)",
        root.display()
    )))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    let start = Instant::now();
    let mut told = false;
    loop {
        let got = match mode {
            Mode::Exclusive => file.try_lock(),
            Mode::Shared => file.try_lock_shared(),
        };
        match got {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(root.join("lock.holder")).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "another dist".to_string(),
                    h => h.to_string(),
                };
                if !told {
                    waiting(&format!(
                        "waiting for the lock on {} (held by {holder})",
                        path.display(),
                    ));
                    told = true;
                }
                if start.elapsed() >= timeout {
                    return Err(LockError::Timeout {
                        path,
                        holder,
                        waited: timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io(format!("cannot lock {}", path.display()))(e))
            }
        }
    }
    if mode == Mode::Exclusive {
        // Informational only (the flock is the lock): who to name to a waiting command.
        let _ = std::fs::write(
            root.join("lock.holder"),
            format!("pid {} ({what})\n", std::process::id()),
        );
        let _ = file.flush();
    }
    Ok(RootLock {
        _file: Some(file),
        path,
    })
}

/// A reader that may not write the root (another user's root, a read-only mount): a shared lock
/// through a read-only descriptor (flock needs no write access), or none when there is no lock
/// file to take, since nothing then can be changing the root. `None` when the root is writable
/// and the normal path applies.
fn shared_without_write(root: &Path, path: &Path) -> Option<Result<RootLock, LockError>> {
    let writable = rustix::fs::access(root, rustix::fs::Access::WRITE_OK).is_ok();
    if writable {
        return None;
    }
    let lock = |file| {
        Ok(RootLock {
            _file: file,
            path: path.to_path_buf(),
        })
    };
    Some(match File::open(path) {
        Ok(f) => match f.lock_shared() {
            Ok(()) => lock(Some(f)),
            Err(source) => Err(LockError::Io {
                what: format!("cannot lock {}", path.display()),
                source,
            }),
        },
        Err(_) => lock(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let quiet = |_: &str| {};
        let a = acquire(
            dir.path(),
            Mode::Shared,
            "a",
            Duration::from_secs(1),
            &quiet,
        )
        .unwrap();
        let b = acquire(
            dir.path(),
            Mode::Shared,
            "b",
            Duration::from_secs(1),
            &quiet,
        )
        .unwrap();
        let told = std::cell::Cell::new(false);
        let err = acquire(
            dir.path(),
            Mode::Exclusive,
            "c",
            Duration::from_millis(300),
            &|m: &str| {
                assert!(m.contains("waiting for the lock"));
                told.set(true);
            },
        )
        .err()
        .unwrap();
        assert!(told.get());
        assert!(format!("{err:#}").contains("timed out"));
        drop((a, b));
        let _c = acquire(
            dir.path(),
            Mode::Exclusive,
            "c",
            Duration::from_secs(1),
            &quiet,
        )
        .unwrap();
    }
}
