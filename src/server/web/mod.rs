//! The web catalog of `dist serve`: `GET /` lists the packages (newest version, description,
//! a search box, pages of [`PER_PAGE`]) and `GET /packages/NAME` shows every version of one
//! package with its hashes, links, install line and live swarm. Server-rendered HTML, no
//! script: `maud` templates ([`html`], with [`chart`]'s inline SVG), which escape every value
//! they splice in, so text from the index or the request is never markup.
//!
//! Pages read the master index through `repo::browse` on the blocking pool (SQL with
//! `LIMIT`/`OFFSET` or the primary key, never every row). The live numbers of a package come
//! from one scrape of the local tracker for its newest [`LIVE_VERSIONS`] infohashes, one
//! `torrent-get` of the seeder for the same, and the HTTP counters of [`live::Traffic`], which
//! [`count_sent`] keeps as object bodies leave. [`sample`] takes the same numbers every few
//! seconds for the packages someone viewed lately ([`live::History`], bounded), which the
//! charts draw.

pub mod chart;
pub mod html;
pub mod live;
mod setup;
mod status;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::http::SharedState;
use crate::daemons::tracker;
use crate::daemons::transmission::Rpc;
use crate::format::ids::{InfoHash, ObjectId, PackageName};
use crate::repo::Repo;
use live::{History, Live, Objects, Traffic, VersionLive, Via};

/// Packages per page of the list.
pub const PER_PAGE: u64 = 50;
/// How many of a package's newest versions get live numbers (one scrape request's worth).
pub const LIVE_VERSIONS: usize = 64;
/// The longest search term taken (longer ones are cut).
const MAX_TERM_CHARS: usize = 200;
/// How long a page waits for the tracker's scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the catalog's handlers and its sampler share.
pub struct Web {
    root: PathBuf,
    shared: SharedState,
    /// The local tracker's announce URL (scraped as BEP 48 says).
    tracker: String,
    /// The seeder's RPC.
    seeder: Rpc,
    pub traffic: Traffic,
    history: Mutex<History>,
    /// The public base URL clients use (`--public-url`), and a mirror's upstream key: what the
    /// `dist init` line of the list shows ([`setup`]).
    public_url: String,
    upstream_key: Option<String>,
}

impl Web {
    /// The catalog of the repository at `root`, whose tracker listens on `tracker` and whose
    /// seeder's RPC on 127.0.0.1:`rpc_port`.
    pub fn new(root: PathBuf, shared: SharedState, tracker: SocketAddr, rpc_port: u16) -> Web {
        // A tracker on every address is asked on loopback.
        let ip = match tracker.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        Web {
            root,
            shared,
            tracker: format!("http://{}/announce", SocketAddr::new(ip, tracker.port())),
            seeder: Rpc::local(rpc_port),
            traffic: Traffic::default(),
            history: Mutex::new(History::default()),
            public_url: String::new(),
            upstream_key: None,
        }
    }

    /// The catalog tells clients to use `public_url`, verified with `upstream_key` (a mirror)
    /// or else the repository's own key.
    pub fn with_origin(mut self, public_url: &str, upstream_key: Option<&str>) -> Web {
        self.public_url = public_url.to_string();
        self.upstream_key = upstream_key.map(str::to_string);
        self
    }

    fn serial(&self) -> Option<u64> {
        self.shared.read().expect("state lock").serial
    }

    /// The live numbers of these versions now (blocking: a scrape and an RPC call).
    fn live(&self, objects: &[(InfoHash, ObjectId)]) -> Live {
        let hashes: Vec<InfoHash> = objects.iter().map(|(h, _)| *h).collect();
        let (swarms, tracker_error) =
            match tracker::scrape_many(&self.tracker, &hashes, SCRAPE_TIMEOUT) {
                Ok(s) => (s.into_iter().map(Some).collect(), None),
                Err(e) => (vec![None; hashes.len()], Some(format!("{e:#}"))),
            };
        let (uploaded, seeder_error) = match self.seeder.uploaded(&hashes) {
            Ok(u) => (
                u.into_iter()
                    .map(|u| (u.hash_string, u.uploaded_ever))
                    .collect(),
                None,
            ),
            Err(e) => (std::collections::HashMap::new(), Some(format!("{e:#}"))),
        };
        let versions = objects
            .iter()
            .zip(swarms)
            .map(|((hash, id), swarm)| VersionLive {
                swarm,
                seeder: uploaded.get(hash).copied(),
                sent: self.traffic.of(id),
            })
            .collect();
        Live {
            versions,
            tracker_error,
            seeder_error,
        }
    }
}

/// The catalog's routes, on their own state.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(list))
        .route("/packages/{name}", get(package))
        .route("/packages/{name}/{*rest}", get(no_package))
        .with_state(web)
}

