//! dynamo mode: the Dynamo design (DeCandia et al., SOSP 2007) with Riak's lessons learned —
//! available under partitions, eventually consistent, and exact about causality.
//!
//! * **Ring** ([`ring`]): fixed partitions (`--vnodes`) assigned to the members; a key's
//!   preference list is the first N distinct members from its partition.
//! * **Causality** ([`dvv`]): server-side dotted version vectors. Each node's data directory
//!   is an actor with a durably leased counter, so every write has a unique dot; a PUT with
//!   context C drops exactly the siblings C covers, replicas merge by the DVV join, and
//!   concurrent writes survive as siblings instead of being lost to a clock.
//! * **Quorums** ([`coordinator`], a protocol core that does no I/O): an owner coordinates a
//!   write — applies it locally (fsync'd, group-committed in [`storage`]), sends the object to
//!   the other owners, answers after W; a read asks the live owners, answers with the join of
//!   R, and repairs the owners it found stale.
//! * **Anti-entropy** ([`aae`], `anti_entropy`): per-partition hash trees kept on every
//!   write; co-owners compare them and merge what differs, and old tombstones every owner
//!   holds are reaped.
//! * **Membership changes** (`rebalance`): a versioned ring, gossiped; a joining or leaving
//!   node's partitions move through pending replicas filled by anti-entropy.
//!
//! What the client is promised: no acknowledged write is silently lost (it is in the siblings
//! or superseded by a write whose context covered it); with R + W > N and strict quorums a
//! client reads its own acknowledged writes; once faults heal, replicas converge. Not
//! linearizable: read-modify-write commands are refused with a definite error, and the
//! sibling-aware VGET/VSET let a client merge concurrent writes itself.

pub mod aae;
mod anti_entropy;
mod args;
mod background;
pub mod coordinator;
pub mod dvv;
mod hints;
mod network;
mod node;
mod rebalance;
pub mod ring;
mod service;
#[cfg(test)]
mod sim;
mod storage;
mod store;
mod swim;
mod wire;

pub use args::{DynamoArgs, ReadRepair};
pub use node::{DynamoOptions, SiblingRead};
pub use store::DynamoMode;
