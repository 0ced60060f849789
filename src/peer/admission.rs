//! Admission on the peer port: a connection is *unproven* from the moment it is accepted
//! until it has passed the [handshake](super::handshake) that proves the cluster secret (when
//! one is configured; without one, until a request on it passes the
//! [`PeerGuard`](super::PeerGuard)). Nothing is read from a connection before its handshake
//! is done: the TLS handshake, when there is one, runs after it. Unproven connections are what a stranger can open at no cost, so they are bounded
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
//! Proven connections are bounded too, by [`MAX_PROVEN`] for all sources: a peer holds the
//! secret (or, without one, made a well-formed call of this node's service), but each proven
//! connection may park a flow-control window's worth of unread data on the node
//! ([`SERVER_CONNECTION_WINDOW`](super::SERVER_CONNECTION_WINDOW)), so their number bounds
//! memory as the [message budget](super::MessageBudget) bounds what is read. Past the cap the
//! proven connection used least recently is closed; a real peer's channel reconnects on its
//! next call. A cluster's peers hold a few connections each, far below the cap. Three
//! quarters of the descriptors stay for clients, proven peers and data files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::node::LogThrottle;
use crate::node::lock;

/// How long a new peer connection may take to prove itself: pass the secret handshake (with a
/// cluster secret), or complete its TLS handshake and send a request that passes the guard
/// (without one).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Unproven connections one source address may hold at once.
pub const MAX_UNPROVEN_PER_SOURCE: usize = 64;

/// Unproven connections all sources may hold at once, at most (less with a low descriptor
/// limit: a quarter of it).
pub const MAX_UNPROVEN: usize = 1024;

/// Proven connections all sources may hold at once (see the module doc): with
/// [`SERVER_CONNECTION_WINDOW`](super::SERVER_CONNECTION_WINDOW) each, at most 256 MiB of
/// unread data parked in windows, whatever a holder of the secret does.
pub const MAX_PROVEN: usize = 64;

/// How often a closed unproven connection is logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The unproven connections of one peer server.
#[derive(Debug)]
pub struct Admission {
    deadline: Duration,
    limit: usize,
    per_source: usize,
    proven_limit: usize,
    table: Mutex<Table>,
    /// Counts uses of proven connections: a connection's last use is its value then.
    uses: AtomicU64,
    log: LogThrottle,
    /// The challenge every connection must pass first, when a cluster secret is configured.
    handshake: Option<super::handshake::HandshakeKey>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// Every unproven connection by id (ids grow with age), with its source and its closer.
    all: BTreeMap<u64, (IpAddr, CancellationToken)>,
    /// The unproven connections of each source.
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
    /// Every proven connection by id.
    proven: HashMap<u64, Arc<Ticket>>,
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
    /// Caps from the constants and this process's descriptor limit; every connection must
    /// prove `secret`, if any, by the handshake.
    pub fn new(secret: Option<&super::ClusterSecret>) -> Arc<Self> {
        let descriptors = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
            .unwrap_or(1024);
        let mut admission = Self::bounds(
            FIRST_REQUEST_TIMEOUT,
            (descriptors / 4).clamp(16, MAX_UNPROVEN),
            MAX_UNPROVEN_PER_SOURCE,
            MAX_PROVEN,
        );
        admission.handshake = secret.map(super::handshake::HandshakeKey::new);
        Arc::new(admission)
    }

    /// Explicit bounds: the first-request `deadline`, `limit` unproven connections for all
    /// sources, `per_source` for each, `proven` proven connections.
    pub fn with_limits(deadline: Duration, limit: usize, per_source: usize, proven: usize) -> Arc<Self> {
        Arc::new(Self::bounds(deadline, limit, per_source, proven))
    }

    fn bounds(deadline: Duration, limit: usize, per_source: usize, proven: usize) -> Self {
        Self {
            deadline,
            limit,
            per_source: per_source.min(limit),
            proven_limit: proven.max(1),
            uses: AtomicU64::new(0),
            table: Mutex::new(Table::default()),
            log: LogThrottle::new(LOG_EVERY),
            handshake: None,
        }
    }

    /// Unproven connections now.
    pub fn unproven(&self) -> usize {
        lock(&self.table).all.len()
    }

    /// Proven connections now.
    pub fn proven(&self) -> usize {
        lock(&self.table).proven.len()
    }

