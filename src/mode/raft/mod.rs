//! raft mode: a Raft log replicated to a majority, on openraft 0.9 (the stable line, with its
//! v2 storage traits under the `storage-v2` feature).
//!
//! * **Storage.** The log, vote and committed index live in redb (`DATA/raft-log.redb`),
//!   the vote and every append fsync'd before they are reported done, the committed index
//!   saved without an fsync (a quorum holding an entry is what commits it; see [`log`] for
//!   the read-index floor that follows); the state machine is in memory, snapshotted to a
//!   file every `--raft-snapshot-every` entries (default [`SNAPSHOT_EVERY`]) or sooner by the
//!   bytes of log ([`compaction`]), after which the log is purged but for a quarter of that
//!   count and at most 64 MiB ([`machine`]). A snapshot is written from a copy-on-write clone
//!   of the machine, as a stream, and sent to followers from the file in chunks
//!   ([`snapshot`]). A node that was down long catches up by snapshot.
//! * **Start.** The node with the smallest id in `--peers` initialises the cluster once: only
//!   while its own storage is empty and every peer answers that its storage is empty too.
//!   A restart (or a wiped node whose peers have state) never initialises again.
//! * **Identity.** Each data directory has a random incarnation, recorded in the membership
//!   when the node is initialised with the cluster or added; every raft message is addressed
//!   to it. A node restarted in place with an empty (or another) directory has forgotten its
//!   votes and acknowledged entries, so its peers' messages are refused there and it neither
//!   votes nor stores entries (INFO `raft_data: lost`) until it is removed and added again
//!   ([`types::RaftMember`]).
//! * **Writes** go to the leader: a follower forwards them over the peer plane, the writes
//!   that arrive while earlier forwards are out in one call ([`forward`]). Every write
//!   carries its node's session (node, a random id drawn at start) and a sequence number; the
//!   state machine keeps each session's replies until the node says they are answered, so
//!   the node may retry a write whose outcome it did not learn — on the same or a new leader
//!   — and it is applied exactly once ([`machine`]). Only when no retry settles it
//!   before the deadline does the client get `-UNCERTAIN` (or `-TRYAGAIN` if no attempt can
//!   have reached a leader).
//! * **Reads** are linearizable on every node: the leader confirms its leadership with a
//!   quorum and returns its commit index (`get_read_log_id`, the read index); the reading
//!   node waits until it has applied that index and reads locally. `--stale-reads` reads the
//!   local state machine directly — fast, possibly stale, documented as such.
//! * **Membership**: `VALTHREE.MEMBERS ADD/REMOVE` (behind `cluster add-node/remove-node`)
//!   adds a learner, waits for it to catch up, then makes it a voter; or removes a voter.
//!
//! * **Stopping.** A leader that is told to stop (SIGTERM) hands its leadership to a
//!   caught-up follower first (`handover`), so a rolling restart pauses writes for a few
//!   peer calls instead of the leader lease and an election timeout.
//!
//! Files by concern: [`types`] (what the log holds), [`log`], [`machine`], [`snapshot`] and
//! [`compaction`] (storage),
//! `node` (openraft, start-up), `network` (openraft's network and calls to the leader),
//! `service` (the peer RPCs), `write` (sessions, writes, read index), `forward` (a
//! follower's writes batched on their way to the leader), `membership`,
//! `handover` (stepping down), `receive` (a snapshot from the leader, checked before
//! openraft installs it), `store`.

mod args;
mod compaction;
mod forward;
mod handover;
#[cfg(test)]
mod install_tests;
mod log;
mod machine;
mod membership;
mod network;
mod node;
mod receive;
mod service;
mod snapshot;
mod store;
pub mod types;
mod write;

pub use args::RaftArgs;
pub use node::{RaftMode, RaftOptions};
#[doc(hidden)]
pub use service::{decode_every_message, sample_messages};
pub use types::{CHUNK, Command, NodeId, Request, Response, SNAPSHOT_EVERY, SessionId, TypeConfig};
