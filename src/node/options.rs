//! The options every replicated node starts with, whatever its mode.

use std::path::PathBuf;

use super::{Member, NodeId};

/// `--node-id`, `--peer-addr`, `--peers`, `--join` and `--data-dir`, as paxos, raft (and every
/// replicated mode) read them.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id.
    pub node_id: NodeId,
    /// Where peers reach this node (its peer server listens here).
    pub peer_addr: String,
    /// The initial members (this node included); empty: a one-node cluster of this node,
    /// unless `join`.
    pub peers: Vec<Member>,
    /// Start with no configuration and wait to be added by a member.
    pub join: bool,
    /// Where the node keeps its state.
    pub data_dir: PathBuf,
}

impl NodeOptions {
    /// The members to start with: `--peers`, or this node alone; checked to include this node.
    /// Empty when joining.
    pub fn initial_members(&self) -> Result<Vec<Member>, String> {
        if self.join {
            return Ok(Vec::new());
        }
        if self.peers.is_empty() {
            return Ok(vec![Member { id: self.node_id, peer_addr: self.peer_addr.clone() }]);
        }
        if !self.peers.iter().any(|m| m.id == self.node_id) {
            return Err(format!("--peers does not list this node (--node-id {})", self.node_id));
        }
        Ok(self.peers.clone())
    }
}
