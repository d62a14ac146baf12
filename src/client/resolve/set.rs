//! The solver's versions and version sets. A version is a *rank*: its place among its package's
//! versions in the index, lowest first. A set of ranks is kept as half-open intervals `[a, b)`
//! within `[0, ∞)`, so that neighbouring ranks merge into one interval: PubGrub makes a
//! singleton of every version it decides or rules out, and `Ranges::singleton` (`[v, v]`)
//! never merges with `[v+1, v+1]`, since `Ranges` cannot know that nothing lies between. An
//! `app` whose 4,000 versions are ruled out one after another is then one interval, where
//! SemVer intervals kept one segment per version in every derived incompatibility: memory and
//! explanations grew with the square of the versions (issue 25, finding 6: 3 GiB for 4,000).

use std::fmt;
use std::ops::Bound;

use pubgrub::{Ranges, VersionSet};

/// A version as the solver sees it: its place among its package's versions, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rank(pub u32);

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The one version of the nodes that are not packages (the request, what is installed, what
/// is held).
pub const ROOT: Rank = Rank(0);

/// A set of ranks of one package, as half-open intervals within `[0, ∞)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set(Ranges<Rank>);

impl Set {
    /// The ranks `lo..hi`.
    pub fn between(lo: u32, hi: u32) -> Set {
        Set(Ranges::between(Rank(lo), Rank(hi)))
    }

    /// The ranks of the set below `n` (those that stand for a version), as runs `[lo, hi)`.
    pub fn runs(&self, n: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (lo, hi) in self.0.iter() {
            let lo = match lo {
                Bound::Included(r) => r.0,
                Bound::Excluded(r) => r.0.saturating_add(1),
                Bound::Unbounded => 0,
            };
            let hi = match hi {
                Bound::Included(r) => r.0.saturating_add(1),
                Bound::Excluded(r) => r.0,
                Bound::Unbounded => n,
            }
            .min(n);
            if lo < hi {
                out.push((lo, hi));
            }
        }
        out
    }
}

impl fmt::Display for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl VersionSet for Set {
    type V = Rank;

    fn empty() -> Set {
        Set(Ranges::empty())
    }

    fn full() -> Set {
        Set(Ranges::higher_than(Rank(0)))
    }

    fn singleton(v: Rank) -> Set {
        Set::between(v.0, v.0.saturating_add(1))
    }

    fn complement(&self) -> Set {
        Set(self.0.complement().intersection(&Set::full().0))
    }

    fn intersection(&self, other: &Set) -> Set {
        Set(self.0.intersection(&other.0))
    }

    fn contains(&self, v: &Rank) -> bool {
        self.0.contains(v)
    }

    fn union(&self, other: &Set) -> Set {
        Set(self.0.union(&other.0))
    }

    fn is_disjoint(&self, other: &Set) -> bool {
        self.0.is_disjoint(&other.0)
    }

    fn subset_of(&self, other: &Set) -> bool {
        self.0.subset_of(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_ranks_merge_into_one_interval() {
        let mut s = Set::empty();
        for r in 0..1000 {
            s = s.union(&Set::singleton(Rank(r)));
        }
        assert_eq!(s, Set::between(0, 1000));
        assert_eq!(s.runs(1000), [(0, 1000)]);
        let rest = s.complement();
        assert_eq!(rest.runs(1000), []);
        assert!(!rest.contains(&Rank(999)) && rest.contains(&Rank(1000)));
        assert_eq!(Set::full().complement(), Set::empty());
        assert_eq!(
            Set::singleton(Rank(3)).complement().runs(5),
            [(0, 3), (4, 5)]
        );
    }
}
