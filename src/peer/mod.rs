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

/// The largest message a peer accepts: values may be 512 MiB (Redis' limit) plus framing.
pub const MAX_MESSAGE: usize = 1 << 30;

/// A lazily connected client for the peer at `addr` (`host:port`).
pub fn client(addr: &str) -> Result<PeerClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    Ok(PeerClient::new(endpoint.connect_lazy()).max_decoding_message_size(MAX_MESSAGE))
}

/// True when a failed call certainly never reached the peer: the channel could not connect.
pub fn never_sent(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unknown && status.message().starts_with("Service was not ready")
}
