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
//! Between *leaving* and *left* (at most [`LEAVE_WAIT`]) a command for the leaving node's
//! keys waits, so that the next member starts on a key only once the leaving node has
//! finished with it. The notes are best effort: a note that is lost costs what it cost
//! before (the peer learns from a refused call, or from a probe), never safety.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::ballot::NodeId;
use super::node::Node;
use crate::node::lock;
use crate::peer::proto::{PresenceChange, PresenceNote};

/// How long commands for a leaving node's keys wait for it to say it has left.
pub(super) const LEAVE_WAIT: Duration = Duration::from_secs(2);
/// How long one note may take to reach a peer.
const NOTE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a command waiting for a leaving node looks again.
const WAIT_STEP: Duration = Duration::from_millis(5);

impl Node {
    /// Tells every other member of the configuration about this node's `change`, and waits
    /// (up to [`NOTE_TIMEOUT`]) until each has taken it or failed to.
    pub(super) async fn announce(&self, change: PresenceChange) {
        let peers: Vec<NodeId> =
            self.config().everyone().into_iter().map(|m| m.id).filter(|id| *id != self.id).collect();
        let note = PresenceNote { from: self.id, change: change.into() };
        join_all(peers.into_iter().map(|to| async move {
            let Ok(mut client) = self.client(to) else { return };
            match tokio::time::timeout(NOTE_TIMEOUT, client.presence(note)).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => tracing::debug!(peer = to, "presence note not taken: {}", status.message()),
                Err(_) => tracing::debug!(peer = to, "presence note not answered in time"),
            }
        }))
        .await;
    }

    /// A peer's note about itself.
    pub(super) fn heard(&self, from: NodeId, change: PresenceChange) {
        match change {
            PresenceChange::Leaving => {
                lock(&self.leaving).insert(from, Instant::now() + LEAVE_WAIT);
                self.mark_down(from);
                tracing::debug!(peer = from, "peer is leaving");
            }
            PresenceChange::Left => {
                lock(&self.leaving).remove(&from);
            }
            PresenceChange::Back => {
                lock(&self.leaving).remove(&from);
                lock(&self.down).remove(&from);
                tracing::debug!(peer = from, "peer is back");
            }
            PresenceChange::Unspecified => {}
        }
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
