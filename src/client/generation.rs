//! What a generation records (`generations/<N>/generation.json`, store-format.md §6): its number,
//! when it was made, and each installed package with its store path, whether it was requested,
//! and what it depended on when it was installed. `profile.rs` reads and writes them; the merged
//! trees (`trees.rs`) and configuration files (`conffiles.rs`) read the entries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::format::ids::{InfoHash, ObjectId, PackageId, PackageName};

/// One installed package in a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub name: PackageName,
    pub version: semver::Version,
    pub blake3: ObjectId,
    pub infohash: InfoHash,
    /// Absolute store path.
    pub store_path: PathBuf,
    /// Asked for by name (`install NAME`), as opposed to pulled in as a dependency: what
    /// `autoremove` keeps. Generations written before dependencies existed hold only requested
    /// packages.
    #[serde(default = "requested_before")]
    pub requested: bool,
    /// Bytes of its object (0 in generations written before it was recorded).
    #[serde(default)]
    pub size: u64,
    /// The names it depends on, as its index row said when it was installed (`None` in
    /// generations written before they were recorded): the installed dependency graph, and
    /// the order of scripts in a transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends: Option<std::collections::BTreeSet<PackageName>>,
}

fn requested_before() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    pub number: u64,
    pub created: u64,
    /// By name.
    pub packages: BTreeMap<PackageName, Installed>,
}

impl Installed {
    /// The entry a generation holds for `rec` unpacked at `store_path`.
    pub fn from_record(
        rec: &crate::index::record::PackageRecord,
        store_path: PathBuf,
    ) -> Installed {
        Installed {
            name: rec.name.clone(),
            version: rec.version.clone(),
            blake3: rec.blake3,
            infohash: rec.infohash,
            store_path,
            requested: true,
            size: rec.size,
            depends: Some(rec.relations.depends.keys().cloned().collect()),
        }
    }

    /// `name@version`, as messages name it.
    pub fn id(&self) -> PackageId {
        PackageId::new(self.name.clone(), self.version.clone())
    }
}

impl Generation {
    pub fn labels(&self) -> Vec<String> {
        self.packages.values().map(|p| p.id().to_string()).collect()
    }
}
