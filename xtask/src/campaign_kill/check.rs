//! The invariants the kill campaign checks after every kill, read from disk with code that is
//! not dist's (serde_json and the b3sum, sqlite3 and minisign tools), plus `dist verify --json`:
//! - client: `current` is absent or names a whole generation (its `generation.json`, and one
//!   link per package to a complete store path); every store path under its final name, and
//!   every one a generation references, matches its `.record.json`; `dist verify --json` exits
//!   0 with every entry `ok: true`;
//! - repository (and mirror): the `LATEST` snapshot opens, is intact, carries its serial and a
//!   good signature by the repository's key, and every object it names is in `objects/` with
//!   that BLAKE3.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::lab::campaign::run_dist;
use crate::lab::env::Env;

/// Everything wrong with a client root, one line each (empty when whole).
pub(crate) fn client(env: &Env, root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut seen: BTreeMap<PathBuf, Result<(), String>> = BTreeMap::new();
    let mut whole = |sp: &Path| {
        seen.entry(sp.to_path_buf())
            .or_insert_with(|| store_path_whole(sp))
            .clone()
    };
    match fs::read_link(root.join("current")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bad.push(format!("`current` is unreadable: {e}")),
        Ok(t) => {
            if let Err(e) = generation(&root.join(&t), &mut whole) {
                bad.push(format!("`current` -> {}: {e}", t.display()));
            }
        }
    }
    for dir in read_dir(&root.join("generations")) {
        let named = dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.parse::<u64>().is_ok());
        if named == Some(true) && dir.join("generation.json").exists() {
            if let Err(e) = generation(&dir, &mut whole) {
                bad.push(format!("generation {}: {e}", dir.display()));
            }
        }
    }
    for sp in read_dir(&root.join("store")) {
        let name = sp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name.ends_with(".record.json") {
            continue;
        }
        if let Err(e) = whole(&sp) {
            bad.push(format!("store path {name} is visible but not whole: {e}"));
        }
    }
    bad.extend(verify(env, root));
    bad
}

/// A generation directory: its `generation.json` parses, and each package's link names its
/// store path, which is whole.
fn generation(
    dir: &Path,
    whole: &mut dyn FnMut(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let meta = dir.join("generation.json");
    let bytes = fs::read(&meta).map_err(|e| format!("no generation.json ({e})"))?;
    let g: Value = serde_json::from_slice(&bytes).map_err(|e| format!("generation.json: {e}"))?;
    let packages = g["packages"]
        .as_object()
        .ok_or("generation.json has no `packages` object")?;
    for (name, p) in packages {
        let sp = PathBuf::from(
            p["store_path"]
                .as_str()
                .ok_or("a package without store_path")?,
        );
        match fs::read_link(dir.join(name)) {
            Ok(t) if t == sp => {}
            Ok(t) => {
                return Err(format!(
                    "link {name} -> {}, not {}",
                    t.display(),
                    sp.display()
                ))
            }
            Err(e) => return Err(format!("no link {name}: {e}")),
        }
        whole(&sp).map_err(|e| format!("{name} at {}: {e}", sp.display()))?;
    }
    Ok(())
}

/// A store path against its install record: the same paths, kinds, sizes, exec bits, BLAKE3
/// digests and link targets.
pub(crate) fn store_path_whole(sp: &Path) -> Result<(), String> {
    let mut rec = sp.as_os_str().to_owned();
    rec.push(".record.json");
    let bytes = fs::read(&rec).map_err(|e| format!("no record ({e})"))?;
    let entries: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| format!("record: {e}"))?;
    let recorded: BTreeMap<String, String> = entries
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            let desc = match e["kind"].as_str() {
                Some("file") => format!(
                    "file {} exec={} {}",
                    e["size"],
                    e["executable"],
                    s("blake3")
                ),
                Some("symlink") => format!("symlink -> {}", s("target")),
                Some("dir") => "dir".into(),
                other => format!("{other:?}"),
            };
            (s("path"), desc)
        })
        .collect();
    if !sp.is_dir() {
        return Err("missing".into());
    }
    let actual = walk_tree(sp).map_err(|e| format!("cannot read: {e}"))?;
    if recorded == actual {
        return Ok(());
    }
    let keys: BTreeSet<&String> = recorded.keys().chain(actual.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| recorded.get(*k) != actual.get(*k))
        .take(3)
        .map(|k| {
            format!(
                "{k}: recorded {:?}, found {:?}",
                recorded.get(k),
                actual.get(k)
            )
        })
        .collect();
    Err(diffs.join("; "))
}

