//! The first step of a sync: what every configured server offers. Each is asked for its
//! manifest at once (a conditional GET against the local copy, one thread per server), so a
//! sync can take the newest verified serial and name the servers that are behind.

use anyhow::Result;

use super::config::Settings;
use super::index_copy::{usable_local, IndexDir, IndexState, IndexUnchanged};
use super::trust::Trust;
use crate::index::keys::{self, Followed};
use crate::index::wire::{Remote, SignedManifest};
use crate::net::ServerUrl;

/// The largest manifest a client accepts.
const MAX_MANIFEST: u64 = 4 << 20;

/// How long a sync waits for a server to accept its connection (at most `http_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The local copy as every server's offer is weighed against it.
pub(super) struct Held {
    /// What `state.json` says.
    pub prev: Option<IndexState>,
    /// The copy, when it can take deltas and a `304` (the trusted key verified it, its file
    /// and state agree).
    pub local: Option<IndexState>,
    /// Whether the trusted key verified it.
    pub bound: bool,
}

impl Held {
    pub fn read(idx: &IndexDir, trust: &Trust) -> Result<Held> {
        let prev = idx.state()?;
        // A copy another key verified is fetched and verified again, whole (no `If-None-Match`).
        let bound = trust
            .check_copy(prev.as_ref().and_then(|p| p.key.as_deref()))
            .is_ok();
        let local = usable_local(idx, prev.as_ref()).filter(|_| bound);
        Ok(Held { prev, local, bound })
    }
}

/// One server's answer to the manifest request, and its connection, which fetches the rest.
pub(super) struct Offer<'a> {
    pub server: &'a str,
    pub wire: Remote<'a>,
    /// The verified manifest (`None`: not modified since the local copy) and the rotations
    /// it took to verify it; or why it was refused.
    pub answer: Result<(Option<SignedManifest>, Option<Followed>)>,
}

impl Offer<'_> {
    /// The serial it offers (`have`, the local one, when not modified); `None` when it failed.
    pub fn serial(&self, have: Option<u64>) -> Option<u64> {
        match &self.answer {
            Ok((Some(f), _)) => Some(f.manifest.serial),
            Ok((None, _)) => have,
            Err(_) => None,
        }
    }

    pub fn unchanged(&self) -> bool {
        matches!(self.answer, Ok((None, _)))
    }
}

/// Asks every server for its manifest, all at once (each within `http_timeout`), in the order
/// of `servers`.
pub(super) fn ask_all<'a>(
    servers: &'a [ServerUrl],
    cfg: &Settings,
    trust: &Trust,
    held: &Held,
) -> Vec<Offer<'a>> {
    let etag = held.local.as_ref().and_then(|p| p.etag.as_deref());
    let limit = MAX_MANIFEST.min(cfg.max_index_size);
    let ask = |server: &'a ServerUrl| {
        // A server that cannot be reached (a mirror that is down) costs seconds, not the whole
        // `http_timeout`: the others are waited for.
        // Proxied as every fetch from a server (`HTTP_PROXY`, `NO_PROXY`, …); a cause keeps
        // its type (the `--json` kind tells a signature from an outage).
        let builder = ureq::AgentBuilder::new()
            .timeout(cfg.http_timeout)
            .timeout_connect(cfg.http_timeout.min(CONNECT_TIMEOUT));
        let (wire, answer) = match crate::net::with_proxy(builder, server) {
            Ok(agent) => {
                let mut wire = Remote::new(agent, server);
                let answer =
                    keys::fetch_manifest(&mut wire, trust.key(), trust.revoked(), etag, limit);
                (wire, answer)
            }
            Err(e) => (Remote::new(ureq::agent(), server), Err(e)),
        };
        let answer = answer.map_err(|e| anyhow::Error::new(IndexUnchanged(e)));
        Offer {
            server,
            wire,
            answer,
        }
    };
    if servers.len() == 1 {
        return servers.iter().map(ask).collect();
    }
    std::thread::scope(|s| {
        let asking: Vec<_> = servers
            .iter()
            .map(|server| s.spawn(|| ask(server)))
            .collect();
        asking
            .into_iter()
            .map(|h| h.join().expect("a manifest request panicked"))
            .collect()
    })
}
