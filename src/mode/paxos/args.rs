//! paxos mode's flags of `valthree serve` (flattened), converted once into [`PaxosOptions`].

use super::PaxosOptions;
use crate::node::{NodeOptions, Switch};

/// paxos mode's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PaxosArgs {
    /// paxos mode: the one-round-trip optimisation (an accept also promises the next ballot).
    #[arg(long, value_enum, default_value = "on", help_heading = "paxos mode")]
    pub paxos_one_rtt: Switch,
    /// paxos mode: how often tombstones of deleted keys are garbage-collected (0s: never).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, help_heading = "paxos mode")]
    pub paxos_gc_interval: std::time::Duration,
    /// Test only: accept a paxos value after this many acknowledgements (breaks quorum
    /// intersection, so the checker has a bug to catch).
    #[arg(long, hide = true)]
    pub unsafe_accept_quorum: Option<usize>,
    /// Test only: take peers' ballots up to 2^62 whatever the clock says (see
    /// `Ballot::ceiling`), as nodes before the ceiling did, so a test can build the state a
    /// forged ballot left on such a cluster.
    #[arg(long, hide = true)]
    pub unsafe_no_ballot_ceiling: bool,
}

impl PaxosArgs {
    /// The mode's options for the node `node`.
    pub fn options(&self, node: NodeOptions) -> PaxosOptions {
        PaxosOptions {
            node,
            one_round_trip: self.paxos_one_rtt.is_on(),
            unsafe_accept_quorum: self.unsafe_accept_quorum,
            ballot_ceiling: !self.unsafe_no_ballot_ceiling,
            gc_interval: self.paxos_gc_interval,
        }
    }
}
