//! What `serve` keeps in memory of the repository, per published serial: each infohash's object
//! (to render web seeds and to tell which infohash an object request is about) and the order of
//! the default hot set. Compact on purpose: at 100,000 versions it is two hash maps and a list,
//! not the records (names, descriptions and magnets stay in SQLite).

use std::collections::{BTreeMap, HashMap};

use crate::format::ids::{InfoHash, ObjectId, PackageName};
use crate::index::record::Distribution;
use crate::index::record::PackageRecord;

#[derive(Debug, Default)]
pub struct Catalog {
    /// The published serial this view was made for (`None` before the first publish).
    pub serial: Option<u64>,
    objects: HashMap<InfoHash, ObjectId>,
    /// Each indexed object's infohash and size.
    by_object: HashMap<ObjectId, (InfoHash, u64)>,
    /// The newest version of each package (highest SemVer precedence), most recently added
    /// first: the order in which the default hot set is filled.
    newest: Vec<InfoHash>,
    /// An infohash of the most recently added batch: proves that the tracker has the newest
    /// whitelist in effect (it swaps the whole list at once on a reload).
    latest: Option<InfoHash>,
    /// The trackers and web-seed base the index names: this server's, or a mirror's upstream's.
    distribution: Distribution,
}

impl Catalog {
    /// Builds the view from every record of the master index.
    pub fn new(serial: Option<u64>, records: &[PackageRecord]) -> Catalog {
        let mut objects = HashMap::with_capacity(records.len());
        let mut by_object = HashMap::with_capacity(records.len());
        let mut newest: BTreeMap<&PackageName, &PackageRecord> = BTreeMap::new();
        let mut latest: Option<&PackageRecord> = None;
        for r in records {
            objects.insert(r.infohash, r.blake3);
            by_object.insert(r.blake3, (r.infohash, r.size));
            let slot = newest.entry(&r.name).or_insert(r);
            if r.version.cmp_precedence(&slot.version).is_gt() {
                *slot = r;
            }
            if latest.is_none_or(|l| (r.added_at, r.infohash) > (l.added_at, l.infohash)) {
                latest = Some(r);
            }
        }
        let mut newest: Vec<&PackageRecord> = newest.into_values().collect();
        // Most recently added first; ties (one batch) by name, so the order is stable.
        newest.sort_by(|a, b| b.added_at.cmp(&a.added_at).then(a.name.cmp(&b.name)));
        Catalog {
            serial,
            objects,
            by_object,
            newest: newest.iter().map(|r| r.infohash).collect(),
            latest: latest.map(|r| r.infohash),
            distribution: Distribution::default(),
        }
    }

    /// The same view, with the index's trackers and web-seed base.
    pub fn with_distribution(mut self, distribution: Distribution) -> Catalog {
        self.distribution = distribution;
        self
    }

    /// The trackers of a torrent this server hands out or seeds: its own first, then the
    /// index's (a mirror's peers announce to the upstream's tracker too, so both swarms are
    /// one), each once.
    pub fn trackers(&self, own: &str) -> Vec<String> {
        let mut out = vec![own.to_string()];
        for t in &self.distribution.trackers {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }

    /// The web seeds of `object`: this server's bases (its public URL, then the mirrors it
    /// lists), then the index's, each once.
    pub fn web_seeds(&self, own: &[String], object: &ObjectId) -> Vec<String> {
        let mut bases: Vec<&str> = Vec::new();
        for b in own.iter().chain(&self.distribution.public_url) {
            let b = b.trim_end_matches('/');
            if !bases.contains(&b) {
                bases.push(b);
            }
        }
        bases
            .iter()
            .map(|b| format!("{b}/objects/{}", object.rel_path()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The object of an indexed infohash.
    pub fn object(&self, infohash: &InfoHash) -> Option<ObjectId> {
        self.objects.get(infohash).copied()
    }

    /// The infohash of an indexed object.
    pub fn infohash_of(&self, object: &ObjectId) -> Option<InfoHash> {
        self.by_object.get(object).map(|o| o.0)
    }

    /// The infohash and size of an indexed object.
    pub fn indexed(&self, object: &ObjectId) -> Option<(InfoHash, u64)> {
        self.by_object.get(object).copied()
    }

    /// Every indexed infohash (the tracker's whitelist).
    pub fn infohashes(&self) -> Vec<InfoHash> {
        self.objects.keys().copied().collect()
    }

    /// The newest version of each package, most recently added first.
    pub fn newest(&self) -> &[InfoHash] {
        &self.newest
    }

    /// An infohash of the most recently added batch.
    pub fn latest(&self) -> Option<InfoHash> {
        self.latest
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(name: &str, version: &str, added_at: i64, n: u8) -> PackageRecord {
        PackageRecord {
            name: PackageName::parse(name).unwrap(),
            version: semver::Version::parse(version).unwrap(),
            description: None,
            blake3: ObjectId::from_bytes([n; 32]),
            infohash: InfoHash::from_bytes([n; 20]),
            size: 10,
            magnet: String::new(),
            added_at,
            relations: Default::default(),
            executables: None,
            yanked: None,
            phase: None,
        }
    }

    #[test]
    fn newest_version_of_each_package_most_recent_first() {
        let records = [
            record("a", "1.0.0", 10, 1),
            record("a", "1.10.0", 11, 2),
            record("a", "1.9.0", 30, 3), // added last, but not the newest version of `a`
            record("b", "0.1.0", 20, 4),
            record("c", "2.0.0-rc.1", 5, 5),
        ];
        let c = Catalog::new(Some(7), &records);
        let h = |n: u8| InfoHash::from_bytes([n; 20]);
        assert_eq!(c.newest(), &[h(4), h(2), h(5)]);
        assert_eq!(c.latest(), Some(h(3)));
        assert_eq!(c.len(), 5);
        assert_eq!(c.object(&h(4)), Some(ObjectId::from_bytes([4; 32])));
        assert_eq!(c.infohash_of(&ObjectId::from_bytes([1; 32])), Some(h(1)));
        assert_eq!(c.object(&h(9)), None);
    }

    #[test]
    fn an_empty_repository_has_no_probe() {
        let c = Catalog::new(None, &[]);
        assert!(c.is_empty() && c.latest().is_none() && c.newest().is_empty());
    }
}
