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

    /// The pace the [ceiling](Self::ceiling) rises at: ballot counters per second.
    pub const CEILING_RATE: u64 = 1 << 20;

    /// The least the [ceiling](Self::ceiling) ever is, whatever the clock says (a node whose
    /// clock was reset to 1970 still takes every ballot an honest cluster makes).
    pub const CEILING_FLOOR: u64 = 1 << 48;

    /// The highest ballot counter a node takes from a peer at `now`: [`Self::CEILING_RATE`]
    /// counters per second since the Unix epoch (2^50.7 in 2026), and at least
    /// [`Self::CEILING_FLOOR`].
    ///
    /// Why it can never refuse an honest ballot: a proposer's counter grows by one per prepare
    /// it sends, past the highest it has seen, and by at most its durable reserve
    /// (1,000) per restart, so the highest counter of a cluster that
    /// never met a forged ballot is at most the number of prepares and restarts it ever made:
    /// to reach the ceiling, a cluster would have to send a million prepares a second, every
    /// second since 1970 (or 2^48, 280 trillion, whatever the clock). Why it closes the
    /// wedge: a holder of the secret can push a key only up to the ceiling, which is still
    /// 2^10 below [`Self::MAX_FOLLOWED`] and rises faster than any node spends ballots, so a
    /// node that followed it goes on making ballots every acceptor takes a moment later
    /// (nodes whose clocks disagree by `s` seconds may refuse such a node's ballots for up to
    /// `s` seconds; a proposer also refuses replies above its own ceiling, so it never follows
    /// an acceptor whose clock runs ahead). The limit reaches [`Self::MAX_FOLLOWED`] in
    /// 69,000 years.
    ///
    /// It rises smoothly, not a second at a time: an honest proposer that followed a ballot at
    /// exactly what it follows now (a duelled ballot a second old) makes its next ballots a few
    /// counters above it, and another proposer meeting them a moment later must follow them
    /// too. With a ceiling that rose in whole seconds, those ballots stayed out of every other
    /// proposer's reach until the clock's next second, and a write meeting one failed at once.
    pub fn ceiling(now: std::time::SystemTime) -> u64 {
        let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let within = u64::from(since.subsec_nanos()) * Self::CEILING_RATE / 1_000_000_000;
        since
            .as_secs()
            .saturating_mul(Self::CEILING_RATE)
            .saturating_add(within)
            .clamp(Self::CEILING_FLOOR, Self::MAX_COUNTER)
    }

    /// How far below its own [ceiling](Self::ceiling) a proposer's ballots stay: one second
    /// of the ceiling's rise.
    pub const FOLLOW_MARGIN: u64 = Self::CEILING_RATE;

    /// The highest counter a proposer whose ceiling is `ceiling` follows: [`Self::MAX_FOLLOWED`],
    /// and at least [`Self::FOLLOW_MARGIN`] below the ceiling.
    ///
    /// A holder of the secret can make acceptors promise a key at exactly the ceiling, again
    /// and again (a duel). A proposer that followed such a ballot with its one node-wide
    /// counter would make every key's next ballots above the ceiling until the clock's next
    /// second, and peers would refuse them all; one that stays a second below it never makes
    /// a ballot its peers refuse (unless their clocks run more than a second behind), and
    /// only the duelled key, whose acceptors promised more than it follows, is refused its
    /// writes, at once (`TRYAGAIN`). A ballot the attacker left is followed one second after
    /// it was made, so the key is writable again a second after the duel ends.
    pub fn followable(ceiling: u64) -> u64 {
        ceiling.saturating_sub(Self::FOLLOW_MARGIN).min(Self::MAX_FOLLOWED)
    }

    /// How far past what it follows a proposer still waits for a ballot it met instead of
    /// giving its key up at once: 1/16 of a second of the ceiling's rise.
    ///
    /// A proposer that follows a ballot at exactly what it follows then makes its next
    /// ballots a few counters above it (one per prepare). A second proposer meeting one on a
    /// key both ran (a stand-in after a hedge) a moment later follows it once its own ceiling
    /// rose by those few counters, microseconds later; a loaded node's driver may still read
    /// its ceiling just before. Such a round retries (its backoff lets the ceiling rise past
    /// the ballot) instead of failing. A duelled ballot, at the ceiling itself, is still
    /// given up on at once for all but the last 1/16 of the second before it is followed.
    pub const REACH_SLACK: u64 = Self::CEILING_RATE / 16;

    pub fn new(counter: u64, node: NodeId) -> Self {
        Self { counter, node }
    }

    /// The ballot the one-round-trip optimisation promises along with an accept (§2.2.1):
    /// the same proposer's next counter.
    pub fn successor(self) -> Self {
        Self { counter: self.counter + 1, node: self.node }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// The ceiling rises smoothly, [`Ballot::CEILING_RATE`] a second, not a second at a time:
    /// a ballot a few counters above what a proposer follows now is followed microseconds
    /// later, not at the clock's next second.
    #[test]
    fn the_ceiling_rises_smoothly_within_a_second() {
        let at = |ms: u64| Ballot::ceiling(UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms));
        let second = 1_800_000_000 * Ballot::CEILING_RATE;
        assert_eq!(at(0), second);
        assert_eq!(at(500), second + Ballot::CEILING_RATE / 2);
        assert_eq!(at(999), second + Ballot::CEILING_RATE * 999 / 1000);
        assert_eq!(at(1000), second + Ballot::CEILING_RATE);
        let micro = Ballot::ceiling(UNIX_EPOCH + Duration::from_micros(1_800_000_000_000_010));
        assert_eq!(micro, second + 10, "about a counter a microsecond");
        assert_eq!(Ballot::ceiling(UNIX_EPOCH), Ballot::CEILING_FLOOR);
        assert_eq!(Ballot::ceiling(UNIX_EPOCH + Duration::from_secs(1 << 43)), Ballot::MAX_COUNTER);
    }
}
