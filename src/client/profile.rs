//! The store and the profile: per-version store paths (read-only once there), numbered
//! generations, and `ROOT/current`, the one symlink that switches by rename.
//!
//! Layout (store-format.md §6): `store/<blake3[..32]>-<name>-<version>/` holds an unpacked
//! package; `generations/<N>/` holds `generation.json`, one symlink `<name>` → its store path per
//! installed package, `bin/` with links to (or launchers of) the packages' `assets/bin`
//! executables and the other merged trees (`lib/`, `etc/`, `share/…`, `trees.rs`);
//! `current` → `generations/<N>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::generation::{Generation, Installed};
use super::{trees, Layout};
use crate::format::ids::{ObjectId, PackageName};
use crate::object::{self, VerifiedObject};
use crate::store::fsx;

impl Layout {
    /// `ROOT/holds.json`: the names of held packages (`dist hold`), sorted.
    pub fn holds_path(&self) -> PathBuf {
        self.root.join("holds.json")
    }

    /// The held packages: `upgrade` and resolution keep their installed versions.
    pub fn holds(&self) -> Result<std::collections::BTreeSet<PackageName>> {
        let path = self.holds_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is not a list of package names", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Holds (or releases) `name`; a package must be installed to be held.
    pub fn set_hold(&self, name: &PackageName, hold: bool) -> Result<bool> {
        let mut holds = self.holds()?;
        if hold {
            let installed = self
                .current()?
                .is_some_and(|g| g.packages.contains_key(name));
            if !installed {
                bail!("`{name}` is not installed: only an installed package can be held");
            }
        }
        let changed = if hold {
            holds.insert(name.clone())
        } else {
            holds.remove(name)
        };
        if changed {
            fsx::write_atomic(
                &self.holds_path(),
                &serde_json::to_vec_pretty(&holds)?,
                0o644,
            )?;
        }
        Ok(changed)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn store_path(
        &self,
        blake3: &ObjectId,
        name: &PackageName,
        version: &semver::Version,
    ) -> PathBuf {
        self.store_dir()
            .join(format!("{}-{name}-{version}", blake3.prefix(32)))
    }
    pub fn generations_dir(&self) -> PathBuf {
        self.root.join("generations")
    }
    pub fn generation_dir(&self, n: u64) -> PathBuf {
        self.generations_dir().join(n.to_string())
    }
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// Every complete generation, oldest first (a directory without `generation.json` is a
    /// leftover of an interrupted switch and is ignored).
    pub fn generations(&self) -> Result<Vec<Generation>> {
        let dir = self.generations_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let meta = e.path().join("generation.json");
            if let Ok(bytes) = std::fs::read(&meta) {
                let g: Generation = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is corrupt", meta.display()))?;
                if g.number == n {
                    out.push(g);
                }
            }
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    /// The number `current` points at, if any.
    pub fn current_number(&self) -> Result<Option<u64>> {
        match std::fs::read_link(self.current_link()) {
            Ok(t) => Ok(t
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read {}", self.current_link().display()))
            }
        }
    }

    pub fn current(&self) -> Result<Option<Generation>> {
        let Some(n) = self.current_number()? else {
            return Ok(None);
        };
        Ok(self.generations()?.into_iter().find(|g| g.number == n))
    }

    /// Builds generation `max + 1` holding `packages`, whose trees `merged` says (what
    /// [`trees::merge`] made of the same packages), complete on disk before it gets its name
    /// (staged, then renamed). Does not switch `current`.
    pub fn create_generation(
        &self,
        packages: BTreeMap<PackageName, Installed>,
        merged: &trees::Merged,
    ) -> Result<Generation> {
        let next = self.last_generation_number()?.unwrap_or(0) + 1;
        let dest = self.generation_dir(next);
        if dest.exists() {
            // A leftover without generation.json (interrupted before its rename completed).
            fsx::remove_tree(&dest)?;
        }
        let staging = fsx::StagingDir::new_in(&self.generations_dir(), "gen")?;
        let g = Generation {
            number: next,
            created: crate::clock::now_unix(),
            packages,
        };
        std::fs::create_dir(staging.path().join("bin"))?;
        let mut launchers = BTreeMap::new();
        if merged.has_lib() {
            for owner in merged.program_owners() {
                if let Some(p) = g.packages.get(owner) {
                    launchers.insert(owner, self.launchers(p)?);
                }
            }
        }
        merged.write(staging.path(), &g.packages, &launchers)?;
        for p in g.packages.values() {
            std::os::unix::fs::symlink(&p.store_path, staging.path().join(&p.name))
                .with_context(|| format!("cannot link {} into the generation", p.name))?;
        }
        fsx::write_atomic(
            &staging.path().join("generation.json"),
            &serde_json::to_vec_pretty(&g)?,
            0o644,
        )?;
        staging.persist(&dest)?;
        Ok(g)
    }

    /// The highest number of a complete generation (one with `generation.json`), from the
    /// directory names alone: a switch need not parse every generation to number the next.
    fn last_generation_number(&self) -> Result<Option<u64>> {
        let dir = self.generations_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        let mut last = None;
        for e in rd {
            let e = e?;
            let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if last < Some(n) && e.path().join("generation.json").exists() {
                last = Some(n);
            }
        }
        Ok(last)
    }

    /// Points `current` at generation `n` with one atomic rename.
    pub fn switch_to(&self, n: u64) -> Result<()> {
        let target = Path::new("generations").join(n.to_string());
        fsx::replace_symlink(&target, &self.current_link())
    }
}

/// The commands a set of unpacked packages puts on `current/bin` (`assets/bin/*`), each with the
/// package that provides it; two packages providing the same one is an error naming both. The
/// installer asks before any install script runs, so a conflict changes nothing.
pub fn executables<'a>(
    packages: impl IntoIterator<Item = &'a Installed>,
) -> Result<BTreeMap<String, PackageName>> {
    let mut exes: BTreeMap<String, PackageName> = BTreeMap::new();
    for p in packages {
        let Ok(rd) = std::fs::read_dir(p.store_path.join("assets/bin")) else {
            continue;
        };
        for e in rd.flatten() {
            let exe = e.file_name().to_string_lossy().into_owned();
            if let Some(other) = exes.insert(exe.clone(), p.name.clone()) {
                if other != p.name {
                    bail!("both {other} and {} provide bin/{exe}", p.name);
                }
            }
        }
    }
    Ok(exes)
}

impl Layout {
    /// Unpacks a verified object into a staging dir beside `dest`, records the tree (what
    /// `verify` compares against), makes it read-only and renames it into place. A store path
    /// that exists already is complete (it only ever appears by rename) and is kept.
    pub fn unpack_to_store(&self, verified: &VerifiedObject, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Ok(());
        }
        self.unpack_into(verified, dest, false)
    }

    /// Unpacks a verified object again over a store path that exists (`repair`,
    /// `install --reinstall`): the fresh tree replaces the old one by rename.
    pub fn reunpack_to_store(&self, verified: &VerifiedObject, dest: &Path) -> Result<()> {
        self.unpack_into(verified, dest, true)
    }

    fn unpack_into(&self, verified: &VerifiedObject, dest: &Path, replace: bool) -> Result<()> {
        let staging = fsx::StagingDir::new_in(&self.store_dir(), "unpack")?;
        object::unpack(verified, staging.path())
            .with_context(|| format!("cannot unpack into {}", dest.display()))?;
        let record = crate::store::tree::tree_record(staging.path())?;
        // The record lands before the tree gets its name.
        fsx::write_atomic(&record_path(dest), &serde_json::to_vec(&record)?, 0o444)?;
        make_read_only(staging.path())?;
        if replace {
            staging.persist_replacing(dest)
        } else {
            staging.persist(dest)
        }
    }
}

/// `store/<…>.record.json`: the tree as unpacked (paths, modes, digests, link targets).
pub fn record_path(store_path: &Path) -> PathBuf {
    let mut p = store_path.as_os_str().to_owned();
    p.push(".record.json");
    p.into()
}

fn make_read_only(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(root)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(root)? {
            make_read_only(&e?.path())?;
        }
    }
    let mode = meta.permissions().mode() & !0o222;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}
