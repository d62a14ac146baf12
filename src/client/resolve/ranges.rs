//! SemVer requirements as PubGrub version sets: each comparator as an interval, a requirement
//! as their intersection.

use pubgrub::Ranges;
use semver::{Comparator, Op, Version, VersionReq};

/// The versions a SemVer requirement admits, as intervals (its comparators intersected). The
/// pre-release rule (a pre-release matches only when asked for) is applied per package when
/// versions are chosen, not here.
pub fn req_ranges(req: &VersionReq) -> Ranges<Version> {
    req.comparators.iter().fold(Ranges::full(), |acc, c| {
        acc.intersection(&comparator_ranges(c))
    })
}

fn comparator_ranges(c: &Comparator) -> Ranges<Version> {
    let (maj, min, pat) = (c.major, c.minor, c.patch);
    let v = |a: u64, b: u64, d: u64| Version::new(a, b, d);
    let full = {
        let mut x = v(maj, min.unwrap_or(0), pat.unwrap_or(0));
        x.pre = c.pre.clone();
        x
    };
    // The first version after the part the comparator names: `1` → 2.0.0, `1.2` → 1.3.0.
    let next_named = || match (min, pat) {
        (None, _) => v(maj + 1, 0, 0),
        (Some(m), None) => v(maj, m + 1, 0),
        (Some(m), Some(p)) => v(maj, m, p + 1),
    };
    let below = |hi: Version| Ranges::strictly_lower_than(hi);
    let from = |lo: Version| Ranges::higher_than(lo);
    let between = |lo: Version, hi: Version| Ranges::between(lo, hi);
    match c.op {
        Op::Exact | Op::Wildcard => match (min, pat) {
            (Some(_), Some(_)) => Ranges::singleton(full),
            _ => between(full, next_named()),
        },
        Op::Greater => match (min, pat) {
            (Some(_), Some(_)) => Ranges::strictly_higher_than(full),
            _ => from(next_named()),
        },
        Op::GreaterEq => from(full),
        Op::Less => below(full),
        Op::LessEq => match (min, pat) {
            (Some(_), Some(_)) => Ranges::lower_than(full),
            _ => below(next_named()),
        },
        Op::Tilde => match min {
            None => between(full, v(maj + 1, 0, 0)),
            Some(m) => between(full, v(maj, m + 1, 0)),
        },
        Op::Caret => match (maj, min, pat) {
            (0, None, _) => between(full, v(1, 0, 0)),
            (0, Some(0), None) => between(full, v(0, 1, 0)),
            (0, Some(0), Some(p)) => between(full, v(0, 0, p + 1)),
            (0, Some(m), _) => between(full, v(0, m + 1, 0)),
            (_, _, _) => between(full, v(maj + 1, 0, 0)),
        },
        // `semver` may add operators; admit everything and let choosing check `matches`.
        _ => Ranges::full(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_ranges_agree_with_semver_on_release_versions() {
        let versions: Vec<Version> = [
            "0.0.1", "0.0.2", "0.1.0", "0.1.5", "0.2.0", "1.0.0", "1.2.0", "1.2.3", "1.2.4",
            "1.3.0", "1.9.9", "2.0.0", "2.5.0", "3.0.0", "3.1.0",
        ]
        .iter()
        .map(|s| Version::parse(s).unwrap())
        .collect();
        for req in [
            "^1.2",
            "^1.2.3",
            "^0.1",
            "^0.0.1",
            "^0",
            "^1",
            "~1.2",
            "~1.2.3",
            "~1",
            ">=2, <3",
            ">1.2",
            ">1.2.3",
            ">1",
            "<1.2",
            "<=1.2",
            "<=1.2.3",
            "<=1",
            "=1.2",
            "=1",
            "=1.2.3",
            "1.*",
            "1.2.*",
            "*",
            ">=1.2.3, <1.3",
        ] {
            let r = VersionReq::parse(req).unwrap();
            let ranges = req_ranges(&r);
            for v in &versions {
                assert_eq!(
                    ranges.contains(v),
                    r.matches(v),
                    "{req} and {v}: ranges {ranges}"
                );
            }
        }
    }
}
