//! The seeder's hot set: which objects the transmission-daemon holds. Pure bookkeeping (no I/O,
//! time passed in), so every rule is a unit test.
//!
//! - The *baseline*: the newest version of each package, most recently added first, up to
//!   `limit` (`hot_set`).
//! - *Promotions*: an object a client asked for (its `.torrent` or the object itself) joins the
//!   seeder, up to `limit` more. When full, the least recently requested promotion leaves, but
//!   never one requested within `pin` (a client may be downloading it right now); when every
//!   promotion is that recent, the new request is not promoted (the web seed and HTTP serve it).
//!
//! Everything else stays downloadable: every `.torrent` carries the origin's web seed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::format::ids::InfoHash;

/// How long a requested object stays pinned in the seeder.
pub const PIN: Duration = Duration::from_secs(300);
/// How long a new promotion has to seed and announce before health counts it: a promotion is
/// an RPC add, verified and announced within seconds, and a server under load must not read
/// as unhealthy every time a client asks for a cold object.
pub const SETTLE: Duration = Duration::from_secs(30);

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// Already in the seeder (its request time is refreshed).
    AlreadyHot,
    /// Joins the seeder, evicting the given promotion if the set was full.
    Promoted { evicted: Option<InfoHash> },
    /// The promotions are full and every one was requested within the pin time.
    Full,
}

#[derive(Debug)]
pub struct HotSet {
    limit: usize,
    pin: Duration,
    baseline: HashSet<InfoHash>,
    /// Promotions: when each was promoted, and when it was last requested.
    promoted: HashMap<InfoHash, Promoted>,
}

#[derive(Debug, Clone, Copy)]
struct Promoted {
    since: Instant,
    requested: Instant,
}

impl HotSet {
    pub fn new(limit: usize, pin: Duration) -> HotSet {
        HotSet {
            limit,
            pin,
            baseline: HashSet::new(),
            promoted: HashMap::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets the baseline from the newest versions in hot-set order (the first `limit` count).
    /// Promotions stay; one that is now in the baseline stops counting as a promotion.
    pub fn set_baseline(&mut self, newest: &[InfoHash]) {
        self.baseline = newest.iter().take(self.limit).copied().collect();
        let baseline = &self.baseline;
        self.promoted.retain(|h, _| !baseline.contains(h));
    }

    /// Keeps only the promotions `keep` accepts (an object that left the index).
    pub fn retain_promoted(&mut self, keep: impl Fn(&InfoHash) -> bool) {
        self.promoted.retain(|h, _| keep(h));
    }

    /// A client asked for `infohash` at `now`.
    pub fn request(&mut self, infohash: InfoHash, now: Instant) -> Promotion {
        if self.baseline.contains(&infohash) {
            return Promotion::AlreadyHot;
        }
        if let Some(p) = self.promoted.get_mut(&infohash) {
            p.requested = now;
            return Promotion::AlreadyHot;
        }
        if self.limit == 0 {
            return Promotion::Full;
        }
        let mut evicted = None;
        if self.promoted.len() >= self.limit {
            let oldest = self.promoted.iter().min_by_key(|(h, p)| (p.requested, **h));
            match oldest {
                Some((h, p)) if now.saturating_duration_since(p.requested) >= self.pin => {
                    evicted = Some(*h);
                }
                _ => return Promotion::Full,
            }
        }
        if let Some(h) = evicted {
            self.promoted.remove(&h);
        }
        let p = Promoted {
            since: now,
            requested: now,
        };
        self.promoted.insert(infohash, p);
        Promotion::Promoted { evicted }
    }

    /// Everything the seeder should hold.
    pub fn wanted(&self) -> HashSet<InfoHash> {
        self.baseline
            .iter()
            .chain(self.promoted.keys())
            .copied()
            .collect()
    }

    /// What health requires to be seeding and announced at `now`: the baseline, and the
    /// promotions older than `settle`.
    pub fn settled(&self, now: Instant, settle: Duration) -> HashSet<InfoHash> {
        let old = self
            .promoted
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) >= settle)
            .map(|(h, _)| h);
        self.baseline.iter().chain(old).copied().collect()
    }

    pub fn len(&self) -> usize {
        self.baseline.len() + self.promoted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> InfoHash {
        InfoHash::from_bytes([n; 20])
    }

    #[test]
    fn the_baseline_is_the_first_limit_of_the_newest() {
        let mut s = HotSet::new(2, PIN);
        s.set_baseline(&[h(1), h(2), h(3)]);
        assert_eq!(s.wanted(), [h(1), h(2)].into_iter().collect());
        assert_eq!(s.request(h(2), Instant::now()), Promotion::AlreadyHot);
    }

    #[test]
    fn promotions_are_bounded_and_evict_the_least_recently_requested_unpinned() {
        let t0 = Instant::now();
        let mut s = HotSet::new(2, Duration::from_secs(60));
        s.set_baseline(&[h(1)]);
        assert_eq!(s.request(h(5), t0), Promotion::Promoted { evicted: None });
        assert_eq!(
            s.request(h(6), t0 + Duration::from_secs(1)),
            Promotion::Promoted { evicted: None }
        );
        // Both requested within the pin time: nothing leaves, the new one is not promoted.
        assert_eq!(
            s.request(h(7), t0 + Duration::from_secs(30)),
            Promotion::Full
        );
        // A request refreshes h(5); after the pin time h(6) is the least recently requested.
        assert_eq!(
            s.request(h(5), t0 + Duration::from_secs(40)),
            Promotion::AlreadyHot
        );
        assert_eq!(
            s.request(h(7), t0 + Duration::from_secs(62)),
            Promotion::Promoted {
                evicted: Some(h(6))
            }
        );
        assert_eq!(s.wanted(), [h(1), h(5), h(7)].into_iter().collect());
        assert_eq!(s.len(), 3);
        // Health waits for a promotion only once it had time to seed and announce.
        let settled = s.settled(t0 + Duration::from_secs(70), Duration::from_secs(30));
        assert_eq!(settled, [h(1), h(5)].into_iter().collect());
    }

    #[test]
    fn a_promotion_that_enters_the_baseline_frees_its_slot() {
        let mut s = HotSet::new(1, PIN);
        s.set_baseline(&[h(1)]);
        s.request(h(2), Instant::now());
        s.set_baseline(&[h(2), h(1)]);
        assert_eq!(s.wanted(), [h(2)].into_iter().collect());
        assert_eq!(
            s.request(h(3), Instant::now()),
            Promotion::Promoted { evicted: None }
        );
    }

    #[test]
    fn a_zero_hot_set_holds_nothing() {
        let mut s = HotSet::new(0, PIN);
        s.set_baseline(&[h(1)]);
        assert_eq!(s.request(h(1), Instant::now()), Promotion::Full);
        assert!(s.is_empty());
    }
}
