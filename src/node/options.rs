//! The options every replicated node starts with, whatever its mode.

use std::path::PathBuf;

use super::{Member, NodeId};

/// The longest value a client may write unless told otherwise: Redis' default
/// `proto-max-bulk-len`, 512 MiB.
pub const DEFAULT_MAX_VALUE: u64 = 512 << 20;

/// `--node-id`, `--peer-addr`, `--peers`, `--join` and `--data-dir`, as paxos, raft (and every
/// replicated mode) read them.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id.
    pub node_id: NodeId,
    /// Where peers reach this node (its peer server listens here unless `peer_listen` says).
    pub peer_addr: String,
    /// Where the peer server listens, when not at `peer_addr` (e.g. `0.0.0.0:7379` for a
    /// node whose advertised name may resolve to a new address after a network change).
    pub peer_listen: Option<String>,
    /// The initial members (this node included); empty: a one-node cluster of this node,
    /// unless `join`.
    pub peers: Vec<Member>,
    /// Start with no configuration and wait to be added by a member.
    pub join: bool,
    /// Where the node keeps its state.
    pub data_dir: PathBuf,
    /// The cluster secret peers must show (and this node shows them).
    pub secret: Option<crate::peer::ClusterSecret>,
    /// Mutual TLS for the peer plane.
    pub peer_tls: Option<crate::peer::PeerTls>,
    /// The longest value a client may write (`--proto-max-bulk-len`): every mode must
    /// replicate it, and the peer server's message budget is sized by it.
    pub max_value: u64,
    /// The node's counters (the peer plane counts its calls there).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The file layer every durable byte of the node goes through (`--fault-fs`,
    /// `--unsafe-skip-fsync`).
    pub fs: super::FileSystem,
}

impl NodeOptions {
    /// A node on loopback with no peer authentication (tests, a one-machine cluster).
    pub fn local(node_id: NodeId, peer_addr: &str, peers: Vec<Member>, data_dir: PathBuf) -> Self {
        Self {
            node_id,
            peer_addr: peer_addr.into(),
            peer_listen: None,
            peers,
            join: false,
            data_dir,
            secret: None,
            peer_tls: None,
            max_value: DEFAULT_MAX_VALUE,
            metrics: crate::metrics::Metrics::new(),
            fs: super::FileSystem::real(),
        }
    }

    /// The bytes peer messages may hold on this node.
    pub fn message_budget(&self) -> crate::peer::MessageBudget {
        crate::peer::MessageBudget::for_values(self.max_value)
    }

    /// The address the peer server binds.
    pub fn listen_addr(&self) -> &str {
        self.peer_listen.as_deref().unwrap_or(&self.peer_addr)
    }

    /// Refuses a peer address that other hosts can reach when no cluster secret is set: any
    /// process that reaches the peer port could otherwise write, delete and reconfigure.
    pub fn check_exposure(&self) -> Result<(), String> {
        let private = is_loopback(&self.peer_addr) && is_loopback(self.listen_addr());
        if self.secret.is_some() || self.peer_tls.is_some() || private {
            return Ok(());
        }
        Err(format!(
            "--peer-addr {} is reachable from other hosts, and peers are not authenticated: set a \
             cluster secret ({} in the environment, or --cluster-secret-file) or peer TLS (--peer-tls-*)",
            self.listen_addr(),
            crate::peer::SECRET_ENV
        ))
    }

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

/// True when `addr` (`host:port`) can only be reached from this host.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_matches(['[', ']']);
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(peer_addr: &str, secret: bool) -> NodeOptions {
        NodeOptions {
            node_id: 1,
            peer_addr: peer_addr.into(),
            peer_listen: None,
            peers: Vec::new(),
            join: false,
            data_dir: PathBuf::new(),
            secret: secret.then(|| crate::peer::ClusterSecret::new("a long enough cluster secret").unwrap()),
            peer_tls: None,
            max_value: DEFAULT_MAX_VALUE,
            metrics: crate::metrics::Metrics::new(),
            fs: crate::node::FileSystem::real(),
        }
    }

    #[test]
    fn a_reachable_peer_port_needs_a_secret() {
        assert!(options("127.0.0.1:7380", false).check_exposure().is_ok());
        assert!(options("[::1]:7380", false).check_exposure().is_ok());
        assert!(options("localhost:7380", false).check_exposure().is_ok());
        assert!(options("0.0.0.0:7380", false).check_exposure().unwrap_err().contains("not authenticated"));
        assert!(options("10.1.2.3:7380", false).check_exposure().is_err());
        assert!(options("0.0.0.0:7380", true).check_exposure().is_ok());
        // Listening on every address exposes the port whatever name peers are told.
        let listening = NodeOptions { peer_listen: Some("0.0.0.0:7380".into()), ..options("127.0.0.1:7380", false) };
        assert!(listening.check_exposure().is_err());
        assert_eq!(listening.listen_addr(), "0.0.0.0:7380");
    }
}
