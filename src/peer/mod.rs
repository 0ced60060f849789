//! The peer plane: node-to-node gRPC (tonic, protobuf compiled by protox at build time, see
//! `proto/peer.proto`) on every node's `--peer-addr`, shared by every replicated mode.
//!
//! * [`transport`] — one policy for every server and client: connect timeout, keepalive
//!   (a hung peer's calls fail within 1 s), flow-control windows, the framing limit on a message (4 GiB).
//! * [`tls`] — mutual TLS for the peer plane (optional; encrypts and authenticates).
//! * [`secret`] — the cluster secret, and the keys derived from it.
//! * [`handshake`] — the challenge every connection passes when a secret is configured: an
//!   HMAC of a fresh nonce each way, so the secret never travels and a recording is worth
//!   nothing on another connection.
//! * [`budget`] — the bytes peer messages may hold on a node, all calls together, and the
//!   calls one connection may carry at once.
//! * [`admission`] — connections that have not yet shown it: a deadline, and caps per source
//!   and in all, so idle connections cannot exhaust a node's descriptors.
//! * [`partition`] — the secret check and test partitions (`valthree cluster partition`) applied in one place:
//!   by default a cut link drops calls (the caller waits for its deadline), and the refusing
//!   shape fails them at once on both sides.
//! * [`link`] — what a faulty link does to one call: dropped requests and replies, and
//!   call-level packet faults (delay, jitter, loss, duplication, reordering).
//! * [`call`] — what a failed call means: not sent, refused, or maybe delivered.
//! * [`clients`] — a node's cache of lazily connected channels, one per peer.

pub mod admission;
mod budget;
mod call;
mod clients;
mod handshake;
mod link;
mod partition;
mod secret;
mod tls;
mod transport;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("valthree.peer");
}

pub use budget::{BATCH_BYTES, MAX_STREAMS, MessageBudget, ReplyBudget, split_batch};
pub use call::{CallError, STOPPING_HEADER, is_stopping, never_sent, stopping};
pub use clients::Clients;
pub use handshake::{Connector, prove_secret};
pub use link::REORDER_HOLD;
pub use partition::{Dropped, FROM_HEADER, Partitioned, PeerChannel, PeerGuard};
pub use proto::peer_client::PeerClient;
pub use proto::peer_server::{Peer, PeerServer};
pub use secret::{ClusterSecret, MIN_SECRET_LEN, SECRET_ENV, generate as generate_secret};
pub use tls::PeerTls;
pub use transport::*;
