//! paxos mode: CASPaxos (Rystsov, arXiv 1802.07000), leaderless, one register per key.
//!
//! Every key is an independent register replicated on 2F+1 acceptors. A proposer changes a
//! register in two phases (§2.1): *prepare* with a fresh ballot collects promises from F+1
//! acceptors, each reporting its last accepted (ballot, value); the proposer takes the value
//! with the highest ballot, applies the command's change function to it, and *accepts* the
//! result at the same ballot on F+1 acceptors. Every command — SET, DEL, INCR, APPEND,
//! SET NX/XX/IFEQ/IFNE/IFDEQ/IFDNE, DELEX, GETDEL, and GET as the identity — is a change
//! function, so every command is an atomic read-modify-write and the register is
//! linearizable. A round changes one register, so MSET and MSETNX, which would need several
//! registers to change as one, are refused rather than run non-atomically.
//!
//! * The one-round-trip optimisation (§2.2.1): an accept also promises the proposer's next
//!   ballot, so the next command on that key skips the prepare; if another proposer
//!   intervened, the accept is refused and the round falls back to a full prepare.
//! * Deletion (§3.1): tombstones, collected by a full-acceptor rewrite and a conditional
//!   removal; the paper's proposer ages become a durable per-acceptor floor ([`storage`]).
//! * Membership change (§2.3): done as joint consensus with the paper's rescan step
//!   ([`PaxosMode::change_membership`]).
//! * Identity: each data directory has a random incarnation that the configuration records;
//!   an acceptor votes only under a configuration that records its own, and one whose
//!   directory was emptied (or swapped) and that restarts in place refuses to vote until it
//!   is removed and replaced (`identity`).
//!
//! Invariants: a ballot is used by one proposer only (ballot = (counter, node), the counter's
//! high-water mark durable); an acceptor never takes a ballot below its promise and persists
//! before it replies; any two quorums intersect, also across a membership change. The
//! protocol core does no I/O ([`acceptor::handle`] is a pure function, [`proposer::Proposer`]
//! a state machine over messages), so a seeded simulator replays any interleaving of dropped,
//! duplicated and reordered messages. The I/O around it is split by concern: `node` (the node,
//! its acceptor thread and proposer driver), `network` (channels, outboxes, bypassing down
//! peers), `forward` (home routing), `presence` (stopping and started nodes tell their peers),
//! `identity` (incarnations), `membership`, `gc`, `service` (the peer RPCs) and `store` (the
//! [`Store`](crate::store::Store) implementation).

pub mod acceptor;
mod args;
pub mod ballot;
pub mod compact;
mod forward;
mod gc;
mod identity;
#[cfg(test)]
mod local;
mod membership;
mod network;
mod node;
mod presence;
pub mod proposer;
mod service;
#[cfg(test)]
mod sim;
pub mod storage;
mod store;
mod wire;

pub use args::PaxosArgs;
pub use ballot::{Ballot, NodeId};
pub use node::{PaxosMode, PaxosOptions, home_of};

/// The decoders peers' input meets, for the seeded fuzz tests (`tests/decoders_fuzz.rs`):
/// each turns a malformed message into an error, never a panic.
#[doc(hidden)]
pub fn decode_message(m: crate::peer::proto::PaxosMessage) -> crate::error::Result<()> {
    wire::message_from(m, Ballot::MAX_COUNTER).map(|_| ())
}

#[doc(hidden)]
pub fn decode_reply(r: crate::peer::proto::PaxosReply) -> crate::error::Result<()> {
    wire::reply_from(r, Ballot::MAX_COUNTER).map(|_| ())
}

#[doc(hidden)]
pub fn decode_forward(r: crate::peer::proto::ForwardRequest) -> crate::error::Result<()> {
    wire::forward_from(r).map(|_| ())
}
