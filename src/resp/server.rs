//! The listener: accepts connections up to `--maxclients`, and shuts down gracefully —
//! stop accepting, let every connection finish the command it is running and flush its
//! replies, then return (mini-redis' `server.rs` and `shutdown.rs`, with a task tracker).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ServerState, connection};
use crate::metrics::{Kind, Sample};
use crate::node::Faults;
use crate::store::Store;

/// How long shutdown waits for connections to finish their in-flight commands, by default
/// (`valthree serve --shutdown-timeout`). With the mode's own shutdown after it, a stopping
/// node is gone within the 10 s `valthree cluster down` gives it before SIGKILL; a command
/// still running then is cut off and its client sees the connection close (an indeterminate
/// outcome).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a TLS client may take to finish its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The front's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The `default` user's password (`--requirepass`); `None` lets every client in.
    pub requirepass: Option<String>,
    /// Enables the admin commands (`VALTHREE.FAULT`, `VALTHREE.MEMBERS`) for holders of this token.
    pub admin_token: Option<String>,
    /// The node's fault switches, shared with its mode.
    pub faults: Arc<Faults>,
    /// The most connections served at once; more are refused with Redis' error.
    pub maxclients: usize,
    /// The longest bulk string a request may carry (`proto-max-bulk-len`).
    pub proto_max_bulk_len: u64,
    /// The bytes all connections' query buffers may hold together (0: no limit).
    pub maxmemory_clients: u64,
    /// What one connection's unsent replies may hold (`client-output-buffer-limit`).
    pub output_limit: OutputLimit,
    /// Close a connection idle this long (`None`: never), as Redis' `timeout`.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown waits for connections to finish the commands they are running.
    pub drain_timeout: Duration,
    /// The node's counters (INFO and `/metrics` read them).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// End a snapshot walk idle this long (`--snapshot-walk-timeout`).
    pub snapshot_walk_timeout: Duration,
}

/// Redis' `client-output-buffer-limit` for its normal class: what one connection's unsent
/// replies may hold. A reply that would leave more than `hard` bytes unsent is not queued
/// (the reply to a read becomes an error, a write's outcome is uncertain and the connection
/// closes); a client with more than `soft` bytes unsent that reads none of them for
/// `soft_for` is closed. 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_for: Duration,
}

impl OutputLimit {
    /// No limit, Redis' own default for normal clients.
    pub const NONE: Self = Self { hard: 0, soft: 0, soft_for: Duration::ZERO };

    /// Parses Redis' form, "HARD SOFT SECONDS" (sizes as `--maxmemory-clients` takes them), with
    /// an optional leading class name, which must be `normal`: valthree has no replicas and no
    /// pub/sub clients.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("normal")) {
            words.remove(0);
        } else if words.first().is_some_and(|w| w.parse::<u64>().is_err() && crate::node::parse_size(w).is_err()) {
            return Err(format!(
                "only the normal class has a limit here (valthree has no replica or pubsub clients): {text:?}"
            ));
        }
        let [hard, soft, seconds] = words[..] else {
            return Err(format!("expected \"HARD SOFT SECONDS\" (e.g. \"0 64mb 60\"), got {text:?}"));
        };
        let seconds: u64 = seconds.parse().map_err(|_| format!("not a number of seconds: {seconds:?}"))?;
        Ok(Self {
            hard: crate::node::parse_size(hard)?,
            soft: crate::node::parse_size(soft)?,
            soft_for: Duration::from_secs(seconds),
        })
    }

    /// True when `pending` unsent bytes pass the hard limit.
    pub fn over_hard(&self, pending: usize) -> bool {
        self.hard > 0 && pending as u64 > self.hard
    }

    /// True when `pending` unsent bytes are above the soft limit (which counts only with a
    /// time: a soft limit of 0 bytes, or for 0 seconds, is off, as in Redis).
    pub fn over_soft(&self, pending: usize) -> bool {
        self.soft > 0 && !self.soft_for.is_zero() && pending as u64 > self.soft
    }
}

