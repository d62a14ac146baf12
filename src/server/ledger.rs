//! The web seed's ledger: which pieces of each object this server has sent through web-seed
//! range requests lately. A range it sent within the window is in the swarm already (the client
//! that received it shares it), so a request for it again is answered `503`: the asking client
//! gets it from its peers, and the origin's bandwidth goes to what the swarm lacks (issue 11,
//! "an origin that feeds the swarm instead of replacing it"). Pure bookkeeping, time passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::format::ids::ObjectId;

/// The unit of the ledger: transmission's block size (its requests are whole blocks).
pub const BLOCK: u64 = 16 * 1024;

/// The default window: none (every range is served). Measured with transmission 3.00 clients
/// (ARCHITECTURE.md), refusing repeats sent them to the origin's BitTorrent seeder rather than
/// to each other: more origin bytes and a slower swarm. It stays a setting.
pub const DEFAULT_WINDOW: Duration = Duration::ZERO;

/// Per object, when each block was last sent (seconds since the ledger began, 0: never).
#[derive(Debug)]
pub struct Ledger {
    window: Duration,
    start: Instant,
    objects: HashMap<ObjectId, Vec<u32>>,
    /// When the ledger last dropped objects idle for a whole window.
    swept: Instant,
}

impl Ledger {
    pub fn new(window: Duration, now: Instant) -> Ledger {
        Ledger {
            window,
            start: now,
            objects: HashMap::new(),
            swept: now,
        }
    }

    /// Whether to send bytes `first..=last` of `object` now. Refused when most of the range's
    /// blocks were sent within the window (the swarm has them); an admitted range is recorded.
    pub fn admit(&mut self, object: ObjectId, first: u64, last: u64, now: Instant) -> bool {
        if self.window.is_zero() || last < first {
            return true;
        }
        self.sweep(now);
        let stamp = self.stamp(now);
        let window = self.window.as_secs().max(1) as u32;
        let (b0, b1) = ((first / BLOCK) as usize, (last / BLOCK) as usize);
        let blocks = self.objects.entry(object).or_default();
        if blocks.len() <= b1 {
            blocks.resize(b1 + 1, 0);
        }
        let range = &mut blocks[b0..=b1];
        let recent = range
            .iter()
            .filter(|&&t| t != 0 && stamp.saturating_sub(t) < window)
            .count();
        if recent * 2 > range.len() {
            return false;
        }
        range.fill(stamp);
        true
    }

    /// Seconds since the ledger began, from 1 (0 means never sent).
    fn stamp(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.start).as_secs() as u32 + 1
    }

    /// Once per window: forgets objects none of whose blocks were sent within it.
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < self.window {
            return;
        }
        self.swept = now;
        let stamp = self.stamp(now);
        let window = self.window.as_secs().max(1) as u32;
        self.objects.retain(|_, blocks| {
            blocks
                .iter()
                .any(|&t| t != 0 && stamp.saturating_sub(t) < window)
        });
    }

    pub fn objects(&self) -> usize {
        self.objects.len()
    }
}

/// The range of a web-seed request: `bytes=FIRST-LAST`, clamped to the object's `size`. Anything
/// else is `None` and served as usual: several ranges, and open ranges (`bytes=N-`, how a
/// resumed HTTP download asks, which must not be refused for pieces others received).
pub fn webseed_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let first: u64 = a.trim().parse().ok()?;
    let last: u64 = b.trim().parse().ok()?;
    Some((first, last.min(size.checked_sub(1)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 32])
    }

    #[test]
    fn a_range_goes_out_once_per_window() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(120), t0);
        assert!(l.admit(id(1), 0, 4 * BLOCK - 1, t0));
        // The same blocks again, from another client: the swarm has them.
        assert!(!l.admit(id(1), 0, 4 * BLOCK - 1, t0 + Duration::from_secs(1)));
        assert!(!l.admit(id(1), BLOCK, 2 * BLOCK - 1, t0 + Duration::from_secs(1)));
        // Other blocks, or another object: fresh.
        assert!(l.admit(id(1), 4 * BLOCK, 6 * BLOCK - 1, t0));
        assert!(l.admit(id(2), 0, 4 * BLOCK - 1, t0));
        // Mostly fresh: sent (and recorded).
        assert!(l.admit(id(1), 5 * BLOCK, 9 * BLOCK - 1, t0));
        // After the window, a lone later client gets it again.
        assert!(l.admit(id(1), 0, 4 * BLOCK - 1, t0 + Duration::from_secs(121)));
    }

    #[test]
    fn window_zero_admits_everything_and_idle_objects_are_forgotten() {
        let t0 = Instant::now();
        let mut off = Ledger::new(Duration::ZERO, t0);
        assert!(off.admit(id(1), 0, 10, t0));
        assert!(off.admit(id(1), 0, 10, t0));
        let mut l = Ledger::new(Duration::from_secs(10), t0);
        assert!(l.admit(id(1), 0, 10, t0));
        assert_eq!(l.objects(), 1);
        assert!(l.admit(id(2), 0, 10, t0 + Duration::from_secs(30)));
        assert_eq!(l.objects(), 1, "the idle object is swept");
    }

    #[test]
    fn webseed_ranges_parse() {
        assert_eq!(webseed_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(webseed_range("bytes=900-5000", 1000), Some((900, 999)));
        assert_eq!(webseed_range("bytes=900-", 1000), None);
        assert_eq!(webseed_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(webseed_range("bytes=-500", 1000), None);
        assert_eq!(webseed_range("items=0-1", 1000), None);
        assert_eq!(webseed_range("bytes=0-1", 0), None);
    }
}
