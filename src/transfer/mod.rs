//! One object over HTTP, for the client's HTTP transport (`client/fetch/http.rs`, and through
//! it `dist bundle`) and a mirror's objects (`repo/mirror_objects.rs`) alike: a GET into a
//! partial file, resumed with `Range` from the bytes already there, never more bytes than the
//! object's size, hashed as they are written (BLAKE3, and the torrent's pieces when asked), so a
//! server that sent other bytes is named by a typed [`Error`] the moment the body ends.
//!
//! What is policy stays with the caller, behind a [`Watch`]: whether a busy server (`503`, its
//! [`Busy`] hints) is waited for and how long, when to stop (Ctrl-C, a failed fellow download,
//! a server shutting down), progress, pausing midway (the client's handover to the swarm),
//! which server to ask next, and what to call each failure. [`pool`] runs several downloads
//! at once. Nothing here imports `client/`, `server/`, `repo/` or `commands/`.

mod body;
pub mod pool;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::format::ids::ObjectId;
use crate::format::torrent::PieceHasher;

pub use body::Hashes;
pub use pool::{in_parallel, Halt};

/// One object to download.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub url: &'a str,
    /// The partial file: gone on from with `Range` when it holds a prefix, taken as it is when
    /// it already holds the whole object; the whole object once [`download`] returns
    /// [`Ended::Whole`].
    pub part: &'a Path,
    /// The object's size: a body that would make the file longer is refused.
    pub size: u64,
    pub blake3: ObjectId,
    /// Also compute the torrent's pieces ([`PieceHasher`]) over the bytes.
    pub pieces: bool,
}

/// How a download ended without an error.
#[derive(Debug)]
pub enum Ended {
    /// The partial file holds the whole object, with the expected BLAKE3. `received`: the bytes
    /// this call brought (0 when the file was whole already). `pieces` when they were asked for.
    Whole {
        received: u64,
        pieces: Option<PieceHasher>,
    },
    /// The watch paused it ([`Flow::Pause`]): the first `have` bytes are in the partial file.
    Paused { have: u64 },
}

/// What a busy server (`503`) said about when to ask again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Busy {
    /// `Retry-After`, when it gives a number of seconds.
    pub retry_after: Option<Duration>,
    /// `X-Dist-Slot-Free-Ms`: how soon `dist serve` expects its first whole-object slot to free.
    pub slot_free: Option<Duration>,
    /// `X-Dist-Slot-Rate`: the bytes a second one of its slots sends.
    pub slot_rate: Option<u64>,
}

impl Busy {
    fn of(resp: &ureq::Response) -> Busy {
        let number = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        Busy {
            retry_after: crate::net::retry_after(resp),
            slot_free: number("x-dist-slot-free-ms").map(Duration::from_millis),
            slot_rate: number("x-dist-slot-rate"),
        }
    }

    /// The wait `Retry-After` asks for (1 s when it does not say), bounded to `floor..=ceil`.
    pub fn wait(&self, floor: Duration, ceil: Duration) -> Duration {
        self.retry_after
            .unwrap_or(Duration::from_secs(1))
            .clamp(floor, ceil)
    }
}

/// Why a download failed. Callers branch on the kind (busy: wait or go elsewhere; a body that is
/// not the object: an attack by that server; stopped: the caller's own reason) and may word it
/// their own way; the messages here are the client's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `503`, and the watch chose not to wait (again).
    #[error("GET {url}: HTTP 503")]
    Busy { url: String, busy: Busy },
    #[error("GET {url}: HTTP 404")]
    NotFound { url: String },
    /// Any other refusal.
    #[error("GET {url}: HTTP {code}")]
    Status { url: String, code: u16 },
    /// No answer: the connection failed (`cause` is the innermost one).
    #[error("cannot reach {url}: {cause}")]
    Transport { url: String, cause: String },
    /// The body stopped with a read error (it is kept in the partial file).
    #[error("download of {url} was interrupted")]
    Cut {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The body would make the object longer than `size`; `found` is the BLAKE3 of the first
    /// `size + 1` bytes.
    #[error("{url} sent more than the {size} bytes the index promises")]
    TooLarge {
        url: String,
        size: u64,
        found: ObjectId,
    },
    /// The body ended after `got` bytes of the object (kept in the partial file); `found` is
    /// their BLAKE3.
    #[error("{url}: got {got} of {size} bytes")]
    Short {
        url: String,
        got: u64,
        size: u64,
        found: ObjectId,
    },
    /// `size` bytes, but not the object: the partial file was removed.
    #[error("{url} sent bytes with blake3 {found}, expected {expected}")]
    HashMismatch {
        url: String,
        found: ObjectId,
        expected: ObjectId,
    },
    /// The watch said stop, while waiting for a busy server or while the body arrived.
    #[error("stopped while {} {url}", if *waiting { "waiting for" } else { "downloading" })]
    Stopped { url: String, waiting: bool },
    /// The partial file could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Disk {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the body's reader does next, as the watch says after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    /// End here, the bytes so far kept in the partial file ([`Ended::Paused`]).
    Pause,
    /// End with [`Error::Stopped`].
    Stop,
}

