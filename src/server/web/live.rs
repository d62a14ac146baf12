//! The live side of the catalog, kept in memory and bounded: the bytes the origin sent of each
//! object over HTTP (counted as the bodies leave), and a ring of samples of the packages someone
//! looked at (at most [`WATCHED`] packages, [`SAMPLES`] samples each, dropped [`WATCH_FOR`]
//! after the last view). Pure bookkeeping, time passed in; the sampling itself is in `mod.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::daemons::tracker::Swarm;
use crate::format::ids::{InfoHash, ObjectId, PackageName};

/// Time between two samples of a watched package.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per package: ten minutes at [`INTERVAL`].
pub const SAMPLES: usize = 120;
/// How many packages are sampled at once; viewing one more forgets the least recently viewed.
pub const WATCHED: usize = 64;
/// How long a package is sampled after its page was last viewed.
pub const WATCH_FOR: Duration = Duration::from_secs(15 * 60);

/// How an object's bytes left the origin over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A range request: a BitTorrent client's web seed (BEP 19).
    WebSeed,
    /// A whole-object download (no range, or `bytes=0-`): `dist install` over HTTP, curl.
    Direct,
}

/// The bytes the origin sent of one object since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub webseed: u64,
    pub direct: u64,
}

/// Per-object HTTP counters: one entry per object ever served, so bounded by the store.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: Mutex<HashMap<ObjectId, Sent>>,
}

impl Traffic {
    pub fn add(&self, id: ObjectId, via: Via, bytes: u64) {
        let mut sent = self.sent.lock().expect("traffic lock");
        let s = sent.entry(id).or_default();
        match via {
            Via::WebSeed => s.webseed += bytes,
            Via::Direct => s.direct += bytes,
        }
    }

    pub fn of(&self, id: &ObjectId) -> Sent {
        self.sent
            .lock()
            .expect("traffic lock")
            .get(id)
            .copied()
            .unwrap_or_default()
    }
}

/// One package's totals over the versions the page shows, at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub seeders: u64,
    pub leechers: u64,
    pub downloaded: u64,
    pub webseed: u64,
    pub direct: u64,
    /// What the origin's seeder sent (transmission's `uploadedEver` of the torrents it holds).
    pub seeder: u64,
}

/// The live numbers of one version; `None` where the tracker or the seeder did not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersionLive {
    pub swarm: Option<Swarm>,
    /// `None` also when the seeder does not hold this version now (not in the hot set).
    pub seeder: Option<u64>,
    pub sent: Sent,
}

/// The live numbers of the versions of a package, and what went wrong while asking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// In the order of the objects asked about.
    pub versions: Vec<VersionLive>,
    pub tracker_error: Option<String>,
    pub seeder_error: Option<String>,
}

impl Live {
    /// Both the tracker and the seeder answered.
    pub fn answered(&self) -> bool {
        self.tracker_error.is_none() && self.seeder_error.is_none()
    }

    /// The package's totals, as one sample taken at `at`.
    pub fn total(&self, at: u64) -> Sample {
        let mut s = Sample {
            at,
            ..Sample::default()
        };
        for v in &self.versions {
            if let Some(w) = v.swarm {
                s.seeders += w.complete;
                s.leechers += w.incomplete;
                s.downloaded += w.downloaded;
            }
            s.webseed += v.sent.webseed;
            s.direct += v.sent.direct;
            s.seeder += v.seeder.unwrap_or(0);
        }
        s
    }
}

/// What a watched package is sampled from: each shown version's infohash and object.
pub type Objects = Vec<(InfoHash, ObjectId)>;

struct Watched {
    objects: Objects,
    viewed: Instant,
    /// When the last sample was taken (not its wall-clock time: that is in the sample).
    sampled: Option<Instant>,
    samples: VecDeque<Sample>,
}

/// The samples of the packages someone looked at.
#[derive(Default)]
pub struct History {
    watched: HashMap<PackageName, Watched>,
}

