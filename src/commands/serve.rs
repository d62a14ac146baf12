//! `dist serve --http HOST:PORT --tracker HOST:PORT --bind ADDR [--public-url URL] [--hot-set N]
//! [--mirror-of URL --public-key KEY] [--web-seed URL]...`

use anyhow::Result;
use dist::server::{self, ServeConfig, ServeEvent, ServerFile};

use super::out::{count, size};
use super::Global;
use crate::cli::ServeArgs;

pub fn run(
    g: &Global,
    args: &ServeArgs,
    bind: Option<String>,
    public_key: Option<String>,
) -> Result<i32> {
    let flags = ServerFile {
        announce_url: args.announce_url.clone(),
        http: args.http.clone(),
        tracker: args.tracker.clone(),
        bind,
        public_url: args.public_url.clone(),
        peer_port: args.peer_port,
        rpc_port: args.rpc_port,
        upload_limit: args.upload_limit,
        index_retention: args.index_retention,
        http_slots: args.http_slots,
        webseed_slots: args.webseed_slots,
        hot_set: args.hot_set,
        webseed_window: args.webseed_window,
        mirror_of: args.mirror_of.clone(),
        public_key,
        mirror_interval: args.mirror_interval,
        web_seeds: (!args.web_seed.is_empty()).then(|| args.web_seed.clone()),
    };
    let cfg = ServeConfig::resolve(ServerFile::load(&g.root)?.merge(flags))?;
    match unreachable_host(&cfg.announce_url) {
        Some(Unreachable::Loopback(host)) => eprintln!(
            "warning  the announce URL {} names the loopback address {host}: other machines \
             cannot reach that tracker and transmission ignores peers on 127.x, so no swarm \
             forms; give --tracker (or --announce-url) this machine's address",
            cfg.announce_url
        ),
        Some(Unreachable::Unspecified(host)) => eprintln!(
            "warning  the announce URL {} names {host}, which is no machine's address: peers \
             cannot reach that tracker, so no swarm forms; give --announce-url \
             http://HOST:PORT/announce (or --public-url, whose host it then takes)",
            cfg.announce_url
        ),
        None => {}
    }
    let quiet = g.quiet;
    let report = move |e: ServeEvent| {
        if quiet && !matches!(e, ServeEvent::Problem(_)) {
            return;
        }
        say(e);
    };
    server::serve(&g.root, &cfg, &report)?;
    Ok(0)
}

/// One line on standard error for what the server did.
fn say(e: ServeEvent) {
    match e {
        ServeEvent::Http {
            http,
            public_url,
            connections,
        } => eprintln!(
            "http     listening on {http} (public URL {public_url}; at most {} connections, \
             {} per address)",
            connections.total, connections.per_address
        ),
        ServeEvent::Listening {
            tracker,
            announce_url,
            peer,
            rpc_port,
            hot_set,
        } => {
            eprintln!("tracker  opentracker on {tracker} (announce {announce_url})");
            eprintln!(
                "seeder   transmission-daemon peer {peer}, RPC 127.0.0.1:{rpc_port}, \
                 hot set {hot_set}"
            );
        }
        ServeEvent::Published { serial, packages } => {
            eprintln!(
                "index    serial {serial}, {}",
                count(packages as u64, "package version")
            )
        }
        ServeEvent::Mirrored {
            upstream,
            serial,
            packages,
            fetched,
            fetched_bytes,
        } => {
            let (versions, objects) = (
                count(packages, "package version"),
                count(fetched as u64, "object"),
            );
            let bytes = size(fetched_bytes);
            eprintln!(
                "mirror   serial {serial} of {upstream} verified: {versions}, {objects} fetched ({bytes})"
            )
        }
        ServeEvent::Seeder {
            hot,
            added,
            removed,
            repointed,
            resumed,
        } => eprintln!(
            "seeder   hot set {hot}: {added} added, {removed} removed, \
             {repointed} re-pointed at this tracker, {resumed} resumed"
        ),
        ServeEvent::Promoted { infohash, evicted } => match evicted {
            Some(old) => eprintln!("hot      {infohash} requested (evicts {old})"),
            None => eprintln!("hot      {infohash} requested"),
        },
        ServeEvent::Healthy { seeding } => eprintln!(
            "ready    {seeding} hot torrents seeding and announced, every infohash \
             tracked (GET /health is 200)"
        ),
        ServeEvent::Unhealthy(why) => eprintln!("unready  {why} (GET /health is 503)"),
        ServeEvent::Problem(p) => eprintln!("warning  {p}"),
        ServeEvent::Stopping => eprintln!("stopping tracker and seeder"),
    }
}

/// Why peers elsewhere cannot reach an announce URL's host.
#[derive(Debug, PartialEq, Eq)]
enum Unreachable {
    /// `127.x`, `::1`, `localhost`: this machine only.
    Loopback(String),
    /// `0.0.0.0`, `::`: a listening address, no machine's.
    Unspecified(String),
}

/// The host of `url` when peers elsewhere cannot reach it.
fn unreachable_host(url: &str) -> Option<Unreachable> {
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return Some(Unreachable::Loopback(bare.to_string()));
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => Some(Unreachable::Loopback(bare.to_string())),
        Ok(ip) if ip.is_unspecified() => Some(Unreachable::Unspecified(bare.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_loopback_announce_url_is_told_apart_issue_23_finding_4() {
        use super::{unreachable_host as u, Unreachable::*};
        let l = |s: &str| Some(Loopback(s.to_string()));
        assert_eq!(u("http://127.0.0.1:6969/announce"), l("127.0.0.1"));
        assert_eq!(u("http://127.3.2.1/announce"), l("127.3.2.1"));
        assert_eq!(u("http://localhost:6969/announce"), l("localhost"));
        assert_eq!(u("http://[::1]:6969/announce"), l("::1"));
        assert_eq!(
            u("http://0.0.0.0:6969/announce"),
            Some(Unspecified("0.0.0.0".into()))
        );
        assert_eq!(u("http://10.0.0.1:6969/announce"), None);
        assert_eq!(u("https://tracker.example/announce"), None);
    }
}