/// `GET /packages/A/B…`: no package name has a `/`, so the catalog's 404 page names it.
async fn no_package(
    State(web): State<Arc<Web>>,
    Path((name, rest)): Path<(String, String)>,
) -> Response {
    html(
        StatusCode::NOT_FOUND,
        html::not_found(web.serial(), &format!("{name}/{rest}")),
    )
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Runs `f` on the blocking pool (SQLite, scrape, RPC); a panic there is a 500 page.
async fn blocking<T: Send + 'static>(
    web: &Arc<Web>,
    f: impl FnOnce(&Web) -> T + Send + 'static,
) -> Result<T, Response> {
    let w = web.clone();
    tokio::task::spawn_blocking(move || f(&w))
        .await
        .map_err(|e| {
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::failure(web.serial(), &format!("the catalog failed: {e}")),
            )
        })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

/// `GET /?q=TERM&page=N`.
async fn list(State(web): State<Arc<Web>>, Query(query): Query<ListQuery>) -> Response {
    let term: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_TERM_CHARS)
        .collect();
    // A page that is no number is the first; one past the end says so.
    let page = query
        .page
        .and_then(|p| p.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, u64::MAX / PER_PAGE);
    let t = term.clone();
    let read = blocking(&web, move |w| {
        let key = setup::public_key(&w.root, w.upstream_key.as_deref());
        let box_html = setup::html(&w.public_url, key.as_deref());
        Repo::new(&w.root)
            .browse(Some(&t), (page - 1) * PER_PAGE, PER_PAGE)
            .map(|r| (r, box_html))
    })
    .await;
    let serial = web.serial();
    match read {
        Err(resp) => resp,
        Ok(Err(e)) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            html::failure(serial, &format!("{e:#}")),
        ),
        Ok(Ok((result, setup))) => html(
            StatusCode::OK,
            html::list(&html::ListView {
                serial,
                term: &term,
                page,
                per_page: PER_PAGE,
                result: &result,
                setup: &setup,
            }),
        ),
    }
}

/// `GET /packages/NAME`: every version, newest first, and the live numbers of the newest
/// [`LIVE_VERSIONS`]; viewing it has the package sampled for its charts.
async fn package(State(web): State<Arc<Web>>, Path(name): Path<String>) -> Response {
    let serial = web.serial();
    let Ok(parsed) = PackageName::parse(&name) else {
        return html(StatusCode::NOT_FOUND, html::not_found(serial, &name));
    };
    let n = parsed.clone();
    let read = blocking(&web, move |w| {
        let mut versions = Repo::new(&w.root).versions_of(&n)?;
        versions.reverse();
        let objects: Objects = versions
            .iter()
            .take(LIVE_VERSIONS)
            .map(|r| (r.infohash, r.blake3))
            .collect();
        let live = (!versions.is_empty()).then(|| w.live(&objects));
        anyhow::Ok((versions, objects, live))
    })
    .await;
    let (versions, objects, live) = match read {
        Err(resp) => return resp,
        Ok(Err(e)) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::failure(serial, &format!("{e:#}")),
            )
        }
        Ok(Ok(read)) => read,
    };
    let Some(live) = live else {
        return html(StatusCode::NOT_FOUND, html::not_found(serial, &name));
    };
    let now = Instant::now();
    let current = live.total(crate::clock::now_unix());
    let mut history = {
        let mut h = web.history.lock().expect("history lock");
        let samples = h.view(&parsed, objects, now);
        if live.answered() {
            h.record(&parsed, current, now);
        }
        samples
    };
    // The page shows the numbers it just read, whether the ring took them or not.
    history.push(current);
    html(
        StatusCode::OK,
        html::package(&html::PackageView {
            serial,
            name: &parsed,
            versions: &versions,
            live: &live,
            history: &history,
        }),
    )
}

/// Counts the bytes of `/objects/…` bodies as they leave, by object and by kind ([`Via`]).
/// Only successful answers (200, 206) count.
pub async fn count_sent(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let Some(id) = req
        .uri()
        .path()
        .strip_prefix("/objects/")
        .and_then(super::http::object_id)
    else {
        return next.run(req).await;
    };
    let via = match req.headers().get(header::RANGE) {
        None => Via::Direct,
        Some(r) if r.as_bytes() == b"bytes=0-" => Via::Direct,
        Some(_) => Via::WebSeed,
    };
    let resp = next.run(req).await;
    if !matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
        return resp;
    }
    use futures_util::StreamExt;
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            web.traffic.add(id, via, bytes.len() as u64);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Samples the watched packages every [`live::INTERVAL`] until `stop` is set: one scrape and
/// one `torrent-get` per package, on the blocking pool.
pub async fn sample(web: Arc<Web>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let due = web
            .history
            .lock()
            .expect("history lock")
            .due(Instant::now());
        if due.is_empty() {
            continue;
        }
        let w = web.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (name, objects) in due {
                let live = w.live(&objects);
                // A sample with a silent tracker or seeder would draw a false drop to zero.
                if live.answered() {
                    let total = live.total(crate::clock::now_unix());
                    w.history
                        .lock()
                        .expect("history lock")
                        .record(&name, total, Instant::now());
                }
            }
        })
        .await;
    }
}