impl std::fmt::Display for OutputLimit {
    /// As `CONFIG GET client-output-buffer-limit` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "normal {} {} {}", self.hard, self.soft, self.soft_for.as_secs())
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still running a command when the drain timed out (one command each):
    /// those commands were cut off, and their clients get `-UNCERTAIN` (the mode stopped
    /// under them) or see the connection close, both indeterminate outcomes.
    pub cut: usize,
    /// From the shutdown signal to the last connection's end (or the timeout).
    pub took: Duration,
}

/// Connections that have not authenticated may hold one `UNAUTHENTICATED_SHARE`th of
/// `--maxmemory-clients` together.
pub const UNAUTHENTICATED_SHARE: u64 = 8;

/// Serves `store` on `listener` until `shutdown` completes, then drains: the listeners close
/// at once (a new connection is refused), every connection answers the requests it has
/// already received and closes, and after `drain_timeout` the rest are cut off.
pub async fn serve(
    listener: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Drained> {
    let drain_timeout = config.drain_timeout;
    let state = Arc::new(ServerState {
        requirepass: config.requirepass,
        admin_token: config.admin_token,
        faults: config.faults,
        maxclients: config.maxclients,
        proto_max_bulk_len: config.proto_max_bulk_len,
        client_buffers: Arc::new(super::codec::BufferBudget::new(
            usize::try_from(config.maxmemory_clients).unwrap_or(usize::MAX),
        )),
        unauthenticated_buffers: Arc::new(super::codec::BufferBudget::new(
            usize::try_from(match config.maxmemory_clients {
                0 => 0,
                all => (all / UNAUTHENTICATED_SHARE).max(1),
            })
            .unwrap_or(usize::MAX),
        )),
        idle_timeout: config.idle_timeout,
        output_limit: config.output_limit,
        output_limit_closed: AtomicU64::new(0),
        evictor: Default::default(),
        snapshot_walk_timeout: config.snapshot_walk_timeout,
        snapshot_walks_expired: AtomicU64::new(0),
        local_addr: listener.local_addr()?,
        started: Instant::now(),
        clients: AtomicUsize::new(0),
        next_client_id: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        auth_failures: AtomicU64::new(0),
        rejected_connections: AtomicU64::new(0),
        freed_since_trim: AtomicUsize::new(0),
        snapshot_walks: Default::default(),
        auth_throttled: AtomicU64::new(0),
        auth_allowance: Default::default(),
        auth_repeated_failures: Default::default(),
        auth_failure_log: crate::node::LogThrottle::new(super::auth::FAILURE_LOG_EVERY),
        strangers: Default::default(),
        strangers_closed: AtomicU64::new(0),
        metrics: config.metrics.clone(),
    });
    config.metrics.add_source(Box::new(gauges(Arc::downgrade(&state))));
    let slots = Arc::new(Semaphore::new(config.maxclients));
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    let tls_accept = async |tls: &Option<(TcpListener, tokio_rustls::TlsAcceptor)>| match tls {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    };
    loop {
        let (mut socket, peer, secure) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => (socket, peer, false),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            accepted = tls_accept(&tls) => match accepted {
                Ok((socket, peer)) => (socket, peer, true),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            state.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tracker.spawn(async move {
                // A TLS client would read plain text as a broken handshake: it is only closed.
                if !secure {
                    let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
                }
                let _ = socket.shutdown().await;
            });
            continue;
        };
        let (store, state, stop) = (store.clone(), state.clone(), stop.child_token());
        let _ = socket.set_nodelay(true);
        let acceptor = if secure { tls.as_ref().map(|(_, a)| a.clone()) } else { None };
        tracker.spawn(async move {
            // With a password, a connection counts against its address until it authenticates,
            // from its accept on (a TLS handshake included), and must do so in time.
            let accepted = Instant::now();
            let stranger = match state.requirepass {
                None => None,
                Some(_) => match state.strangers.enter(peer.ip()) {
                    Some(stranger) => Some((stranger, accepted + super::auth::AUTH_DEADLINE)),
                    None => {
                        state.strangers_closed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "too many unauthenticated connections from this address");
                        if acceptor.is_none() {
                            let _ = socket
                                .write_all(b"-ERR too many connections from your address have not authenticated\r\n")
                                .await;
                        }
                        drop(permit);
                        return;
                    }
                },
            };
            state.clients.fetch_add(1, Ordering::Relaxed);
            match acceptor {
                None => {
                    let socket = Counted { inner: socket, metrics: state.metrics.clone() };
                    connection::handle(socket, peer, store, state.clone(), stop, stranger).await
                }
                Some(acceptor) => match tokio::time::timeout(
                    TLS_HANDSHAKE_TIMEOUT.min(super::auth::AUTH_DEADLINE),
                    acceptor.accept(socket),
                )
                .await
                {
                    Ok(Ok(stream)) => {
                        let stream = Counted { inner: stream, metrics: state.metrics.clone() };
                        connection::handle(stream, peer, store, state.clone(), stop, stranger).await
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
            state.clients.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    let signalled = Instant::now();
    drop(listener);
    drop(tls);
    tracing::info!(connections = state.clients.load(Ordering::Relaxed), "shutting down: draining connections");
    stop.cancel();
    tracker.close();
    let mut cut = 0;
    if tokio::time::timeout(drain_timeout, tracker.wait()).await.is_err() {
        cut = tracker.len();
        tracing::warn!("{cut} connections still busy after {drain_timeout:?}; closing them");
    }
    Ok(Drained { cut, took: signalled.elapsed() })
}

/// The server's gauges, read at each scrape while the server lives.
fn gauges(state: std::sync::Weak<ServerState>) -> impl Fn(&mut Vec<Sample>) + Send + Sync {
    move |out| {
        let Some(state) = state.upgrade() else { return };
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64;
        out.extend([
            Sample::new(
                "valthree_connected_clients",
                "Client connections open now.",
                Kind::Gauge,
                state.clients.load(Ordering::Relaxed) as f64,
            ),
            Sample::new("valthree_maxclients", "--maxclients.", Kind::Gauge, state.maxclients as f64),
            Sample::new(
                "valthree_connections_received",
                "Client connections accepted.",
                Kind::Counter,
                load(&state.next_client_id),
            ),
            Sample::new(
                "valthree_rejected_connections",
                "Client connections refused because --maxclients were open (INFO's rejected_connections).",
                Kind::Counter,
                load(&state.rejected_connections),
            ),
            Sample::new(
                "valthree_client_output_buffer_limit_disconnections",
                "Client connections closed for passing --client-output-buffer-limit (INFO's \
                 client_output_buffer_limit_disconnections).",
                Kind::Counter,
                load(&state.output_limit_closed),
            ),
            Sample::new(
                "valthree_evicted_clients",
                "Client connections closed to make room in --maxmemory-clients: they held the most unsent \
                 output and received less than 64 KiB of it, or a thirtieth of what waits, in 2 s (INFO's \
                 evicted_clients).",
                Kind::Counter,
                state.evictor.evicted() as f64,
            ),
            Sample::new(
                "valthree_client_query_buffers_bytes",
                "Bytes all clients' query and output buffers hold now (what --maxmemory-clients bounds).",
                Kind::Gauge,
                state.client_buffers.used() as f64,
            ),
            Sample::new(
                "valthree_auth_failures",
                "Wrong passwords received (INFO's acl_access_denied_auth).",
                Kind::Counter,
                load(&state.auth_failures),
            ),
            Sample::new(
                "valthree_auth_attempts_throttled",
                "AUTHs answered without comparing their password: their source network had no turn free \
                 (INFO's auth_attempts_throttled).",
                Kind::Counter,
                load(&state.auth_throttled),
            ),
            Sample::new(
                "valthree_uptime_seconds",
                "Seconds since the server started.",
                Kind::Gauge,
                state.started.elapsed().as_secs_f64(),
            ),
        ]);
    }
}

/// A client stream that counts the bytes it reads and writes (INFO's `total_net_input_bytes`
/// and `total_net_output_bytes`).
struct Counted<S> {
    inner: S,
    metrics: Arc<crate::metrics::Metrics>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.metrics.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.metrics.net_output_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.metrics.net_output_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: super::eviction::Acknowledged> super::eviction::Acknowledged for Counted<S> {
    fn acknowledged(&self) -> Option<u64> {
        self.inner.acknowledged()
    }
}
