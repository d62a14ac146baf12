//! The crate's typed error. The C++ shim throws `kind` + `\x1f` + libtorrent's message; cxx hands
//! that over as a `cxx::Exception`, which becomes the [`Error`] variant of that kind, carrying
//! the message.

/// What went wrong, with libtorrent's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The .torrent bytes are not a valid torrent (bencoding, info dict, ...).
    #[error("invalid .torrent: {0}")]
    InvalidTorrent(String),
    /// The resume data does not decode, or is for another torrent.
    #[error("invalid resume data: {0}")]
    InvalidResume(String),
    /// No torrent of that info hash in this session.
    #[error("no torrent {0} in this session")]
    UnknownTorrent(String),
    /// The torrent is in this session already.
    #[error("torrent already in this session: {0}")]
    Duplicate(String),
    /// An argument the call cannot use (a stripe with `k >= n`, an address, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// libtorrent did not answer within the bounded wait (resume data, removal).
    #[error("timed out: {0}")]
    Timeout(String),
    /// Any other failure reported by libtorrent.
    #[error("libtorrent: {0}")]
    Libtorrent(String),
}

impl From<cxx::Exception> for Error {
    fn from(e: cxx::Exception) -> Self {
        let (kind, message) = e.what().split_once('\x1f').unwrap_or(("", e.what()));
        let message = message.to_string();
        match kind {
            "invalid-torrent" => Error::InvalidTorrent(message),
            "invalid-resume" => Error::InvalidResume(message),
            "unknown-torrent" => Error::UnknownTorrent(message),
            "duplicate" => Error::Duplicate(message),
            "invalid-argument" => Error::InvalidArgument(message),
            "timeout" => Error::Timeout(message),
            _ => Error::Libtorrent(message),
        }
    }
}
