//! What is installed, file by file: `dist files`, `dist owner`, `dist repair`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dist::client::generation::{Generation, Installed};
use dist::client::install;
use dist::client::plan::{self, Options};
use dist::client::profile::record_path;
use dist::client::sources::Sources;
use dist::client::{maintain, suggest, trees, Layout};
use dist::format::ids::PackageName;
use dist::format::package::EntryKind;
use dist::index::record::PackageRecord;
use dist::store::tree::{TreeEntry, TreeKind};

use super::settings::config;
use super::usage::not_found;
use super::{json, printable, reporter, Global};
use crate::cli::ClientFlags;

/// The installed package `name`, or an error naming what is installed (and what is close).
fn installed(layout: &Layout, name: &str) -> Result<Installed> {
    let Some(current) = layout.current()? else {
        return Err(not_found(format!("`{name}` is not installed (nothing is)")));
    };
    if let Some(p) = current.packages.get(name) {
        return Ok(p.clone());
    }
    let similar = suggest::similar(name, current.packages.keys().map(PackageName::as_str));
    Err(not_found(format!(
        "`{name}` is not installed{} (installed: {})",
        suggest::hint(&similar),
        current.labels().join(", ")
    )))
}

/// The tree recorded when `p` was unpacked.
fn recorded(p: &Installed) -> Result<Vec<TreeEntry>> {
    let path = record_path(&p.store_path);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", path.display()))
}

/// `dist files NAME`: every path the package's store path holds, absolute, then where the
/// paths of its merged trees appear in the profile (`ROOT/current/...`).
pub fn files(g: &Global, name: &str, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let p = match installed(&layout, name) {
        Ok(p) => p,
        Err(e) => match newest_in_index(g, &layout, name) {
            Some(r) => return not_installed(g, &layout, &r, json_out),
            None => return Err(e),
        },
    };
    let current = layout.current_link();
    let entries: Vec<json::FileEntry> = recorded(&p)?
        .iter()
        .map(|e| json::FileEntry {
            path: p.store_path.join(&e.path).display().to_string(),
            kind: match e.kind {
                TreeKind::Dir => "dir",
                TreeKind::File { .. } => "file",
                TreeKind::Symlink { .. } => "symlink",
                TreeKind::Other { .. } => "other",
            },
            profile: e
                .path
                .strip_prefix("assets/")
                .filter(|rel| trees::in_tree(rel))
                .map(|rel| current.join(rel).display().to_string()),
        })
        .collect();
    if json_out {
        json::print(&json::Files {
            package: (&p).into(),
            store_path: &p.store_path,
            files: entries,
            installed: true,
        })?;
    } else {
        for e in &entries {
            println!("{}", printable(&e.path));
        }
        for e in entries.iter().filter_map(|e| e.profile.as_ref()) {
            println!("{}", printable(e));
        }
    }
    Ok(0)
}

/// The newest version of `name` the synced index has (not yanked, when another is), if any.
fn newest_in_index(g: &Global, layout: &Layout, name: &str) -> Option<PackageRecord> {
    let n = PackageName::parse(name).ok()?;
    let settings = config(g, &ClientFlags::default()).ok()?;
    let sources = Sources::open(layout, &settings).ok()?;
    let versions: Vec<PackageRecord> = sources
        .versions(&n, None)
        .ok()?
        .into_iter()
        .map(|c| c.record)
        .collect();
    let newest = versions.iter().rev().find(|r| r.yanked.is_none());
    newest.or(versions.last()).cloned()
}

