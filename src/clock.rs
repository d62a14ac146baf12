//! The wall clock, read in one place: unix seconds for index rows, signatures and the client's
//! records.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch; 0 for a clock set before it.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
