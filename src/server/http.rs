//! The HTTP side of `dist serve`: the newest index manifest and its signature (with conditional
//! GET), the published snapshots and deltas, `.torrent` files rendered on demand for every indexed infohash,
//! objects with Range support (the BEP 19 web seed) and `/health`. A request for a `.torrent`
//! or an object tells the watcher (through a bounded channel) that a client wants it now, which
//! promotes it into the seeder's hot set.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

use super::catalog::Catalog;
use super::ledger::{self, Ledger};
use crate::format::ids::{InfoHash, ObjectId};
use crate::repo::Repo;

/// What the HTTP handlers read; the server writes it.
pub struct Shared {
    /// Serial of the newest snapshot.
    pub serial: Option<u64>,
    /// The repository as of the newest serial the watcher has read.
    pub catalog: Arc<Catalog>,
    /// `Ok` once tracker and seeder are in step with the newest serial; else why not.
    pub health: Result<(), String>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            serial: None,
            catalog: Arc::new(Catalog::default()),
            health: Err("starting".into()),
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

pub type SharedState = Arc<RwLock<Shared>>;

/// How `.torrent` files are made and where requests are reported.
#[derive(Clone)]
pub struct Torrents {
    /// The repository root (its master index has every info dictionary).
    pub root: PathBuf,
    /// This server's announce URL.
    pub announce_url: String,
    /// This server's web-seed bases: its public URL, then the mirrors it lists (`web_seeds`).
    pub web_seeds: Vec<String>,
    /// Infohashes clients asked for; full means the watcher is behind, and a request is dropped.
    pub requests: SyncSender<InfoHash>,
}

/// Admission control of whole-object downloads: at most `slots` at once; more get `503` with
/// `Retry-After` and `X-Dist-Slot-Free-Ms`, the time until the first admitted download is
/// expected to end (from its bytes sent so far and its length), so an `auto` client waits for a
/// slot that frees soon (a fast link) and takes the swarm otherwise, and an `http` client waits.
/// Range requests (web seeds, resumed downloads) are never refused: they are how the swarm is
/// fed.
pub struct Admission {
    pub slots: usize,
    active: std::sync::Mutex<Vec<Arc<Sending>>>,
}

/// How far one admitted whole-object download is. Its rate is taken from one second into it
/// on: before that, socket buffers swallow megabytes at once and the bytes handed over say
/// nothing about the link.
#[derive(Debug)]
struct Sending {
    started: Instant,
    sent: std::sync::atomic::AtomicU64,
    length: std::sync::atomic::AtomicU64,
    /// Bytes sent when one second had passed (`u64::MAX`: not yet).
    sent_at_warm: std::sync::atomic::AtomicU64,
}

/// When a download's rate starts to count, and how long it must then be watched.
const WARM: std::time::Duration = std::time::Duration::from_secs(1);
const WATCHED: std::time::Duration = std::time::Duration::from_millis(500);

impl Sending {
    fn note(&self, bytes: u64, now: Instant) {
        use std::sync::atomic::Ordering;
        let before = self.sent.fetch_add(bytes, Ordering::Relaxed);
        if now.duration_since(self.started) >= WARM {
            let _ = self.sent_at_warm.compare_exchange(
                u64::MAX,
                before,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// When it is expected to end, and its rate (bytes/s) since [`WARM`]; `None` before that
    /// rate has been watched for [`WATCHED`].
    fn left(&self, now: Instant) -> Option<(std::time::Duration, u64)> {
        use std::sync::atomic::Ordering;
        let sent = self.sent.load(Ordering::Relaxed);
        let length = self.length.load(Ordering::Relaxed);
        let warm = self.sent_at_warm.load(Ordering::Relaxed);
        let watched = now.duration_since(self.started).checked_sub(WARM)?;
        if warm == u64::MAX || length == 0 || watched < WATCHED {
            return None;
        }
        let rate = sent.saturating_sub(warm) as f64 / watched.as_secs_f64();
        let left = length.saturating_sub(sent) as f64 / rate.max(1.0);
        Some((
            std::time::Duration::from_secs_f64(left.min(3600.0)),
            rate as u64,
        ))
    }
}

impl Admission {
    pub fn new(slots: usize) -> Admission {
        Admission {
            slots,
            active: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A slot, held until the returned guard (moved into the response body) is dropped.
    fn enter(self: &Arc<Admission>) -> Option<Slot> {
        let mut active = self.active.lock().expect("admission lock");
        if active.len() >= self.slots {
            return None;
        }
        let sending = Arc::new(Sending {
            started: Instant::now(),
            sent: Default::default(),
            length: Default::default(),
            sent_at_warm: std::sync::atomic::AtomicU64::new(u64::MAX),
        });
        active.push(sending.clone());
        Some(Slot(self.clone(), sending))
    }

    /// How long until the first slot is expected to free, and the rate of that download
    /// (what a slot gives); `None` while no admitted download is old enough to tell.
    fn frees_in(&self, now: Instant) -> Option<(std::time::Duration, u64)> {
        let active = self.active.lock().expect("admission lock");
        active
            .iter()
            .filter_map(|s| s.left(now))
            .min_by_key(|(left, _)| *left)
    }
}

/// How many range requests (web seeds) the origin serves at once per object; `0`: no limit. More
/// get `503` with `Retry-After`, so the origin's bandwidth is not all taken by web-seed requests
/// while the swarm could carry the pieces (issue 11: measured in `cargo xtask bench swarm`).
pub struct WebSeedGate {
    pub per_object: usize,
    in_flight: std::sync::Mutex<std::collections::HashMap<ObjectId, usize>>,
}

impl WebSeedGate {
    pub fn new(per_object: usize) -> WebSeedGate {
        WebSeedGate {
            per_object,
            in_flight: Default::default(),
        }
    }

    fn enter(self: &Arc<WebSeedGate>, id: ObjectId) -> Option<RangeSlot> {
        let mut map = self.in_flight.lock().expect("web seed gate");
        let n = map.entry(id).or_insert(0);
        if *n >= self.per_object {
            return None;
        }
        *n += 1;
        Some(RangeSlot(self.clone(), id))
    }
}

/// One admitted range request.
struct RangeSlot(Arc<WebSeedGate>, ObjectId);

impl Drop for RangeSlot {
    fn drop(&mut self) {
        let mut map = self.0.in_flight.lock().expect("web seed gate");
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// Holds `guard` until the response body is done (or dropped).
fn hold_until_sent<G: Send + 'static>(resp: Response, guard: G) -> Response {
    use futures_util::StreamExt;
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// One admitted whole-object download; its slot is free again when the body is done or dropped.
struct Slot(Arc<Admission>, Arc<Sending>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut active = self.0.active.lock().expect("admission lock");
        active.retain(|s| !Arc::ptr_eq(s, &self.1));
    }
}

/// Holds the slot until the response body is done (or dropped), counting what it sends.
fn send_counted(resp: Response, slot: Slot) -> Response {
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering;
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    slot.1.length.store(length, Ordering::Relaxed);
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        if let Ok(c) = &chunk {
            slot.1.note(c.len() as u64, Instant::now());
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[derive(Clone)]
struct AppState {
    shared: SharedState,
    published: PathBuf,
    torrents: Torrents,
    admission: Arc<Admission>,
    webseeds: Arc<WebSeedGate>,
    /// `None` when the window is 0 (the default): range requests never touch it.
    ledger: Option<Arc<std::sync::Mutex<Ledger>>>,
    /// The stripe each `.torrent` answer tells its client (`X-Dist-Stripe`).
    stripes: Arc<super::stripes::Stripes>,
}

pub fn router(
    shared: SharedState,
    published: PathBuf,
    objects: PathBuf,
    torrents: Torrents,
    admission: Arc<Admission>,
    webseeds: Arc<WebSeedGate>,
    ledger: Option<Ledger>,
) -> Router {
    let state = AppState {
        shared,
        published: published.clone(),
        torrents,
        admission,
        webseeds,
        ledger: ledger.map(|l| Arc::new(std::sync::Mutex::new(l))),
        stripes: Arc::default(),
    };
    Router::new()
        .route("/index.json", get(index_manifest))
        .route("/index.json.minisig", get(index_sig))
        .route("/index.db", get(format_1))
        .route("/index.db.minisig", get(format_1))
        .route("/torrents/{file}", get(torrent))
        .route("/health", get(health))
        .nest_service("/index", ServeDir::new(published))
        .nest_service("/objects", ServeDir::new(objects))
        .layer(middleware::from_fn_with_state(state.clone(), note_object))
        .with_state(state)
}

async fn index_manifest(State(s): State<AppState>, headers: HeaderMap) -> Response {
    latest(&s, &headers, "").await
}

async fn index_sig(State(s): State<AppState>, headers: HeaderMap) -> Response {
    latest(&s, &headers, ".minisig").await
}

/// What a client of index format 1 asks for: it gets a status and a sentence, never a file it
/// would misread.
async fn format_1() -> Response {
    (
        StatusCode::GONE,
        "this repository publishes index format 2 (GET /index.json): upgrade dist\n",
    )
        .into_response()
}

/// Serves the newest signed manifest (or its signature) with a strong ETag naming the serial,
/// and answers `If-None-Match` with 304 so an unchanged index costs one request and no body.
async fn latest(s: &AppState, headers: &HeaderMap, suffix: &str) -> Response {
    let serial = s.shared.read().expect("state lock").serial;
    let Some(serial) = serial else {
        return (StatusCode::NOT_FOUND, "nothing published yet\n").into_response();
    };
    let etag = format!("\"manifest-{serial}{suffix}\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let path = s.published.join(format!("{serial}.json{suffix}"));
        match tokio::fs::read(&path).await {
            Ok(bytes) => Response::new(Body::from(bytes)),
            Err(_) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "snapshot missing\n").into_response()
            }
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("ascii etag"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-dist-serial", HeaderValue::from(serial));
    resp
}

/// Renders the `.torrent` of any indexed infohash from the master index (trackers and web seeds:
/// this server's, the mirrors it lists, and a mirror's upstream's), and reports the request.
async fn torrent(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(hash) = file
        .strip_suffix(".torrent")
        .and_then(|h| InfoHash::parse(h).ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let object = s.shared.read().expect("state lock").catalog.object(&hash);
    let Some(object) = object else {
        return (StatusCode::NOT_FOUND, format!("no torrent {hash}\n")).into_response();
    };
    let root = s.torrents.root.clone();
    let info = tokio::task::spawn_blocking(move || Repo::new(&root).torrent_info(&hash)).await;
    let info = match info {
        Ok(Ok(Some(info))) => info,
        Ok(Ok(None)) => {
            return (StatusCode::NOT_FOUND, format!("no torrent {hash}\n")).into_response()
        }
        Ok(Err(e)) => {
            let msg = format!("cannot read the torrent of {hash}: {e:#}\n");
            return (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let (trackers, web_seeds) = {
        let shared = s.shared.read().expect("state lock");
        (
            shared.catalog.trackers(&s.torrents.announce_url),
            shared.catalog.web_seeds(&s.torrents.web_seeds, &object),
        )
    };
    let bytes = info.render(&trackers, &web_seeds);
    let _ = s.torrents.requests.try_send(hash);
    let (k, n) = s.stripes.next(&hash, std::time::Instant::now());
    let stripe = HeaderValue::from_str(&format!("{k}/{n}")).expect("digits and a slash");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-bittorrent"),
            ),
            (HeaderName::from_static("x-dist-stripe"), stripe),
        ],
        bytes,
    )
        .into_response()
}

/// Reports a request for an indexed object (`/objects/ab/cdef…`, the web seed included) before
/// it is served.
async fn note_object(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(id) = req
        .uri()
        .path()
        .strip_prefix("/objects/")
        .and_then(object_id)
    {
        let indexed = s.shared.read().expect("state lock").catalog.indexed(&id);
        if let Some((hash, _)) = indexed {
            let _ = s.torrents.requests.try_send(hash);
        }
        let range = req.headers().get(header::RANGE);
        let whole = range.is_none_or(|r| r.as_bytes() == b"bytes=0-");
        let get = req.method() == axum::http::Method::GET;
        if whole && get {
            let Some(slot) = s.admission.enter() else {
                return busy(&s.admission);
            };
            return send_counted(next.run(req).await, slot);
        }
        // A web-seed range the swarm already has (this server sent it within the window). Off
        // (the default): range requests pass without parsing or locking anything.
        let ledger = s.ledger.as_ref().filter(|_| get);
        let asked = ledger.and_then(|l| {
            let r = range?.to_str().ok()?;
            let (first, last) = ledger::webseed_range(r, indexed?.1)?;
            Some((l, first, last))
        });
        if let Some((ledger, first, last)) = asked {
            let fresh = ledger
                .lock()
                .expect("ledger")
                .admit(id, first, last, Instant::now());
            if !fresh {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
                    "the origin sent these pieces to the swarm moments ago: ask the peers\n",
                )
                    .into_response();
            }
        }
        // Unlimited (the default): range requests pass without touching the gate.
        if get && s.webseeds.per_object > 0 {
            let Some(slot) = s.webseeds.enter(id) else {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
                    "the origin serves this object's pieces to the swarm: ask the peers\n",
                )
                    .into_response();
            };
            return hold_until_sent(next.run(req).await, slot);
        }
    }
    next.run(req).await
}

/// The origin's `503` for a whole-object download beyond its slots: `Retry-After`, how many
/// slots it has (`X-Dist-Busy`), and, when it can tell, when the first one frees
/// (`X-Dist-Slot-Free-Ms`) and how fast a slot sends (`X-Dist-Slot-Rate`, bytes/s).
fn busy(admission: &Admission) -> Response {
    let mut resp = (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
            (
                HeaderName::from_static("x-dist-busy"),
                HeaderValue::from(admission.slots),
            ),
        ],
        "the origin is busy: fetch this object from the swarm, or ask again\n",
    )
        .into_response();
    if let Some((left, rate)) = admission.frees_in(Instant::now()) {
        let h = resp.headers_mut();
        let ms = HeaderValue::from(left.as_millis() as u64);
        h.insert(HeaderName::from_static("x-dist-slot-free-ms"), ms);
        h.insert(
            HeaderName::from_static("x-dist-slot-rate"),
            HeaderValue::from(rate),
        );
    }
    resp
}

/// `ab/cdef…` (store-format.md §4) as an object id.
pub(super) fn object_id(rel: &str) -> Option<ObjectId> {
    let (dir, rest) = rel.split_once('/')?;
    if dir.len() != 2 {
        return None;
    }
    ObjectId::parse(&format!("{dir}{rest}")).ok()
}

async fn health(State(s): State<AppState>) -> Response {
    // A publish the watcher has not picked up yet makes the last verdict stale.
    let latest = tokio::fs::read_to_string(s.published.join("LATEST"))
        .await
        .ok();
    let latest: Option<u64> = latest.and_then(|l| l.trim().parse().ok());
    let serial = s.shared.read().expect("state lock").serial;
    if latest != serial {
        let msg = format!("catching up with index serial {}\n", latest.unwrap_or(0));
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    match &s.shared.read().expect("state lock").health {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_name_objects() {
        let id = ObjectId::from_bytes([0xab; 32]);
        assert_eq!(object_id(&id.rel_path()), Some(id));
        assert_eq!(object_id(&id.to_hex()), None);
        assert_eq!(object_id("ab/../cd"), None);
        assert_eq!(object_id(&format!("a/b{}", &id.to_hex()[2..])), None);
    }
}