/// `dist files NAME` for a package that is not installed: every path of its object when the
/// local store has it (read and checked as unpacking would), else the commands the index lists.
fn not_installed(g: &Global, layout: &Layout, r: &PackageRecord, json_out: bool) -> Result<i32> {
    let objects = layout.objects();
    let current = layout.current_link();
    let profile = |rel: &str| {
        rel.strip_prefix("assets/")
            .filter(|t| trees::in_tree(t))
            .map(|t| current.join(t).display().to_string())
    };
    let (files, source) = if objects.contains(&r.blake3) {
        let obj = dist::object::verify_file(&objects.path(&r.blake3), &r.blake3)?;
        let list = dist::object::list(&obj)?;
        let files = list
            .into_iter()
            .map(|(path, kind)| json::FileEntry {
                profile: profile(&path),
                kind: match kind {
                    EntryKind::Dir => "dir",
                    EntryKind::File { .. } => "file",
                    EntryKind::Symlink { .. } => "symlink",
                },
                path,
            })
            .collect();
        (files, "object")
    } else {
        let cmds = r.executables.iter().flatten();
        let files = cmds
            .map(|c| {
                let path = format!("assets/bin/{c}");
                json::FileEntry {
                    profile: profile(&path),
                    kind: "command",
                    path,
                }
            })
            .collect();
        (files, "index")
    };
    if json_out {
        json::print(&json::FilesNotInstalled {
            package: r.into(),
            store_path: None,
            files,
            installed: false,
            source,
        })?;
        return Ok(0);
    }
    let how = match source {
        "object" => "its files, read from its object in the local store",
        _ => "the index lists only its commands; `dist install` unpacks it, then `dist files` lists every file",
    };
    if !g.quiet {
        eprintln!("{} is not installed: {how}", r.id());
    }
    for f in &files {
        match &f.profile {
            Some(p) => println!("{}  -> {}", printable(&f.path), printable(p)),
            None => println!("{}", printable(&f.path)),
        }
    }
    Ok(0)
}

/// `dist owner PATH`: the installed package whose store path holds PATH (a profile link is
/// followed to its target first), or that provides PATH in a generation's merged trees (a
/// shared directory's entry), or whose launcher or configuration directory holds it.
pub fn owner(g: &Global, path: &Path, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let abs = owner_path(&layout, path)?;
    // What the kernel makes of the path when it exists; else `..` taken lexically (issue 25:
    // `STORE/../../../../etc/passwd` began with a store path, component by component).
    let real = std::fs::canonicalize(&abs).unwrap_or_else(|_| lexical(&abs));
    let abs = lexical(&abs);
    let current = layout.current()?.context("nothing is installed")?;
    let in_store = current
        .packages
        .values()
        .find(|p| real.starts_with(canon(&p.store_path)) || abs.starts_with(&p.store_path))
        .cloned();
    let found = match in_store {
        Some(p) => Some(p),
        None => in_profile(&layout, current, &abs, &real)?,
    };
    let Some(p) = found else {
        return Err(not_found(format!(
            "no installed package owns {}",
            abs.display()
        )));
    };
    if json_out {
        json::print(&json::Owner {
            path: real.display().to_string(),
            package: (&p).into(),
            store_path: &p.store_path,
        })?;
    } else {
        println!("{}: {}", p.id(), real.display());
    }
    Ok(0)
}

/// PATH as `owner` reads it: a bare name (no `/`) is a command of the profile's `bin/` (else a
/// file of that name here); anything else is a path, which must exist.
fn owner_path(layout: &Layout, path: &Path) -> Result<PathBuf> {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let bare =
        path.components().count() == 1 && !path.as_os_str().as_encoded_bytes().contains(&b'/');
    if bare {
        let command = layout.current_link().join("bin").join(path);
        if exists(&command) {
            return Ok(command);
        }
        if !exists(path) {
            return Err(not_found(format!(
                "no command `{}` in {} (and no file of that name here)",
                path.display(),
                layout.current_link().join("bin").display()
            )));
        }
    }
    let abs =
        std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))?;
    if !exists(&abs) {
        return Err(not_found(format!("{} does not exist", abs.display())));
    }
    Ok(abs)
}

