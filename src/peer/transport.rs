//! How peers connect: timeouts, keepalive, flow-control windows and the message-size policy,
//! the same for every mode's servers and clients.

use std::time::Duration;

use tonic::transport::Endpoint;

/// How long a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often an HTTP/2 PING checks that a peer's process still answers, busy or idle.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(250);

/// How long a PING may go unanswered before the connection counts as dead. A hung (e.g.
/// SIGSTOPped) peer keeps its sockets open and its kernel keeps acknowledging, so without
/// this a call to it would wait for its whole deadline; with it, the call fails within about
/// `KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT` (1 s, below a client's usual 2 s timeout).
/// A PING waits behind the data already queued on its connection, which the large flow
/// control windows below keep short.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(750);

/// How long after a peer stops answering the keepalive gives its connection up: a call to a
/// partitioned peer fails (maybe sent) within this, and new connections then time out.
pub const KEEPALIVE_GIVES_UP: Duration =
    Duration::from_millis((KEEPALIVE_INTERVAL.as_millis() + KEEPALIVE_TIMEOUT.as_millis()) as u64);

/// HTTP/2 flow-control windows of a peer client's connection (what a peer may send it
/// unread: replies to its own calls): large, so a value of many megabytes streams in a few
/// round trips instead of one per 64 KiB (h2's default), and a PING queued behind it is
/// answered in time.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// The client's connection-wide window (all calls on one connection together).
pub const CONNECTION_WINDOW: u32 = 32 << 20;

/// The windows a peer *server* grants each connection. A server does not read a message
/// its [message budget](super::MessageBudget) cannot hold yet, so whatever a connection's
/// window lets arrive sits unread in memory: this window, times the proven connections a
/// node allows ([`MAX_PROVEN`](super::admission::MAX_PROVEN)), bounds that (256 MiB), where
/// the client's 32 MiB let 60 connections park 1.9 GB. 4 MiB still streams a large value at
/// loopback and LAN speed (a window per round trip).
pub const SERVER_STREAM_WINDOW: u32 = 2 << 20;
/// The server's connection-wide window.
pub const SERVER_CONNECTION_WINDOW: u32 = 4 << 20;

/// The largest message any peer server or client of any mode accepts or sends: gRPC frames
/// a message with a 32-bit length, so 4 GiB - 1 is the largest there is. What a server takes
/// in is bounded much lower, by its [`MessageBudget`](super::MessageBudget) (twice
/// `--proto-max-bulk-len`, 512 MiB by default, and some): values are bounded by that flag
/// before they ever reach a peer, and modes bound their batches.
pub const MAX_MESSAGE: usize = u32::MAX as usize;

/// An endpoint for the peer at `addr` (`host:port`), with the plane's connect timeout and
/// keepalive; over mutual TLS when `tls` is given. [`channel`] connects it.
pub fn endpoint(addr: &str, tls: Option<&super::PeerTls>) -> Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| format!("bad peer address {addr:?}: {e}"))?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.client()).map_err(|e| format!("peer TLS for {addr}: {e}"))?;
    }
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .tcp_nodelay(true))
}

/// A lazily connected channel to the peer at `addr`: over mutual TLS when `tls` is given, each
/// connection opened by the handshake proving `secret` when one is given.
pub fn channel(
    addr: &str,
    tls: Option<&super::PeerTls>,
    secret: Option<&super::ClusterSecret>,
) -> Result<tonic::transport::Channel, String> {
    // The connector times itself out (so the error says "never sent"); tonic's own timeout,
    // around the connector and a TLS handshake, stays as a backstop.
    Ok(endpoint(addr, tls)?
        .connect_timeout(CONNECT_TIMEOUT * 3)
        .connect_with_connector_lazy(super::Connector::new(secret)))
}

/// The peer server every mode serves its gRPC services on: the plane's flow-control windows
/// and keepalive (a hung client's connection is closed too), and at most
/// [`MAX_STREAMS`](super::MAX_STREAMS) calls at once on a connection.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(super::MAX_STREAMS)
        .initial_stream_window_size(SERVER_STREAM_WINDOW)
        .initial_connection_window_size(SERVER_CONNECTION_WINDOW)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
}

/// Serves a mode's gRPC `service` on `listener` until `stopping` resolves: the plane's
/// transport settings, unauthenticated connections bounded ([`super::admission`]), the
/// node's secret and partitions checked before any handler runs ([`PeerGuard`]), its peer
/// TLS, and the bytes messages hold bounded by its message budget.
pub async fn serve<S>(
    listener: tokio::net::TcpListener,
    service: S,
    faults: std::sync::Arc<crate::node::Faults>,
    node: crate::node::NodeOptions,
    stopping: impl std::future::Future<Output = ()> + Send,
) where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let budget = node.message_budget();
    let (secret, tls) = (node.secret, node.peer_tls);
    // Unauthenticated connections are bounded before any of them reaches the server.
    let incoming = super::admission::incoming(listener, super::admission::Admission::new(secret.as_ref()));
    let mut builder = server();
    if let Some(tls) = &tls {
        builder = match builder.tls_config(tls.server()) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::error!("peer TLS: {e}");
                return;
            }
        };
    }
    let served = builder
        .layer(super::PeerGuard::new(faults, secret, S::NAME))
        .layer(budget)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stopping)
        .await;
    if let Err(e) = served {
        tracing::error!("peer server stopped: {e}");
    }
}