/// Where the body is, after a chunk was written and hashed.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    /// Bytes of the object in the partial file now.
    pub done: u64,
    /// Of those, the bytes this response brought.
    pub new: u64,
    /// This chunk's bytes.
    pub read: u64,
    /// Since the body started.
    pub took: Duration,
}

/// The caller's side of a download: its policy, asked at each step.
pub trait Watch {
    /// Polled before each read of the body and through every wait: true ends the download
    /// with [`Error::Stopped`].
    fn stopped(&self) -> bool;
    /// Before each request (the first, and each one after a `503`).
    fn asking(&mut self) {}
    /// The server answered `503`: wait this long and ask again, or `None` to end with
    /// [`Error::Busy`].
    fn busy(&mut self, busy: &Busy) -> Option<Duration>;
    /// The request ended in something other than `503`: a body follows, or the error of an
    /// answer or a connection that failed.
    fn admitted(&mut self) {}
    /// After each chunk of the body is written and hashed.
    fn chunk(&mut self, _at: &Chunk) -> Flow {
        Flow::Go
    }
    /// How many bytes each read of the body asks for.
    fn read_size(&self) -> usize {
        256 << 10
    }
}

/// Downloads `target` with `agent` into its partial file (see the module comment): a whole
/// partial file that is the object is taken without a request, one that is not is dropped; a
/// prefix is gone on from with `Range` (a server that ignores it sends the whole, one that
/// cannot serve it, `416`, is asked for the whole). Each `503` goes to `watch`.
pub fn download(
    agent: &ureq::Agent,
    target: &Target<'_>,
    watch: &mut dyn Watch,
) -> Result<Ended, Error> {
    let mut have = body::kept(target)?;
    if have == target.size {
        let (found, pieces) = body::hash_prefix(target, have)?.finish();
        if found == target.blake3 {
            return Ok(Ended::Whole {
                received: 0,
                pieces,
            });
        }
        body::remove(target.part)?;
        have = 0;
    }
    let (resp, have) = admitted(agent, target, have, watch)?;
    body::receive(resp, target, have, watch)
}

/// The first answer other than `503` to a GET of `target` from byte `have` on, with where its
/// body starts; each `503` is waited for as `watch` says.
fn admitted(
    agent: &ureq::Agent,
    target: &Target<'_>,
    have: u64,
    watch: &mut dyn Watch,
) -> Result<(ureq::Response, u64), Error> {
    let mut have = have;
    loop {
        watch.asking();
        match request(agent, target, have) {
            Err(Error::Busy { url, busy }) => match watch.busy(&busy) {
                Some(wait) => pause(wait, target.url, watch)?,
                None => return Err(Error::Busy { url, busy }),
            },
            other => {
                watch.admitted();
                return other;
            }
        }
        // A `416` answer dropped the partial file before a `503`.
        have = have.min(body::kept(target)?);
    }
}

/// One GET of `target` from byte `have` on; a server that cannot serve that range (`416`)
/// gets a plain GET and the partial file is dropped. The response and where its body starts.
fn request(
    agent: &ureq::Agent,
    target: &Target<'_>,
    have: u64,
) -> Result<(ureq::Response, u64), Error> {
    let url = target.url;
    let mut req = agent.get(url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    match req.call() {
        Err(ureq::Error::Status(416, _)) if have > 0 => {
            body::remove(target.part)?;
            let resp = agent.get(url).call().map_err(|e| refused(url, e))?;
            Ok((resp, 0))
        }
        r => Ok((r.map_err(|e| refused(url, e))?, have)),
    }
}

/// The typed error of a request that got no usable answer.
fn refused(url: &str, e: ureq::Error) -> Error {
    let url = url.to_string();
    match e {
        ureq::Error::Status(503, resp) => Error::Busy {
            url,
            busy: Busy::of(&resp),
        },
        ureq::Error::Status(404, _) => Error::NotFound { url },
        ureq::Error::Status(code, _) => Error::Status { url, code },
        ureq::Error::Transport(t) => Error::Transport {
            url,
            cause: crate::net::transport_cause(&t),
        },
    }
}

/// Sleeps `d`, asking `watch` every 50 ms (and once at least) whether to stop.
fn pause(d: Duration, url: &str, watch: &dyn Watch) -> Result<(), Error> {
    let until = Instant::now() + d;
    loop {
        if watch.stopped() {
            return Err(Error::Stopped {
                url: url.to_string(),
                waiting: true,
            });
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50).min(until - now));
    }
}
