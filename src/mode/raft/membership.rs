//! Membership changes: a learner that catches up, then a voter; or a voter removed.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::node::*;
use super::service::{ForwardReply, WireChange};
use super::types::*;

impl Inner {
    pub(super) async fn change_here(&self, change: WireChange) -> std::result::Result<Vec<String>, ForwardReply> {
        let fail = |e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardReply::NotLeader(f.leader_id),
            other => ForwardReply::Failed { message: other.to_string(), maybe: true },
        };
        match change {
            WireChange::Add { id, peer_addr } => {
                self.raft.add_learner(id, BasicNode::new(peer_addr), true).await.map_err(fail)?;
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
