//! raft mode's flags of `valthree serve` (flattened), converted once into [`RaftOptions`].

use super::{RaftOptions, SNAPSHOT_EVERY};
use crate::node::{NodeOptions, Switch};

/// raft mode's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RaftArgs {
    /// raft mode: answer reads from this node's state machine without asking the leader —
    /// faster, but a read may miss recent writes (NOT linearizable).
    #[arg(long, help_heading = "raft mode")]
    pub stale_reads: bool,
    /// raft mode: log entries between snapshots (the log is then purged but for a quarter of that).
    #[arg(long, default_value_t = SNAPSHOT_EVERY, help_heading = "raft mode")]
    pub raft_snapshot_every: u64,
    /// raft mode: a follower forwards the writes queued at once to the leader in one peer call
    /// (off, the default: one call per write).
    #[arg(long, value_enum, default_value = "off", help_heading = "raft mode")]
    pub raft_forward_batch: Switch,
}

impl RaftArgs {
    /// The mode's options for the node `node`.
    pub fn options(&self, node: NodeOptions) -> RaftOptions {
        RaftOptions {
            node,
            stale_reads: self.stale_reads,
            snapshot_every: self.raft_snapshot_every,
            forward_batch: self.raft_forward_batch.is_on(),
        }
    }
}
