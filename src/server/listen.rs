//! How `dist serve` accepts HTTP connections: every one is bounded (issue 25, finding 5).
//!
//! - A connection has [`HEAD_TIMEOUT`] to send a request head: the first one, and each next one
//!   on a kept-alive connection (hyper's header timer runs whenever it waits for a head, so an
//!   idle connection is closed too).
//! - A response that makes no progress for [`STALL_TIMEOUT`] (a client that stopped reading)
//!   ends its connection.
//! - At most [`Limits::total`] connections are open at once, derived from the open-file limit
//!   (which `serve` first raises to its hard limit, [`raise_open_files`]), and at most
//!   [`Limits::per_address`] from one address (an IPv6 /64 counts as one). A connection beyond
//!   either gets `503` with `Retry-After` and is closed, so one client cannot take the server's
//!   file descriptors and `/health` keeps answering everyone else.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How long a connection may take to send a request head, or stay idle between requests.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a response may make no progress (the client reads nothing) before its connection
/// is closed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// File descriptors kept for everything but connections: the master index, published files,
/// the daemons' RPC and probes, the runtime's own.
const RESERVED_FDS: u64 = 128;

/// The most connections served at once whatever the open-file limit: each costs a task and
/// hyper's buffers (tens of KiB), so this bounds memory too.
const MAX_CONNECTIONS: u64 = 16_384;

/// The open-file limit `serve` raises its soft limit to at most: what [`MAX_CONNECTIONS`]
/// connections (a socket and a file each) and the reserve need, with room to spare. The
/// daemons it starts inherit it.
const MAX_OPEN_FILES: u64 = 65_536;

/// How many refused connections are answered at once; more are closed without an answer.
const REFUSALS: usize = 32;

/// How long a refused connection's answer may take (the client's request is read and dropped
/// meanwhile, so closing does not reset the connection before the client read the answer).
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// How long a stopping server waits for its connections to finish their responses.
const DRAIN: Duration = Duration::from_secs(5);

/// How many connections are served at once, in all and from one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_address: usize,
}

impl Limits {
    /// For an open-file limit of `nofile`: two descriptors per connection (its socket and the
    /// file it may be sending) after [`RESERVED_FDS`], between 16 and [`MAX_CONNECTIONS`]; a
    /// quarter of that per address, so no single address (a client, or a NAT in front of
    /// many) can take more than a quarter of the server.
    pub fn for_open_files(nofile: u64) -> Limits {
        let total = (nofile.saturating_sub(RESERVED_FDS) / 2).clamp(16, MAX_CONNECTIONS) as usize;
        Limits {
            total,
            per_address: (total / 4).max(4),
        }
    }
}

/// Raises the soft open-file limit to the hard limit (at most [`MAX_OPEN_FILES`]) where it is
/// lower, and returns the soft limit in effect. A failure leaves the limit as it was.
pub fn raise_open_files() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let want = now.maximum.unwrap_or(MAX_OPEN_FILES).min(MAX_OPEN_FILES);
    if now.current.is_some_and(|c| c < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: now.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile)
        .current
        .unwrap_or(MAX_OPEN_FILES)
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    Total(usize),
    Address(usize),
}

/// The open connections, in all and by address.
struct Gate {
    limits: Limits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; its place is free again when it is dropped.
struct Admitted {
    gate: Arc<Gate>,
    addr: IpAddr,
}

impl Gate {
    fn admit(self: &Arc<Gate>, peer: IpAddr) -> Result<Admitted, Full> {
        let addr = address_key(peer);
        let mut open = self.open.lock().expect("connection gate");
        if open.0 >= self.limits.total {
            return Err(Full::Total(self.limits.total));
        }
        let mine = open.1.entry(addr).or_insert(0);
        if *mine >= self.limits.per_address {
            return Err(Full::Address(self.limits.per_address));
        }
        *mine += 1;
        open.0 += 1;
        Ok(Admitted {
            gate: self.clone(),
            addr,
        })
    }

    fn open(&self) -> usize {
        self.open.lock().expect("connection gate").0
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().expect("connection gate");
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.addr);
            }
        }
    }
}

