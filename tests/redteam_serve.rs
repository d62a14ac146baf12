//! Red team (issue 25), `dist serve`'s side: a real `dist serve` (opentracker and
//! transmission-daemon included) on loopback, attacked over real TCP sockets.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port nobody listens on now, on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `dist serve` on loopback, started through `sh` (so the test can set its limits first),
/// stopped with SIGTERM by pid on drop.
struct Serve {
    child: Option<Child>,
    log: PathBuf,
    http: SocketAddr,
}

impl Serve {
    /// `dist --root ROOT serve` after the shell line `limits` (e.g. `ulimit …`), and `more`
    /// flags; waits for `/health` = 200 when `healthy`.
    fn start(root: &Path, limits: &str, more: &[&str], healthy: bool) -> Serve {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let tracker = format!("127.0.0.1:{}", free_port());
        let log = root.with_extension("serve.log");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{limits}\nexec \"$0\" \"$@\""))
            .arg(dist_bin())
            .arg("--root")
            .arg(root)
            .args(["serve", "--http", &http.to_string(), "--tracker", &tracker])
            .args(["--bind", "127.0.0.1", "--hot-set", "10"])
            .args(more)
            .env_remove("DIST_ROOT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dist serve");
        let s = Serve {
            child: Some(child),
            log,
            http,
        };
        if healthy {
            wait_until(
                "GET /health = 200",
                Duration::from_secs(90),
                || match get_from("127.0.0.2", s.http, "/health") {
                    Ok(answer) if answer.starts_with("HTTP/1.1 200") => Ok(()),
                    other => Err(format!("{other:?}\nserve log:\n{}", s.log())),
                },
            );
        }
        s
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The limits it said it applies: (connections, per address).
    fn limits(&self) -> (usize, usize) {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("at most"))
            .unwrap_or_else(|| panic!("no connection limits in the log:\n{log}"));
        let numbers: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        // `… at most N connections, M per address)`: the last two numbers.
        let n = numbers.len();
        (numbers[n - 2], numbers[n - 1])
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP connection to `to` from the loopback address `from` (another address than the
/// flood's, as another client would have).
fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(format!("{from}:0").parse().unwrap())?;
        s.connect(to).await
    })?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    Ok(s)
}

/// `GET path` from the address `from`, `Connection: close`: the whole answer as text.
fn get_from(from: &str, to: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = connect_from(from, to)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// A connection as the test sees it: what the server sent so far, and whether it closed it.
struct Seen {
    stream: TcpStream,
    got: Vec<u8>,
    closed: bool,
}

impl Seen {
    fn new(stream: TcpStream) -> Seen {
        Seen {
            stream,
            got: Vec::new(),
            closed: false,
        }
    }

    /// Reads what the server sent since; true once it closed the connection.
    fn closed(&mut self) -> bool {
        if self.closed {
            return true;
        }
        let s = &mut self.stream;
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 1024];
        self.closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false
                }
                Err(_) => break true,
            }
        };
        self.closed
    }
}

/// A `503` answer with `Retry-After`.
fn is_busy(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer).to_ascii_lowercase();
    text.starts_with("http/1.1 503") && text.contains("\r\nretry-after: 1\r\n")
}

/// A repository with one package, at `TMP/repo`.
fn repository(tmp: &Path) -> PathBuf {
    let repo = tmp.join("repo");
    let pkg = write_package(
        &tmp.join("pkgs/hello"),
        "hello",
        "1.0.0",
        "",
        ("hello.txt", b"hello\n"),
        "#!/bin/sh\n",
    );
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create"])
            .arg(pkg),
    );
    repo
}

#[test]
fn serve_bounds_idle_connections_issue_25_finding_5() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repository(tmp.path());
    // Soft 200, hard 300: the server raises the soft limit to 300 and derives its limits.
    let serve = Serve::start(&repo, "ulimit -S -n 200 && ulimit -H -n 300", &[], true);
    let limits = fs::read_to_string(format!("/proc/{}/limits", serve.pid())).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft_hard: Vec<&str> = files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(soft_hard, ["300", "300"], "{files}");
    let (total, per_address) = serve.limits();
    assert!(per_address < total && total < 300, "{total} {per_address}");

    // One client opens far more connections than its share and sends nothing.
    let flood = 200;
    let mut idle: Vec<Seen> = (0..flood)
        .map(|_| Seen::new(TcpStream::connect(serve.http).unwrap()))
        .collect();
    // Those beyond its share are answered 503 with Retry-After (as many as the server answers
    // at once; the rest are closed) without waiting for anything: only a refusal sends a 503.
    wait_until(
        "connections beyond the share refused",
        Duration::from_secs(30),
        || {
            let done = idle.iter_mut().map(Seen::closed).filter(|c| *c).count();
            let busy = idle.iter().filter(|c| c.closed && is_busy(&c.got)).count();
            if busy > 0 && done >= flood - per_address {
                Ok(())
            } else {
                Err(format!("{done} closed, {busy} of them with 503"))
            }
        },
    );
    // Everyone else is still served while that client holds its share.
    let health = get_from("127.0.0.2", serve.http, "/health").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // Requests that never finish their head, from several addresses.
    let mut partial: Vec<Seen> = (0..50)
        .map(|i| {
            let mut s = connect_from(&format!("127.0.0.{}", 10 + i % 5), serve.http).unwrap();
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            Seen::new(s)
        })
        .collect();
    let health = get_from("127.0.0.3", serve.http, "/health").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // A kept-alive connection after its answer: idle, so closed as well.
    let mut kept = connect_from("127.0.0.4", serve.http).unwrap();
    write!(kept, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    partial.push(Seen::new(kept));
    // The server closes every one of them: an idle connection and an unfinished head alike.
    wait_until(
        "the server to close idle and unfinished connections",
        Duration::from_secs(60),
        || {
            let open = idle
                .iter_mut()
                .chain(partial.iter_mut())
                .map(Seen::closed)
                .filter(|c| !c)
                .count();
            if open == 0 {
                Ok(())
            } else {
                Err(format!("{open} still open\nserve log:\n{}", serve.log()))
            }
        },
    );
    let health = get_from("127.0.0.1", serve.http, "/health").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn serve_mirror_of_refuses_a_root_with_its_own_key_issue_25_finding_8() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repository(tmp.path());
    let key = repo_key(&repo);
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let mut serve = Serve::start(
        &repo,
        ":",
        &["--mirror-of", &upstream, "--public-key", &key],
        false,
    );
    let mut child = serve.child.take().unwrap();
    let status = wait_until(
        "serve --mirror-of to exit",
        Duration::from_secs(60),
        || match child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err(format!("still running\nlog:\n{}", serve.log())),
        },
    );
    let log = serve.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains(&repo.display().to_string()), "{log}");
    assert!(log.contains("holds a repository of its own"), "{log}");
    // It refused before serving anything.
    assert!(!log.contains("listening"), "{log}");
}