/// Every path below `root` with its kind, size, exec bit, BLAKE3 or link target.
fn walk_tree(root: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    walk(root, root, &mut out, &mut files)?;
    let sums = b3sum(&files);
    for (rel, path) in files {
        let sum = sums.get(&path).map(String::as_str).unwrap_or("unreadable");
        out.entry(rel).and_modify(|d| *d = format!("{d} {sum}"));
    }
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    files: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path)?;
        let desc = if meta.is_dir() {
            walk(root, &path, out, files)?;
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            format!("symlink -> {}", fs::read_link(&path)?.display())
        } else if meta.is_file() {
            files.push((rel.clone(), path.clone()));
            let exec = meta.permissions().mode() & 0o100 != 0;
            format!("file {} exec={exec}", meta.len())
        } else {
            "other".to_string()
        };
        out.insert(rel, desc);
    }
    Ok(())
}

/// BLAKE3 of each file (lowercase hex) by `b3sum`, one thread; unreadable files are absent.
fn b3sum(files: &[(String, PathBuf)]) -> BTreeMap<PathBuf, String> {
    let mut sums = BTreeMap::new();
    if files.is_empty() {
        return sums;
    }
    let o = Command::new("b3sum")
        .args(["--num-threads", "1"])
        .args(files.iter().map(|(_, p)| p))
        .stderr(Stdio::null())
        .output();
    for line in o
        .map(|o| o.stdout)
        .unwrap_or_default()
        .split(|b| *b == b'\n')
    {
        let line = String::from_utf8_lossy(line);
        if let Some((hex, path)) = line.split_once("  ") {
            sums.insert(PathBuf::from(path), hex.to_string());
        }
    }
    sums
}

/// `dist verify --json` exits 0 and reports every store path `ok: true`.
fn verify(env: &Env, root: &Path) -> Vec<String> {
    let o = match run_dist(env, root, &["verify", "--json"], Duration::from_secs(120)) {
        Ok(o) => o,
        Err(e) => return vec![format!("dist verify: {e:#}")],
    };
    let mut bad = Vec::new();
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        bad.push(format!(
            "dist verify --json exited {}: {}",
            o.status,
            err.trim()
        ));
    }
    match serde_json::from_slice::<Vec<Value>>(&o.stdout) {
        Ok(entries) => {
            for e in entries.iter().filter(|e| e["ok"] != Value::Bool(true)) {
                bad.push(format!(
                    "dist verify: {} {}: {}",
                    e["name"], e["version"], e["differences"]
                ));
            }
        }
        Err(e) => bad.push(format!("dist verify --json printed no JSON array: {e}")),
    }
    bad
}

/// Everything wrong with the published state of a repository or a mirror (empty when
/// whole); its `LATEST` manifest must verify with one of `keys` (base64 public keys: the
/// repository's current key, and during a rotation the one before it).
pub(crate) fn repo(repo: &Path, keys: &[String]) -> Vec<String> {
    match published(repo, keys) {
        Ok(bad) => bad,
        Err(e) => vec![e],
    }
}

/// The serial `published/LATEST` of a repository or mirror names.
pub(crate) fn latest(root: &Path) -> Option<u64> {
    let text = fs::read_to_string(root.join("published/LATEST")).ok()?;
    text.trim().parse().ok()
}

