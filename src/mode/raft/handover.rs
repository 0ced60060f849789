//! Handing leadership over before a leader stops (`valthree serve` on SIGTERM), so that a
//! rolling restart costs one short pause in writes instead of an election timeout.
//!
//! openraft 0.9 has no leader transfer (it came in 0.10), so this is the nearest equivalent
//! built from what 0.9 offers. What stands in the way is the followers' leader lease: a voter
//! whose vote is *committed* (it follows an elected leader) refuses every vote request until
//! `election_timeout_max` has passed since it last heard from that leader (openraft 0.9's
//! `Engine::handle_vote_req`: a committed vote rejects while `now <= vote_utime + lease`).
//! The lease is fixed when `Raft` is built and measured on openraft's own clock, so it cannot
//! be shortened for a hand-over. But it guards only a committed vote: a voter that stands for
//! election itself holds an uncommitted vote for itself, and grants a request of a higher term
//! from a candidate whose log is at least as long as its own. So:
//!
//! 1. The leader refuses new proposals (they are retried on the next leader), waits (up to
//!    [`CATCH_UP`]) for the proposals openraft already has to be answered and then until a
//!    voter holds every entry in its log, and picks the voter that holds the most (the
//!    *target*).
//! 2. It stops openraft: no more appends or heartbeats.
//! 3. It asks every other voter to stand for election (`Campaign`, which runs
//!    `Raft::trigger().elect()` there and answers once the voter is a candidate): each now
//!    holds an uncommitted vote for itself at term T+1, and no lease. None of them can win:
//!    the target still holds its lease and refuses them.
//! 4. It asks the target to stand twice: at T+1 (refused: the others voted for themselves at
//!    that term) and at T+2, which every other voter grants — the target's log is the longest.
//!    At one term openraft ranks candidates by node id, so another voter with a higher id
//!    could win the target's vote at T+1 (its request arriving after the target stood) and
//!    with it the election, and the target standing again at T+2 would depose it and leave no
//!    leader for an election timeout (the 0.8–1.2 s pauses measured before). So the target is
//!    the caught-up voter with the *highest* id (no one can win its vote at its own term: it
//!    usually wins at T+1 already). A target that still finds its vote held by another voter
//!    waits a moment for that voter to lead (it holds the whole log too), and stands only if
//!    it does not: the vote may only have been taken from that voter's refusal, which elects
//!    no one.
//!
//! Writes pause for the catch-up wait, the stop and a few peer calls, not for the lease.
//! Safety does not rest on any of this: each step is an ordinary Raft election, which a voter
//! with a shorter log loses. If a call fails (a voter stopped, a call timed out), the
//! followers' own election timers elect someone a lease and an election timeout later, as
//! without a hand-over. Writes that reach the old leader while it steps down are refused with
//! a definite "maybe" (they are retried by their node on the new leader, exactly once, as any
//! write that meets a leader change).

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use super::network::LeaderCall;
use super::node::{Inner, RPC_TIMEOUT, encode};
use super::types::NodeId;

/// How long the leader waits for a voter to hold its whole log before it steps down anyway.
pub(super) const CATCH_UP: Duration = Duration::from_secs(1);
/// How long a voter asked to campaign waits to stand at a higher term before it answers.
const CAMPAIGN_WAIT: Duration = Duration::from_millis(500);
/// How long a target whose vote another voter holds waits for that voter to lead before it
/// stands itself (see `campaign`).
const WINNER_WAIT: Duration = Duration::from_millis(200);

