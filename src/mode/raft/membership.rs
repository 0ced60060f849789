//! Membership changes: a learner that catches up, then a voter; or a voter removed.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError};

use super::node::Inner;
use super::service::{ForwardReply, WireChange};
use super::types::{NodeId, RaftMember};

impl Inner {
    pub(super) async fn change_here(&self, change: WireChange) -> std::result::Result<Vec<String>, ForwardReply> {
        let fail = |e: RaftError<NodeId, ClientWriteError<NodeId, RaftMember>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardReply::NotLeader(f.leader_id),
            other => ForwardReply::Failed { message: other.to_string(), maybe: true },
        };
        match change {
            WireChange::Add { id, peer_addr } => {
                // The membership records the incarnation of the data the node joins with; a node
                // restarted with other data is then refused by the rest (see `RaftMember`).
                let probe = self.probe(id, &peer_addr).await.map_err(|e| ForwardReply::Failed {
                    message: format!("n{id} at {peer_addr} did not answer: {e}"),
                    maybe: false,
                })?;
                let member = RaftMember { addr: peer_addr, incarnation: probe.incarnation };
                self.raft.add_learner(id, member, true).await.map_err(fail)?;
                let voters: BTreeSet<NodeId> = [id].into();
                self.raft.change_membership(ChangeMembers::AddVoterIds(voters), false).await.map_err(fail)?;
            }
            WireChange::Remove { id } => {
                let voters: BTreeSet<NodeId> = [id].into();
                self.raft.change_membership(ChangeMembers::RemoveVoters(voters), false).await.map_err(fail)?;
                let nodes: BTreeSet<NodeId> = [id].into();
                self.raft.change_membership(ChangeMembers::RemoveNodes(nodes), false).await.map_err(fail)?;
            }
        }
        Ok(self.show())
    }

    pub(super) fn show(&self) -> Vec<String> {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut lines = vec![format!("log index {}", metrics.last_log_index.unwrap_or(0))];
        for (id, node) in membership.nodes() {
            let role = if voters.contains(id) { "member" } else { "learner" };
            lines.push(format!("{role} {id} {}", node.addr));
        }
        lines
    }
}
