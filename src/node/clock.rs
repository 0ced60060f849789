//! The one wall clock a node reads. Safety decisions never read it (ballots, terms, dots and
//! leases are counters); what does — dynamo's sibling pick for a plain GET, tombstone ages,
//! hint windows, SWIM's record of when a member's state changed, raft's snapshot names — reads
//! it here, so that a skewed clock can be injected in one place.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
