//! Handing leadership over before a leader stops (`valthree serve` on SIGTERM), so that a
//! rolling restart costs one short pause in writes instead of an election timeout.
//!
//! openraft 0.9 has no leader transfer (it came in 0.10), so this is the nearest equivalent
//! built from what 0.9 offers:
//!
//! 1. The leader waits (up to [`CATCH_UP`]) until a voter holds every entry in its log, and
//!    picks the voter that holds the most.
//! 2. It stops openraft: no more appends, so the followers' leader lease starts to run out.
//! 3. Once the lease has run out everywhere (openraft's lease is the configured
//!    `election_timeout_max`, [`super::node::ELECTION_TIMEOUT_MAX`]; a voter refuses every
//!    vote while it holds one), it asks the chosen voter over the peer plane to stand for
//!    election at once (`Campaign`, which runs `Raft::trigger().elect()` there). The other
//!    followers would wait the lease plus a randomised election timeout before campaigning
//!    themselves, so the chosen one runs alone, and it wins: its log is at least as long as
//!    any other voter's.
//!
//! Safety does not rest on any of this: it is an ordinary Raft election, which a voter with a
//! shorter log loses. If the chosen voter cannot campaign (it stopped, the call failed), the
//! followers' own election timers elect someone a moment later. Writes that reach the old
//! leader while it steps down are refused with a definite "maybe" (they are retried by their
//! node on the new leader, exactly once, as any write that meets a leader change).
//!
//! What this costs: writes pause for the lease plus one vote round (measured in
//! `docs/operations.md`), against the lease plus 0.5–1 s of election timeout, and sometimes
//! a split vote, without it.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use super::network::LeaderCall;
use super::node::{ELECTION_TIMEOUT_MAX, Inner, RPC_TIMEOUT, encode};
use super::types::NodeId;

/// How long the leader waits for a voter to hold its whole log before it steps down anyway.
pub(super) const CATCH_UP: Duration = Duration::from_secs(1);
/// Past the followers' lease, before the chosen voter campaigns: the lease runs from the
/// last append each follower received, a little before openraft stopped.
const LEASE_MARGIN: Duration = Duration::from_millis(100);

impl Inner {
    /// Moves leadership to a caught-up voter if this node leads, within `limit`; stops
    /// openraft either way. Returns what happened, for the node's last log line.
    pub(super) async fn step_down(&self, limit: Duration) -> String {
        let started = Instant::now();
        let metrics = self.metrics();
        let others: Vec<NodeId> =
            metrics.membership_config.membership().voter_ids().filter(|id| *id != self.id).collect();
        let leading = metrics.current_leader == Some(self.id);
        let needed = CATCH_UP + ELECTION_TIMEOUT_MAX + LEASE_MARGIN + RPC_TIMEOUT;
        let skip = if !leading {
            Some("not the leader: no leadership to hand over".to_string())
        } else if others.is_empty() {
            Some("the only voter: no one to hand leadership to".to_string())
        } else if limit < ELECTION_TIMEOUT_MAX + LEASE_MARGIN {
            Some(format!("no time to hand leadership over ({limit:?} left); the followers will elect a leader"))
        } else {
            None
        };
        if let Some(note) = skip {
            self.stop_raft().await;
            return note;
        }
        let catch_up = limit.saturating_sub(needed - CATCH_UP).min(CATCH_UP);
        let (target, matched, last) = self.caught_up_voter(&others, catch_up).await;
        let addr = self.addr_of(target);
        // No appends from here on: the followers' lease starts to run out.
        self.stop_raft().await;
        tokio::time::sleep(ELECTION_TIMEOUT_MAX + LEASE_MARGIN).await;
        let asked = match (addr, encode(self.id, &())) {
            (None, _) => Err(format!("n{target} is not in the membership")),
            (_, Err(e)) => Err(e.message().to_string()),
            (Some(_), Ok(payload)) => self
                .call_peer::<Result<(), String>>(target, LeaderCall::Campaign, payload, RPC_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r),
        };
        let caught_up = if matched >= last {
            format!("caught up at index {last}")
        } else {
            format!("at index {matched} of {last}")
        };
        match asked {
            Ok(()) => format!(
                "leadership handed to n{target} ({caught_up}), which stood for election {:.1}s after the request",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => format!(
                "could not ask n{target} ({caught_up}) to stand for election: {e}; the followers will elect a leader"
            ),
        }
    }

    /// Waits up to `limit` until one of `voters` holds every entry of this leader's log;
    /// returns the voter holding the most (the smallest id on a tie), its matched index and
    /// the last index of this leader's log.
    async fn caught_up_voter(&self, voters: &[NodeId], limit: Duration) -> (NodeId, u64, u64) {
        let best = |m: &openraft::RaftMetrics<NodeId, super::types::RaftMember>| {
            let last = m.last_log_index.unwrap_or(0);
            let matched = |id: &NodeId| {
                m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map_or(0, |log_id| log_id.index)
            };
            let target = voters.iter().copied().max_by_key(|id| (matched(id), std::cmp::Reverse(*id)));
            target.map(|t| (t, matched(&t), last))
        };
        let waited = self
            .raft
            .wait(Some(limit))
            .metrics(|m| best(m).is_some_and(|(_, matched, last)| matched >= last), "a voter holds the whole log")
            .await;
        let metrics = waited.unwrap_or_else(|_| self.metrics());
        best(&metrics).unwrap_or((voters[0], 0, metrics.last_log_index.unwrap_or(0)))
    }

    /// Stops openraft (it stops replicating and flushes), once.
    pub(super) async fn stop_raft(&self) {
        if self.raft_stopped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(2), self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("raft: shutdown: {e}"),
            Err(_) => tracing::warn!("raft: openraft did not stop within 2 s"),
        }
    }

    /// A leader stepping down asks this node to stand for election at once.
    pub(super) async fn campaign(&self, from: NodeId) -> Result<(), String> {
        let metrics = self.metrics();
        if !metrics.membership_config.membership().voter_ids().any(|id| id == self.id) {
            return Err(format!("n{} is not a voter", self.id));
        }
        tracing::info!(from, "the leader is stepping down and asked this node to stand for election");
        self.raft.trigger().elect().await.map_err(|e| e.to_string())
    }
}
