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
    let full = {
        let mut x = Version::new(maj, min.unwrap_or(0), pat.unwrap_or(0));
        x.pre = c.pre.clone();
        x
    };
    // The first version after the part the comparator names: `1` → 2.0.0, `1.2` → 1.3.0.
    let next_named = || successor(maj, min, pat);
    let below = |hi: Option<Version>| hi.map_or_else(Ranges::full, Ranges::strictly_lower_than);
    let from = |lo: Option<Version>| lo.map_or_else(Ranges::empty, Ranges::higher_than);
    let between = |lo: Version, hi: Option<Version>| match hi {
        Some(hi) => Ranges::between(lo, hi),
        None => Ranges::higher_than(lo),
    };
    match c.op {
        Op::Exact | Op::Wildcard => match (min, pat) {
            (Some(_), Some(_)) => Ranges::singleton(full),
            _ => between(full, next_named()),
        },
        Op::Greater => match (min, pat) {
            (Some(_), Some(_)) => Ranges::strictly_higher_than(full),
            _ => from(next_named()),
        },
        Op::GreaterEq => from(Some(full)),
        Op::Less => below(Some(full)),
        Op::LessEq => match (min, pat) {
            (Some(_), Some(_)) => Ranges::lower_than(full),
            _ => below(next_named()),
        },
        Op::Tilde => between(full, successor(maj, min, None)),
        Op::Caret => match (maj, min, pat) {
            (0, None, _) => between(full, successor(0, None, None)),
            (0, Some(0), p) => between(full, successor(0, Some(0), p)),
            (0, Some(m), _) => between(full, successor(0, Some(m), None)),
            (_, _, _) => between(full, successor(maj, None, None)),
        },
        // `semver` may add operators; admit everything and let choosing check `matches`.
        _ => Ranges::full(),
    }
}

/// The first release version after every version that starts with the named parts (`1` →
/// 2.0.0, `1.2` → 1.3.0, `1.2.3` → 1.2.4), carrying into the part before when a part is at
/// `u64::MAX` (`1.18446744073709551615` → 2.0.0); `None` when there is none (issue 25: `maj +
/// 1` wrapped to 0 in release builds and turned `>18446744073709551615` into "anything").
fn successor(maj: u64, min: Option<u64>, pat: Option<u64>) -> Option<Version> {
    let next_major = || maj.checked_add(1).map(|a| Version::new(a, 0, 0));
    let next_minor = |m: u64| match m.checked_add(1) {
        Some(b) => Some(Version::new(maj, b, 0)),
        None => next_major(),
    };
    match (min, pat) {
        (None, _) => next_major(),
        (Some(m), None) => next_minor(m),
        (Some(m), Some(p)) => match p.checked_add(1) {
            Some(c) => Some(Version::new(maj, m, c)),
            None => next_minor(m),
        },
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

    #[test]
    fn version_bounds_at_u64_max_do_not_overflow_issue_25() {
        let m = u64::MAX;
        let versions: Vec<Version> = [
            (0, 0, 1),
            (0, 0, m),
            (0, 1, 0),
            (0, m, 0),
            (0, m, m),
            (1, 0, 0),
            (1, m, 0),
            (1, m, m),
            (2, 0, 0),
            (m, 0, 0),
            (m, 0, m),
            (m, m, 0),
            (m, m, m),
        ]
        .iter()
        .map(|&(a, b, c)| Version::new(a, b, c))
        .collect();
        let reqs = [
            format!(">{m}"),
            format!("^{m}"),
            format!("~{m}"),
            format!("={m}"),
            format!("<={m}"),
            format!(">={m}"),
            format!("{m}.*"),
            format!(">1.{m}"),
            format!("~1.{m}"),
            format!("^0.{m}"),
            format!("^0.0.{m}"),
            format!("<=1.{m}"),
            format!(">{m}.{m}"),
            format!(">={m}.{m}.{m}"),
            format!("^{m}.{m}.{m}"),
            format!("~{m}.{m}.{m}"),
            format!("<{m}.{m}.{m}"),
        ];
        for req in &reqs {
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
