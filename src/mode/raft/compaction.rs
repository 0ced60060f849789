//! When to snapshot and how much of the log to keep, by bytes as well as by entries.
//!
//! openraft counts entries only: a snapshot every `--raft-snapshot-every` entries, then all
//! but a quarter of that purged. Entries vary from a few bytes to a 1 MiB chunk of a large
//! value, so a count bounds neither the disk nor the cost: 2,500 kept chunks are 2.5 GB of
//! log, and a snapshot every 2,000 single-write entries rewrites a 2 GB state machine every
//! 2,000 writes. So this node's keeper, every [`EVERY`], decides itself
//! ([`snapshot_due`]):
//!
//! * a snapshot once the log past the last one holds [`SNAPSHOT_LOG_BYTES`] or half the size
//!   of the last snapshot, whichever is more — the log stays below the data, and a snapshot
//!   is written once per half its size of new log at most;
//! * or once it holds `--raft-snapshot-every` entries, while the snapshot is small (under
//!   [`SNAPSHOT_LOG_BYTES`]) or the log past it is a quarter of its size;
//! * after a snapshot, the entries it covers are purged down to [`KEEP_LOG_BYTES`] (openraft
//!   keeps a quarter of `--raft-snapshot-every` entries besides; the smaller wins), so a
//!   follower a little behind still catches up from the log and one further behind by
//!   snapshot.
//!
//! redb reuses the pages of purged entries and does not give them back to the file system,
//! so the log file stays at about 3 times the largest log held (see `log::remove_through`):
//! these bounds keep that proportional to the data.

use std::sync::Weak;
use std::time::Duration;

use super::node::Inner;

/// How often the keeper looks at the log.
pub(super) const EVERY: Duration = Duration::from_millis(200);
/// The bytes of log past the last snapshot that call for a new one, at least.
pub(super) const SNAPSHOT_LOG_BYTES: u64 = 64 << 20;
/// The bytes of entries a snapshot covers that stay in the log at most.
pub(super) const KEEP_LOG_BYTES: u64 = 64 << 20;

/// Whether to snapshot now: `entries` and `bytes` of log past the last snapshot, `snapshot`
/// its size in bytes, `every` the entries between snapshots (`--raft-snapshot-every`).
pub(super) fn snapshot_due(every: u64, entries: u64, bytes: u64, snapshot: u64) -> bool {
    let by_bytes = bytes >= SNAPSHOT_LOG_BYTES.max(snapshot / 2);
    let by_entries = entries >= every && (snapshot < SNAPSHOT_LOG_BYTES || bytes >= snapshot / 4);
    by_bytes || by_entries
}

/// Snapshots and purges this node's log by [`snapshot_due`] and [`KEEP_LOG_BYTES`] until the
/// node stops.
pub(super) async fn keep_log(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.tasks.is_stopping() || inner.raft_stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let (snapshot, last, purged) = {
            let m = inner.raft.metrics();
            let m = m.borrow();
            (m.snapshot.map_or(0, |l| l.index), m.last_log_index.unwrap_or(0), m.purged.map(|l| l.index))
        };
        let log = inner.log.clone();
        let Ok((bytes, purge_to)) =
            tokio::task::spawn_blocking(move || (log.bytes(snapshot + 1..), log.purge_point(snapshot, KEEP_LOG_BYTES)))
                .await
        else {
            continue;
        };
        let every = inner.options.snapshot_every.max(1);
        if snapshot_due(every, last.saturating_sub(snapshot), bytes, inner.machine.snapshot_bytes()) {
            // openraft ignores this while a snapshot is being built.
            let _ = inner.raft.trigger().snapshot().await;
        }
        if let Some(upto) = purge_to.filter(|upto| purged.is_none_or(|p| *upto > p)) {
            let _ = inner.raft.trigger().purge_log(upto).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn a_small_machine_is_snapshotted_by_entries_as_before() {
        assert!(!snapshot_due(2000, 1999, 10 * MB, 10 * MB));
        assert!(snapshot_due(2000, 2000, 1000, 10 * MB));
        assert!(snapshot_due(10, 10, 100, 0));
    }

    #[test]
    fn a_large_log_is_snapshotted_by_bytes_whatever_its_entries() {
        // 100 chunks of 1 MiB: fewer entries than the count, more bytes than the bound.
        assert!(snapshot_due(2000, 100, 100 * MB, 0));
        assert!(!snapshot_due(2000, 50, 50 * MB, 0));
        // A 2 GB machine: half its size of log, not 64 MiB, calls for the next snapshot.
        assert!(!snapshot_due(2000, 500, 900 * MB, 2048 * MB));
        assert!(snapshot_due(2000, 500, 1024 * MB, 2048 * MB));
    }

    #[test]
    fn a_large_machine_is_not_rewritten_for_every_few_small_entries() {
        // 2,000 single small writes are no reason to rewrite 2 GB ...
        assert!(!snapshot_due(2000, 2000, 2 * MB, 2048 * MB));
        // ... a quarter of its size of log is.
        assert!(snapshot_due(2000, 2000, 512 * MB, 2048 * MB));
    }
}