impl History {
    /// Someone views `name` (whose shown versions are `objects`) at `now`: it is sampled from
    /// now on, for [`WATCH_FOR`]. Returns its samples so far, oldest first.
    pub fn view(&mut self, name: &PackageName, objects: Objects, now: Instant) -> Vec<Sample> {
        if !self.watched.contains_key(name) && self.watched.len() >= WATCHED {
            let oldest = self
                .watched
                .iter()
                .min_by_key(|(_, w)| w.viewed)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                self.watched.remove(&n);
            }
        }
        let w = self.watched.entry(name.clone()).or_insert_with(|| Watched {
            objects: Vec::new(),
            viewed: now,
            sampled: None,
            samples: VecDeque::new(),
        });
        w.objects = objects;
        w.viewed = now;
        w.samples.iter().copied().collect()
    }

    /// The packages to sample at `now` (watched, and not sampled for an [`INTERVAL`]); forgets
    /// those nobody viewed for [`WATCH_FOR`].
    pub fn due(&mut self, now: Instant) -> Vec<(PackageName, Objects)> {
        self.watched
            .retain(|_, w| now.saturating_duration_since(w.viewed) < WATCH_FOR);
        self.watched
            .iter()
            .filter(|(_, w)| {
                w.sampled
                    .is_none_or(|t| now.saturating_duration_since(t) >= INTERVAL)
            })
            .map(|(n, w)| (n.clone(), w.objects.clone()))
            .collect()
    }

    /// Adds a sample of `name` taken at `now`, unless it is not watched any more or was
    /// sampled less than an [`INTERVAL`] ago (a page view and the sampler may both offer one).
    pub fn record(&mut self, name: &PackageName, sample: Sample, now: Instant) {
        let Some(w) = self.watched.get_mut(name) else {
            return;
        };
        if w.sampled
            .is_some_and(|t| now.saturating_duration_since(t) < INTERVAL)
        {
            return;
        }
        if w.samples.len() == SAMPLES {
            w.samples.pop_front();
        }
        w.samples.push_back(sample);
        w.sampled = Some(now);
    }

    pub fn len(&self) -> usize {
        self.watched.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> PackageName {
        PackageName::parse(&format!("p{i}")).unwrap()
    }

    fn sample(at: u64) -> Sample {
        Sample {
            at,
            ..Sample::default()
        }
    }

    #[test]
    fn samples_are_a_bounded_ring_spaced_by_the_interval() {
        let mut h = History::default();
        let t0 = Instant::now();
        h.view(&name(0), Vec::new(), t0);
        h.record(&name(0), sample(0), t0);
        // A second offer within the interval is dropped.
        h.record(&name(0), sample(1), t0 + Duration::from_secs(1));
        assert_eq!(h.view(&name(0), Vec::new(), t0), [sample(0)]);
        for i in 1..=SAMPLES as u64 + 10 {
            h.record(&name(0), sample(i), t0 + INTERVAL * i as u32);
        }
        let s = h.view(&name(0), Vec::new(), t0);
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s.first().unwrap().at, 11);
        assert_eq!(s.last().unwrap().at, SAMPLES as u64 + 10);
    }

    #[test]
    fn only_recently_viewed_packages_are_sampled_and_they_are_bounded() {
        let mut h = History::default();
        let t0 = Instant::now();
        for i in 0..WATCHED + 5 {
            h.view(&name(i), Vec::new(), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(h.len(), WATCHED);
        let due = h.due(t0 + Duration::from_secs(1));
        assert_eq!(due.len(), WATCHED);
        // The least recently viewed went first.
        assert!(!due.iter().any(|(n, _)| *n == name(0)));
        assert!(due.iter().any(|(n, _)| *n == name(WATCHED + 4)));
        // Just sampled: not due again within the interval.
        let now = t0 + Duration::from_secs(2);
        h.record(&name(7), sample(2), now);
        assert!(!h.due(now).iter().any(|(n, _)| *n == name(7)));
        assert!(h.due(now + INTERVAL).iter().any(|(n, _)| *n == name(7)));
        // Nobody looked for a while: nothing is sampled any more.
        assert!(h.due(t0 + WATCH_FOR + Duration::from_secs(1)).is_empty());
        assert_eq!(h.len(), 0);
        h.record(&name(7), sample(3), t0 + WATCH_FOR * 2);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn totals_add_up_what_answered() {
        let live = Live {
            versions: vec![
                VersionLive {
                    swarm: Some(Swarm {
                        complete: 1,
                        incomplete: 2,
                        downloaded: 3,
                    }),
                    seeder: Some(100),
                    sent: Sent {
                        webseed: 10,
                        direct: 20,
                    },
                },
                VersionLive {
                    swarm: None,
                    seeder: None,
                    sent: Sent {
                        webseed: 1,
                        direct: 0,
                    },
                },
            ],
            ..Live::default()
        };
        assert_eq!(
            live.total(9),
            Sample {
                at: 9,
                seeders: 1,
                leechers: 2,
                downloaded: 3,
                webseed: 11,
                direct: 20,
                seeder: 100
            }
        );
    }
}
