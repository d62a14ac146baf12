//! Several downloads at once: workers on scoped threads take the next item until none is left,
//! and the first failure stops them all (the client's install, a mirror's missing objects).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Result;

/// Workers that stop together: the client's `Abort` (also raised by Ctrl-C), a mirror's flags
/// (also raised when the server stops).
pub trait Halt: Sync {
    /// Asks every worker to stop: the first failure raises it.
    fn raise(&self);
    /// `Err` (why) once raised, or once the caller has a reason of its own to stop.
    fn halted(&self) -> Result<()>;
}

/// Runs `work` on each of `items`, at most `width` at once; the results come back in the order
/// of `items`. The first error is the result: it raises `halt`, so the other workers take no
/// further item, and stop where their work polls `halt` (between reads of a download, or while
/// waiting). An item not started because `halt` was raised by the caller's own reason fails
/// with that reason, so a Ctrl-C before any failure is the error.
pub fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    width: usize,
    halt: &dyn Halt,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let worker = || {
        let mut out = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(k) else {
                return out;
            };
            match halt.halted().and_then(|()| work(item)) {
                Ok(r) => out.push((k, r)),
                Err(e) => {
                    // Recorded before the others are told, so their "stopped" comes second.
                    first_error.lock().expect("error slot").get_or_insert(e);
                    halt.raise();
                    return out;
                }
            }
        }
    };
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..width.max(1).min(items.len()))
            .map(|_| s.spawn(worker))
            .collect();
        for w in workers {
            let out = w
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (k, r) in out {
                results[k] = Some(r);
            }
        }
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every item ran: no worker failed"))
        .collect())
}
