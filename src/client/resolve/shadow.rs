//! Naming both repositories when a name's owner cannot satisfy a requirement (issue 25,
//! dependency confusion): every version of a name comes from one repository
//! (`Sources::owner`), so a failure that a lower repository's versions would have avoided says
//! so, and how to ask for them explicitly.

use std::collections::BTreeSet;

use super::provider::Provider;
use crate::format::ids::PackageName;

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
