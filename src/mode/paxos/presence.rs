//! Who runs a key while its home is away: a node stopping gracefully says so to its peers
//! (*leaving*), finishes the commands it took, says it has *left*, and says it is *back* once
//! it starts again. Every node then routes a key the same way at the same moment: to its
//! home, or while the home is away to the next member in the key's order ([`Node::homes`]).
//!
//! Why it matters: CASPaxos is safe with any number of proposers, but two of them running one
//! key at once duel, and an accept that loses a duel and reaches no quorum leaves its
//! command's outcome unknown (`-UNCERTAIN`). Without these notes a stopping node's peers
//! learnt of its stop one refused call at a time and each ran the key itself, and the node,
//! started again, ran its keys while its peers still did.
//!
//! Between *leaving* and *left* a command for the leaving node's keys waits, so that the next
//! member starts on a key only once the leaving node has finished with it. A peer waits at
//! most [`LEAVE_WAIT`] after the last *leaving* note it heard, and the leaving node says it
//! again every [`LEAVING_AGAIN`] while it still finishes commands (a slow round on a loaded
//! machine can outlast one wait), so its peers wait as long as it works, and no longer than a
//! lost node would make them. A stopping node refuses a peer's call (a forward, a ping) with
//! a status that says it is stopping ([`crate::peer::stopping`]): such a refusal counts as
//! its *leaving* note, which may have been lost or may still be on its way. A forward the
//! leaving node took is never given up for hung while it is leaving or has just left
//! (`forward`): it ends the commands it took before it says *left*, so the answer is on its
//! way, or the connection closes as the node exits.
//!
//! A *leaving* note can arrive after *left* (the notes are separate calls, run as they come,
//! and a slow one is overtaken): one heard less than [`LEAVE_WAIT`] after *left*, with no
//! *back* since, is stale and ignored, or it would hold the node's keys for another
//! [`LEAVE_WAIT`] and mark it leaving once it is back.
//!
//! The way back is the mirror image (*hand-back*): a peer that hears *back* sends the node's
//! keys to it from then on, and answers the note only once the commands it was running on
//! those keys itself (as their stand-in, or for a client while the home was away) have ended
//! (at most [`HAND_BACK`]); the returning node runs no command before every peer has answered.
//! So the home's first round on a key never meets a stand-in's round in flight. "Its keys"
//! are every key that goes to it now: those homed on it, and those whose home (and the
//! members between) is still away, for which it stands in ([`Node::runs_at`]). A command
//! counts until the proposer has answered it, even if its caller gave up before.
//!
//! The notes are best effort: a note that is lost costs what it cost before (the peer learns
//! from a refused call, or from a probe), never safety.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::ballot::NodeId;
use super::node::Node;
use crate::node::lock;
use crate::peer::proto::{PresenceChange, PresenceNote};

/// How long commands for a leaving node's keys wait for its next note (again *leaving*, or
/// *left*).
pub(super) const LEAVE_WAIT: Duration = Duration::from_secs(2);
/// How often a leaving node that still finishes commands says again that it is leaving.
pub(super) const LEAVING_AGAIN: Duration = Duration::from_millis(500);
/// How long a peer that hears *back* waits for its own commands on the returning node's keys
/// to end before it answers (the returning node waits for the answers before it proposes).
pub(super) const HAND_BACK: Duration = Duration::from_secs(1);
/// How long one note may take to reach a peer.
const NOTE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a returning node waits before it sends a *back* note a peer did not take again.
const NOTE_RETRY: Duration = Duration::from_millis(50);
/// How often a command waiting for a leaving node looks again.
const WAIT_STEP: Duration = Duration::from_millis(5);

