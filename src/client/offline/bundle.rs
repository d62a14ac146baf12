//! `dist bundle NAME[@REQ]... -o FILE` and reading one back (store-format.md §7). A bundle is a
//! ustar archive of, in this order:
//!
//! - `dist-bundle.json`: `{format: 1, created, packages: [{repository, name, version, blake3,
//!   size}]}` (what it was made for; informative, never trusted);
//! - per repository drawn from, `repos/<name>/index.json` and `index.json.minisig` (the signed
//!   manifest as synced) and `repos/<name>/index.db.zst` (the local copy's rows, as a snapshot of
//!   exactly the published schema: checked against the manifest's content digest);
//! - `objects/<blake3>.tar`: the objects of the packages and every dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::open;
use super::tar::{Reader, Writer};
use crate::client::config::{RepoName, Settings};
use crate::client::fetch::http::{self, Crew};
use crate::client::request::Request;
use crate::client::resolve::{self, Installed};
use crate::client::rollout::{Phasing, Policy};
use crate::client::sources::Sources;
use crate::client::{Layout, Reporter};
use crate::format::ids::ObjectId;
use crate::index::record::PackageRecord;
use crate::net::ServerUrl;
use crate::object;
use crate::store::fsx;

/// The format of `dist-bundle.json`.
const BUNDLE_FORMAT: u32 = 1;

/// One package a bundle holds.
#[derive(Debug, Clone, Serialize)]
pub struct BundledPackage {
    pub repository: String,
    pub name: String,
    pub version: String,
    pub blake3: String,
    pub size: u64,
}

/// What `dist bundle` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Bundled {
    pub path: PathBuf,
    pub bytes: u64,
    pub packages: Vec<BundledPackage>,
}

#[derive(Serialize)]
struct Header<'a> {
    format: u32,
    created: u64,
    packages: &'a [BundledPackage],
}

/// Resolves `requests` (with every dependency, as on a machine with nothing installed) and
/// writes the bundle to `out` atomically. Objects come from the object store, else over HTTP
/// from the repository's servers (verified either way).
pub fn write(
    layout: &Layout,
    settings: &Settings,
    requests: &[Request],
    out: &Path,
    report: &dyn Reporter,
) -> Result<Bundled> {
    let sources = Sources::open(layout, settings)?;
    // A bundle carries the newest versions that are not yanked, whatever this machine's place
    // in their rollouts: it is made for other machines (which install from it ignoring them).
    let policy = Policy::new(Phasing::Ignored);
    for r in requests {
        r.resolve(&sources, &policy, None)?;
    }
    let limits = resolve::Limits::with_timeout(settings.resolve_timeout);
    let chosen =
        resolve::resolve(&sources, requests, &Installed::nothing(policy), &limits)?.packages;
    let packages: Vec<BundledPackage> = chosen
        .iter()
        .map(|c| BundledPackage {
            repository: sources.get(c.source).origin.repo.name.to_string(),
            name: c.record.name.to_string(),
            version: c.record.version.to_string(),
            blake3: c.record.blake3.to_hex(),
            size: c.record.size,
        })
        .collect();
    let mut file = fsx::AtomicFile::create(out)?;
    let mut w = Writer::new(BufWriter::new(file.file().try_clone()?));
    let header = Header {
        format: BUNDLE_FORMAT,
        created: crate::clock::now_unix(),
        packages: &packages,
    };
    w.bytes_file("dist-bundle.json", &serde_json::to_vec_pretty(&header)?)?;
    let staging = fsx::StagingDir::new_in(&layout.root, "bundle")?;
    let used: BTreeSet<usize> = chosen.iter().map(|c| c.source).collect();
    for s in used {
        let repo = &sources.get(s).origin.repo;
        let idx = layout.index_dir(repo);
        let dir = format!("repos/{}", repo.name);
        w.bytes_file(
            &format!("{dir}/index.json"),
            &std::fs::read(idx.manifest())?,
        )?;
        w.bytes_file(
            &format!("{dir}/index.json.minisig"),
            &std::fs::read(idx.sig())?,
        )?;
        let snap = published_schema(&idx.db(), staging.path())?;
        w.bytes_file(&format!("{dir}/index.db.zst"), &snap)?;
    }
    for c in &chosen {
        let origin = &sources.get(c.source).origin;
        let v = object_of(layout, settings, origin.repo.servers()?, &c.record, report)?;
        let name = format!("objects/{}.tar", c.record.blake3.to_hex());
        // The very file that was hashed, from its start.
        std::io::Seek::rewind(&mut v.file())?;
        w.file(&name, v.size(), &mut BufReader::new(v.file()))?;
    }
    let (mut buf, bytes) = w.finish()?;
    std::io::Write::flush(&mut buf)?;
    drop(buf);
    file.set_mode(0o644)?;
    file.commit()?;
    Ok(Bundled {
        path: out.to_path_buf(),
        bytes,
        packages,
    })
}

