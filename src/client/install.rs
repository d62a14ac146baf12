//! Installing, uninstalling and rolling back: resolve requests against the synced index, plan
//! (what to fetch, what is cached, what switches), then fetch, verify, unpack, run scripts and
//! switch `current` with one rename. A failure before the switch leaves `current` as it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::config::{ClientConfig, Transport, AUTO_THRESHOLD};
use super::profile::{Generation, Installed};
use super::{daemon, fetch, Layout, Reporter};
use crate::format::ids::{ObjectId, PackageName};
use crate::object;
use crate::repo::index::{PackageRecord, Snapshot};
use crate::store::fsx;

/// `NAME`, `NAME@1.2.3` (exactly that version) or `NAME@<SemVer requirement>`.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub spec: Spec,
}

#[derive(Debug, Clone)]
pub enum Spec {
    Latest,
    Exact(semver::Version),
    Req(semver::VersionReq),
}

impl Request {
    pub fn parse(s: &str) -> Result<Request> {
        let (name, spec) = match s.split_once('@') {
            None => (s, Spec::Latest),
            Some((n, v)) => {
                let spec = match semver::Version::parse(v) {
                    Ok(v) => Spec::Exact(v),
                    Err(_) => Spec::Req(semver::VersionReq::parse(v).with_context(|| {
                        format!("`{s}`: `{v}` is neither a version nor a SemVer requirement")
                    })?),
                };
                (n, spec)
            }
        };
        if let Some(p) = crate::format::manifest::name_problem(name) {
            bail!("`{s}`: invalid package name: {p}");
        }
        Ok(Request {
            name: name.to_string(),
            spec,
        })
    }

    /// The version of the index this request selects.
    pub fn resolve<'a>(&self, snap: &'a Snapshot) -> Result<&'a PackageRecord> {
        let versions = snap.versions(&self.name);
        if versions.is_empty() {
            bail!(
                "no package `{}` in the index (serial {}); try `dist search`",
                self.name,
                snap.serial
            );
        }
        let pick = match &self.spec {
            Spec::Latest => versions.iter().rev().find(|r| r.version.pre.is_empty()),
            Spec::Exact(v) => versions
                .iter()
                .rev()
                .find(|r| r.version.cmp_precedence(v).is_eq()),
            Spec::Req(req) => versions.iter().rev().find(|r| req.matches(&r.version)),
        };
        let all: Vec<String> = versions.iter().map(|r| r.version.to_string()).collect();
        pick.copied().with_context(|| match &self.spec {
            Spec::Latest => format!(
                "`{}` has only pre-releases ({}); ask for one with NAME@VERSION",
                self.name,
                all.join(", ")
            ),
            Spec::Exact(v) => format!(
                "`{}` has no version {v} (available: {})",
                self.name,
                all.join(", ")
            ),
            Spec::Req(r) => format!(
                "no version of `{}` matches `{r}` (available: {})",
                self.name,
                all.join(", ")
            ),
        })
    }
}

/// What will happen to one package.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    pub name: PackageName,
    pub version: semver::Version,
    pub blake3: ObjectId,
    pub size: u64,
    /// `installed` (nothing to do), `store` (unpacked already), `cached` (object present), `fetch`.
    pub source: &'static str,
    pub transport: Option<Transport>,
    /// The version it replaces, if any.
    pub replaces: Option<semver::Version>,
}

pub fn plan(
    layout: &Layout,
    cfg: &ClientConfig,
    snap: &Snapshot,
    requests: &[Request],
) -> Result<Vec<(PlanItem, PackageRecord)>> {
    let current = layout.current()?;
    let mut out: Vec<(PlanItem, PackageRecord)> = Vec::new();
    for r in requests {
        let rec = r.resolve(snap)?.clone();
        if out.iter().any(|(p, _)| p.name == rec.name) {
            bail!("`{}` is requested twice", rec.name);
        }
        let installed = current.as_ref().and_then(|g| g.packages.get(&rec.name));
        let source = if installed.is_some_and(|i| i.blake3 == rec.blake3) {
            "installed"
        } else if layout
            .store_path(&rec.blake3, &rec.name, &rec.version)
            .exists()
        {
            "store"
        } else if layout.objects().contains(&rec.blake3) {
            "cached"
        } else {
            "fetch"
        };
        let transport = (source == "fetch").then(|| match cfg.transport.unwrap_or_default() {
            Transport::Auto if rec.size >= cfg.auto_threshold.unwrap_or(AUTO_THRESHOLD) => {
                Transport::Torrent
            }
            Transport::Auto => Transport::Http,
            t => t,
        });
        out.push((
            PlanItem {
                name: rec.name.clone(),
                version: rec.version.clone(),
                blake3: rec.blake3,
                size: rec.size,
                source,
                transport,
                replaces: installed
                    .filter(|i| i.blake3 != rec.blake3)
                    .map(|i| i.version.clone()),
            },
            rec,
        ));
    }
    Ok(out)
}