/// `path` without `.` components, each `..` taking out the component before it (none above
/// `/`), without asking the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The package that provides `abs` (resolved: `real`) in a generation's merged trees, or whose
/// `ROOT/etc/<name>/` holds it. A directory that several packages provide is no one's.
fn in_profile(
    layout: &Layout,
    current: Generation,
    abs: &Path,
    real: &Path,
) -> Result<Option<Installed>> {
    let first = |dir: &Path| {
        let rest = real.strip_prefix(canon(dir)).ok()?;
        Some(rest.components().next()?.as_os_str().to_owned())
    };
    if let Some(name) = first(&layout.root.join("etc")) {
        return Ok(current
            .packages
            .get(name.to_string_lossy().as_ref())
            .cloned());
    }
    // A launcher: `ROOT/launchers/<store path name>/<program>`.
    if let Some(name) = first(&layout.launchers_dir()) {
        let store_path = layout.store_dir().join(name);
        let p = current
            .packages
            .values()
            .find(|p| p.store_path == store_path);
        return Ok(p.cloned());
    }
    let (generation, rel) = if let Ok(rest) = real.strip_prefix(canon(&layout.generations_dir())) {
        let mut parts = rest.components();
        let n = parts
            .next()
            .and_then(|c| c.as_os_str().to_str()?.parse::<u64>().ok());
        let Some(g) = n.and_then(|n| {
            layout
                .generations()
                .ok()?
                .into_iter()
                .find(|g| g.number == n)
        }) else {
            return Ok(None);
        };
        (g, parts.as_path().to_path_buf())
    } else if let Ok(rest) = abs.strip_prefix(layout.current_link()) {
        (current, rest.to_path_buf())
    } else {
        return Ok(None);
    };
    if !rel.to_str().is_some_and(trees::in_tree) {
        return Ok(None);
    }
    let having: Vec<Installed> = generation
        .packages
        .into_values()
        .filter(|p| std::fs::symlink_metadata(p.store_path.join("assets").join(&rel)).is_ok())
        .collect();
    if having.len() > 1 {
        let names: Vec<&str> = having.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "{} is a directory that {} share: no one package owns it",
            abs.display(),
            names.join(", ")
        );
    }
    Ok(having.into_iter().next())
}

/// `dist repair [NAME...]`: the installed packages (all, or the named) whose store paths differ
/// from their install records are unpacked again, from the verified object (fetched again when
/// it is not cached), over their store paths; nothing else changes.
pub fn repair(g: &Global, f: &ClientFlags, names: &[String], json_out: bool) -> Result<i32> {
    let settings = config(g, f)?;
    let layout = Layout::new(&g.root);
    let current = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let mut wanted = BTreeSet::new();
    for n in names {
        wanted.insert(installed(&layout, n)?.name);
    }
    // Only what is installed now (or named) is hashed, not every generation's store paths.
    let mut damaged: Vec<&Installed> = Vec::new();
    for p in current
        .values()
        .filter(|p| wanted.is_empty() || wanted.contains(&p.name))
    {
        if !maintain::verify_one(p)?.ok {
            damaged.push(p);
        }
    }
    let mut generation = None;
    if !damaged.is_empty() {
        let sources = Sources::open(&layout, &settings)?;
        let options = Options {
            reinstall: damaged.iter().map(|p| p.name.clone()).collect(),
            ..Default::default()
        };
        let plan = plan::plan_with(&layout, &settings, &sources, &[], options)?;
        for p in &damaged {
            if !plan.items.iter().any(|i| i.record.blake3 == p.blake3) {
                bail!(
                    "cannot repair {}: the index no longer has it (nothing was changed)",
                    p.id()
                );
            }
        }
        let reporter = reporter::Cli::new(g.quiet || json_out);
        generation = install::install(&layout, &settings, plan, &reporter)?.generation;
    }
    if json_out {
        json::print(&json::Repaired {
            repaired: damaged.iter().map(|p| (*p).into()).collect(),
            generation,
        })?;
    } else if damaged.is_empty() {
        println!("nothing to repair: every store path matches its install record");
    } else {
        for p in &damaged {
            println!("repaired {}", p.id());
        }
    }
    Ok(0)
}
