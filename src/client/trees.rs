//! The profile's merged trees: which directories of every installed package's `assets/` a
//! generation exposes, and how (store-format.md §6). The well-known trees ([`TREES`]) of all
//! packages are merged the way Nix's `buildEnv` merges a profile: a directory that several
//! packages provide becomes a real directory of the generation, and anything below it that
//! one package alone provides becomes one link into that package (a whole subdirectory, when
//! only it has one). Two packages providing the same non-directory path is a [`Clash`], found
//! here, before any script runs.
//!
//! `bin/` is flat: each of its entries is one link (or launcher, `launcher.rs`) whoever else
//! has a `bin/`. A configuration file under `etc/` (`config:` in the manifest) is linked to the
//! user's copy in `ROOT/etc/<name>/`, not to the shipped one, so the directories on its way are
//! always merged entry by entry.
//!
//! Nothing here writes; [`Merged::write`] is called by `Layout::create_generation` on a staging
//! directory, with the launchers of the programs (`launcher.rs`) when the trees have a `lib/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::generation::Installed;
use crate::format::ids::PackageName;

/// The trees a generation merges, relative to a package's `assets/` and to the generation.
pub const TREES: [&str; 11] = [
    "bin",
    "lib",
    "etc",
    "share/man",
    "share/info",
    "share/doc",
    "share/applications",
    "share/icons",
    "share/bash-completion/completions",
    "share/zsh/site-functions",
    "share/fish/vendor_completions.d",
];

/// Whether a generation-relative path (`/`-separated) is one of [`TREES`] or below one.
pub fn in_tree(rel: &str) -> bool {
    TREES
        .iter()
        .any(|t| rel == *t || rel.strip_prefix(t).is_some_and(|r| r.starts_with('/')))
}

/// Two packages provide the same path of the profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("both {first} and {second} provide {path}")]
pub struct Clash {
    /// Generation-relative, such as `lib/libjq.so.1`.
    pub path: String,
    pub first: PackageName,
    pub second: PackageName,
}

/// Where one entry of the generation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `<store path>/assets/<path>` of its owner (a file, a symlink or a whole directory).
    Store { dir: bool },
    /// The user's copy of a configuration file, `ROOT/etc/<owner>/<path>`.
    Config,
}

/// One entry of a generation below its trees: the link at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Generation-relative, `/`-separated; also the path below the owner's `assets/`.
    pub path: String,
    /// Its package, as an index into [`Merged::owners`] (no name is copied per entry).
    pub owner: usize,
    pub source: Source,
}

/// The merged trees of one set of packages: the real directories, parents first, every entry
/// in path order, and the packages that provide any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub dirs: Vec<String>,
    pub entries: Vec<Entry>,
    pub owners: Vec<PackageName>,
}

/// Why a merge failed: a clash (typed, so that `--replace` can act on it) or the store could
/// not be read.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Clash(#[from] Clash),
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// One package as a provider of trees.
struct Provider<'a> {
    pkg: &'a Installed,
    assets: PathBuf,
    /// Bit `i`: it has `TREES[i]` as a directory.
    trees: u16,
    /// Its configuration files below `etc/` (assets-relative).
    config: BTreeSet<String>,
    /// Every directory on the way to one of them: merged entry by entry, never linked whole.
    pinned: BTreeSet<String>,
}

/// The directories directly in `dir` (none when it cannot be read as one).
fn subdirs(dir: &Path) -> Result<BTreeSet<String>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out = BTreeSet::new();
    for e in listing {
        let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(e.file_name().into_string().ok());
        }
    }
    Ok(out)
}