/// Per-package result of an install, as `install --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub name: PackageName,
    pub version: semver::Version,
    pub transport: Option<Transport>,
    pub bytes_from_peers: u64,
    pub bytes_from_webseed: u64,
    pub source: &'static str,
    pub store_path: String,
    pub phases_ms: BTreeMap<&'static str, u64>,
}

pub struct Outcome {
    pub reports: Vec<InstallReport>,
    pub generation: Option<u64>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Runs the plan: fetch, verify, unpack, scripts, then one switch.
pub fn install(
    layout: &Layout,
    cfg: &ClientConfig,
    items: Vec<(PlanItem, PackageRecord)>,
    report: &dyn Reporter,
) -> Result<Outcome> {
    let current = layout.current()?;
    let mut reports = Vec::new();
    let mut entering: Vec<Installed> = Vec::new();
    let timeout = Duration::from_secs(cfg.fetch_timeout.unwrap_or(600));
    for (item, rec) in &items {
        let label = format!("{}@{}", rec.name, rec.version);
        let mut phases = BTreeMap::new();
        let store_path = layout.store_path(&rec.blake3, &rec.name, &rec.version);
        let mut r = InstallReport {
            name: rec.name.clone(),
            version: rec.version.clone(),
            transport: item.transport,
            bytes_from_peers: 0,
            bytes_from_webseed: 0,
            source: item.source,
            store_path: store_path.display().to_string(),
            phases_ms: BTreeMap::new(),
        };
        if item.source == "installed" {
            reports.push(r);
            continue;
        }
        if item.source == "fetch" || item.source == "cached" {
            if item.source == "fetch" {
                let t = Instant::now();
                report.phase(&label, "fetch");
                let server = cfg.server_url()?;
                let fetched = match item.transport.expect("fetch has a transport") {
                    Transport::Http => fetch::http(layout, &server, rec, timeout, report)?,
                    _ => {
                        let rpc = daemon::ensure(layout, cfg)?;
                        fetch::torrent(layout, &rpc, &server, rec, timeout, report)?
                    }
                };
                r.bytes_from_peers = fetched.bytes_from_peers;
                r.bytes_from_webseed = fetched.bytes_from_webseed;
                phases.insert("fetch", ms(t.elapsed()));
                let t = Instant::now();
                report.phase(&label, "verify");
                let verified = object::verify_file(&fetched.path, &rec.blake3)
                    .with_context(|| format!("{label}: the downloaded object failed verification; nothing was installed"))?;
                phases.insert("verify", ms(t.elapsed()));
                store_object(layout, &verified, &rec.blake3)?;
                if item.transport == Some(Transport::Http) {
                    // Seed what we fetched, so the swarm grows with its users (best effort).
                    if let Err(e) = seed(layout, cfg, &server, rec) {
                        report.warn(&format!("{label}: installed, but cannot seed it: {e:#}"));
                    }
                }
            }
            let t = Instant::now();
            let verified = object::verify_file(&layout.objects().path(&rec.blake3), &rec.blake3)
                .with_context(|| format!("{label}: the cached object failed verification"))?;
            phases.entry("verify").or_insert(ms(t.elapsed()));
            let t = Instant::now();
            report.phase(&label, "unpack");
            unpack_to_store(layout, &verified, &store_path)?;
            phases.insert("unpack", ms(t.elapsed()));
        }
        r.phases_ms = phases;
        entering.push(Installed {
            name: rec.name.clone(),
            version: rec.version.clone(),
            blake3: rec.blake3,
            infohash: rec.infohash,
            store_path,
        });
        reports.push(r);
    }
    if entering.is_empty() {
        return Ok(Outcome {
            reports,
            generation: None,
        });
    }
    let mut packages = current
        .as_ref()
        .map(|g| g.packages.clone())
        .unwrap_or_default();
    let mut leaving = Vec::new();
    for e in &entering {
        if let Some(old) = packages.insert(e.name.clone(), e.clone()) {
            leaving.push(old);
        }
    }
    let t = Instant::now();
    let (gen, scripts) = switch(layout, packages, &leaving, &entering, report)?;
    let total_scripts: Duration = scripts.values().sum();
    let switch_ms = ms(t.elapsed().saturating_sub(total_scripts));
    for r in reports.iter_mut() {
        if let Some(d) = scripts.get(&r.name) {
            r.phases_ms.insert("scripts", ms(*d));
        }
        r.phases_ms.insert("switch", switch_ms);
    }
    Ok(Outcome {
        reports,
        generation: Some(gen.number),
    })
}

/// Runs install scripts of what enters (any failure: nothing switches), builds the new
/// generation, switches to it, then runs uninstall scripts of what leaves.
fn switch(
    layout: &Layout,
    packages: BTreeMap<PackageName, Installed>,
    leaving: &[Installed],
    entering: &[Installed],
    report: &dyn Reporter,
) -> Result<(Generation, BTreeMap<PackageName, Duration>)> {
    let mut times = BTreeMap::new();
    for e in entering {
        report.phase(&format!("{}@{}", e.name, e.version), "install script");
        let t = Instant::now();
        run_script(layout, e, "install")?;
        times.insert(e.name.clone(), t.elapsed());
    }
    let gen = layout.create_generation(packages)?;
    layout.switch_to(gen.number)?;
    for l in leaving {
        if let Err(e) = run_script(layout, l, "uninstall") {
            report.warn(&format!("{e:#}"));
        }
    }
    Ok((gen, times))
}

pub fn uninstall(layout: &Layout, name: &str, report: &dyn Reporter) -> Result<Generation> {
    let current = layout
        .current()?
        .with_context(|| format!("`{name}` is not installed (nothing is)"))?;
    let mut packages = current.packages.clone();
    let Some(old) = packages.remove(name) else {
        bail!(
            "`{name}` is not installed (installed: {})",
            current.labels().join(", ")
        );
    };
    run_script(layout, &old, "uninstall")?;
    let gen = layout.create_generation(packages)?;
    layout.switch_to(gen.number)?;
    let _ = report;
    Ok(gen)
}

/// Switches to generation `to` (default: the one before current), running the uninstall
/// script of what leaves and the install script of what enters.
pub fn rollback(layout: &Layout, to: Option<u64>, report: &dyn Reporter) -> Result<(u64, u64)> {
    let gens = layout.generations()?;
    let cur = layout
        .current_number()?
        .context("nothing to roll back: no generation is current")?;
    let target = match to {
        Some(n) => gens.iter().find(|g| g.number == n).with_context(|| {
            format!(
                "there is no generation {n} (have: {})",
                gens.iter()
                    .map(|g| g.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => gens
            .iter()
            .rev()
            .find(|g| g.number < cur)
            .with_context(|| format!("generation {cur} is the oldest; nothing to roll back to"))?,
    };
    let current = gens
        .iter()
        .find(|g| g.number == cur)
        .context("the current generation is missing")?;
    for (name, p) in &target.packages {
        if current.packages.get(name).map(|c| &c.blake3) != Some(&p.blake3)
            && !p.store_path.exists()
        {
            bail!(
                "generation {} needs {}@{}, whose store path was collected",
                target.number,
                p.name,
                p.version
            );
        }
    }
    let entering: Vec<&Installed> = target
        .packages
        .values()
        .filter(|p| current.packages.get(&p.name).map(|c| &c.blake3) != Some(&p.blake3))
        .collect();
    let leaving: Vec<&Installed> = current
        .packages
        .values()
        .filter(|p| target.packages.get(&p.name).map(|c| &c.blake3) != Some(&p.blake3))
        .collect();
    for e in &entering {
        run_script(layout, e, "install")?;
    }
    layout.switch_to(target.number)?;
    for l in &leaving {
        if let Err(e) = run_script(layout, l, "uninstall") {
            report.warn(&format!("{e:#}"));
        }
    }
    Ok((cur, target.number))
}

/// Runs `scripts/<which>.sh` of an installed package with `/bin/sh`, in its store path, with
/// the documented environment (README "Scripts").
fn run_script(layout: &Layout, p: &Installed, which: &str) -> Result<()> {
    let script = p.store_path.join(format!("scripts/{which}.sh"));
    let out = Command::new("/bin/sh")
        .arg(&script)
        .current_dir(&p.store_path)
        .env("DIST_ROOT", &layout.root)
        .env("DIST_PACKAGE", &p.name)
        .env("DIST_VERSION", p.version.to_string())
        .env("DIST_STORE_PATH", &p.store_path)
        .env("DIST_PROFILE", layout.current_link())
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{which} script of {}@{} failed ({}){}",
            p.name,
            p.version,
            out.status,
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        );
    }
    Ok(())
}

/// Hard-links the verified download into `objects/` (atomic rename into place).
fn store_object(
    layout: &Layout,
    verified: &object::VerifiedObject,
    blake3: &ObjectId,
) -> Result<()> {
    let _ = blake3;
    layout.objects().insert_verified(verified).map(drop)
}

/// Unpacks into a staging dir beside the store path, makes it read-only, renames it in.
fn unpack_to_store(layout: &Layout, verified: &object::VerifiedObject, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Ok(());
    }
    let staging = fsx::StagingDir::new_in(&layout.store_dir(), "unpack")?;
    object::unpack(verified, staging.path())
        .with_context(|| format!("cannot unpack into {}", dest.display()))?;
    let record = crate::store::tree::tree_record(staging.path())?;
    // The record (what `verify` compares against) lands before the tree gets its name.
    fsx::write_atomic(&record_path(dest), &serde_json::to_vec(&record)?, 0o444)?;
    make_read_only(staging.path())?;
    staging.persist(dest)
}

/// `store/<…>.record.json`: the tree as unpacked (paths, modes, digests, link targets).
pub fn record_path(store_path: &Path) -> std::path::PathBuf {
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

/// Hands an object fetched over HTTP to transmission so this client seeds it.
fn seed(layout: &Layout, cfg: &ClientConfig, server: &str, rec: &PackageRecord) -> Result<()> {
    let (bytes, _) = fetch::fetch_torrent(server, rec)?;
    let rpc = daemon::ensure(layout, cfg)?;
    rpc.add_torrent(&bytes, &layout.download_dir(&rec.infohash), false)?;
    Ok(())
}
