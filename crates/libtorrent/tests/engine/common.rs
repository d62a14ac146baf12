//! Test helpers: file contents, hand-bencoded .torrent files, loopback sessions, a bounded wait on
//! a torrent's status, and a tiny HTTP/1.1 web seed (keep-alive, `Range:` GETs) on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dist_libtorrent::{Config, InfoHash20, Session, Status};
use sha1::{Digest, Sha1};

pub const MIB: usize = 1024 * 1024;
pub const PIECE: usize = 64 * 1024;
/// Long enough for a debug build on a busy 2-core machine; a loopback transfer takes ~1 s.
pub const PATIENCE: Duration = Duration::from_secs(90);
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `len` pseudo-random bytes (xorshift), different for each `seed`.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

fn bint(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(format!("i{n}e").as_bytes());
}

/// The bencoded info dict of a single-file torrent (keys in order).
pub fn info_dict(name: &str, data: &[u8], piece_len: usize) -> Vec<u8> {
    let pieces: Vec<u8> = data
        .chunks(piece_len)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    let mut info = b"d".to_vec();
    bstr(&mut info, b"length");
    bint(&mut info, data.len());
    bstr(&mut info, b"name");
    bstr(&mut info, name.as_bytes());
    bstr(&mut info, b"piece length");
    bint(&mut info, piece_len);
    bstr(&mut info, b"pieces");
    bstr(&mut info, &pieces);
    info.push(b'e');
    info
}

/// A single-file .torrent of `data`, with a `url-list` web seed if given.
pub fn torrent(name: &str, data: &[u8], web_seed: Option<&str>) -> Vec<u8> {
    let mut t = b"d".to_vec();
    bstr(&mut t, b"info");
    t.extend_from_slice(&info_dict(name, data, PIECE));
    if let Some(url) = web_seed {
        bstr(&mut t, b"url-list");
        bstr(&mut t, url.as_bytes());
    }
    t.push(b'e');
    t
}

/// The SHA-1 of the torrent's info dict, as the test computes it.
pub fn info_hash(name: &str, data: &[u8]) -> InfoHash20 {
    Sha1::digest(info_dict(name, data, PIECE)).into()
}

/// A session on 127.0.0.1, any port.
pub fn session(utp: bool) -> Session {
    Session::new(&Config {
        bind: LOOPBACK,
        port: 0,
        utp,
        ..Config::default()
    })
    .expect("session on 127.0.0.1")
}

pub fn addr_of(s: &Session) -> SocketAddr {
    SocketAddr::new(LOOPBACK, s.listen_port())
}

/// Polls the torrent's status until `done` holds; panics with the last status after `PATIENCE`.
pub fn wait_for(
    s: &Session,
    ih: &InfoHash20,
    what: &str,
    done: impl Fn(&Status) -> bool,
) -> Status {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let st = s.status(ih).expect("status");
        if done(&st) {
            return st;
        }
        if Instant::now() >= deadline {
            let history = s.state_history(ih);
            panic!("{what}: not within {PATIENCE:?}; last status {st:#?}; states {history:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `data` to `dir/name`.
pub fn put(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).expect("write the seed's file");
}

/// An HTTP/1.1 server on 127.0.0.1 serving `data` at one path, with keep-alive and single-range
/// `Range:` GETs (206), as libtorrent's web seed connections use them. Stops when dropped.
pub struct WebSeed {
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebSeed {
    pub fn start(path: &str, data: Arc<Vec<u8>>) -> WebSeed {
        let listener = TcpListener::bind((LOOPBACK, 0)).expect("bind the web seed");
        let addr = listener.local_addr().expect("its address");
        let served = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (path, served2, stop2) = (path.to_string(), served.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (path, data, served) = (path.clone(), data.clone(), served2.clone());
                // Each connection ends at EOF or after 30 s without a request.
                std::thread::spawn(move || {
                    let _ = serve(stream, &path, &data, &served);
                });
            }
        });
        WebSeed {
            addr,
            served,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Body bytes sent so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for WebSeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `bytes=a-b` / `bytes=a-` as an inclusive range within `len`.
fn parse_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let (a, b) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len - 1,
        b => b.parse::<usize>().ok()?.min(len - 1),
    };
    (start <= end).then_some((start, end))
}

/// Answers the requests of one connection, in order, until EOF.
fn serve(stream: TcpStream, path: &str, data: &[u8], served: &AtomicU64) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut range = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("range") {
                    range = parse_range(value, data.len());
                }
            }
        }
        if target != path {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let (start, end) = range.unwrap_or((0, data.len() - 1));
        let head = match range {
            Some(_) => format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{}\r\n",
                data.len()
            ),
            None => "HTTP/1.1 200 OK\r\n".to_string(),
        };
        let body = &data[start..=end];
        out.write_all(head.as_bytes())?;
        out.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())?;
        out.write_all(body)?;
        served.fetch_add(body.len() as u64, Ordering::SeqCst);
    }
}
