//! `dist sync`: fetch the signed index with a conditional GET, verify it, refuse rollbacks, and
//! replace the local copy atomically.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::config::Settings;
use super::Layout;
use crate::repo::index::Snapshot;
use crate::repo::sign::{self, VerifyError};
use crate::store::fsx;

/// What the client remembers about its copy of the index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexState {
    pub serial: u64,
    pub created: u64,
    pub etag: Option<String>,
    pub fetched_at: u64,
}

/// What a sync did; `sync --json` prints it as it is (see `commands/json.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub changed: bool,
    pub serial: u64,
    pub previous_serial: Option<u64>,
    pub created: u64,
    /// Body bytes transferred (0 for an unchanged index).
    pub bytes: u64,
    pub packages: usize,
    /// Set when the index is older than `stale_after`.
    pub stale_warning: Option<String>,
}

impl Layout {
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index/index.db")
    }
    pub fn index_sig_path(&self) -> PathBuf {
        self.root.join("index/index.db.minisig")
    }
    pub fn index_state_path(&self) -> PathBuf {
        self.root.join("index/state.json")
    }

    pub fn index_state(&self) -> Result<Option<IndexState>> {
        let p = self.index_state_path();
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("{} is corrupt", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// The synced index; an error telling the user to sync when there is none.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let p = self.index_path();
        if !p.exists() {
            bail!("no package index yet: run `dist sync` first");
        }
        Snapshot::open(&p)
    }
}

fn get(
    agent: &ureq::Agent,
    url: &str,
    etag: Option<&str>,
    limit: u64,
) -> Result<Option<(Vec<u8>, Option<String>)>> {
    let mut req = agent.get(url);
    if let Some(e) = etag {
        req = req.set("If-None-Match", e);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => bail!("GET {url}: HTTP {code}"),
        Err(e) => return Err(e).with_context(|| format!("cannot reach {url}")),
    };
    if resp.status() == 304 {
        return Ok(None);
    }
    let tag = resp.header("ETag").map(str::to_string);
    let mut body = Vec::new();
    resp.into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("GET {url}: the body was cut off"))?;
    if body.len() as u64 > limit {
        bail!("GET {url}: larger than the {limit}-byte limit for an index; refusing it");
    }
    Ok(Some((body, tag)))
}

pub fn sync(layout: &Layout, cfg: &Settings) -> Result<SyncReport> {
    let server = cfg.server_url()?;
    let key = cfg.public_key()?;
    let limit = cfg.max_index_size;
    let agent = ureq::AgentBuilder::new().timeout(cfg.http_timeout).build();
    let prev = layout.index_state()?;
    let have_copy = layout.index_path().exists();
    // The signature and the index are two requests; a publish between them shows up as a
    // signature mismatch, so try a few times before calling it tampering.
    let mut last_err = None;
    for _ in 0..3 {
        let etag = prev
            .as_ref()
            .filter(|_| have_copy)
            .and_then(|p| p.etag.clone());
        let index = get(
            &agent,
            &format!("{server}/index.db"),
            etag.as_deref(),
            limit,
        )?;
        let Some((body, tag)) = index else {
            let p = prev.clone().expect("etag implies state");
            return Ok(SyncReport {
                changed: false,
                serial: p.serial,
                previous_serial: Some(p.serial),
                created: p.created,
                bytes: 0,
                packages: layout.snapshot().map(|s| s.packages.len()).unwrap_or(0),
                stale_warning: stale(cfg, p.created),
            });
        };
        let (sig, _) = get(
            &agent,
            &format!("{server}/index.db.minisig"),
            None,
            64 << 10,
        )?
        .expect("no etag sent");
        let sig = String::from_utf8(sig).context("the index signature is not text")?;
        let signed = match sign::verify(key, &body, &sig) {
            Ok(s) => s,
            // Only a signature that does not match the bytes can be a publish in between.
            Err(e @ VerifyError::BadSignature(_)) => {
                last_err = Some(e);
                continue;
            }
            Err(e) => {
                last_err = Some(e);
                break;
            }
        };
        return install_index(layout, cfg, prev, body, sig, signed, tag);
    }
    Err(
        anyhow::Error::new(last_err.expect("a failed attempt")).context(format!(
            "the index from {server} failed verification; the local index is unchanged"
        )),
    )
}

fn stale(cfg: &Settings, created: u64) -> Option<String> {
    let age = crate::repo::now_unix().saturating_sub(created);
    let limit = cfg.stale_after;
    (age > limit).then(|| {
        format!(
            "the index was published {} hours ago; the repository may be frozen or unreachable",
            age / 3600
        )
    })
}

fn install_index(
    layout: &Layout,
    cfg: &Settings,
    prev: Option<IndexState>,
    body: Vec<u8>,
    sig: String,
    signed: sign::Signed,
    etag: Option<String>,
) -> Result<SyncReport> {
    if let Some(p) = &prev {
        if signed.serial < p.serial {
            bail!(
                "the server offers index serial {}, older than the serial {} this client already has: refusing a rollback (replayed or stale index); the local index is unchanged",
                signed.serial,
                p.serial
            );
        }
    }
    // Check the signed bytes are an index whose serial is the signed one, before installing.
    let dir = layout.root.join("index");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = fsx::AtomicFile::create(&layout.index_path())?;
    std::io::Write::write_all(&mut tmp, &body)?;
    let snap = Snapshot::open(tmp.path()).context("the signed index cannot be read")?;
    if snap.serial != signed.serial {
        bail!(
            "the index says serial {} but its signature says {}",
            snap.serial,
            signed.serial
        );
    }
    let changed = prev.as_ref().map(|p| p.serial) != Some(signed.serial);
    tmp.set_mode(0o644)?;
    tmp.commit()?;
    fsx::write_atomic(&layout.index_sig_path(), sig.as_bytes(), 0o644)?;
    let state = IndexState {
        serial: signed.serial,
        created: signed.created,
        etag,
        fetched_at: crate::repo::now_unix(),
    };
    fsx::write_atomic(
        &layout.index_state_path(),
        &serde_json::to_vec_pretty(&state)?,
        0o644,
    )?;
    Ok(SyncReport {
        changed,
        serial: signed.serial,
        previous_serial: prev.map(|p| p.serial),
        created: signed.created,
        bytes: body.len() as u64,
        packages: snap.packages.len(),
        stale_warning: stale(cfg, signed.created),
    })
}
