//! The dependency graph of what is installed, as each generation records it (the synced index
//! only for packages of generations written before that): what `uninstall` refuses and
//! `autoremove` removes are walks over it.

use std::collections::{BTreeMap, BTreeSet};

use crate::client::generation::Installed;
use crate::client::sources::Sources;
use crate::format::ids::PackageName;

/// What the synced indexes say each package of `unrecorded` depends on (the installed packages
/// among its `depends`), for generations written before dependencies were recorded: read from
/// the index's row of the installed version with the installed bytes. A package no index has
/// that way is left out: nobody can tell what it needs.
pub fn index_graph(
    sources: &Sources,
    set: &BTreeMap<PackageName, Installed>,
    unrecorded: &BTreeSet<PackageName>,
) -> anyhow::Result<BTreeMap<PackageName, BTreeSet<PackageName>>> {
    let mut out = BTreeMap::new();
    for name in unrecorded {
        let Some(p) = set.get(name) else { continue };
        let row = sources
            .versions(name, None)?
            .into_iter()
            .find(|c| c.record.version == p.version && c.record.blake3 == p.blake3);
        if let Some(c) = row {
            let deps = c.record.relations.depends.into_keys();
            out.insert(name.clone(), deps.filter(|d| set.contains_key(d)).collect());
        }
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
