//! Admission on the peer port: a connection is *unproven* from the moment it is accepted
//! until a request on it passes the [`PeerGuard`](super::PeerGuard) (the cluster secret when
//! one is configured; any request otherwise) — the TLS handshake, when there is one, comes
//! first. Unproven connections are what a stranger can open at no cost, so they are bounded
//! as the client port bounds its clients:
//!
//! * **a deadline**: a connection unproven [`FIRST_REQUEST_TIMEOUT`] after it was accepted
//!   is closed (a peer makes its first call the moment it connects);
//! * **a cap per source address** ([`MAX_UNPROVEN_PER_SOURCE`]) and **a cap for all**
//!   (a quarter of the descriptor limit, at most [`MAX_UNPROVEN`]): past either, the *oldest*
//!   unproven connection is closed to make room. Refusing the newest instead would let a
//!   flood of idle connections lock real peers out for as long as it lasts; closing the
//!   oldest lets a peer in as long as its first request arrives before the cap's worth of
//!   newer connections does.
//!
//! A proven connection leaves the count for good: its peer holds the secret, and peers are
//! few. Three quarters of the descriptors stay for clients, proven peers and data files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::node::LogThrottle;
use crate::node::lock;

/// How long a new peer connection may take to complete its TLS handshake and send a request
/// that passes the guard.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Unproven connections one source address may hold at once.
pub const MAX_UNPROVEN_PER_SOURCE: usize = 64;

/// Unproven connections all sources may hold at once, at most (less with a low descriptor
/// limit: a quarter of it).
pub const MAX_UNPROVEN: usize = 1024;

/// How often a closed unproven connection is logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The unproven connections of one peer server.
#[derive(Debug)]
pub struct Admission {
    deadline: Duration,
    limit: usize,
    per_source: usize,
    table: Mutex<Table>,
    log: LogThrottle,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// Every unproven connection by id (ids grow with age), with its source and its closer.
    all: BTreeMap<u64, (IpAddr, CancellationToken)>,
    /// The unproven connections of each source.
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<CancellationToken> {
        let (source, close) = self.all.remove(&id)?;
        if let Some(ids) = self.by_source.get_mut(&source) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_source.remove(&source);
            }
        }
        Some(close)
    }
}

impl Admission {
    /// Caps from the constants and this process's descriptor limit.
    pub fn new() -> Arc<Self> {
        let descriptors = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
            .unwrap_or(1024);
        Self::with_limits(FIRST_REQUEST_TIMEOUT, (descriptors / 4).clamp(16, MAX_UNPROVEN), MAX_UNPROVEN_PER_SOURCE)
    }

    /// Explicit bounds: the first-request `deadline`, `limit` unproven connections for all
    /// sources, `per_source` for each.
    pub fn with_limits(deadline: Duration, limit: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            deadline,
            limit,
            per_source: per_source.min(limit),
            table: Mutex::new(Table::default()),
            log: LogThrottle::new(LOG_EVERY),
        })
    }

    /// Unproven connections now.
    pub fn unproven(&self) -> usize {
        lock(&self.table).all.len()
    }

    /// Registers a connection just accepted from `remote`, closing the oldest unproven ones
    /// past the caps.
    fn admit(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr) -> Guarded {
        let close = CancellationToken::new();
        let (id, evicted) = {
            let mut table = lock(&self.table);
            let id = table.next_id;
            table.next_id += 1;
            table.all.insert(id, (remote.ip(), close.clone()));
            let ids = table.by_source.entry(remote.ip()).or_default();
            ids.insert(id);
            let mut evicted = Vec::new();
            if ids.len() > self.per_source {
                let oldest = *ids.first().expect("not empty");
                evicted.extend(table.remove(oldest));
            }
            if table.all.len() > self.limit {
                let oldest = *table.all.keys().next().expect("not empty");
                evicted.extend(table.remove(oldest));
            }
            (id, evicted)
        };
        if !evicted.is_empty()
            && let Some(held_back) = self.log.allow()
        {
            tracing::warn!(
                source = %remote.ip(),
                held_back,
                "too many unauthenticated connections on the peer port; closing the oldest"
            );
        }
        for close in evicted {
            close.cancel();
        }
        let ticket = Arc::new(Ticket { id, admission: Arc::downgrade(self), proven: AtomicBool::new(false) });
        Guarded {
            stream,
            ticket,
            deadline: Box::pin(tokio::time::sleep(self.deadline)),
            closed: Box::pin(close.cancelled_owned()),
        }
    }

    fn forget(&self, id: u64) {
        lock(&self.table).remove(id);
    }
}