/// Whether minisign verifies `published/SERIAL.json` of `root` with the public key `key`.
pub(crate) fn signed_by(root: &Path, serial: u64, key: &str) -> bool {
    let sig = Command::new("minisign")
        .args(["-V", "-q", "-P", key, "-m"])
        .arg(root.join(format!("published/{serial}.json")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    sig.is_ok_and(|s| s.success())
}

fn published(repo: &Path, keys: &[String]) -> Result<Vec<String>, String> {
    let latest = fs::read_to_string(repo.join("published/LATEST"))
        .map_err(|e| format!("published/LATEST: {e}"))?;
    let serial: u64 = latest
        .trim()
        .parse()
        .map_err(|_| format!("published/LATEST holds {latest:?}"))?;
    let manifest = repo.join(format!("published/{serial}.json"));
    if !manifest.is_file() {
        return Err(format!(
            "LATEST names serial {serial}, but {} is missing",
            manifest.display()
        ));
    }
    let db = repo.with_extension("check.db");
    crate::util::published_snapshot(repo, serial, &db).map_err(|e| format!("{e:#}"))?;
    let mut bad = Vec::new();
    let check = sqlite(&db, "PRAGMA integrity_check")?;
    if check.trim() != "ok" {
        bad.push(format!(
            "{}: integrity_check says {}",
            db.display(),
            check.trim()
        ));
    }
    let own = sqlite(&db, "SELECT value FROM meta WHERE key = 'serial'")?;
    if own.trim() != serial.to_string() {
        bad.push(format!(
            "{}: meta serial {:?}, LATEST says {serial}",
            db.display(),
            own.trim()
        ));
    }
    if !keys.iter().any(|k| signed_by(repo, serial, k)) {
        bad.push(format!(
            "{}: minisign does not verify its signature with {keys:?}",
            manifest.display()
        ));
    }
    bad.extend(objects(repo, &db, serial)?);
    Ok(bad)
}

/// Every object the snapshot names is in `objects/` with that BLAKE3.
fn objects(repo: &Path, db: &Path, serial: u64) -> Result<Vec<String>, String> {
    let mut bad = Vec::new();
    let rows = sqlite(db, "SELECT name || '@' || version, blake3 FROM packages")?;
    let named: Vec<(String, String, PathBuf)> = rows
        .lines()
        .map(|line| {
            let (id, hex) = line.split_once('|').unwrap_or((line, ""));
            let obj = repo.join("objects").join(hex.get(..2).unwrap_or("??"));
            (
                id.to_string(),
                hex.to_string(),
                obj.join(hex.get(2..).unwrap_or("")),
            )
        })
        .collect();
    let files: Vec<(String, PathBuf)> = named
        .iter()
        .map(|(id, _, p)| (id.clone(), p.clone()))
        .collect();
    let sums = b3sum(&files);
    for (id, hex, obj) in &named {
        match sums.get(obj) {
            Some(h) if h == hex => {}
            Some(h) => bad.push(format!(
                "object of {id} hashes to {h}, snapshot {serial} says {hex}"
            )),
            None => bad.push(format!(
                "object of {id} ({hex}) named by snapshot {serial} is unreadable"
            )),
        }
    }
    Ok(bad)
}

/// `sqlite3 -readonly DB SQL`, its stdout; a failure to open or query is an error.
fn sqlite(db: &Path, sql: &str) -> Result<String, String> {
    let o = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
        .map_err(|e| format!("cannot run sqlite3: {e}"))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(format!("{} does not open: {}", db.display(), err.trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `.tmp-*` and `.trash-*` names left in a root after a command that cleans them completed.
/// A package's state and configuration are whole while it is current (issue 21): `big`'s state
/// directory exists and its `version`, if written, names a version; its configuration file
/// holds exactly what one of its versions ships (`confs`), never a torn mix.
pub(crate) fn state(root: &Path, confs: &[&str]) -> Vec<String> {
    let current: Option<Value> = fs::read(root.join("current/generation.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if current.is_none_or(|g| g["packages"].get("big").is_none()) {
        return Vec::new();
    }
    let mut bad = Vec::new();
    if !root.join("var/big").is_dir() {
        bad.push("big is current but var/big is missing".to_string());
    }
    match fs::read_to_string(root.join("var/big/version")) {
        Ok(v) if !["1.0.0\n", "2.0.0\n"].contains(&v.as_str()) => {
            bad.push(format!("var/big/version is torn: {v:?}"))
        }
        _ => {}
    }
    match fs::read_to_string(root.join("etc/big/big.conf")) {
        Ok(c) if confs.contains(&c.as_str()) => {}
        other => bad.push(format!(
            "etc/big/big.conf is not a shipped version's: {other:?}"
        )),
    }
    bad
}

pub(crate) fn leftovers(root: &Path) -> Vec<String> {
    let mut dirs = vec![
        root.to_path_buf(),
        root.join("store"),
        root.join("generations"),
        root.join("index"),
        root.join("downloads"),
        root.join("published"),
        root.join("objects"),
        root.join("etc/big"),
    ];
    dirs.extend(read_dir(&root.join("objects")));
    dirs.iter()
        .flat_map(|d| read_dir(d))
        .filter_map(|p| {
            let n = p.file_name()?.to_string_lossy().into_owned();
            (n.starts_with(".tmp-") || n.starts_with(".trash-")).then(|| p.display().to_string())
        })
        .collect()
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}
