//! Keeping a client root healthy: removing leftovers of interrupted commands, `gc` (old
//! generations, then unreferenced store paths and objects) and `verify` (store paths against
//! what was recorded at install).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::generation::Installed;
use super::profile::record_path;
use super::{daemon, Layout};
use crate::format::ids::{InfoHash, ObjectId, PackageId, PackageName};
use crate::store::fsx;
use crate::store::tree::{self, TreeEntry};

/// Removes what an interrupted (even SIGKILLed) command can leave under a root, client or
/// repository (the policy is `fsx`'s: `.tmp-*` and `.trash-*` names), and generation dirs without
/// `generation.json`. Called under the exclusive lock, so nothing else is writing them.
pub fn clean_leftovers(layout: &Layout) -> Result<Vec<PathBuf>> {
    let mut dirs = vec![
        layout.root.clone(),
        layout.store_dir(),
        layout.generations_dir(),
        layout.launchers_dir(),
        layout.root.join("index"),
        layout.root.join("downloads"),
        // A repository root: its snapshots.
        layout.root.join("published"),
        // A purge removes a package's state directory by rename-aside.
        layout.root.join("var"),
    ];
    dirs.extend(layout.objects().leftover_dirs());
    // Configuration files are written by temporary + rename too, at any depth of etc/NAME/.
    dirs.extend(config_dirs(&layout.root.join("etc")));
    let mut removed = fsx::remove_leftovers(&dirs)?;
    for e in std::fs::read_dir(layout.generations_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let half = e.file_name().to_string_lossy().parse::<u64>().is_ok()
            && !e.path().join("generation.json").exists();
        if half {
            fsx::remove_any(&e.path())?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

/// `ROOT/etc` and every directory below it (where configuration files are written).
fn config_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(config_dirs(&e.path()));
        }
    }
    out
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub generations_removed: Vec<u64>,
    pub store_paths_removed: Vec<String>,
    pub objects_removed: Vec<ObjectId>,
    pub bytes_freed: u64,
}

fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| du(&e.path()))
            .sum::<u64>()
            + meta.len()
    } else {
        meta.len()
    }
}

/// What a `gc` is asked to do.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcOptions<'a> {
    /// Keep the newest `keep` generations (the current one always); `None`: all.
    pub keep: Option<usize>,
    /// Compute the report and delete nothing.
    pub dry_run: bool,
    /// With `dry_run`: the set a removal (autoremove) would have made current first, counted
    /// as a generation newer than all.
    pub pending: Option<&'a BTreeMap<PackageName, Installed>>,
    /// Objects that are live whatever the generations say: a root can be a repository too (the
    /// default root is the same for both roles), and what its index publishes is the
    /// repository's data, never garbage. The caller reads them (the client never opens a
    /// publisher's index).
    pub published: Option<&'a BTreeSet<ObjectId>>,
}

