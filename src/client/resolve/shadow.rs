//! Naming both repositories when a name's owner cannot satisfy a requirement (issue 25,
//! dependency confusion): every version of a name comes from one repository
//! (`Sources::owner`), so a failure that a lower repository's versions would have avoided says
//! so, and how to ask for them explicitly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use semver::Version;

use super::provider::Provider;
use super::ResolveError;
use crate::client::sources::Sources;
use crate::format::ids::PackageName;

/// An installed version its name's owner does not have (it was asked for as `REPO/NAME`) keeps
/// coming from the repository that has it, so it can stay installed.
pub(super) fn keep_installed_where_found(
    sources: &Sources,
    installed: &BTreeMap<PackageName, Version>,
    only: &mut HashMap<PackageName, usize>,
) -> Result<(), ResolveError> {
    let index = |e: anyhow::Error| ResolveError::Index(format!("{e:#}"));
    for (name, version) in installed {
        if only.contains_key(name) {
            continue;
        }
        if let Some(source) = sources.keeping(name, version).map_err(index)? {
            only.insert(name.clone(), source);
        }
    }
    Ok(())
}

impl Provider<'_> {
    /// One line per package an explanation involves whose versions came from its owner while
    /// other repositories also have it.
    pub(super) fn shadowed_notes(&self, involved: &BTreeSet<PackageName>) -> String {
        let mut out = String::new();
        for name in involved {
            if self.only.contains_key(name) {
                continue;
            }
            let Ok(Some(owner)) = self.sources.owner(name) else {
                continue;
            };
            let others = self.sources.shadowed(name, owner);
            if others.is_empty() {
                continue;
            }
            let from = self.sources.get(owner).origin.repo.name.as_str();
            out.push_str(&format!(
                "\n{name} comes only from repository `{from}` (it has {name}); {} also {} \
                 {name}, not taken: ask for `{}/{name}` to take it from there",
                others
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if others.len() == 1 { "has" } else { "have" },
                others[0]
            ));
        }
        out
    }
}
