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

    /// The largest counter a proposer follows when an acceptor reports a higher ballot than
    /// its own. The counter is node-wide and durable, so following a ballot at (or near)
    /// [`Self::MAX_COUNTER`] — one message from a buggy or compromised peer — would leave the
    /// node no ballot its peers take, for every key, for good. Up to this limit the node
    /// keeps 2^61 ballots of room (at a million a second, 73,000 years); a key whose
    /// acceptors promised more is refused its writes (`TRYAGAIN`), the other keys are not.
    pub const MAX_FOLLOWED: u64 = 1 << 61;

    /// The counter a node resumes from, given its durable one. A counter past
    /// [`Self::MAX_COUNTER`] can only come from a version that followed any ballot a peer
    /// reported, one near the limit: every ballot the node made after that jump lies above
    /// it (peers refused them all), every one before it far below [`Self::MAX_FOLLOWED`].
    /// Resuming at that limit reuses none of them and leaves the node room to grow.
    pub fn resumable_counter(durable: u64) -> u64 {
        if durable > Self::MAX_COUNTER { Self::MAX_FOLLOWED } else { durable }
    }

    pub fn new(counter: u64, node: NodeId) -> Self {
        Self { counter, node }
    }

    /// The ballot the one-round-trip optimisation promises along with an accept (§2.2.1):
    /// the same proposer's next counter.
    pub fn successor(self) -> Self {
        Self { counter: self.counter + 1, node: self.node }
    }
}