/// An address as the per-address limit counts it: IPv4 as it is, IPv6 by its /64 (one host
/// usually has a whole /64), an IPv4-mapped IPv6 address as the IPv4 one.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Serves `app` on `listener` in `rt` (see [`serve`]) until `stop` is set.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    app: Router,
    limits: Limits,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    use anyhow::Context as _;
    let _in_rt = rt.enter();
    let listener = TcpListener::from_std(listener)?;
    Ok(rt.spawn(async move {
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        serve(listener, app, limits, stopped)
            .await
            .context("the HTTP server failed")
    }))
}

/// Serves `app` on `listener` with the bounds of the module comment until `stop` completes,
/// then lets the open connections finish their responses for at most [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let gate = Arc::new(Gate {
        limits,
        open: Mutex::new((0, HashMap::new())),
    });
    let (closing, closed) = watch::channel(false);
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors (the limits keep it from happening) or a connection reset
                // before it was accepted: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        match gate.admit(peer.ip()) {
            Ok(admitted) => {
                tokio::spawn(connection(stream, app.clone(), admitted, closed.clone()));
            }
            Err(full) => refuse(stream, full, &refusals),
        }
    }
    closing.send_replace(true);
    let until = Instant::now() + DRAIN;
    while gate.open() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One admitted connection, HTTP/1.1 with the head timeout and the stall bound, until it ends
/// or the server stops (then the response in progress is finished first).
async fn connection(
    stream: TcpStream,
    app: Router,
    admitted: Admitted,
    mut closing: watch::Receiver<bool>,
) {
    let _admitted = admitted;
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Stalls::new(stream, STALL_TIMEOUT));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let conn = http.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Answers a connection beyond the limits with `503` and `Retry-After`, then closes it: at most
/// [`REFUSALS`] at a time, each within [`REFUSAL_TIME`]; beyond those it is closed at once.
fn refuse(stream: TcpStream, full: Full, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let why = match full {
        Full::Total(n) => format!("the server has {n} connections open, its limit"),
        Full::Address(n) => format!("{n} connections from your address are open, the limit"),
    };
    let body = format!("{why}: close one, or try again in a second\n");
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    });
}

/// A connection's stream whose writes fail once they have made no progress for `limit`.
struct Stalls {
    inner: TcpStream,
    limit: Duration,
    /// When a write last made progress (or the connection began).
    last: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Stalls {
    fn new(inner: TcpStream, limit: Duration) -> Stalls {
        Stalls {
            inner,
            limit,
            last: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// What a pending write returns: still pending (woken by the socket or by the timer at
    /// the deadline), or an error once the deadline passed.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let deadline = self.last + self.limit;
        let stalled = || {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response for too long",
            )))
        };
        if Instant::now() >= deadline {
            return stalled();
        }
        self.timer
            .as_mut()
            .reset(tokio::time::Instant::from_std(deadline));
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => stalled(),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress(
        &mut self,
        r: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.last = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.pending(cx),
            other => other,
        }
    }
}

impl AsyncRead for Stalls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_open_file_limit() {
        assert_eq!(
            Limits::for_open_files(1024),
            Limits {
                total: 448,
                per_address: 112
            }
        );
        assert_eq!(Limits::for_open_files(0).total, 16);
        assert_eq!(Limits::for_open_files(0).per_address, 4);
        assert_eq!(Limits::for_open_files(1 << 20).total, 16_384);
    }

    #[test]
    fn one_address_cannot_take_every_place() {
        let gate = Arc::new(Gate {
            limits: Limits {
                total: 8,
                per_address: 3,
            },
            open: Mutex::new((0, HashMap::new())),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| gate.admit(a).unwrap()).collect();
        assert_eq!(gate.admit(a).err(), Some(Full::Address(3)));
        // One /64 is one address; another address still gets in.
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(address_key(v6), address_key(v6b));
        let b = gate.admit("10.0.0.2".parse().unwrap()).unwrap();
        drop(held);
        assert_eq!(gate.open(), 1);
        let again: Vec<_> = (0..3).map(|_| gate.admit(a).unwrap()).collect();
        assert_eq!(gate.open(), 4);
        drop((again, b));
        assert_eq!(gate.open(), 0);
        assert!(gate.open.lock().unwrap().1.is_empty());
    }
}