/// The connections `listener` accepts, admitted by `admission`.
pub fn incoming(listener: TcpListener, admission: Arc<Admission>) -> impl Stream<Item = io::Result<Guarded>> {
    futures_util::stream::unfold((listener, admission), |(listener, admission)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let guarded = admission.admit(stream, remote);
                    return Some((Ok(guarded), (listener, admission)));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    if let Some(held_back) = admission.log.allow() {
                        tracing::warn!(error = %e, held_back, "accepting a peer connection failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// A connection's standing, shared by the connection and every request on it (as its
/// connect info): proving it takes it out of the count of unproven connections.
#[derive(Debug)]
struct Ticket {
    id: u64,
    admission: Weak<Admission>,
    proven: AtomicBool,
}

/// What the [`PeerGuard`](super::PeerGuard) finds in a request's extensions: the standing of
/// the connection it came on.
#[derive(Debug, Clone)]
pub struct PeerConnection(Arc<Ticket>);

impl PeerConnection {
    /// A request on this connection passed the guard: the connection is no longer bounded
    /// by the deadline and the caps.
    pub fn prove(&self) {
        if !self.0.proven.swap(true, Ordering::AcqRel)
            && let Some(admission) = self.0.admission.upgrade()
        {
            admission.forget(self.0.id);
        }
    }
}

/// An accepted peer connection: closed (its reads fail) at the deadline or when evicted,
/// unless a request on it passed the guard first.
pub struct Guarded {
    stream: TcpStream,
    ticket: Arc<Ticket>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.ticket.proven.load(Ordering::Acquire)
            && let Some(admission) = self.ticket.admission.upgrade()
        {
            admission.forget(self.ticket.id);
        }
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = PeerConnection;

    fn connect_info(&self) -> PeerConnection {
        PeerConnection(self.ticket.clone())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // While unproven, a read also waits for the deadline and for eviction: an idle
        // connection is blocked in a read, so either wakes it and ends the connection.
        if !self.ticket.proven.load(Ordering::Acquire) {
            if self.closed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "too many unauthenticated peer connections",
                )));
            }
            if self.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no authenticated request before the deadline",
                )));
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream, SocketAddr) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, remote) = listener.accept().await.unwrap();
        (client, server, remote)
    }

    #[tokio::test]
    async fn past_a_cap_the_oldest_unproven_connection_is_closed_and_proven_ones_leave_the_count() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admission = Admission::with_limits(Duration::from_secs(3600), 100, 2);
        let mut kept = Vec::new();
        for _ in 0..3 {
            let (client, server, remote) = pair(&listener).await;
            kept.push((client, admission.admit(server, remote)));
        }
        assert_eq!(admission.unproven(), 2);
        let mut buf = [0u8; 1];
        let err = kept[0].1.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        use tonic::transport::server::Connected;
        kept[1].1.connect_info().prove();
        assert_eq!(admission.unproven(), 1);
        drop(kept);
        assert_eq!(admission.unproven(), 0);
    }

    #[tokio::test]
    async fn an_unproven_connection_is_closed_at_the_deadline() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admission = Admission::with_limits(Duration::from_millis(50), 100, 100);
        let (_client, server, remote) = pair(&listener).await;
        let mut guarded = admission.admit(server, remote);
        let mut buf = [0u8; 1];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
