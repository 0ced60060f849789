//! Writes through the leader in this node's client session, retried with the same id until
//! they settle; and linearizable reads by read index.
//!
//! The leader batches both: writes that arrive while earlier proposals are being appended
//! and replicated go into one log entry together (one fsync, one replication round for all;
//! [`PROPOSALS`]), and reads that arrive while a leadership confirmation is under way share
//! the next one ([`READ_ROUNDS`]). A read joins only a round that starts after it arrived, so
//! its read index covers every write acknowledged before it began.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use crate::error::{Error, Result};
use crate::node::lock;
use crate::store::{Mutation, MutationReply};

use super::network::LeaderCall;
use super::node::{COMMAND_DEADLINE, Inner, RPC_TIMEOUT, encode};
use super::service::{ForwardReply, ReadIndexReply};
use super::types::{CHUNK, Command, Proposal, Request, SessionId, split_value, too_large};

/// Chunks of one value being committed at once.
const CHUNKS_IN_FLIGHT: usize = 4;

/// How the leader batches writes into log entries: two entries in flight (one being appended
/// while the one before it replicates), each holding what queued meanwhile, up to about one
/// chunk's worth of bytes.
pub(super) const PROPOSALS: crate::node::PipelineLimits =
    crate::node::PipelineLimits { in_flight: 2, max_items: 1024, max_weight: CHUNK };

/// How the leader batches read-index rounds (the weight of a read is 1).
pub(super) const READ_ROUNDS: crate::node::PipelineLimits =
    crate::node::PipelineLimits { in_flight: 2, max_items: usize::MAX, max_weight: usize::MAX };

// ---- this node's session of the log ----

/// A request refused, unapplied, because its session expired.
pub(super) struct Expired;

/// The sequences of this node's session that are still in flight.
#[derive(Default)]
pub(super) struct InFlight {
    pub(super) next: u64,
    pub(super) open: BTreeSet<u64>,
}

/// One request's place in the session, given up (as answered) when dropped.
struct Ticket<'a> {
    in_flight: &'a std::sync::Mutex<InFlight>,
    seq: u64,
    /// The lowest sequence in flight when this request began (its own included).
    done_below: u64,
}

impl<'a> Ticket<'a> {
    fn new(in_flight: &'a std::sync::Mutex<InFlight>) -> Self {
        let mut state = lock(in_flight);
        let seq = state.next;
        state.next += 1;
        state.open.insert(seq);
        let done_below = state.open.first().copied().unwrap_or(seq);
        Self { in_flight, seq, done_below }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        lock(self.in_flight).open.remove(&self.seq);
    }
}

/// Runs `confirm` (a leadership confirmation) and returns its outcome with the floor its read
/// index must not go below: the last entry of the log at start-up (`recovered`, with the term
/// of the vote saved then) while this node is still in that term.
///
/// The term is read before the confirmation starts: openraft confirms in a task of its own
/// while its core goes on handling votes, so a vote for a later term granted meanwhile would
/// make a term read afterwards look like a later leadership — one whose own entry covers every
/// earlier write — and drop the floor of a read index that is still the stale one loaded at
/// start-up. Terms only grow, and metrics lag the core: a term seen before the call is at most
/// the one the confirmation ran in, so a floor dropped here is dropped only for a leader of a
/// later term.
pub(super) async fn read_floor<T>(
    recovered: Option<(u64, u64)>,
    term: impl Fn() -> u64,
    confirm: impl std::future::Future<Output = T>,
) -> (T, Option<u64>) {
    let term_at_call = term();
    let confirmed = confirm.await;
    let floor = recovered.filter(|(saved, _)| term_at_call <= *saved).map(|(_, index)| index);
    (confirmed, floor)
}

