//! Why a package is installed (`dist why`): every chain of dependencies from a package asked
//! for by name down to it, over the installed set's recorded `depends` (the graph `autoremove`
//! keeps packages by).

use std::collections::{BTreeMap, BTreeSet};

use crate::client::generation::Installed;
use crate::format::ids::PackageName;

/// At most this many chains are listed (a wide graph can have many more).
pub const MAX_PATHS: usize = 64;

/// The chains from each requested package to `target` (a requested `target` is a chain of
/// one), shortest first, then by name; at most [`MAX_PATHS`].
pub fn paths(
    installed: &BTreeMap<PackageName, Installed>,
    target: &PackageName,
) -> Vec<Vec<PackageName>> {
    let deps = |p: &PackageName| -> Vec<PackageName> {
        installed
            .get(p)
            .and_then(|i| i.depends.as_ref())
            .map(|d| {
                d.iter()
                    .filter(|n| installed.contains_key(*n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    // Only packages from which `target` can be reached are walked.
    let mut reaches = BTreeSet::from([target.clone()]);
    loop {
        let more: Vec<PackageName> = installed
            .keys()
            .filter(|n| !reaches.contains(*n) && deps(n).iter().any(|d| reaches.contains(d)))
            .cloned()
            .collect();
        if more.is_empty() {
            break;
        }
        reaches.extend(more);
    }
    let mut out = Vec::new();
    for (name, p) in installed {
        if p.requested && reaches.contains(name) {
            walk(&mut vec![name.clone()], target, &reaches, &deps, &mut out);
        }
    }
    out.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    out.truncate(MAX_PATHS);
    out
}

fn walk(
    path: &mut Vec<PackageName>,
    target: &PackageName,
    reaches: &BTreeSet<PackageName>,
    deps: &dyn Fn(&PackageName) -> Vec<PackageName>,
    out: &mut Vec<Vec<PackageName>>,
) {
    // Far more than is listed: the shortest ones are kept after sorting.
    if out.len() >= MAX_PATHS * 16 {
        return;
    }
    let last = path.last().expect("a path is never empty").clone();
    if &last == target {
        out.push(path.clone());
        return;
    }
    for d in deps(&last) {
        if reaches.contains(&d) && !path.contains(&d) {
            path.push(d);
            walk(path, target, reaches, deps, out);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, requested: bool, depends: &[&str]) -> (PackageName, Installed) {
        let n = PackageName::parse(name).unwrap();
        let i = Installed {
            name: n.clone(),
            version: semver::Version::new(1, 0, 0),
            blake3: crate::format::ids::ObjectId::parse(&"a".repeat(64)).unwrap(),
            infohash: crate::format::ids::InfoHash::parse(&"b".repeat(40)).unwrap(),
            store_path: std::path::PathBuf::from("/s"),
            requested,
            size: 0,
            depends: Some(
                depends
                    .iter()
                    .map(|d| PackageName::parse(d).unwrap())
                    .collect(),
            ),
        };
        (n, i)
    }

    fn names(p: &[Vec<PackageName>]) -> Vec<String> {
        p.iter()
            .map(|c| c.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(">"))
            .collect()
    }

    #[test]
    fn every_chain_from_a_requested_package_shortest_first() {
        let set: BTreeMap<_, _> = [
            pkg("app", true, &["libx", "tool"]),
            pkg("tool", false, &["libx"]),
            pkg("libx", false, &["libc"]),
            pkg("libc", false, &[]),
            pkg("other", true, &[]),
        ]
        .into_iter()
        .collect();
        let libc = PackageName::parse("libc").unwrap();
        assert_eq!(
            names(&paths(&set, &libc)),
            ["app>libx>libc", "app>tool>libx>libc"]
        );
        let app = PackageName::parse("app").unwrap();
        assert_eq!(names(&paths(&set, &app)), ["app"]);
        let other = PackageName::parse("other").unwrap();
        assert_eq!(names(&paths(&set, &other)), ["other"]);
    }
}