/// Merges the trees of `packages` (module docs).
pub fn merge<'a>(packages: impl IntoIterator<Item = &'a Installed>) -> Result<Merged, MergeError> {
    let mut providers = Vec::new();
    let mut names = BTreeSet::new();
    for pkg in packages {
        names.insert(&pkg.name);
        if let Some(p) = provider(pkg)? {
            providers.push(p);
        }
    }
    let mut out = Merged {
        owners: providers.iter().map(|p| p.pkg.name.clone()).collect(),
        ..Merged::default()
    };
    let all: Vec<usize> = (0..providers.len()).collect();
    for (t, tree) in TREES.iter().enumerate() {
        let having: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| providers[i].trees & (1 << t) != 0)
            .collect();
        let Some(&first) = having.first() else {
            continue;
        };
        // The generation's `<name>` link of a package named `lib`, `etc` or `share` would be
        // where this tree's directory goes (`bin` is a reserved name).
        let top = tree.split('/').next().expect("a first component");
        if let Some(named) = names.iter().find(|n| n.as_str() == top) {
            return Err(Clash {
                path: top.to_string(),
                first: (*named).clone(),
                second: providers[first].pkg.name.clone(),
            }
            .into());
        }
        merge_dir(tree, &providers, &having, &mut out)?;
    }
    Ok(out)
}

/// `pkg` as a provider, or `None` when it has none of the trees: one listing of `assets/` (most
/// packages have only `bin/`, or nothing), one of `assets/share/` if it has one, and a look at
/// the completions directories whose parents it has.
fn provider(pkg: &Installed) -> Result<Option<Provider<'_>>> {
    let assets = pkg.store_path.join("assets");
    let top = subdirs(&assets)?;
    let share = if top.contains("share") {
        subdirs(&assets.join("share"))?
    } else {
        BTreeSet::new()
    };
    let mut trees = 0u16;
    for (t, tree) in TREES.iter().enumerate() {
        let has = match tree.split('/').collect::<Vec<_>>()[..] {
            [one] => top.contains(one),
            [_, two] => share.contains(two),
            [_, two, _] => share.contains(two) && is_dir(&assets.join(tree)),
            _ => false,
        };
        trees |= u16::from(has) << t;
    }
    if trees == 0 {
        return Ok(None);
    }
    let mut config = BTreeSet::new();
    let mut pinned = BTreeSet::new();
    if top.contains("etc") {
        for c in super::conffiles::paths(&pkg.store_path)? {
            if c.starts_with("etc/") {
                let mut at = c.as_str();
                while let Some((dir, _)) = at.rsplit_once('/') {
                    pinned.insert(dir.to_string());
                    at = dir;
                }
                config.insert(c);
            }
        }
    }
    Ok(Some(Provider {
        pkg,
        assets,
        trees,
        config,
        pinned,
    }))
}

fn is_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Who provides one name of a directory: (provider, whether it is a directory there); one
/// provider, the common case, allocates nothing.
enum Who {
    One(usize, bool),
    Many(Vec<(usize, bool)>),
}

/// Merges the directory `rel` that each of `having` (indices into `providers`) provides, as
/// a directory, into `out`.
fn merge_dir(
    rel: &str,
    providers: &[Provider],
    having: &[usize],
    out: &mut Merged,
) -> Result<(), MergeError> {
    out.dirs.push(rel.to_string());
    let mut children: BTreeMap<String, Who> = BTreeMap::new();
    for &i in having {
        let dir = providers[i].assets.join(rel);
        let rd =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in rd {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let name = e.file_name().into_string().map_err(|n| {
                anyhow::anyhow!("{}: a name that is not UTF-8: {n:?}", dir.display())
            })?;
            match children.entry(name) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(Who::One(i, is_dir));
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let who = o.get_mut();
                    match who {
                        Who::One(j, d) => *who = Who::Many(vec![(*j, *d), (i, is_dir)]),
                        Who::Many(v) => v.push((i, is_dir)),
                    }
                }
            }
        }
    }
    let flat = rel == "bin";
    for (name, who) in children {
        let path = format!("{rel}/{name}");
        match who {
            Who::One(i, dir) => {
                let p = &providers[i];
                if dir && !flat && p.pinned.contains(&path) {
                    merge_dir(&path, providers, &[i], out)?;
                    continue;
                }
                let source = if p.config.contains(&path) {
                    Source::Config
                } else {
                    Source::Store { dir }
                };
                out.entries.push(Entry {
                    path,
                    owner: i,
                    source,
                });
            }
            Who::Many(v) if !flat && v.iter().all(|&(_, dir)| dir) => {
                let sub: Vec<usize> = v.iter().map(|&(i, _)| i).collect();
                merge_dir(&path, providers, &sub, out)?;
            }
            Who::Many(v) => {
                return Err(Clash {
                    path,
                    first: providers[v[0].0].pkg.name.clone(),
                    second: providers[v[1].0].pkg.name.clone(),
                }
                .into())
            }
        }
    }
    Ok(())
}