/// One proposal on its way through openraft, counted in `Inner::proposing` until it is
/// answered (or dropped).
struct Proposing<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Proposing<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Proposing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    /// Appends a write on this node, if it leads: it joins the next batch of proposals.
    pub(super) async fn write_here(&self, request: Request) -> ForwardReply {
        self.proposals.call(request).await.unwrap_or_else(|| ForwardReply::Failed {
            message: "the node stopped before the write settled".into(),
            maybe: true,
        })
    }

    /// Appends `requests` as one log entry, if this node leads, and answers each of them.
    pub(super) async fn propose(&self, requests: Proposal) -> Vec<ForwardReply> {
        let count = requests.len();
        self.proposed.fetch_add(count as u64, Ordering::Relaxed);
        self.proposal_batches.fetch_add(1, Ordering::Relaxed);
        let all = |reply: ForwardReply| vec![reply; count];
        // Counted before the check: a leader that begins to step down after it sees this
        // proposal, and waits for it (see `handover`).
        let _proposing = Proposing::new(&self.proposing);
        if self.raft_stopped.load(Ordering::SeqCst) || self.stepping_down.load(Ordering::SeqCst) {
            // Stepping down (see `handover`): nothing reaches openraft any more, so nothing
            // was appended; the node that forwarded it retries on the next leader.
            return all(ForwardReply::NotLeader(None));
        }
        // Metrics lag the core: a term change during the call also means the entry may have
        // been appended by a leader that just lost its leadership.
        let (was_leader, term_before) = (self.leader() == Some(self.id), self.term());
        // A leader cut off from its quorum keeps the entry pending until it learns of a newer
        // term; do not wait for that longer than a command may take.
        let written = match tokio::time::timeout(COMMAND_DEADLINE, self.raft.client_write(requests)).await {
            Ok(written) => written,
            Err(_) => {
                return all(ForwardReply::Failed {
                    message: "the leader could not commit the write in time".into(),
                    maybe: true,
                });
            }
        };
        match written {
            Ok(response) if response.data.len() == count => {
                response.data.into_iter().map(ForwardReply::Write).collect()
            }
            Ok(_) => all(ForwardReply::Failed {
                message: "the state machine answered a batch with the wrong number of replies".into(),
                maybe: true,
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                if was_leader || self.term() != term_before {
                    // Leadership was lost while the entry may already have been appended.
                    all(ForwardReply::Failed { message: "leadership changed during the write".into(), maybe: true })
                } else {
                    all(ForwardReply::NotLeader(f.leader_id))
                }
            }
            Err(e) => all(ForwardReply::Failed { message: e.to_string(), maybe: true }),
        }
    }

    /// This node's read index, if it leads, confirmed by a quorum in a round that began after
    /// the call: it joins the next round.
    pub(super) async fn read_index_here(&self) -> ReadIndexReply {
        self.read_rounds.call(()).await.unwrap_or_else(|| ReadIndexReply::Failed("the node is stopping".into()))
    }

    /// One leadership confirmation for `count` waiting reads.
    ///
    /// In the term this node started in, the read index is never below the last entry its
    /// log held at start-up: a leader restored after a crash (openraft keeps it leader in its
    /// old term, with no new entry) would otherwise answer with the committed index it saved
    /// without an fsync, which may lag writes it acknowledged before the crash. Once its commit
    /// index passes that entry the floor costs nothing; a leader of a later term committed an
    /// entry of its own first, which covers every earlier one. Which term applies is decided
    /// before the confirmation starts ([`read_floor`]).
    pub(super) async fn read_round(&self, count: usize) -> Vec<ReadIndexReply> {
        self.read_index_rounds.fetch_add(1, Ordering::Relaxed);
        if self.raft_stopped.load(Ordering::SeqCst) {
            return vec![ReadIndexReply::NotLeader(None); count];
        }
        let confirm = tokio::time::timeout(RPC_TIMEOUT, self.raft.get_read_log_id());
        let (confirmed, floor) = read_floor(self.recovered, || self.term(), confirm).await;
        let reply = match confirmed {
            Ok(Ok((read, _applied))) => ReadIndexReply::Index(read.map(|l| l.index).max(floor)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                ReadIndexReply::NotLeader(f.leader_id)
            }
            Ok(Err(e)) => ReadIndexReply::Failed(e.to_string()),
            Err(_) => ReadIndexReply::Failed("leadership could not be confirmed in time".into()),
        };
        vec![reply; count]
    }

    /// Runs a write through the leader; a large value goes first as chunks (see [`Command`]).
    /// If this node's session expired (it was idle while the log moved on), nothing was
    /// applied: a new session is opened and the write sent once more.
    pub(super) async fn write(self: &Arc<Self>, mutation: Mutation) -> Result<MutationReply> {
        if let Some(refusal) = too_large(&mutation) {
            return Err(Error::Input(refusal));
        }
        let session = self.session();
        match self.write_in(session, mutation.clone()).await {
            Err(Expired) => {
                self.renew_session(session);
                match self.write_in(self.session(), mutation).await {
                    Err(Expired) => Err(Error::TryAgain("this node's raft session expired twice".into())),
                    Ok(result) => result,
                }
            }
            Ok(result) => result,
        }
    }

    /// This node's current session of the log.
    pub(super) fn session(&self) -> SessionId {
        (self.id, self.epoch.load(Ordering::SeqCst))
    }

    /// Replaces an expired session with a new random one (once, however many writes saw it).
    fn renew_session(&self, expired: SessionId) {
        let fresh = fastrand::u64(1..);
        if self.epoch.compare_exchange(expired.1, fresh, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            tracing::info!("raft session expired; opened a new one");
        }
    }

    /// [`Inner::write`] in `session`.
    async fn write_in(
        self: &Arc<Self>,
        session: SessionId,
        mutation: Mutation,
    ) -> std::result::Result<Result<MutationReply>, Expired> {
        // A large value's chunks are staged under a sequence held in flight until the value is
        // assembled or given up, so the session's `done_below` keeps its staging alive.
        let (command, _staging) = match split_value(&mutation) {
            None => (Command::Mutate(mutation), None),
            Some((chunks, hollow)) => {
                let Ok(parts) = u32::try_from(chunks.len()) else {
                    return Ok(Err(Error::Input("value too large".into())));
                };
                let staging = Ticket::new(&self.in_flight);
                let of = staging.seq;
                let sends = chunks.into_iter().enumerate().map(|(part, data)| {
                    let chunk = Ticket::new(&self.in_flight);
                    let command = Command::Chunk { of, part: part as u32, data };
                    async move {
                        let request = Request { session, seq: chunk.seq, done_below: chunk.done_below, command };
                        self.write_request(request).await
                    }
                });
                // A few chunks at a time (about one append's worth), each with its own deadline:
                // the value streams at the speed the cluster commits. The value is applied only
                // by the final entry, so a chunk that failed leaves nothing visible (its
                // staging is dropped once the session moves past this request).
                let mut sent = futures_util::stream::iter(sends).buffer_unordered(CHUNKS_IN_FLIGHT);
                while let Some(result) = sent.next().await {
                    if let Err(e) = result? {
                        return Ok(Err(match e {
                            Error::Uncertain(m) | Error::TryAgain(m) => {
                                Error::TryAgain(format!("a part of the value was not stored: {m}"))
                            }
                            other => other,
                        }));
                    }
                }
                (Command::Assemble { of, parts, mutation: hollow }, Some(staging))
            }
        };
        let ticket = Ticket::new(&self.in_flight);
        let request = Request { session, seq: ticket.seq, done_below: ticket.done_below, command };
        self.write_request(request).await
    }

    /// Runs one request through the leader, retrying it with the same id (the state machine
    /// applies it once) until it settles or the deadline passes.
    pub(super) async fn write_request(
        self: &Arc<Self>,
        request: Request,
    ) -> std::result::Result<Result<MutationReply>, Expired> {
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let mut maybe_applied = false;
        let mut last = String::from("no leader is known");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            if attempt > 0 {
                self.forwards_retried.fetch_add(1, Ordering::Relaxed);
                antithesis_sdk::assert_sometimes!(true, "raft: a write was retried");
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            attempt += 1;
            let Some(leader) = self.leader() else { continue };
            let reply = if leader == self.id {
                self.write_here(request.clone()).await
            } else {
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                self.forward(leader, request.clone(), left.min(RPC_TIMEOUT)).await
            };
            match reply {
                ForwardReply::Write(response) if response.session_expired => return Err(Expired),
                ForwardReply::Write(response) if response.reply_forgotten => {
                    return Ok(Err(Error::Uncertain(
                        "the write may have been committed, but its reply was dropped before a retry asked for it"
                            .into(),
                    )));
                }
                ForwardReply::Write(response) => {
                    return Ok(response.result.map_err(Error::Input));
                }
                ForwardReply::NotLeader(_) => last = format!("n{leader} is not the leader"),
                ForwardReply::Failed { message, maybe } => {
                    maybe_applied |= maybe;
                    last = message;
                }
                ForwardReply::Membership(_) => last = "unexpected reply".into(),
            }
        }
        Ok(if maybe_applied {
            Err(Error::Uncertain(format!("the write may have been committed: {last}")))
        } else {
            Err(Error::TryAgain(format!("no leader accepted the write: {last}")))
        })
    }

    /// Waits until a read here is linearizable: the leader's read index, applied locally.
    pub(super) async fn read_barrier(&self) -> Result<()> {
        if self.options.stale_reads {
            return Ok(());
        }
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let mut last = String::from("no leader is known");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            if attempt > 0 {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            attempt += 1;
            let Some(leader) = self.leader() else { continue };
            let reply = if leader == self.id {
                self.read_index_here().await
            } else {
                let payload = encode(self.id, &()).map_err(|s| Error::Io(s.message().to_string()))?;
                self.call_peer::<ReadIndexReply>(leader, LeaderCall::ReadIndex, payload, RPC_TIMEOUT)
                    .await
                    .unwrap_or_else(|e| ReadIndexReply::Failed(e.to_string()))
            };
            let index = match reply {
                ReadIndexReply::Index(index) => index,
                ReadIndexReply::NotLeader(_) => {
                    last = format!("n{leader} is not the leader");
                    continue;
                }
                ReadIndexReply::Failed(e) => {
                    last = e;
                    continue;
                }
            };
            let Some(index) = index else { return Ok(()) };
            let left = deadline.saturating_duration_since(Instant::now());
            match self.raft.wait(Some(left)).applied_index_at_least(Some(index), "read index").await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::TryAgain(format!("no linearizable read possible: {last}")))
    }
}

/// How long a write or read barrier waits before its next try: 20 ms, then 40, then 50 ms
/// apart. A leader move takes 0.1-0.3 s; a longer pause would only add to what clients wait
/// after the new leader is up.
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis((20 * u64::from(attempt)).min(50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn a_vote_for_a_later_term_during_the_confirmation_keeps_the_floor() {
        // A leader restored in term 5 whose log ended at entry 100 confirms its leadership with
        // the stale committed index 40; meanwhile its core grants a vote for term 6.
        let term = Cell::new(5);
        let confirm = async {
            term.set(6);
            Some(40)
        };
        let (read, floor) = read_floor(Some((5, 100)), || term.get(), confirm).await;
        assert_eq!(read.max(floor), Some(100), "the read index covers every write of the log at start-up");
    }

    #[tokio::test]
    async fn a_leader_of_a_later_term_needs_no_floor() {
        let (read, floor) = read_floor(Some((5, 100)), || 6, async { Some(7) }).await;
        assert_eq!((read, floor), (Some(7), None));
        let (_, floor) = read_floor(None, || 5, async {}).await;
        assert_eq!(floor, None, "a node that started with an empty log has no floor");
    }
}
