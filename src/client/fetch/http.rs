//! The HTTP transport: a GET of the object's web-seed URL into a `.part` file, resumed with
//! Range after an interruption, never accepting more bytes than the signed index promises.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{http_partial_name, info_name, object_url, Fetched};
use crate::client::{interrupt, Layout, Progress, Reporter};
use crate::repo::index::PackageRecord;

/// Downloads the object over HTTP from the server's web-seed URL, resuming a `.part` file.
pub fn fetch(
    layout: &Layout,
    server: &str,
    rec: &PackageRecord,
    timeout: Duration,
    report: &dyn Reporter,
) -> Result<Fetched> {
    let dir = layout.download_dir(&rec.infohash);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(info_name(rec));
    let part = dir.join(http_partial_name(rec));
    let url = object_url(server, &rec.blake3);
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > rec.size {
        std::fs::remove_file(&part)?;
        have = 0;
    }
    if have == rec.size {
        // A complete `.part` left by an interrupted run: the installer verifies it like any other.
        std::fs::rename(&part, &dest)?;
        return Ok(Fetched {
            path: dest,
            bytes_from_peers: 0,
            bytes_from_webseed: 0,
        });
    }
    let (resp, have) = request(&url, &part, have, timeout)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .with_context(|| format!("cannot write {}", part.display()))?;
    let have = if have > 0 && resp.status() != 206 {
        // The server ignored the range: start over.
        file.set_len(0)?;
        0
    } else {
        have
    };
    let done = copy_body(resp, &mut file, rec, have, &url, report)?;
    file.sync_all()?;
    if done != rec.size {
        bail!("{url}: got {done} of {} bytes", rec.size);
    }
    std::fs::rename(&part, &dest)?;
    Ok(Fetched {
        path: dest,
        bytes_from_peers: 0,
        bytes_from_webseed: rec.size,
    })
}

/// The GET, from byte `have` on when there is a partial file; a server that cannot serve that
/// range (416) gets a plain GET and the partial file is dropped.
fn request(
    url: &str,
    part: &std::path::Path,
    have: u64,
    timeout: Duration,
) -> Result<(ureq::Response, u64)> {
    let mut req = ureq::get(url).timeout(timeout);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    match req.call() {
        Err(ureq::Error::Status(416, _)) => {
            std::fs::remove_file(part)?;
            let resp = ureq::get(url)
                .timeout(timeout)
                .call()
                .with_context(|| format!("cannot fetch {url}"))?;
            Ok((resp, 0))
        }
        r => Ok((r.with_context(|| format!("cannot fetch {url}"))?, have)),
    }
}

/// Appends the body to `file`, reporting progress; more bytes than the index promises is an
/// error. Returns the size of the file now.
fn copy_body(
    resp: ureq::Response,
    file: &mut std::fs::File,
    rec: &PackageRecord,
    have: u64,
    url: &str,
    report: &dyn Reporter,
) -> Result<u64> {
    let id = rec.id();
    let start = Instant::now();
    let mut reader = resp.into_reader().take(rec.size - have + 1);
    let mut buf = vec![0u8; 256 << 10];
    let mut done = have;
    loop {
        interrupt::check()?;
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("download of {url} was interrupted"))?;
        if n == 0 {
            return Ok(done);
        }
        done += n as u64;
        if done > rec.size {
            bail!(
                "{url} sent more than the {} bytes the index promises",
                rec.size
            );
        }
        file.write_all(&buf[..n])?;
        let secs = start.elapsed().as_secs_f64().max(0.001);
        report.progress(
            &id,
            &Progress {
                done,
                total: rec.size,
                rate: ((done - have) as f64 / secs) as u64,
                peers: 0,
                webseed: true,
            },
        );
    }
}
