//! `dist serve`'s arguments: every key of `ROOT/server.yaml` as a flag.

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// HTTP listen address for the index, torrents and objects (web seed).
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// opentracker listen address.
    #[arg(long, value_name = "HOST:PORT")]
    pub tracker: Option<String>,
    /// Base URL put into magnets and web seeds (default `http://` + the HTTP address).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Announce URL put into torrents and magnets (default `http://` + tracker + `/announce`).
    #[arg(long, value_name = "URL")]
    pub announce_url: Option<String>,
    /// Peer port of the seeding transmission-daemon.
    #[arg(long, value_name = "PORT")]
    pub peer_port: Option<u16>,
    /// RPC port (on 127.0.0.1) of the seeding transmission-daemon.
    #[arg(long, value_name = "PORT")]
    pub rpc_port: Option<u16>,
    /// Upload cap of the seeder in kB/s (1000 bytes); none by default.
    #[arg(long, value_name = "KBPS")]
    pub upload_limit: Option<u32>,
    /// How many index deltas stay published (clients that far behind sync by delta; older
    /// ones fetch the whole index); default 32.
    #[arg(long, value_name = "N")]
    pub index_retention: Option<usize>,
    /// How many whole-object HTTP downloads the origin serves at once (default 2); more are
    /// answered 503 with Retry-After, so `auto` clients take the swarm. Range requests (web
    /// seeds) are never refused.
    #[arg(long, value_name = "N")]
    pub http_slots: Option<usize>,
    /// How many web-seed range requests per object the origin serves at once (0: no limit, the
    /// default); more are answered 503, leaving the origin's bandwidth to its seeder.
    #[arg(long, value_name = "N")]
    pub webseed_slots: Option<usize>,
    /// How many of the newest package versions the seeder holds (default 500), and how many
    /// objects clients ask for besides; every other object is served by the web seed and HTTP.
    #[arg(long, value_name = "N")]
    pub hot_set: Option<usize>,
    /// Seconds a piece sent through the web seed counts as held by the swarm: a web-seed range
    /// request for it again within that time is answered 503, so the peers serve it (default 0:
    /// serve every range request; see ARCHITECTURE.md for what was measured).
    #[arg(long, value_name = "SECS")]
    pub webseed_window: Option<u64>,
    /// Mirror the repository served at URL instead of publishing one: keep a verified copy of
    /// its signed index and objects in --root, serve and seed it, and join its swarms.
    #[arg(long, value_name = "URL")]
    pub mirror_of: Option<String>,
    /// Seconds between two checks of the mirrored repository for a new serial (default 10).
    #[arg(long, value_name = "SECS")]
    pub mirror_interval: Option<u64>,
    /// Another web-seed base URL listed in every `.torrent` this server hands out (a mirror of
    /// this repository); repeatable.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seed: Vec<String>,
    /// Address the seeding transmission-daemon binds and announces from.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// With --mirror-of: the mirrored repository's public key (base64, or a file holding it).
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
}
