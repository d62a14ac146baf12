//! A minimal real HTTP/1.1 file server on a free loopback port, for tests that need a repository
//! server whose files they control byte for byte (a hostile but validly signed index, a
//! `.torrent` that contradicts it) without the tracker and seeder `dist serve` starts. GET only,
//! `Connection: close`; stopped and joined on drop. One connection at a time, or (see
//! [`FileServer::start_overlapping`]) each on its own thread, counting the object downloads that
//! overlap.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct FileServer {
    pub url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    overlap: Option<Arc<Overlap>>,
}

impl FileServer {
    /// Serves the files below `dir` at `http://127.0.0.1:PORT/<relative path>`.
    pub fn start(dir: &Path) -> FileServer {
        FileServer::spawn(dir, None)
    }

    /// Like [`FileServer::start`], but serves each connection on its own thread and holds every
    /// object request (`/objects/…`, found or not) until `want` of them are open together, so
    /// that downloads which can overlap do; a client that asks one at a time releases the hold
    /// only after `hold` (then nothing is held any more). [`FileServer::most_objects_at_once`]
    /// tells what it saw.
    pub fn start_overlapping(dir: &Path, want: usize, hold: Duration) -> FileServer {
        FileServer::spawn(
            dir,
            Some(Arc::new(Overlap {
                want,
                hold,
                seen: Mutex::new(Seen::default()),
                changed: Condvar::new(),
            })),
        )
    }

    /// The most object requests that were open at once (0 without `start_overlapping`).
    pub fn most_objects_at_once(&self) -> usize {
        self.overlap
            .as_ref()
            .map_or(0, |o| o.seen.lock().unwrap().most)
    }

    /// The object requests open now (0 without `start_overlapping`).
    pub fn objects_open(&self) -> usize {
        self.overlap
            .as_ref()
            .map_or(0, |o| o.seen.lock().unwrap().open)
    }

    /// Ends the hold of a `start_overlapping` server now: the requests held are answered.
    pub fn release(&self) {
        if let Some(o) = &self.overlap {
            o.seen.lock().unwrap().released = true;
            o.changed.notify_all();
        }
    }

    fn spawn(dir: &Path, overlap: Option<Arc<Overlap>>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, flag, gate) = (dir.to_path_buf(), stop.clone(), overlap.clone());
        let thread = std::thread::spawn(move || {
            let mut each = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match (listener.accept(), &gate) {
                    (Ok((stream, _)), None) => serve_one(stream, &dir, None),
                    (Ok((stream, _)), Some(gate)) => {
                        let (dir, gate) = (dir.clone(), gate.clone());
                        each.push(std::thread::spawn(move || {
                            serve_one(stream, &dir, Some(&*gate))
                        }));
                    }
                    (Err(_), _) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for t in each {
                let _ = t.join();
            }
        });
        FileServer {
            url,
            stop,
            thread: Some(thread),
            overlap,
        }
    }
}

/// The object requests of a [`FileServer::start_overlapping`] server.
struct Overlap {
    want: usize,
    hold: Duration,
    seen: Mutex<Seen>,
    changed: Condvar,
}

#[derive(Default)]
struct Seen {
    open: usize,
    most: usize,
    /// `want` were open together once, or a hold ran out: nothing is held any more.
    released: bool,
}

impl Overlap {
    /// Counts one object request open (until the guard drops), after holding it as described
    /// in [`FileServer::start_overlapping`].
    fn enter(&self) -> Open<'_> {
        let mut seen = self.seen.lock().unwrap();
        seen.open += 1;
        seen.most = seen.most.max(seen.open);
        if seen.open >= self.want {
            seen.released = true;
        }
        self.changed.notify_all();
        let until = Instant::now() + self.hold;
        while !seen.released {
            let now = Instant::now();
            if now >= until {
                seen.released = true;
                self.changed.notify_all();
                break;
            }
            seen = self.changed.wait_timeout(seen, until - now).unwrap().0;
        }
        drop(seen);
        Open(self)
    }
}

/// One object request open at an [`Overlap`] server.
struct Open<'a>(&'a Overlap);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.seen.lock().unwrap().open -= 1;
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: TcpStream, dir: &Path, overlap: Option<&Overlap>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    // Open until the whole answer is written.
    let _open = overlap
        .filter(|_| path.starts_with("/objects/"))
        .map(Overlap::enter);
    let body = file_below(dir, path).and_then(|p| std::fs::read(p).ok());
    let mut out = &stream;
    let _ = match body {
        Some(b) => out
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            )
            .and_then(|_| out.write_all(&b)),
        None => out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

/// The file a request path names, if it stays below `dir`.
fn file_below(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
        .filter(|p| p.is_file())
}
