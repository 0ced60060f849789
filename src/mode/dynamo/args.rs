//! dynamo mode's flags of `valthree serve` (flattened), converted once into
//! [`DynamoOptions`].

use std::time::Duration;

use super::dvv::Causality;
use super::{DynamoOptions, SiblingRead};
use crate::node::{NodeOptions, Switch};

/// dynamo mode's `--read-repair`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadRepair {
    Async,
    Sync,
    /// No read repair: anti-entropy alone converges replicas.
    Off,
}

/// dynamo mode's flags; `None`: the default for the cluster's size.
#[derive(Debug, Clone, clap::Args)]
pub struct DynamoArgs {
    /// dynamo mode: partitions of the ring (a power of two).
    #[arg(long, default_value_t = super::ring::DEFAULT_PARTITIONS, help_heading = "dynamo mode")]
    pub vnodes: u32,
    /// dynamo mode: copies of every key, N (default: 3, or the number of nodes if fewer).
    #[arg(long, help_heading = "dynamo mode")]
    pub replicas: Option<usize>,
    /// dynamo mode: replicas a read waits for, R (default: 2, or N if smaller).
    #[arg(long = "r", help_heading = "dynamo mode")]
    pub read_quorum: Option<usize>,
    /// dynamo mode: replicas a write waits for, W (default: 2, or N if smaller).
    #[arg(long = "w", help_heading = "dynamo mode")]
    pub write_quorum: Option<usize>,
    /// dynamo mode: read repair in the background (async), before the read answers (sync), or
    /// none (off: anti-entropy alone converges replicas).
    #[arg(long, value_enum, default_value = "async", help_heading = "dynamo mode")]
    pub read_repair: ReadRepair,
    /// dynamo mode: hinted handoff (a write an owner missed is replayed to it when it is back).
    #[arg(long, value_enum, default_value = "on", help_heading = "dynamo mode")]
    pub hinted_handoff: Switch,
    /// dynamo mode: hints kept at most; past it new ones are dropped (and counted in INFO).
    #[arg(long, default_value_t = 1_000_000, help_heading = "dynamo mode")]
    pub max_hints: u64,
    /// dynamo mode: hints older than this are dropped unreplayed.
    #[arg(long, default_value = "3h", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub hint_window: Duration,
    /// dynamo mode: what GET answers for a key with several siblings: the latest one (pick) or -CONFLICT.
    #[arg(long, value_enum, default_value = "pick", help_heading = "dynamo mode")]
    pub sibling_read: SiblingRead,
    /// dynamo mode: a write that would leave a key with more siblings than this is refused
    /// (-CONFLICT: resolve them with VGET then VSET under the context read, or a plain SET).
    #[arg(long, default_value_t = super::node::DEFAULT_MAX_SIBLINGS as u64, value_parser = clap::value_parser!(u64).range(1..), help_heading = "dynamo mode")]
    pub max_siblings: u64,
    /// dynamo mode: how often the failure detector (SWIM) probes a member.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub swim_period: Duration,
    /// dynamo mode: let live nodes past a key's preference list stand in for its down owners
    /// and count toward W (they hand the write over when the owner is back). Keeps writes
    /// available, but R + W > N no longer promises read-your-writes.
    #[arg(long, help_heading = "dynamo mode")]
    pub sloppy_quorum: bool,
    /// dynamo mode: how often anti-entropy compares every partition with each co-owner's (0: never).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub aae_interval: Duration,
    /// dynamo mode: keys one anti-entropy exchange repairs at most (the next starts at once if more differ).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..), help_heading = "dynamo mode")]
    pub aae_max_keys: u64,
    /// dynamo mode: how old a tombstone every owner holds must be before it is deleted for good.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub tombstone_grace: Duration,
    /// dynamo mode: how long a node keeps a partition it no longer holds after a membership change
    /// before it hands it over once more and deletes its copy.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub handoff_grace: Duration,
    /// dynamo mode: how long a member that failed a probe stays SUSPECT before it is DEAD.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub suspect_timeout: Duration,
    /// Test only: dynamo mode keeps one value per key, the latest by timestamp (a concurrent
    /// write is silently lost), so the checker has a bug to catch.
    #[arg(long, hide = true, conflicts_with = "unsafe_server_clocks")]
    pub unsafe_lww: bool,
    /// Test only: dynamo mode with per-server plain vector clocks instead of dotted ones.
    #[arg(long, hide = true)]
    pub unsafe_server_clocks: bool,
}

impl DynamoArgs {
    /// The mode's options for the node `node`: the defaults for its cluster's size
    /// ([`DynamoOptions::new`]), then what was given.
    pub fn options(&self, node: NodeOptions) -> DynamoOptions {
        let mut options = DynamoOptions::new(node);
        options.partitions = self.vnodes;
        if let Some(n) = self.replicas {
            options.replicas = n;
            options.r = n.min(2);
            options.w = n.min(2);
        }
        options.r = self.read_quorum.unwrap_or(options.r);
        options.w = self.write_quorum.unwrap_or(options.w);
        options.sync_read_repair = self.read_repair == ReadRepair::Sync;
        options.read_repair = self.read_repair != ReadRepair::Off;
        options.hinted_handoff = self.hinted_handoff.is_on();
        options.max_hints = self.max_hints;
        options.hint_window = self.hint_window;
        options.sibling_read = self.sibling_read;
        options.max_siblings = usize::try_from(self.max_siblings).unwrap_or(usize::MAX);
        options.swim_period = self.swim_period;
        options.suspect_timeout = self.suspect_timeout;
        options.sloppy_quorum = self.sloppy_quorum;
        options.aae_interval = self.aae_interval;
        options.aae_max_keys = usize::try_from(self.aae_max_keys).unwrap_or(usize::MAX);
        options.tombstone_grace = self.tombstone_grace;
        options.handoff_grace = self.handoff_grace;
        options.causality = if self.unsafe_lww {
            Causality::Lww
        } else if self.unsafe_server_clocks {
            Causality::ServerClock
        } else {
            Causality::Dvv
        };
        options
    }
}