impl Node {
    /// Tells every other member of the configuration about this node's `change`, and waits
    /// (up to [`NOTE_TIMEOUT`]; *back*: plus [`HAND_BACK`], sent again while a peer does not
    /// take it) until each has taken it or failed to.
    pub(super) async fn announce(&self, change: PresenceChange) {
        let peers: Vec<NodeId> =
            self.config().everyone().into_iter().map(|m| m.id).filter(|id| *id != self.id).collect();
        let note = PresenceNote { from: self.id, change: change.into() };
        // A peer answers *back* once its own commands on this node's keys have ended.
        let limit = if change == PresenceChange::Back { NOTE_TIMEOUT + HAND_BACK } else { NOTE_TIMEOUT };
        let deadline = tokio::time::Instant::now() + limit;
        join_all(peers.into_iter().map(|to| async move {
            let Ok(mut client) = self.client(to) else { return };
            loop {
                match tokio::time::timeout_at(deadline, client.presence(note)).await {
                    Ok(Ok(_)) => return,
                    // A node just started may not reach a peer at once (a connection not made
                    // in time on a loaded machine): *back* is sent again while time is left, or
                    // that peer keeps sending this node's keys to the stand-in until its probe
                    // notices, and the two run them at once.
                    Ok(Err(status))
                        if change == PresenceChange::Back && tokio::time::Instant::now() + NOTE_RETRY < deadline =>
                    {
                        tracing::debug!(peer = to, "presence note not taken: {}; again", status.message());
                        tokio::time::sleep(NOTE_RETRY).await;
                    }
                    Ok(Err(status)) => {
                        tracing::debug!(peer = to, "presence note not taken: {}", status.message());
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = to, "presence note not answered in time");
                        return;
                    }
                }
            }
        }))
        .await;
    }

    /// A peer's note about itself. On *back*, answers once this node has ended its own
    /// commands on the keys that go back to `from` (at most [`HAND_BACK`]).
    pub(super) async fn heard(&self, from: NodeId, change: PresenceChange) {
        match change {
            PresenceChange::Leaving => self.note_leaving(from),
            PresenceChange::Left => {
                lock(&self.leaving).remove(&from);
                lock(&self.left).insert(from, Instant::now());
            }
            PresenceChange::Back => {
                lock(&self.left).remove(&from);
                lock(&self.leaving).remove(&from);
                lock(&self.down).remove(&from);
                let began = Instant::now();
                let settled = self.until_settled(|key| self.runs_at(key) == Some(from), HAND_BACK).await;
                tracing::debug!(
                    peer = from,
                    settled,
                    waited_ms = began.elapsed().as_millis() as u64,
                    "peer is back: its keys go to it"
                );
            }
            PresenceChange::Unspecified => {}
        }
    }

    /// `from` is stopping: it said so (a *leaving* note), or refused a call because it is
    /// ([`crate::peer::is_stopping`]). Its keys wait for it ([`LEAVE_WAIT`] from now at most),
    /// unless it said it left lately: then this is a stale note, overtaken by *left*.
    pub(super) fn note_leaving(&self, from: NodeId) {
        self.mark_down(from);
        if self.left_lately(from) {
            tracing::debug!(peer = from, "a leaving note after the peer said it left: stale, ignored");
            return;
        }
        lock(&self.leaving).insert(from, Instant::now() + LEAVE_WAIT);
        tracing::debug!(peer = from, "peer is leaving");
    }

    /// Whether `id` said it has left less than [`LEAVE_WAIT`] ago and has not said it is back.
    pub(super) fn left_lately(&self, id: NodeId) -> bool {
        lock(&self.left).get(&id).is_some_and(|at| at.elapsed() < LEAVE_WAIT)
    }

    /// Waits until no command this node proposes is on a key `handed` picks, or `limit` has
    /// passed; true when none is left.
    pub(super) async fn until_settled(&self, handed: impl Fn(&[u8]) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let busy = lock(&self.proposing).keys().any(|key| handed(key));
            if !busy {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    /// Waits until this node, started again, has told its peers it is back and each has
    /// handed its keys back (or [`NOTE_TIMEOUT`] + [`HAND_BACK`] passed): until then a
    /// stand-in may still run one of them.
    pub(super) async fn until_back(&self) {
        let mut back = self.back.subscribe();
        let _ = tokio::time::timeout(NOTE_TIMEOUT + HAND_BACK, back.wait_for(|b| *b)).await;
    }

    /// Whether `id` said it is leaving and has not yet said it left (at most [`LEAVE_WAIT`]).
    pub(super) fn is_leaving(&self, id: NodeId) -> bool {
        lock(&self.leaving).get(&id).is_some_and(|until| Instant::now() < *until)
    }

    /// Waits while `id` is leaving and has not said it left (at most [`LEAVE_WAIT`]).
    pub(super) async fn wait_while_leaving(&self, id: NodeId) {
        loop {
            let until = lock(&self.leaving).get(&id).copied();
            match until {
                Some(until) if Instant::now() < until => tokio::time::sleep(WAIT_STEP).await,
                Some(_) => {
                    lock(&self.leaving).remove(&id);
                    return;
                }
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::local;
    use super::*;
    use bytes::Bytes;

    /// The notes of one stop can arrive out of order: a *leaving* note heard after *left* is
    /// stale (it would hold the node's keys for another [`LEAVE_WAIT`]); after *back*, the
    /// next *leaving* is a new stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leaving_note_that_comes_after_left_is_ignored_until_the_node_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = local::cluster(dir.path(), 3).await;
        let n2 = &nodes[1].node;
        n2.heard(1, PresenceChange::Leaving).await;
        assert!(n2.is_leaving(1));
        n2.heard(1, PresenceChange::Left).await;
        assert!(!n2.is_leaving(1));
        n2.heard(1, PresenceChange::Leaving).await;
        assert!(!n2.is_leaving(1), "a leaving note overtaken by left marked the node leaving again");
        n2.heard(1, PresenceChange::Back).await;
        assert!(!n2.is_leaving(1) && !n2.is_down(1));
        n2.heard(1, PresenceChange::Leaving).await;
        assert!(n2.is_leaving(1), "a stop after the node came back is heard");
    }

    /// A command whose caller gave up (a forward's sender hedged, a client went away) still
    /// runs on the proposer until its round ends: it counts on its key until then, or a
    /// returning home would take the key back while the round is in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_whose_caller_gave_up_counts_until_the_proposer_answers_it() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = local::cluster(dir.path(), 3).await;
        let n2 = nodes[1].node.clone();
        let key = Bytes::from_static(b"k");
        // No acceptor but its own answers n2: its round retries until it gives up (seconds).
        n2.faults.refuse(["n1".to_string(), "n3".to_string()]);
        let caller = tokio::spawn({
            let (n2, key) = (n2.clone(), key.clone());
            async move { n2.propose(key.clone(), local::set(&key)).await }
        });
        local::until_proposing(&n2, &key).await;
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!n2.until_settled(|k| k == &key[..], Duration::ZERO).await, "the round runs on, uncounted");
        assert!(n2.until_settled(|k| k == &key[..], Duration::from_secs(60)).await, "the round never ended");
    }

    /// A returning node gets back the keys homed on it and those it stands in for (their home
    /// is still away): the hand-back waits for this node's commands on both. It waited on the
    /// first only, so the returning node could start on a key this node still ran.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hand_back_waits_for_the_keys_the_returning_node_stands_in_for() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = local::cluster(dir.path(), 3).await;
        let n2 = nodes[1].node.clone();
        // Homed on n3, then n1: n2 runs it while both are away, n1 once it is back.
        let key = local::key_in_order(&n2, &[3, 1, 2]);
        n2.faults.refuse(["n3".to_string()]);
        n2.heard(1, PresenceChange::Leaving).await;
        n2.heard(1, PresenceChange::Left).await;
        assert_eq!(n2.runs_at(&key), Some(2));
        // n2's round on the key reaches n1's acceptor too late for every phase: it runs on
        // for seconds (every attempt of it).
        local::slow_calls_to(&n2, &[1], Duration::from_secs(2));
        let running = tokio::spawn({
            let (n2, key) = (n2.clone(), key.clone());
            async move { n2.propose(key.clone(), local::set(&key)).await }
        });
        local::until_proposing(&n2, &key).await;
        let began = Instant::now();
        n2.heard(1, PresenceChange::Back).await;
        assert_eq!(n2.runs_at(&key), Some(1), "the key goes to n1 again");
        assert!(
            began.elapsed() >= HAND_BACK || running.is_finished(),
            "the hand-back did not wait for n2's command on a key n1 stands in for"
        );
        running.abort();
    }
}
