//! The listener: accepts connections up to `--maxclients`, and shuts down gracefully —
//! stop accepting, let every connection finish the command it is running and flush its
//! replies, then return (mini-redis' `server.rs` and `shutdown.rs`, with a task tracker).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ServerState, connection};
use crate::node::Faults;
use crate::store::Store;

/// How long shutdown waits for connections to finish their in-flight commands. With the
/// mode's own shutdown after it (at most 5 s more), a stopping node is gone within the 10 s
/// `valthree cluster down` gives it before SIGKILL; a command still running then is cut off
/// and its client sees the connection close (an indeterminate outcome).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

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
    /// Close a connection idle this long (`None`: never), as Redis' `timeout`.
    pub idle_timeout: Option<Duration>,
    /// End a snapshot walk idle this long (`--snapshot-walk-timeout`).
    pub snapshot_walk_timeout: Duration,
}

/// Connections that have not authenticated may hold one `UNAUTHENTICATED_SHARE`th of
/// `--maxmemory-clients` together.
pub const UNAUTHENTICATED_SHARE: u64 = 8;

/// Serves `store` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
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
        snapshot_walk_timeout: config.snapshot_walk_timeout,
        snapshot_walks_expired: AtomicU64::new(0),
        local_addr: listener.local_addr()?,
        started: Instant::now(),
        clients: AtomicUsize::new(0),
        next_client_id: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        auth_failures: AtomicU64::new(0),
        freed_since_trim: AtomicUsize::new(0),
        snapshot_walks: Default::default(),
        auth_failures_by_source: Default::default(),
        auth_failure_log: crate::node::LogThrottle::new(super::auth::FAILURE_LOG_EVERY),
    });
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
            tracker.spawn(async move {
                let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
                let _ = socket.shutdown().await;
            });
            continue;
        };
        let (store, state, stop) = (store.clone(), state.clone(), stop.child_token());
        let _ = socket.set_nodelay(true);
        let acceptor = if secure { tls.as_ref().map(|(_, a)| a.clone()) } else { None };
        tracker.spawn(async move {
            state.clients.fetch_add(1, Ordering::Relaxed);
            match acceptor {
                None => connection::handle(socket, peer, store, state.clone(), stop).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => connection::handle(stream, peer, store, state.clone(), stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
            state.clients.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    drop(tls);
    tracing::info!(connections = state.clients.load(Ordering::Relaxed), "shutting down: draining connections");
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait()).await.is_err() {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}
