//! Installing without a server (store-format.md §7): a local object file (`dist install
//! ./hello-1.0.0.tar`), accepted only when the synced, verified index names its BLAKE3; and a
//! bundle (`dist bundle`, `dist install --from-bundle`), one file holding the signed index of
//! each repository it draws from and the objects of a set of packages with their dependencies,
//! verified on the machine that installs it with the key that machine trusts.
//!
//! Nothing here trusts the file: the index in a bundle goes through the same checks as a sync
//! (signature with the trusted key, format, serial not older, content digest, every row), and an
//! object enters the object store only once it hashes to a BLAKE3 a verified index names.

mod bundle;
mod tar;

pub use bundle::{write as write_bundle, Bundled};

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::{Repository, Settings};
use super::index_copy::IndexDir;
use super::request::{Request, Spec};
use super::sources::Sources;
use super::sync;
use super::Layout;
use crate::client::config::RepoName;
use crate::format::ids::ObjectId;
use crate::index::record::PackageRecord;
use crate::index::wire::{self, SignedManifest};
use crate::object;
use crate::store::fsx;

/// Whether an install argument names a local file rather than a package: it ends in `.tar`, or
/// it has a `/` and starts like a path (`./`, `../`, `/`, `~`) or names an existing file
/// (`REPO/NAME` has a `/` too).
pub fn is_local_path(arg: &str) -> bool {
    arg.ends_with(".tar")
        || (arg.contains('/')
            && (arg.starts_with('.')
                || arg.starts_with('/')
                || arg.starts_with('~')
                || Path::new(arg).is_file()))
}

/// The synced records whose object has this BLAKE3, with the repository each comes from.
fn records_by_digest(sources: &Sources, id: &ObjectId) -> Result<Vec<(RepoName, PackageRecord)>> {
    let mut out = Vec::new();
    for s in sources.iter() {
        for r in s.snap.by_blake3(&id.to_hex())? {
            out.push((s.origin.repo.name.clone(), r));
        }
    }
    Ok(out)
}

/// Copies `src` into `downloads/`, verifies the copy against `id` and stores it in the object
/// store (a copy: the user's file may change later; the store's must not).
fn store_copy(layout: &Layout, src: &Path, id: &ObjectId) -> Result<PathBuf> {
    let dir = layout.root.join("downloads");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!("{}local-{}", fsx::TMP, std::process::id()));
    std::fs::copy(src, &tmp)
        .with_context(|| format!("cannot copy {} to {}", src.display(), tmp.display()))?;
    let stored = object::verify_file(&tmp, id)
        .map_err(anyhow::Error::from)
        .and_then(|v| layout.objects().insert_verified(&v));
    let _ = std::fs::remove_file(&tmp);
    stored
}

/// `dist install PATH.tar`: the request for the package whose object `path` is (exactly that
/// version, from the repository whose verified index names it), the object stored unless
/// `dry_run`. Refused, naming the digest, when no synced index names it.
pub fn local_object(
    layout: &Layout,
    sources: &Sources,
    path: &Path,
    dry_run: bool,
) -> Result<Request> {
    let hex = object::hash_file(path)?;
    let id = ObjectId::parse(&hex)?;
    let found = records_by_digest(sources, &id)?;
    let Some((repo, rec)) = found.into_iter().next() else {
        bail!(
            "{}: its BLAKE3 {hex} is in no synced index ({}): only an object the signed index names is installed (run `dist sync`, or check the file)",
            path.display(),
            sources.describe()
        );
    };
    if !dry_run {
        store_copy(layout, path, &id)?;
    }
    Ok(Request {
        name: rec.name.clone(),
        spec: Spec::Exact(rec.version.clone()),
        repo: Some(repo),
    })
}

/// What [`import_bundle`] did.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Repositories whose local index the bundle's replaced (it was newer).
    pub indexes: Vec<String>,
    /// Objects stored (each named by a verified index).
    pub objects: usize,
}