impl Inner {
    /// Moves leadership to a caught-up voter if this node leads, within `limit`; stops
    /// openraft either way. Returns what happened, for the node's last log line.
    pub(super) async fn step_down(&self, limit: Duration) -> String {
        let started = Instant::now();
        let metrics = self.metrics();
        let others: Vec<NodeId> =
            metrics.membership_config.membership().voter_ids().filter(|id| *id != self.id).collect();
        let leading = metrics.current_leader == Some(self.id);
        let needed = CATCH_UP + RPC_TIMEOUT;
        let skip = if !leading {
            Some("not the leader: no leadership to hand over".to_string())
        } else if others.is_empty() {
            Some("the only voter: no one to hand leadership to".to_string())
        } else if limit < RPC_TIMEOUT {
            Some(format!("no time to hand leadership over ({limit:?} left); the followers will elect a leader"))
        } else {
            None
        };
        if let Some(note) = skip {
            self.stop_raft().await;
            return note;
        }
        // New proposals are refused from here on (their nodes retry them on the next leader),
        // so the log the target must hold stops growing.
        self.stepping_down.store(true, std::sync::atomic::Ordering::SeqCst);
        let catch_up = limit.saturating_sub(needed - CATCH_UP).min(CATCH_UP);
        // A proposal already in openraft may still append an entry, after a voter was seen
        // to hold the whole log; if it reached another voter but not the target, the target's
        // log is the shorter one, it loses every vote it asks for, and no one leads for an
        // election timeout or two (2 s measured).
        let deadline = Instant::now() + catch_up;
        while self.proposing.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let catch_up = deadline.saturating_duration_since(Instant::now());
        let (target, matched, last) = self.caught_up_voter(&others, catch_up).await;
        // No appends from here on.
        self.stop_raft().await;
        let grew = self.metrics().last_log_index.unwrap_or(0).saturating_sub(last);
        let asked = self.hand_to(target, &others).await;
        let mut caught_up = if matched >= last {
            format!("caught up at index {last}")
        } else {
            format!("at index {matched} of {last}")
        };
        if grew > 0 {
            caught_up.push_str(&format!(", {grew} more entries appended after"));
        }
        match asked {
            // The voter asked last stood; another one may win (see `campaign`), which only
            // the cluster can tell now (`cluster rolling-restart` asks it).
            Ok(()) => format!(
                "leadership handed over: asked n{target} ({caught_up}) to stand for election, which it did {:.2}s \
                 after the request",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => format!(
                "could not ask n{target} ({caught_up}) to stand for election: {e}; the followers will elect a leader"
            ),
        }
    }

    /// Steps 3 and 4 of the hand-over: every voter but `target` stands for election, then
    /// `target` twice. Fails with the first call that failed.
    async fn hand_to(&self, target: NodeId, voters: &[NodeId]) -> Result<(), String> {
        if self.addr_of(target).is_none() {
            return Err(format!("n{target} is not in the membership"));
        }
        let others = voters.iter().copied().filter(|id| *id != target);
        let asked = futures_util::future::join_all(others.map(|id| self.ask_to_campaign(id))).await;
        for (id, result) in voters.iter().filter(|id| **id != target).zip(asked) {
            // A voter that could not be asked still holds its lease, and refuses the target:
            // the followers' own timers elect someone (a lease later).
            result.map_err(|e| format!("n{id}: {e}"))?;
        }
        self.ask_to_campaign(target).await?;
        self.ask_to_campaign(target).await
    }

    /// Asks voter `id` to stand for election; it answers once it is a candidate.
    async fn ask_to_campaign(&self, id: NodeId) -> Result<(), String> {
        let payload = encode(self.id, &()).map_err(|e| e.message().to_string())?;
        self.call_peer::<Result<(), String>>(id, LeaderCall::Campaign, payload, RPC_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
    }

    /// Waits up to `limit` until one of `voters` holds every entry of this leader's log;
    /// returns the voter holding the most (the largest id on a tie: at one term openraft
    /// ranks candidates by id, so no other voter standing at the target's term can win its
    /// vote), its matched index and the last index of this leader's log.
    async fn caught_up_voter(&self, voters: &[NodeId], limit: Duration) -> (NodeId, u64, u64) {
        let best = |m: &openraft::RaftMetrics<NodeId, super::types::RaftMember>| {
            let last = m.last_log_index.unwrap_or(0);
            let matched = |id: &NodeId| {
                m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map_or(0, |log_id| log_id.index)
            };
            let target = voters.iter().copied().max_by_key(|id| (matched(id), *id));
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

    /// A leader stepping down asks this node to stand for election at once; answers once
    /// this node stands at a higher term (or [`CAMPAIGN_WAIT`] passed), so that the leader
    /// asks the next voter only after this one holds its new vote.
    pub(super) async fn campaign(&self, from: NodeId) -> Result<(), String> {
        let metrics = self.metrics();
        if !metrics.membership_config.membership().voter_ids().any(|id| id == self.id) {
            return Err(format!("n{} is not a voter", self.id));
        }
        if metrics.current_leader == Some(self.id) {
            // Elected already (the first request won outright, with every other voter
            // standing): nothing to stand for.
            return Ok(());
        }
        // At one term openraft ranks candidates by id, so a voter that stood before this one
        // and has the higher id can win this node's vote at that term, and with it the
        // election (its log is as long as this node's, or the vote was refused). Standing
        // again would then only depose the new leader, with no one elected for an election
        // timeout: the hand-over is done once it leads.
        let vote = self.raft.with_raft_state(|s| *s.vote_ref()).await.map_err(|e| e.to_string())?;
        if vote.is_committed() && vote.leader_id().voted_for() == Some(self.id) {
            return Ok(()); // elected (the metrics read above lag the core)
        }
        if let Some(holder) = vote.leader_id().voted_for().filter(|h| *h != self.id && *h != from) {
            // Granted (`holder` is winning) or only taken from `holder`'s refusal of this node's
            // request (then `holder` has no grant from here, and no one wins): a winner sends
            // its first heartbeat within a few milliseconds.
            let elected = self
                .raft
                .wait(Some(WINNER_WAIT))
                .metrics(|m| m.current_leader == Some(holder), "the holder of this node's vote leads")
                .await
                .is_ok();
            if elected {
                tracing::info!(from, holder, term = vote.leader_id().term, "n{holder} won with this node's vote");
                return Ok(());
            }
        }
        let term = metrics.current_term;
        tracing::info!(from, term, "the leader is stepping down and asked this node to stand for election");
        self.raft.trigger().elect().await.map_err(|e| e.to_string())?;
        self.raft
            .wait(Some(CAMPAIGN_WAIT))
            .metrics(|m| m.current_term > term || m.current_leader == Some(self.id), "standing at a higher term")
            .await
            .map(|_| ())
            .map_err(|e| format!("did not stand for election: {e}"))
    }
}