impl Merged {
    /// Whether the generation has a `lib/`: then its dynamically linked programs get launchers.
    pub fn has_lib(&self) -> bool {
        self.dirs.iter().any(|d| d == "lib")
    }

    /// The owners of the `bin/` entries that are programs (files of their own package), which
    /// may have launchers.
    pub fn program_owners(&self) -> BTreeSet<&PackageName> {
        self.entries
            .iter()
            .filter(|e| e.source == (Source::Store { dir: false }) && is_program(&e.path))
            .map(|e| &self.owners[e.owner])
            .collect()
    }

    /// Writes the trees into `staging`, the directory that becomes a generation by rename:
    /// directories, then per entry a relative link through the generation's `<owner>` link
    /// (`bin/jq` → `../jq/assets/bin/jq`), to the user's copy of a configuration file, or for a
    /// program that has one in `launchers` (`<owner>` → program names), to its launcher
    /// (`bin/jq` → `../../../launchers/<store path name>/jq`).
    pub fn write(
        &self,
        staging: &Path,
        packages: &BTreeMap<PackageName, Installed>,
        launchers: &BTreeMap<&PackageName, BTreeSet<String>>,
    ) -> Result<()> {
        for d in &self.dirs {
            let at = staging.join(d);
            std::fs::create_dir_all(&at)
                .with_context(|| format!("cannot create {}", at.display()))?;
        }
        let mut link = String::new();
        for e in &self.entries {
            let owner = &self.owners[e.owner];
            link.clear();
            for _ in 0..e.path.matches('/').count() {
                link.push_str("../");
            }
            let launched = match e.path.strip_prefix("bin/") {
                Some(exe) if e.source == (Source::Store { dir: false }) => launchers
                    .get(owner)
                    .filter(|names| names.contains(exe))
                    .map(|_| exe),
                _ => None,
            };
            match (launched, e.source) {
                (Some(exe), _) => {
                    let p = packages
                        .get(owner)
                        .with_context(|| format!("{owner} is not in the generation"))?;
                    let name = p.store_path.file_name().unwrap_or(owner.as_ref());
                    // The generation is ROOT/generations/N: ROOT is two more levels up.
                    let _ = write!(link, "../../launchers/{}/{exe}", name.to_string_lossy());
                }
                (None, Source::Store { .. }) => {
                    let _ = write!(link, "{owner}/assets/{}", e.path);
                }
                (None, Source::Config) => {
                    let _ = write!(link, "../../etc/{owner}/{}", e.path);
                }
            }
            std::os::unix::fs::symlink(&link, staging.join(&e.path))
                .with_context(|| format!("cannot link {} into the generation", e.path))?;
        }
        Ok(())
    }
}

/// An entry directly in `bin/`.
fn is_program(path: &str) -> bool {
    path.strip_prefix("bin/").is_some_and(|n| !n.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_and_paths_below_them() {
        assert!(in_tree("bin/jq") && in_tree("lib") && in_tree("share/man/man1/jq.1.gz"));
        assert!(in_tree("share/zsh/site-functions/_jq"));
        assert!(!in_tree("share/jq/x") && !in_tree("libexec/x") && !in_tree("binary"));
        assert!(!in_tree("share/zsh/other") && !in_tree("share"));
    }
}
