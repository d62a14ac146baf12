//! Transports: getting an object's bytes into `downloads/<infohash>/<name>.tar`, either through
//! transmission (`torrent`) or straight from the web-seed URL (`http`, resumable with Range).
//! Nothing fetched here is trusted: `install` re-hashes it before use.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Layout, Progress, Reporter};
use crate::daemons::transmission::Rpc;
use crate::format::ids::ObjectId;
use crate::format::torrent::Info;
use crate::repo::index::PackageRecord;

#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes_from_peers: u64,
    pub bytes_from_webseed: u64,
}

pub fn object_url(server: &str, blake3: &ObjectId) -> String {
    format!("{server}/objects/{}", blake3.rel_path())
}

/// Fetches the `.torrent` from the server and checks its infohash against the signed index.
pub fn fetch_torrent(server: &str, rec: &PackageRecord) -> Result<(Vec<u8>, Info)> {
    let url = format!("{server}/torrents/{}.torrent", rec.infohash);
    let resp = ureq::get(&url)
        .timeout(Duration::from_secs(30))
        .call()
        .with_context(|| format!("cannot fetch {url}"))?;
    let mut bytes = Vec::new();
    resp.into_reader().take(16 << 20).read_to_end(&mut bytes)?;
    let info = Info::parse_torrent(&bytes)
        .map_err(|e| anyhow::anyhow!("{url}: not a valid torrent: {e}"))?;
    let ih = info.infohash();
    if ih != rec.infohash {
        bail!(
            "{url}: the torrent's infohash is {ih}, the signed index says {} for {}@{}",
            rec.infohash,
            rec.name,
            rec.version
        );
    }
    if info.length != rec.size {
        bail!(
            "{url}: the torrent's length {} differs from the index's size {}",
            info.length,
            rec.size
        );
    }
    Ok((bytes, info))
}

fn info_name(rec: &PackageRecord) -> String {
    format!("{}-{}.tar", rec.name, rec.version)
}

/// Downloads the object over HTTP from the server's web-seed URL, resuming a `.part` file.
pub fn http(
    layout: &Layout,
    server: &str,
    rec: &PackageRecord,
    timeout: Duration,
    report: &dyn Reporter,
) -> Result<Fetched> {
    let dir = layout.download_dir(&rec.infohash);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(info_name(rec));
    let part = dir.join(format!("{}.part", info_name(rec)));
    let url = object_url(server, &rec.blake3);
    let label = format!("{}@{}", rec.name, rec.version);
    let start = Instant::now();
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > rec.size {
        std::fs::remove_file(&part)?;
        have = 0;
    }
    if have == rec.size {
        // A complete `.part` left by an interrupted run: `install` verifies it like any other.
        std::fs::rename(&part, &dest)?;
        return Ok(Fetched {
            path: dest,
            bytes_from_peers: 0,
            bytes_from_webseed: 0,
        });
    }
    let mut req = ureq::get(&url).timeout(timeout);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Err(ureq::Error::Status(416, _)) => {
            // The server cannot serve that range: start over.
            std::fs::remove_file(&part)?;
            have = 0;
            ureq::get(&url).timeout(timeout).call()
        }
        r => r,
    }
    .with_context(|| format!("cannot fetch {url}"))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .with_context(|| format!("cannot write {}", part.display()))?;
    if have > 0 && resp.status() != 206 {
        // The server ignored the range: start over.
        file.set_len(0)?;
        have = 0;
    }
    let mut reader = resp.into_reader().take(rec.size - have + 1);
    let mut buf = vec![0u8; 256 << 10];
    let mut done = have;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("download of {url} was interrupted"))?;
        if n == 0 {
            break;
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
            &label,
            &Progress {
                done,
                total: rec.size,
                rate: ((done - have) as f64 / secs) as u64,
                peers: 0,
                webseed: true,
            },
        );
    }
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

/// Adds the torrent to transmission and waits until the data is complete.
pub fn torrent(
    layout: &Layout,
    rpc: &Rpc,
    server: &str,
    rec: &PackageRecord,
    timeout: Duration,
    report: &dyn Reporter,
) -> Result<Fetched> {
    let dir = layout.download_dir(&rec.infohash);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let hash = match fetch_torrent(server, rec) {
        Ok((bytes, _)) => rpc.add_torrent(&bytes, &dir, false)?,
        // A torrent that contradicts the signed index is an attack, not an outage.
        Err(e) if format!("{e:#}").contains("the signed index says") => return Err(e),
        Err(e) => {
            // The server cannot hand out the .torrent: the signed magnet names the same
            // infohash, and the swarm supplies the metadata.
            report.warn(&format!("{e:#}; falling back to the magnet link"));
            rpc.add_magnet(&rec.magnet, &dir)?
        }
    };
    if hash != rec.infohash {
        bail!(
            "transmission reports infohash {hash}, the signed index says {} for {}@{}",
            rec.infohash,
            rec.name,
            rec.version
        );
    }
    let hashes = vec![hash];
    let label = format!("{}@{}", rec.name, rec.version);
    let start = Instant::now();
    let mut last = Instant::now();
    // transmission 3.00 does not split bytes by source; estimate the web seed's share from the
    // rate not accounted for by peers, integrated over the polls.
    let mut webseed_bytes = 0f64;
    let (mut peers_sent, mut webseed_sent) = (false, false);
    loop {
        let st = rpc.get(&hashes)?;
        let Some(t) = st.first() else {
            bail!("transmission lost the torrent of {label}");
        };
        if t.error != 0 {
            bail!(
                "transmission reports an error for {label}: {}",
                t.error_string
            );
        }
        let now = Instant::now();
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let from_peers: u64 = t.peers.iter().map(|p| p.rate_to_client).sum();
        peers_sent |= t.peers_sending_to_us > 0 || from_peers > 0;
        webseed_sent |= t.webseeds_sending_to_us > 0;
        webseed_bytes += (t.rate_download.saturating_sub(from_peers)) as f64 * dt;
        report.progress(
            &label,
            &Progress {
                done: t.have_valid,
                total: rec.size,
                rate: t.rate_download,
                peers: t.peers_sending_to_us as u32,
                webseed: t.webseeds_sending_to_us > 0,
            },
        );
        if t.is_complete() {
            break;
        }
        if start.elapsed() > timeout {
            bail!(
                "timed out after {:?} downloading {label}: {:.0}% done, {} peers, web seed {}",
                timeout,
                t.percent_done * 100.0,
                t.peers_connected,
                if t.webseeds_sending_to_us > 0 {
                    "active"
                } else {
                    "idle"
                }
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // When only one source was ever seen sending, it sent everything; otherwise use the estimate.
    let webseed = match (peers_sent, webseed_sent) {
        (false, true) => rec.size,
        (true, false) => 0,
        _ => (webseed_bytes as u64).min(rec.size),
    };
    Ok(Fetched {
        path: dir.join(info_name(rec)),
        bytes_from_peers: rec.size - webseed,
        bytes_from_webseed: webseed,
    })
}