/// `dist install --from-bundle FILE`: brings each repository's local index to the bundle's
/// (when the bundle's is verified with the trusted key and not older), then stores every
/// object of the bundle that a verified index names. The caller then installs as ever: the
/// objects are cached.
pub fn import_bundle(layout: &Layout, settings: &Settings, file: &Path) -> Result<Imported> {
    let staging = fsx::StagingDir::new_in(&layout.root, "bundle")?;
    let entries = bundle::unpack(file, staging.path(), settings)?;
    // Every object hashes to its name before anything changes (kept open: what was hashed is
    // what gets stored).
    let mut objects = Vec::new();
    for (id, path) in &entries.objects {
        objects.push(
            object::verify_file(path, id)
                .with_context(|| format!("{}: a damaged or swapped object", file.display()))?,
        );
    }
    let mut out = Imported::default();
    for (name, files) in &entries.repos {
        let repo = settings
            .repositories
            .iter()
            .find(|r| r.name.as_str() == name)
            .with_context(|| {
                format!(
                    "{}: the bundle holds repository `{name}`, which this client does not configure",
                    file.display()
                )
            })?;
        if import_index(layout, settings, repo, files)? {
            out.indexes.push(name.clone());
        }
    }
    let sources = Sources::open(layout, settings)?;
    let mut seen = BTreeSet::new();
    for v in &objects {
        if records_by_digest(&sources, v.id())?.is_empty() {
            bail!(
                "{}: the bundle holds an object ({}) that no verified index names",
                file.display(),
                v.id().to_hex()
            );
        }
        if seen.insert(*v.id()) {
            layout.objects().insert_verified(v)?;
            out.objects += 1;
        }
    }
    Ok(out)
}

/// Verifies one repository's index from a bundle and installs it as the local copy unless the
/// local copy (verified with the same trusted key) is at least as new. Whether it replaced it.
fn import_index(
    layout: &Layout,
    settings: &Settings,
    repo: &Repository,
    files: &bundle::RepoFiles,
) -> Result<bool> {
    let idx: IndexDir = layout.index_dir(repo);
    let trust = idx.trust(repo)?;
    let body = std::fs::read(&files.manifest)?;
    let sig = std::fs::read_to_string(&files.signature)
        .context("the bundle's index signature is not text")?;
    let signed =
        crate::index::sign::verify(trust.key().base64(), &body, &sig).with_context(|| {
            format!(
                "the bundle's index of repository `{}` does not verify with the trusted key {}",
                repo.name,
                trust.key()
            )
        })?;
    let what = format!("the bundle's index of repository `{}`", repo.name);
    let m = wire::accept_signed(&signed, &body, &what)?;
    let fetched = SignedManifest {
        manifest: m,
        body,
        sig,
        etag: None,
        repository: signed.repository,
    };
    let prev = idx.state()?;
    let bound = idx.check_copy(&trust).is_ok();
    let held = prev.as_ref().filter(|_| bound);
    let held_copy = held.and_then(|p| Some((p.serial, p.content?)));
    fetched.check_continues(
        "the bundle",
        &trust.name(),
        held_copy,
        trust.repository(),
        &idx.trust_path(),
    )?;
    if held.is_some_and(|p| p.serial >= fetched.manifest.serial) {
        return Ok(false);
    }
    std::fs::create_dir_all(&idx.dir)
        .with_context(|| format!("cannot create {}", idx.dir.display()))?;
    let zst = std::fs::read(&files.snapshot)?;
    let m = &fetched.manifest;
    sync::install_snapshot(&idx, &zst, settings.max_index_size, m, &what)?;
    sync::record_copy(&idx, &fetched, trust.key())?;
    let followed = crate::index::keys::Followed {
        key: trust.key().clone(),
        rotations: Vec::new(),
        revoked: trust.revoked().clone(),
    };
    trust.record(&idx.trust_path(), &followed, fetched.repository)?;
    Ok(true)
}

/// Opens a file for reading, naming it on error.
fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}