/// The object of `rec`, verified: the stored one, else downloaded.
fn object_of(
    layout: &Layout,
    settings: &Settings,
    servers: &[ServerUrl],
    rec: &PackageRecord,
    report: &dyn Reporter,
) -> Result<object::VerifiedObject> {
    let stored = layout.objects().path(&rec.blake3);
    if let Ok(v) = object::verify_file(&stored, &rec.blake3) {
        return Ok(v);
    }
    let crew = Crew::limited(settings.download_limit);
    let f = http::fetch_whole(layout, servers, rec, settings.fetch_timeout, &crew, report)?;
    Ok(object::verify_file(&f.path, &rec.blake3)?)
}

/// The rows of a local index copy as a snapshot of exactly the published schema (the local
/// search table dropped), zstd-compressed.
fn published_schema(db: &Path, dir: &Path) -> Result<Vec<u8>> {
    let copy = dir.join("snapshot.db");
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", db.display()))?;
    src.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
        .with_context(|| format!("cannot copy {}", db.display()))?;
    drop(src);
    let c = Connection::open(&copy)?;
    c.execute_batch("DROP TABLE IF EXISTS search; VACUUM;")?;
    drop(c);
    Ok(zstd::encode_all(open(&copy)?, 3)?)
}

/// The files of one repository in an unpacked bundle.
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    pub manifest: PathBuf,
    pub signature: PathBuf,
    pub snapshot: PathBuf,
}

/// An unpacked bundle: its repositories' files and its objects (not yet verified).
#[derive(Debug, Default)]
pub struct Entries {
    pub repos: BTreeMap<String, RepoFiles>,
    pub objects: Vec<(ObjectId, PathBuf)>,
}

/// Unpacks `file` into `dir`, accepting only the entries a bundle has (named by a repository
/// name or a digest, never a path), within the client's size limits.
pub fn unpack(file: &Path, dir: &Path, settings: &Settings) -> Result<Entries> {
    let mut r = Reader::new(BufReader::new(open(file)?));
    let mut out = Entries::default();
    let mut n = 0usize;
    while let Some((name, size)) = r.next().with_context(|| file.display().to_string())? {
        n += 1;
        let dest = dir.join(format!("{n}"));
        let limit = accept(&name, &dest, &mut out)
            .with_context(|| format!("{}: entry `{name}`", file.display()))?;
        let limit = limit.unwrap_or(settings.max_index_size);
        if size > limit {
            bail!(
                "{}: entry `{name}` is {size} bytes, over the {limit}-byte limit",
                file.display()
            );
        }
        let mut f = BufWriter::new(
            File::create(&dest).with_context(|| format!("cannot create {}", dest.display()))?,
        );
        r.data(size, &mut f)
            .with_context(|| file.display().to_string())?;
        std::io::Write::flush(&mut f)?;
    }
    let incomplete = out.repos.iter().find(|(_, f)| {
        [&f.manifest, &f.signature, &f.snapshot]
            .iter()
            .any(|p| p.as_os_str().is_empty())
    });
    if let Some((name, _)) = incomplete {
        bail!(
            "{}: repository `{name}` lacks its manifest, signature or snapshot",
            file.display()
        );
    }
    Ok(out)
}

/// Where entry `name` goes (recorded in `out` as `dest`), and its size limit (`None`: the
/// index limit). Unknown names are refused.
fn accept(name: &str, dest: &Path, out: &mut Entries) -> Result<Option<u64>> {
    if name == "dist-bundle.json" {
        return Ok(Some(1 << 20));
    }
    if let Some(rest) = name.strip_prefix("objects/") {
        let hex = rest.strip_suffix(".tar").context("not an object name")?;
        let id = ObjectId::parse(hex)?;
        out.objects.push((id, dest.to_path_buf()));
        return Ok(Some(u64::MAX));
    }
    let rest = name
        .strip_prefix("repos/")
        .context("not an entry a bundle has")?;
    let (repo, file) = rest.split_once('/').context("not an entry a bundle has")?;
    let repo = RepoName::parse(repo)?.to_string();
    let files = out.repos.entry(repo).or_default();
    let (slot, limit) = match file {
        "index.json" => (&mut files.manifest, Some(4 << 20)),
        "index.json.minisig" => (&mut files.signature, Some(64 << 10)),
        "index.db.zst" => (&mut files.snapshot, None),
        _ => bail!("not an entry a bundle has"),
    };
    if !slot.as_os_str().is_empty() {
        bail!("a second copy");
    }
    *slot = dest.to_path_buf();
    Ok(limit)
}
