//! The libtorrent engine's downloads: the installing process runs a libtorrent session of its
//! own (`dist-libtorrent`), adds every torrent of the install at once (each with the stripe of
//! pieces the server told it to fetch first), and awaits them together. Once the install is
//! done the torrents leave this session without their data, and the root's background seeder
//! (`client::seeder`) takes what was installed over, without hashing it again.
//!
//! Settings, by measurement (field notes, issue 20): unlimited unchoke slots (an interested
//! peer is unchoked at once, not at the next 10–15 s round), uTP off (its delay-based
//! congestion control yields to the web seeds' TCP flows at a busy origin), web-seed requests of
//! 256 KiB (a piece of a small object, a part of a large one: the origin's bytes are spread over
//! pieces the peers can then trade).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dist_libtorrent::{AddOptions, Config, Session, Status};

use super::stall::{Endpoints, Watch};
use super::torrent::Source;
use super::{adopt_http_partial, info_name, Fetched};
use crate::client::config::Settings;
use crate::client::{interrupt, Layout, Progress, Reporter};
use crate::format::ids::InfoHash;
use crate::index::record::PackageRecord;
use crate::text::count;

/// Largest web-seed range request.
const WEBSEED_REQUEST: u32 = 256 << 10;
/// How often a download's status is read.
const POLL: Duration = Duration::from_millis(100);

/// The session settings of the client engine, for the installing process and the seeder alike;
/// `port` 0: any free port.
pub fn config(settings: &Settings, port: u16) -> Config {
    Config {
        bind: IpAddr::V4(settings.bind_address.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        port,
        utp: false,
        unchoke_slots_limit: -1,
        upload_limit: settings.upload_limit.map_or(0, |k| u64::from(k) * 1000),
        download_limit: settings.download_limit.map_or(0, |k| u64::from(k) * 1000),
        max_web_seed_connections: 3,
        urlseed_max_request_bytes: WEBSEED_REQUEST,
    }
}

/// One install's libtorrent session and the torrents it added.
pub struct Downloads {
    session: Session,
    added: Vec<InfoHash>,
    /// Each added torrent's `.torrent`, for the seeder that takes it over.
    torrents: Vec<(InfoHash, Vec<u8>)>,
}

/// A torrent being downloaded.
pub struct Started<'a> {
    rec: &'a PackageRecord,
    dir: PathBuf,
    done: Option<Fetched>,
    /// Its trackers and web seeds, and how long it has not moved (issue 23, finding 7).
    endpoints: Endpoints,
    watch: Watch,
}

impl Downloads {
    /// A session for this install.
    pub fn new(settings: &Settings) -> Result<Downloads> {
        let session = Session::new(&config(settings, 0))
            .context("cannot start the libtorrent engine (engine: libtorrent)")?;
        Ok(Downloads {
            session,
            added: Vec::new(),
            torrents: Vec::new(),
        })
    }

    /// The `.torrent` of a torrent this install added.
    pub fn torrent(&self, h: &InfoHash) -> Option<&[u8]> {
        self.torrents
            .iter()
            .find(|(t, _)| t == h)
            .map(|(_, b)| b.as_slice())
    }

    /// Adds every torrent, downloading into `downloads/<infohash>/`; libtorrent needs the
    /// `.torrent` (it does not start from the signed magnet link here).
    pub fn start_all<'a>(
        &mut self,
        layout: &Layout,
        recs: &[&'a PackageRecord],
        sources: Vec<Source>,
    ) -> Result<Vec<Started<'a>>> {
        let mut started = Vec::with_capacity(recs.len());
        for (rec, source) in recs.iter().zip(sources) {
            let Source::Metainfo(t) = source else {
                bail!(
                    "{}: no server handed out its .torrent, and the libtorrent engine does not start from a magnet link; try again later or with --engine transmission",
                    rec.id()
                );
            };
            let dir = layout.download_dir(&rec.infohash);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // libtorrent checks the pieces of a file it finds (no resume data): the bytes a
            // direct download brought are not fetched again.
            adopt_http_partial(&dir, rec, "")?;
            let options = AddOptions {
                web_seeds: true,
                stripe: t.stripe,
                ..AddOptions::default()
            };
            let endpoints = Endpoints::of_torrent(&t.bytes);
            let added = self
                .session
                .add(&t.bytes, &dir, &options)
                .with_context(|| format!("libtorrent refused the torrent of {}", rec.id()))?;
            self.added.push(rec.infohash);
            self.torrents.push((rec.infohash, t.bytes));
            if added != *rec.infohash.as_bytes() {
                bail!(
                    "libtorrent reports another infohash than the signed index's {} for {}",
                    rec.infohash,
                    rec.id()
                );
            }
            started.push(Started {
                rec,
                dir,
                done: None,
                endpoints,
                watch: Watch::new(Instant::now()),
            });
        }
        Ok(started)
    }

    /// Polls until every started torrent is complete, or `timeout` has passed; what each
    /// fetched, in the order started.
    pub fn await_all(
        &self,
        mut started: Vec<Started<'_>>,
        timeout: Duration,
        report: &dyn Reporter,
    ) -> Result<Vec<Fetched>> {
        let start = Instant::now();
        while started.iter().any(|s| s.done.is_none()) {
            interrupt::check()?;
            for s in started.iter_mut().filter(|s| s.done.is_none()) {
                let st = self
                    .session
                    .status(s.rec.infohash.as_bytes())
                    .with_context(|| format!("libtorrent lost the torrent of {}", s.rec.id()))?;
                s.observe(&st, report)?;
                if s.done.is_some() {
                    continue;
                }
                s.explain_stall(&st, report);
                if start.elapsed() > timeout {
                    bail!(
                        "timed out after {} s downloading {}: {:.0}% done, {} connected{}",
                        timeout.as_secs(),
                        s.rec.id(),
                        st.progress * 100.0,
                        count(u64::from(st.num_peers), "peer"),
                        s.watch.suffix()
                    );
                }
            }
            std::thread::sleep(POLL);
        }
        Ok(started.into_iter().filter_map(|s| s.done).collect())
    }

    /// Takes every torrent of this install out of the session: with their data (the install
    /// failed) or without (the seeder takes them over).
    pub fn remove(&self, delete: bool) -> Result<()> {
        for h in &self.added {
            self.session
                .remove(h.as_bytes(), delete)
                .with_context(|| format!("cannot remove torrent {h} from libtorrent"))?;
        }
        Ok(())
    }
}

impl Started<'_> {
    /// Says why nothing arrives, when it has not for a while ([`stall`]).
    fn explain_stall(&mut self, st: &Status, report: &dyn Reporter) {
        let progress = (st.total_done, st.num_peers);
        self.watch
            .explain(self.rec, &self.endpoints, progress, report);
    }

    fn observe(&mut self, st: &Status, report: &dyn Reporter) -> Result<()> {
        let id = self.rec.id();
        if let Some(e) = &st.error {
            bail!("libtorrent reports an error for {id}: {e}");
        }
        report.progress(
            &id,
            &Progress {
                done: st.total_done,
                total: self.rec.size,
                rate: 0,
                peers: st.num_peers,
                webseed: st.downloaded_from_web_seeds > 0,
            },
        );
        if (st.is_seeding || st.is_finished) && st.total_done == self.rec.size {
            self.done = Some(Fetched {
                path: self.dir.join(info_name(self.rec)),
                bytes_from_peers: st.downloaded_from_peers,
                bytes_from_webseed: st.downloaded_from_web_seeds,
            });
        }
        Ok(())
    }
}