/// Deletes generations beyond the newest `keep` (never the current one), then every store path,
/// cached object and download no remaining generation references (stopping their seeding
/// first). Generations go first: an interrupted gc leaves at worst unreferenced store paths,
/// which the next gc collects, never a generation whose store path is gone. With `dry_run`,
/// the same report and nothing deleted.
pub fn gc(layout: &Layout, o: GcOptions<'_>) -> Result<GcReport> {
    let mut report = GcReport::default();
    let mut gens = layout.generations()?;
    let mut current = layout.current_number()?;
    if let (Some(pending), true) = (o.pending, o.dry_run) {
        let number = gens.last().map_or(1, |g| g.number + 1);
        gens.push(super::generation::Generation {
            number,
            created: 0,
            packages: pending.clone(),
        });
        current = Some(number);
    }
    let n = gens.len();
    let drop = n.saturating_sub(o.keep.unwrap_or(n));
    let mut remaining = Vec::with_capacity(n);
    for (i, g) in gens.into_iter().enumerate() {
        if i >= drop || Some(g.number) == current {
            remaining.push(g);
            continue;
        }
        let dir = layout.generation_dir(g.number);
        report.bytes_freed += du(&dir);
        if !o.dry_run {
            fsx::remove_tree(&dir)?;
        }
        report.generations_removed.push(g.number);
    }
    let live_paths: BTreeSet<PathBuf> = remaining
        .iter()
        .flat_map(|g| g.packages.values().map(|p| p.store_path.clone()))
        .collect();
    let mut live_objects: BTreeSet<ObjectId> = remaining
        .iter()
        .flat_map(|g| g.packages.values().map(|p| p.blake3))
        .collect();
    live_objects.extend(o.published.into_iter().flatten().copied());
    let live_hashes: BTreeSet<InfoHash> = remaining
        .iter()
        .flat_map(|g| g.packages.values().map(|p| p.infohash))
        .collect();

    collect_store_paths(layout, &live_paths, o.dry_run, &mut report)?;
    if !o.dry_run {
        collect_launchers(layout, &live_paths)?;
    }
    collect_downloads(layout, &live_hashes, o.dry_run, &mut report)?;
    for (id, path) in layout.objects().list() {
        if live_objects.contains(&id) {
            continue;
        }
        report.bytes_freed += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if !o.dry_run {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        report.objects_removed.push(id);
    }
    Ok(report)
}

/// Removes every store path (and its record) no remaining generation references, and every
/// record whose store path is gone.
fn collect_store_paths(
    layout: &Layout,
    live_paths: &BTreeSet<PathBuf>,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    for e in std::fs::read_dir(layout.store_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(store_name) = name.strip_suffix(".record.json") {
            // A record alone: a gc killed between removing a store path and its record, or an
            // unpack killed between writing the record and renaming the tree into place.
            let store_path = layout.store_dir().join(store_name);
            if !store_path.exists() && !live_paths.contains(&store_path) {
                report.bytes_freed += du(&path);
                if dry_run {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    // Already gone with its store path, earlier in this same pass.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    r => r.with_context(|| format!("cannot remove {}", path.display()))?,
                }
            }
            continue;
        }
        if name.starts_with('.') || live_paths.contains(&path) {
            continue;
        }
        report.bytes_freed += du(&path);
        if !dry_run {
            fsx::remove_tree(&path)?;
            let _ = std::fs::remove_file(record_path(&path));
        }
        report.store_paths_removed.push(name);
    }
    Ok(())
}

/// Removes the launchers (`ROOT/launchers/<store path name>/`) of every store path no remaining
/// generation references.
fn collect_launchers(layout: &Layout, live_paths: &BTreeSet<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(layout.launchers_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name();
        if fsx::is_leftover(&name.to_string_lossy()) {
            continue;
        }
        if !live_paths.contains(&layout.store_dir().join(&name)) {
            fsx::remove_tree(&e.path())?;
        }
    }
    Ok(())
}

/// Removes every download no remaining generation references, stopping its seeding first.
fn collect_downloads(
    layout: &Layout,
    live_hashes: &BTreeSet<InfoHash>,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    // Only directories named by an infohash are downloads; anything else is not ours to judge.
    let dead: Vec<InfoHash> = std::fs::read_dir(layout.root.join("downloads"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| InfoHash::parse(&e.file_name().to_string_lossy()).ok())
        .filter(|h| !live_hashes.contains(h))
        .collect();
    if dry_run {
        report.bytes_freed += dead
            .iter()
            .map(|h| du(&layout.download_dir(h)))
            .sum::<u64>();
        return Ok(());
    }
    if !dead.is_empty() {
        if let Some((_, rpc)) = daemon::running(layout) {
            let known: BTreeSet<InfoHash> = rpc.all()?.into_iter().map(|t| t.hash_string).collect();
            let stop: Vec<InfoHash> = dead
                .iter()
                .filter(|h| known.contains(*h))
                .copied()
                .collect();
            rpc.remove(&stop, false)?;
        }
        for h in &dead {
            super::seeder::withdraw(layout, h)?;
            let dir = layout.download_dir(h);
            report.bytes_freed += du(&dir);
            fsx::remove_tree(&dir)?;
        }
    }
    Ok(())
}

impl VerifyEntry {
    /// `name@version`, as messages name it.
    pub fn id(&self) -> PackageId {
        PackageId::new(self.name.clone(), self.version.clone())
    }
}

#[derive(Debug)]
pub struct VerifyEntry {
    pub name: PackageName,
    pub version: semver::Version,
    pub store_path: PathBuf,
    pub ok: bool,
    pub differences: Vec<String>,
    /// Its configuration files that differ from what it ships (packages of the current
    /// generation only): the user's to change, so not a difference and not in `ok`.
    pub config_changed: Vec<String>,
}

/// Re-hashes every store path any generation references against its install-time record, and
/// lists the changed configuration files of the current generation's packages. State
/// (`ROOT/var/`) is never looked at.
pub fn verify(layout: &Layout) -> Result<Vec<VerifyEntry>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let current = layout.current()?.map(|g| g.packages).unwrap_or_default();
    for g in layout.generations()? {
        for p in g.packages.values() {
            if seen.insert(p.store_path.clone()) {
                let mut entry = verify_one(p)?;
                if current
                    .get(&p.name)
                    .is_some_and(|c| c.store_path == p.store_path)
                    && p.store_path.is_dir()
                {
                    entry.config_changed = super::conffiles::changed(layout, p)?;
                }
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// Re-hashes one installed package's store path against its install-time record.
pub fn verify_one(p: &Installed) -> Result<VerifyEntry> {
    let differences = match std::fs::read(record_path(&p.store_path)) {
        Err(e) => vec![format!("no install record ({e})")],
        Ok(bytes) => {
            let recorded: Vec<TreeEntry> = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is corrupt", record_path(&p.store_path).display()))?;
            if !p.store_path.is_dir() {
                vec!["the store path is missing".to_string()]
            } else {
                let actual = tree::tree_record(&p.store_path)?;
                tree::diff_tree(&recorded, &actual)
            }
        }
    };
    Ok(VerifyEntry {
        name: p.name.clone(),
        version: p.version.clone(),
        store_path: p.store_path.clone(),
        ok: differences.is_empty(),
        differences,
        config_changed: Vec::new(),
    })
}
