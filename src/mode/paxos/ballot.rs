//! Ballot numbers: (counter, proposer id), totally ordered, unique per proposer.

use serde::{Deserialize, Serialize};

/// A node's identity in the cluster.
pub type NodeId = u32;

/// A ballot number. Ordered by counter, then by proposer, so two proposers never use the
/// same ballot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Ballot {
    pub counter: u64,
    pub node: NodeId,
}

impl Ballot {
    /// The ballot before any proposal: every real ballot is greater.
    pub const ZERO: Ballot = Ballot { counter: 0, node: 0 };

    /// The largest counter a ballot from a peer may carry. A proposer raises its counter
    /// past every ballot it sees, so one absurd ballot (near `u64::MAX`) would poison a key
    /// forever and overflow the counter: such messages are refused, never persisted. At a
    /// million ballots a second this limit lasts 146,000 years.
    pub const MAX_COUNTER: u64 = 1 << 62;

    pub fn new(counter: u64, node: NodeId) -> Self {
        Self { counter, node }
    }

    /// The ballot the one-round-trip optimisation promises along with an accept (§2.2.1):
    /// the same proposer's next counter.
    pub fn successor(self) -> Self {
        Self { counter: self.counter + 1, node: self.node }
    }
}