    /// Moves `ticket` from the unproven connections to the proven ones, closing the proven
    /// connection used least recently past the cap.
    fn promote(&self, ticket: &Arc<Ticket>) {
        // Proving is a use: the connection just proven is about to make its first call.
        ticket.last_used.store(self.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let evicted = {
            let mut table = lock(&self.table);
            table.remove(ticket.id);
            table.proven.insert(ticket.id, ticket.clone());
            if table.proven.len() > self.proven_limit {
                // A connection with no call in flight first: closing it fails nothing (the
                // peer's channel reconnects on its next call), where closing one mid-call
                // leaves that call's outcome unknown.
                let oldest = table
                    .proven
                    .values()
                    .filter(|t| t.id != ticket.id)
                    .min_by_key(|t| (t.in_flight.load(Ordering::Relaxed) > 0, t.last_used.load(Ordering::Relaxed)))
                    .map(|t| t.id)
                    .expect("not empty");
                table.proven.remove(&oldest)
            } else {
                None
            }
        };
        if let Some(evicted) = evicted {
            // Closed at once, not at its next read or write: an idle connection waits in a read
            // that only the next keepalive (up to 250 ms away) would wake, and a call its peer
            // wrote in that time was lost with it, its outcome unknown to the peer
            // (`-UNCERTAIN` for a forwarded write). Closed now, the peer's client sees the
            // connection end before its next call and sends that call on a new one.
            evicted.evicted.store(true, Ordering::Release);
            evicted.close.cancel();
            if let Some(held_back) = self.log.allow() {
                tracing::warn!(held_back, "too many peer connections; closing the one used least recently");
            }
        }
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
        let ticket = Arc::new(Ticket {
            id,
            admission: Arc::downgrade(self),
            proven: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            close: close.clone(),
            last_used: AtomicU64::new(self.uses.fetch_add(1, Ordering::Relaxed)),
            in_flight: AtomicUsize::new(0),
        });
        // A handshake that cannot even start (no randomness) fails the connection's first read.
        let handshake = self.handshake.clone().map(|key| super::handshake::ServerHandshake::new(key).map_err(Some));
        Guarded {
            stream,
            remote,
            handshake,
            ticket,
            deadline: Box::pin(tokio::time::sleep(self.deadline)),
            closed: Box::pin(close.cancelled_owned()),
        }
    }

    fn forget(&self, id: u64) {
        let mut table = lock(&self.table);
        table.remove(id);
        table.proven.remove(&id);
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
    /// Closed to make room for newer proven connections.
    evicted: AtomicBool,
    /// Cancelled to close the connection at once (wakes its pending read).
    close: CancellationToken,
    /// The admission's use count at this connection's last call.
    last_used: AtomicU64,
    /// Calls on this connection whose handler has not answered yet.
    in_flight: AtomicUsize,
}

/// What the [`PeerGuard`](super::PeerGuard) finds in a request's extensions: the standing of
/// the connection it came on.
#[derive(Debug, Clone)]
pub struct PeerConnection(Arc<Ticket>);

impl PeerConnection {
    /// True once the connection has passed the handshake, or a request on it the guard.
    pub fn is_proven(&self) -> bool {
        self.0.proven.load(Ordering::Acquire)
    }

    /// The connection proved itself (the handshake, or without a secret a well-formed call
    /// of this node's service): it is no longer bounded by the deadline and the caps on
    /// unproven connections, but counts among the proven ones.
    pub fn prove(&self) {
        if !self.0.proven.swap(true, Ordering::AcqRel)
            && let Some(admission) = self.0.admission.upgrade()
        {
            admission.promote(&self.0);
        }
    }

    /// A call arrived on this connection: it is now the last to be closed past the cap, and
    /// while the returned guard lives, the call is in flight.
    pub fn begin_call(&self) -> CallInFlight {
        if let Some(admission) = self.0.admission.upgrade() {
            self.0.last_used.store(admission.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        }
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        CallInFlight(self.0.clone())
    }
}

/// A call in flight on a peer connection (see [`PeerConnection::begin_call`]).
#[derive(Debug)]
pub struct CallInFlight(Arc<Ticket>);

impl Drop for CallInFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted peer connection: closed (its reads fail) at the deadline or when evicted,
/// unless a request on it passed the guard first.
pub struct Guarded {
    stream: TcpStream,
    remote: SocketAddr,
    /// The handshake still to pass (an error: one that could not start; taken once reported).
    handshake: Option<Result<super::handshake::ServerHandshake, Option<io::Error>>>,
    ticket: Arc<Ticket>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(admission) = self.ticket.admission.upgrade() {
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
        ready!(self.poll_admitted(cx))?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Guarded {
    /// Ready to pass bytes on once the connection is proven or, without a secret, may still be;
    /// an error once it must close.
    ///
    /// While unproven, every read and write also waits for the deadline and for eviction: an
    /// idle connection is blocked in a read (or, during the handshake, in a write), so either
    /// wakes it and ends the connection.
    fn poll_admitted(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Polled whatever the standing, so an eviction wakes a connection blocked in a read.
        let closing = self.closed.as_mut().poll(cx).is_ready();
        if self.ticket.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "too many peer connections")));
        }
        if !self.ticket.proven.load(Ordering::Acquire) {
            if closing {
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
        self.poll_handshake(cx)
    }

    /// Moves the handshake on, if one is still to pass; ready once it has passed (the
    /// connection is then proven) or failed (the connection must close).
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let passed = match self.handshake.as_mut() {
            None => return Poll::Ready(Ok(())),
            Some(Err(e)) => Err(e.take().unwrap_or_else(|| io::ErrorKind::NotConnected.into())),
            Some(Ok(handshake)) => ready!(handshake.poll(&mut self.stream, cx)),
        };
        match passed {
            Ok(()) => {
                self.handshake = None;
                PeerConnection(self.ticket.clone()).prove();
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied
                    && let Some(admission) = self.ticket.admission.upgrade()
                    && let Some(held_back) = admission.log.allow()
                {
                    tracing::warn!(source = %self.remote.ip(), held_back, "a peer connection failed the cluster secret handshake");
                }
                // Every later read and write fails too.
                self.handshake = Some(Err(None));
                Poll::Ready(Err(e))
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // The server's first bytes (HTTP/2's settings) wait for the handshake.
        ready!(self.poll_admitted(cx))?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_admitted(cx))?;
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
        ready!(self.poll_admitted(cx))?;
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
        let admission = Admission::with_limits(Duration::from_secs(3600), 100, 2, 100);
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
        let admission = Admission::with_limits(Duration::from_millis(50), 100, 100, 100);
        let (_client, server, remote) = pair(&listener).await;
        let mut guarded = admission.admit(server, remote);
        let mut buf = [0u8; 1];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn past_the_cap_on_proven_connections_the_one_used_least_recently_is_closed() {
        use tokio::io::AsyncReadExt;
        use tonic::transport::server::Connected;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admission = Admission::with_limits(Duration::from_secs(3600), 100, 100, 2);
        let mut kept = Vec::new();
        for _ in 0..3 {
            let (client, server, remote) = pair(&listener).await;
            kept.push((client, admission.admit(server, remote)));
        }
        kept[0].1.connect_info().prove();
        kept[1].1.connect_info().prove();
        // Each makes a call, the second first: it is now the one used least recently.
        drop(kept[1].1.connect_info().begin_call());
        drop(kept[0].1.connect_info().begin_call());
        kept[2].1.connect_info().prove();
        assert_eq!((admission.proven(), admission.unproven()), (2, 0));
        let evicted: Vec<bool> = kept.iter().map(|(_, g)| g.ticket.evicted.load(Ordering::Acquire)).collect();
        assert_eq!(evicted, [false, true, false]);
        let mut buf = [0u8; 1];
        let err = kept[1].1.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        drop(kept);
        assert_eq!(admission.proven(), 0);
    }

    #[tokio::test]
    async fn past_the_cap_a_proven_connection_with_a_call_in_flight_is_closed_last() {
        use tonic::transport::server::Connected;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admission = Admission::with_limits(Duration::from_secs(3600), 100, 100, 2);
        let mut kept = Vec::new();
        for _ in 0..3 {
            let (client, server, remote) = pair(&listener).await;
            kept.push((client, admission.admit(server, remote)));
        }
        kept[0].1.connect_info().prove();
        // The oldest has a call in flight; the newer one is idle.
        let _call = kept[0].1.connect_info().begin_call();
        kept[1].1.connect_info().prove();
        kept[2].1.connect_info().prove();
        assert!(!kept[0].1.ticket.evicted.load(Ordering::Acquire), "the connection mid-call is kept");
        assert!(kept[1].1.ticket.evicted.load(Ordering::Acquire), "the idle one is closed");
    }
}
