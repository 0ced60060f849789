//! The peer plane: node-to-node gRPC (tonic, protobuf compiled by protox at build time, see
//! `proto/peer.proto`) on every node's `--peer-addr`.
//!
//! Clients are lazily connected channels that reconnect on their own after a peer restarts.
//! A call that fails before its request could leave (the channel never became ready) is told
//! apart from one that failed after sending, because only the first proves nothing happened.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("valthree.peer");
}

pub use proto::peer_client::PeerClient;
pub use proto::peer_server::{Peer, PeerServer};

/// How long a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often an HTTP/2 PING checks that a peer's process still answers, busy or idle.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);

/// How long a PING may go unanswered before the connection counts as dead. A hung (e.g.
/// SIGSTOPped) peer keeps its sockets open and its kernel keeps acknowledging, so without
/// this a call to it would wait for its whole deadline; with it, the call fails within about
/// `KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT` (1.5 s, below a client's usual 2 s timeout).
/// A PING waits behind the data already queued on its connection, which the large flow
/// control windows below keep short.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// HTTP/2 flow-control windows of a peer connection: large, so a value of many megabytes
/// streams in a few round trips instead of one per 64 KiB (h2's default), and a PING queued
/// behind it is answered in time.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// The connection-wide window (all calls on one connection together).
pub const CONNECTION_WINDOW: u32 = 32 << 20;

/// The largest message any peer server or client of any mode accepts or sends: gRPC frames
/// a message with a 32-bit length, so 4 GiB - 1 is the largest there is. Values are bounded
/// by `--proto-max-bulk-len` (512 MiB by default) before they ever reach a peer; a mode that
/// batches several values keeps its batches under this (raft's appends stay far below it).
pub const MAX_MESSAGE: usize = u32::MAX as usize;

/// A lazily connected endpoint for the peer at `addr` (`host:port`), with the plane's
/// connect timeout and keepalive.
pub fn endpoint(addr: &str) -> Result<Endpoint, String> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .tcp_nodelay(true))
}

/// The peer server every mode serves its gRPC services on: the plane's flow-control windows
/// and keepalive (a hung client's connection is closed too).
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
}

/// A lazily connected client for the peer at `addr` (`host:port`).
pub fn client(addr: &str) -> Result<PeerClient<Channel>, String> {
    Ok(PeerClient::new(endpoint(addr)?.connect_lazy()).max_decoding_message_size(MAX_MESSAGE))
}

/// True when a failed call certainly never reached the peer: the connection to it could not
/// be made (refused, unreachable, timed out while connecting). tonic marks every such failure
/// with its `ConnectError` somewhere in the status' source chain; a typed check, not a match
/// on error texts. A failure after the connection was made (reset, keepalive timeout, the
/// call's deadline) may have delivered the request and is not "never sent".
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_request() -> proto::ListKeysRequest {
        proto::ListKeysRequest { from: 1, tombstones: false }
    }

    #[tokio::test]
    async fn a_call_to_a_closed_port_was_never_sent() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut client = client(&format!("127.0.0.1:{port}")).unwrap();
        for _ in 0..3 {
            let status = client.list_keys(list_request()).await.unwrap_err();
            assert!(never_sent(&status), "{status:?}");
        }
    }

    #[tokio::test]
    async fn a_hung_peer_fails_the_call_quickly_and_it_may_have_been_sent() {
        // A listener that accepts and never answers: what a SIGSTOPped node looks like.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mut client = client(&addr.to_string()).unwrap();
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(5), client.list_keys(list_request())).await;
        let status = outcome.expect("the keepalive ends the call before 5 s").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert!(!never_sent(&status), "{status:?}");
        hold.abort();
    }
}
