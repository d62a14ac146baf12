//! A torrent's status as the crate reports it: [`Status`] and its [`State`].

use crate::bridge::ffi;

/// `lt::torrent_status::state_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Hashing the files on disk (no usable resume data, or it was rejected).
    CheckingFiles,
    /// A magnet link without metadata yet (not used by this crate: it always has the .torrent).
    DownloadingMetadata,
    /// Downloading.
    Downloading,
    /// Has every wanted piece, but not all pieces (some have priority 0).
    Finished,
    /// Has every piece.
    Seeding,
    /// Checking the resume data against the files (sizes), before any hashing.
    CheckingResumeData,
    /// A value this crate does not know.
    Other(u8),
}

impl State {
    pub(crate) fn from_lt(n: u8) -> State {
        match n {
            1 => State::CheckingFiles,
            2 => State::DownloadingMetadata,
            3 => State::Downloading,
            4 => State::Finished,
            5 => State::Seeding,
            7 => State::CheckingResumeData,
            other => State::Other(other),
        }
    }
}

/// One torrent's status. Byte counts are payload (no protocol overhead), for this session (since
/// the torrent was added), except `total_*`, which describe the data on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: State,
    /// 0.0 ..= 1.0, of the wanted pieces.
    pub progress: f32,
    /// Bytes of the pieces wanted (priority > 0).
    pub total_wanted: u64,
    /// Verified bytes of the wanted pieces on disk.
    pub total_wanted_done: u64,
    /// Verified bytes on disk, all pieces.
    pub total_done: u64,
    /// Connected peers (web seeds included) and, of those, seeds.
    pub num_peers: u32,
    pub num_seeds: u32,
    /// Payload downloaded from BitTorrent peers (including bytes that turned out redundant or
    /// failed the hash check).
    pub downloaded_from_peers: u64,
    /// Payload downloaded from web seeds (BEP 19 `url-list` and BEP 17 http seeds), likewise.
    pub downloaded_from_web_seeds: u64,
    /// libtorrent's own total (`total_payload_download`), all sources.
    pub downloaded: u64,
    /// Payload uploaded (`total_payload_upload`).
    pub uploaded: u64,
    pub is_seeding: bool,
    /// Has every wanted piece.
    pub is_finished: bool,
    pub paused: bool,
    /// The torrent's error (a file it cannot write, ...), if any.
    pub error: Option<String>,
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl From<ffi::TorrentStatus> for Status {
    fn from(s: ffi::TorrentStatus) -> Self {
        Status {
            state: State::from_lt(s.state),
            progress: s.progress,
            total_wanted: unsigned(s.total_wanted),
            total_wanted_done: unsigned(s.total_wanted_done),
            total_done: unsigned(s.total_done),
            num_peers: u32::try_from(s.num_peers).unwrap_or(0),
            num_seeds: u32::try_from(s.num_seeds).unwrap_or(0),
            downloaded_from_peers: unsigned(s.from_peers),
            downloaded_from_web_seeds: unsigned(s.from_web_seeds),
            downloaded: unsigned(s.payload_download),
            uploaded: unsigned(s.payload_upload),
            is_seeding: s.is_seeding,
            is_finished: s.is_finished,
            paused: s.paused,
            error: (!s.error.is_empty()).then_some(s.error),
        }
    }
}
