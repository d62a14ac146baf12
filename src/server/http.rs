//! The HTTP side of `dist serve`: the newest index manifest and its signature (with conditional
//! GET), the published snapshots and deltas, rendered `.torrent` files, objects with Range support (the BEP 19 web
//! seed) and `/health`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

use crate::format::ids::InfoHash;

/// What the HTTP handlers read; the watcher writes it.
pub struct Shared {
    /// Serial of the newest snapshot.
    pub serial: Option<u64>,
    /// Rendered `.torrent` files by lowercase infohash.
    pub torrents: HashMap<InfoHash, Vec<u8>>,
    /// `Ok` once the tracker has the whitelist and every object is seeding; else why not.
    pub health: Result<(), String>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            serial: None,
            torrents: HashMap::new(),
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

#[derive(Clone)]
struct AppState {
    shared: SharedState,
    published: PathBuf,
}

pub fn router(shared: SharedState, published: PathBuf, objects: PathBuf) -> Router {
    let state = AppState {
        shared,
        published: published.clone(),
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

async fn torrent(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(hash) = file
        .strip_suffix(".torrent")
        .and_then(|h| InfoHash::parse(h).ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bytes = s
        .shared
        .read()
        .expect("state lock")
        .torrents
        .get(&hash)
        .cloned();
    match bytes {
        Some(b) => ([(header::CONTENT_TYPE, "application/x-bittorrent")], b).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no torrent {hash}\n")).into_response(),
    }
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
