//! transfer/'s rules, each against a loopback HTTP server that answers as scripted (no mock of
//! the HTTP client: ureq speaks to a real socket).

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// One scripted answer.
struct Answer {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn answer(status: &'static str, body: &[u8]) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_vec(),
    }
}

/// A loopback HTTP server that answers its requests with `answers` in turn, one connection
/// each; its URL, and the request heads it read (lowercased).
fn serve(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/objects/x", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for (a, stream) in answers.into_iter().zip(listener.incoming()) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut head, mut line) = (String::new(), String::new());
            while reader.read_line(&mut line).unwrap() > 2 {
                head.push_str(&line.to_ascii_lowercase());
                line.clear();
            }
            seen.lock().unwrap().push(head);
            let mut out = format!("HTTP/1.1 {}\r\nConnection: close\r\n", a.status);
            for (k, v) in &a.headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str(&format!("Content-Length: {}\r\n\r\n", a.body.len()));
            // The client may hang up once it has read what it wants.
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&a.body);
        }
    });
    (url, heads)
}

/// Bytes that do not repeat, spanning several pieces.
fn object() -> Vec<u8> {
    (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn id(bytes: &[u8]) -> ObjectId {
    ObjectId::from_bytes(*blake3::hash(bytes).as_bytes())
}

/// A scripted policy: waits `wait` on a `503` (or gives up), stops after `stop_after` polls,
/// pauses at `pause_at` bytes; counts what it was told.
#[derive(Default)]
struct Script {
    wait: Option<Duration>,
    stop_after: Option<usize>,
    pause_at: Option<u64>,
    polls: Cell<usize>,
    asked: usize,
    busy: Vec<Busy>,
    admitted: usize,
}

impl Watch for Script {
    fn stopped(&self) -> bool {
        self.polls.set(self.polls.get() + 1);
        self.stop_after.is_some_and(|n| self.polls.get() > n)
    }
    fn asking(&mut self) {
        self.asked += 1;
    }
    fn busy(&mut self, busy: &Busy) -> Option<Duration> {
        self.busy.push(*busy);
        self.wait
    }
    fn admitted(&mut self) {
        self.admitted += 1;
    }
    fn chunk(&mut self, at: &Chunk) -> Flow {
        match self.pause_at {
            Some(n) if at.done >= n => Flow::Pause,
            _ => Flow::Go,
        }
    }
    fn read_size(&self) -> usize {
        8 << 10
    }
}

struct Dl {
    _dir: tempfile::TempDir,
    part: PathBuf,
    data: Vec<u8>,
}

impl Dl {
    /// A download of [`object`], its partial file holding `prefix` when given.
    fn new(prefix: Option<&[u8]>) -> Dl {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.tar.http-partial");
        if let Some(p) = prefix {
            std::fs::write(&part, p).unwrap();
        }
        Dl {
            _dir: dir,
            part,
            data: object(),
        }
    }

    fn run(&self, url: &str, watch: &mut dyn Watch) -> Result<Ended, Error> {
        let target = Target {
            url,
            part: &self.part,
            size: self.data.len() as u64,
            blake3: id(&self.data),
            pieces: true,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        download(&agent, &target, watch)
    }

    fn held(&self) -> Vec<u8> {
        std::fs::read(&self.part).unwrap_or_default()
    }
}

/// The info dictionary the pieces of `data` make.
fn info_of(data: &[u8]) -> crate::format::torrent::Info {
    let mut p = PieceHasher::new(data.len() as u64);
    p.update(data);
    p.finish("x.tar")
}

#[test]
fn a_whole_body_is_written_and_hashed_with_its_pieces() {
    let dl = Dl::new(None);
    let (url, heads) = serve(vec![answer("200 OK", &dl.data)]);
    let mut w = Script::default();
    let Ok(Ended::Whole { received, pieces }) = dl.run(&url, &mut w) else {
        panic!("not whole")
    };
    assert_eq!(received, dl.data.len() as u64);
    assert_eq!(pieces.unwrap().finish("x.tar"), info_of(&dl.data));
    assert_eq!(dl.held(), dl.data);
    assert!(!heads.lock().unwrap()[0].contains("range:"));
    assert_eq!((w.asked, w.admitted), (1, 1));
}

#[test]
fn a_prefix_is_gone_on_from_with_range_and_hashed_with_the_rest() {
    let data = object();
    let dl = Dl::new(Some(&data[..30_000]));
    let (url, heads) = serve(vec![answer("206 Partial Content", &data[30_000..])]);
    let Ok(Ended::Whole { received, pieces }) = dl.run(&url, &mut Script::default()) else {
        panic!("not whole")
    };
    assert_eq!(received, 70_000);
    assert_eq!(pieces.unwrap().finish("x.tar"), info_of(&data));
    assert_eq!(dl.held(), data);
    assert!(heads.lock().unwrap()[0].contains("range: bytes=30000-"));
}

#[test]
fn a_server_that_ignores_the_range_or_cannot_serve_it_sends_the_whole() {
    let data = object();
    // `200` to a ranged request: the body is the whole object, the prefix is dropped.
    let dl = Dl::new(Some(b"not a prefix of the object"));
    let (url, _) = serve(vec![answer("200 OK", &data)]);
    assert!(matches!(
        dl.run(&url, &mut Script::default()),
        Ok(Ended::Whole { .. })
    ));
    assert_eq!(dl.held(), data);
    // `416`: asked again without a range.
    let dl = Dl::new(Some(&data[..10]));
    let (url, heads) = serve(vec![
        answer("416 Range Not Satisfiable", b""),
        answer("200 OK", &data),
    ]);
    assert!(matches!(
        dl.run(&url, &mut Script::default()),
        Ok(Ended::Whole { .. })
    ));
    assert_eq!(dl.held(), data);
    let heads = heads.lock().unwrap();
    assert!(heads[0].contains("range: bytes=10-") && !heads[1].contains("range:"));
}

#[test]
fn a_body_past_the_size_is_refused_at_the_first_byte_too_many() {
    let dl = Dl::new(None);
    let mut long = dl.data.clone();
    long.extend_from_slice(&[7; 5000]);
    let (url, _) = serve(vec![answer("200 OK", &long)]);
    match dl.run(&url, &mut Script::default()) {
        Err(Error::TooLarge { size, found, .. }) => {
            assert_eq!(size, dl.data.len() as u64);
            assert_eq!(found, id(&long[..dl.data.len() + 1]));
        }
        other => panic!("{other:?}"),
    }
    assert!(dl.held().len() <= dl.data.len());
}

#[test]
fn bytes_that_are_not_the_object_are_a_typed_mismatch_and_dropped() {
    let dl = Dl::new(None);
    let mut other = dl.data.clone();
    other[500] ^= 1;
    let (url, _) = serve(vec![answer("200 OK", &other)]);
    match dl.run(&url, &mut Script::default()) {
        Err(Error::HashMismatch {
            found, expected, ..
        }) => assert_eq!((found, expected), (id(&other), id(&dl.data))),
        other => panic!("{other:?}"),
    }
    assert!(!dl.part.exists());
    // A whole partial file that is not the object is dropped before the request.
    let dl = Dl::new(Some(&other));
    let (url, heads) = serve(vec![answer("200 OK", &dl.data)]);
    assert!(matches!(
        dl.run(&url, &mut Script::default()),
        Ok(Ended::Whole { .. })
    ));
    assert!(!heads.lock().unwrap()[0].contains("range:"));
}

#[test]
fn a_whole_partial_file_is_taken_without_a_request() {
    let data = object();
    let dl = Dl::new(Some(&data));
    // Nothing listens there (port 0): a request would fail.
    let url = "http://127.0.0.1:0/objects/x";
    let mut w = Script::default();
    let Ok(Ended::Whole { received, pieces }) = dl.run(url, &mut w) else {
        panic!("not taken")
    };
    assert_eq!((received, w.asked), (0, 0));
    assert_eq!(pieces.unwrap().finish("x.tar"), info_of(&data));
    // And a request to nowhere is a transport error.
    let dl = Dl::new(None);
    let e = dl.run(url, &mut w).unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
}

#[test]
fn a_short_body_is_kept_for_resuming_and_a_pause_keeps_the_prefix() {
    let dl = Dl::new(None);
    let (url, _) = serve(vec![answer("200 OK", &dl.data[..40_000])]);
    match dl.run(&url, &mut Script::default()) {
        Err(Error::Short {
            got, size, found, ..
        }) => {
            assert_eq!((got, size), (40_000, 100_000));
            assert_eq!(found, id(&dl.data[..40_000]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dl.held(), &dl.data[..40_000]);
    let dl = Dl::new(None);
    let (url, _) = serve(vec![answer("200 OK", &dl.data)]);
    let mut w = Script {
        pause_at: Some(20_000),
        ..Script::default()
    };
    let Ok(Ended::Paused { have }) = dl.run(&url, &mut w) else {
        panic!("not paused")
    };
    assert!((20_000..100_000).contains(&have), "{have}");
    assert_eq!(dl.held(), &dl.data[..have as usize]);
}

fn busy(headers: &[(&'static str, &str)]) -> Answer {
    Answer {
        status: "503 Service Unavailable",
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: b"busy".to_vec(),
    }
}

#[test]
fn a_503_is_typed_with_its_retry_after_and_slot_hints() {
    let dl = Dl::new(None);
    let hints = [
        ("Retry-After", " 3 "),
        ("X-Dist-Slot-Free-Ms", "250"),
        ("X-Dist-Slot-Rate", "1000"),
    ];
    let (url, _) = serve(vec![busy(&hints), busy(&[("Retry-After", "soon")])]);
    let want = Busy {
        retry_after: Some(Duration::from_secs(3)),
        slot_free: Some(Duration::from_millis(250)),
        slot_rate: Some(1000),
    };
    match dl.run(&url, &mut Script::default()) {
        Err(Error::Busy { busy, .. }) => assert_eq!(busy, want),
        other => panic!("{other:?}"),
    }
    // A `Retry-After` that is not a number of seconds says nothing.
    match dl.run(&url, &mut Script::default()) {
        Err(Error::Busy { busy, .. }) => assert_eq!(busy, Busy::default()),
        other => panic!("{other:?}"),
    }
    let (s, floor, ceil) = (
        Duration::from_secs,
        Duration::from_millis(200),
        Duration::from_secs(10),
    );
    assert_eq!(want.wait(floor, ceil), s(3));
    assert_eq!(Busy::default().wait(floor, ceil), s(1));
    let long = Busy {
        retry_after: Some(s(600)),
        ..Busy::default()
    };
    assert_eq!(long.wait(floor, ceil), ceil);
}

#[test]
fn a_503_waited_for_is_asked_again() {
    let dl = Dl::new(None);
    let (url, _) = serve(vec![
        busy(&[("Retry-After", "0")]),
        answer("200 OK", &dl.data),
    ]);
    let mut w = Script {
        wait: Some(Duration::from_millis(20)),
        ..Script::default()
    };
    assert!(matches!(dl.run(&url, &mut w), Ok(Ended::Whole { .. })));
    assert_eq!((w.asked, w.busy.len(), w.admitted), (2, 1, 1));
}

#[test]
fn refusals_are_typed() {
    let dl = Dl::new(None);
    let (url, _) = serve(vec![answer("404 Not Found", b""), answer("500 Oops", b"")]);
    let e = dl.run(&url, &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_eq!(e.to_string(), format!("GET {url}: HTTP 404"));
    let e = dl.run(&url, &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::Status { code: 500, .. }), "{e:?}");
}

#[test]
fn a_stop_is_typed_while_waiting_and_while_downloading() {
    let dl = Dl::new(None);
    let (url, _) = serve(vec![busy(&[]), answer("200 OK", &dl.data)]);
    let mut w = Script {
        wait: Some(Duration::from_secs(30)),
        stop_after: Some(2),
        ..Script::default()
    };
    let t = Instant::now();
    let e = dl.run(&url, &mut w).unwrap_err();
    assert!(matches!(e, Error::Stopped { waiting: true, .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(e.to_string(), format!("stopped while waiting for {url}"));
    // Polled before each read: the third read does not happen.
    let mut w = Script {
        stop_after: Some(2),
        ..Script::default()
    };
    let e = dl.run(&url, &mut w).unwrap_err();
    assert!(matches!(e, Error::Stopped { waiting: false, .. }), "{e:?}");
    assert!(dl.held().len() <= 2 * (8 << 10));
}

/// A [`Halt`] of flags, as a mirror's.
#[derive(Default)]
struct Flags {
    raised: AtomicBool,
    stop: AtomicBool,
}

impl Halt for Flags {
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }
    fn halted(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            anyhow::bail!("stopped by the caller");
        }
        if self.raised.load(Ordering::SeqCst) {
            anyhow::bail!("a fellow failed");
        }
        Ok(())
    }
}

#[test]
fn the_pool_keeps_the_order_and_stops_at_the_first_failure() {
    let items: Vec<u32> = (0..40).collect();
    let flags = Flags::default();
    let out = in_parallel(&items, 4, &flags, |&i| Ok(i * 2)).unwrap();
    assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    let ran = AtomicUsize::new(0);
    let e = in_parallel(&items, 4, &flags, |&i| {
        ran.fetch_add(1, Ordering::SeqCst);
        if i == 3 {
            anyhow::bail!("item 3 failed");
        }
        std::thread::sleep(Duration::from_millis(20));
        Ok(i)
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "item 3 failed");
    assert!(flags.raised.load(Ordering::SeqCst));
    assert!(ran.load(Ordering::SeqCst) < items.len());
    // Halted by the caller before anything ran: its reason is the error.
    let flags = Flags::default();
    flags.stop.store(true, Ordering::SeqCst);
    let e = in_parallel(&items, 4, &flags, |&i| Ok(i)).unwrap_err();
    assert_eq!(e.to_string(), "stopped by the caller");
}
