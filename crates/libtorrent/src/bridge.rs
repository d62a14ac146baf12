//! The cxx bridge to the C++ shim in `cpp/`: the plain structs that cross the boundary and one
//! C++ function per operation. Sessions live in a table on the C++ side and are named here by a
//! `u64` id, so that the Rust side holds no C++ pointer: nothing to declare `Send`/`Sync` by hand,
//! and the locking that makes a session safe to share between threads is all in the shim.
//! Errors are C++ exceptions whose text is `kind` + `\x1f` + message (see `error.rs`).

#[cxx::bridge(namespace = "distlt")]
pub(crate) mod ffi {
    /// What the shim turns into a `settings_pack` (the crate docs say why each is set).
    struct SessionConfig {
        /// `listen_interfaces`, e.g. `127.0.0.1:0` or `[::1]:6881`.
        listen_interfaces: String,
        /// `outgoing_interfaces`: the bind address, or empty for any.
        outgoing_interfaces: String,
        utp: bool,
        unchoke_slots_limit: i32,
        upload_limit: i32,
        download_limit: i32,
        max_web_seed_connections: i32,
        urlseed_max_request_bytes: i32,
    }

    /// What `add_torrent` needs besides the .torrent bytes.
    struct AddParams {
        save_path: String,
        seed_mode: bool,
        has_resume: bool,
        resume: Vec<u8>,
        paused: bool,
        web_seeds: bool,
        /// Pieces `i` with `i % stripe_n == stripe_k` get top priority; `stripe_n == 0`: none.
        stripe_k: u32,
        stripe_n: u32,
    }

    /// One torrent's status, flattened.
    struct TorrentStatus {
        /// `lt::torrent_status::state_t` as a number.
        state: u8,
        progress: f32,
        total_wanted: i64,
        total_wanted_done: i64,
        total_done: i64,
        num_peers: i32,
        num_seeds: i32,
        /// `total_payload_download`: payload from every source, this session.
        payload_download: i64,
        /// Payload from BitTorrent peers / from web seeds (url or http seeds), this session.
        from_peers: i64,
        from_web_seeds: i64,
        /// `total_payload_upload`, this session.
        payload_upload: i64,
        is_seeding: bool,
        is_finished: bool,
        paused: bool,
        /// Empty when the torrent has no error.
        error: String,
    }

    unsafe extern "C++" {
        include!("dist-libtorrent/cpp/shim.h");

        fn session_new(cfg: &SessionConfig) -> Result<u64>;
        fn session_free(id: u64);
        fn listen_port(id: u64) -> u16;
        fn set_limits(id: u64, upload: i32, download: i32);
        fn add_torrent(id: u64, torrent: &[u8], params: &AddParams) -> Result<Vec<u8>>;
        fn torrent_status(id: u64, ih: &[u8]) -> Result<TorrentStatus>;
        fn remove_torrent(id: u64, ih: &[u8], delete_files: bool, timeout_ms: u32) -> Result<()>;
        fn resume_data(id: u64, ih: &[u8], timeout_ms: u32) -> Result<Vec<u8>>;
        fn remove_web_seeds(id: u64, ih: &[u8]) -> Result<()>;
        fn prioritize_stripe(id: u64, ih: &[u8], k: u32, n: u32) -> Result<()>;
        fn piece_priorities(id: u64, ih: &[u8]) -> Result<Vec<u8>>;
        fn set_paused(id: u64, ih: &[u8], paused: bool) -> Result<()>;
        fn connect_peer(id: u64, ih: &[u8], ip: &str, port: u16) -> Result<()>;
        fn state_history(id: u64, ih: &[u8]) -> Result<Vec<u8>>;
    }
}
