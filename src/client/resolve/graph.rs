//! The dependency graph of what is installed, from the index's records of the installed
//! versions: what `uninstall` refuses and `autoremove` removes are walks over it.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use crate::client::generation::Installed;
use crate::client::sources::Sources;
use crate::format::ids::PackageName;

/// Which installed packages each installed package depends on, from the indexes' record of its
/// installed version (a package no index has any more depends on nothing known).
pub fn installed_graph(
    sources: &Sources,
    installed: &BTreeMap<PackageName, Version>,
) -> anyhow::Result<BTreeMap<PackageName, BTreeSet<PackageName>>> {
    let mut out = BTreeMap::new();
    for (name, v) in installed {
        let deps: BTreeSet<PackageName> = sources
            .versions(name, None)?
            .into_iter()
            .find(|c| c.record.version == *v)
            .map(|c| {
                c.record
                    .relations
                    .depends
                    .into_keys()
                    .filter(|d| installed.contains_key(d))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name.clone(), deps);
    }
    Ok(out)
}

/// Which packages of `set` each depends on, as recorded when it was installed (a package from a
/// generation older than that records nothing: no edges).
pub fn recorded_graph(
    set: &BTreeMap<PackageName, Installed>,
) -> BTreeMap<PackageName, BTreeSet<PackageName>> {
    set.iter()
        .map(|(n, p)| {
            let deps = p.depends.iter().flatten();
            // Only what is in the set: a dependency that left with `--replace` is no edge.
            (
                n.clone(),
                deps.filter(|d| set.contains_key(*d)).cloned().collect(),
            )
        })
        .collect()
}

/// Everything `from` needs, transitively, itself included.
pub fn closure<'a>(
    graph: &'a BTreeMap<PackageName, BTreeSet<PackageName>>,
    from: impl IntoIterator<Item = &'a PackageName>,
) -> BTreeSet<PackageName> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&PackageName> = from.into_iter().collect();
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(graph.get(n).into_iter().flatten());
        }
    }
    seen
}

/// `names` ordered so that each package comes before what it depends on (uninstall order).
pub fn dependents_first(
    graph: &BTreeMap<PackageName, BTreeSet<PackageName>>,
    names: &BTreeSet<PackageName>,
) -> Vec<PackageName> {
    fn visit(
        n: &PackageName,
        graph: &BTreeMap<PackageName, BTreeSet<PackageName>>,
        names: &BTreeSet<PackageName>,
        seen: &mut BTreeSet<PackageName>,
        out: &mut Vec<PackageName>,
    ) {
        if !names.contains(n) || !seen.insert(n.clone()) {
            return;
        }
        for d in graph.get(n).into_iter().flatten() {
            visit(d, graph, names, seen, out);
        }
        out.push(n.clone());
    }
    let (mut seen, mut out) = (BTreeSet::new(), Vec::new());
    for n in names {
        visit(n, graph, names, &mut seen, &mut out);
    }
    out.reverse();
    out
}
