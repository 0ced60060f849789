//! Whom a kill, pause or power loss strikes: one node, a minority, a majority, all of them,
//! or the primary — drawn from the nemesis' seed, as Jepsen's node targets are.
//!
//! The primary is the node whose loss hurts the most, per mode:
//! * raft — the leader, as `cluster status` shows it (INFO `raft_leader` of any node);
//! * paxos — the home of the workload's first key (`k0`, after its key prefix): the proposer
//!   every command on that key is forwarded to (INFO `paxos_members`, hashed as the nodes do);
//! * dynamo — the coordinator of that key: the first node of its preference list
//!   (`DYNAMO.RING k0`);
//! * s3 — none (the object store is the primary, and no nemesis kills it): one node instead.
//!
//! When the primary cannot be learned (no leader yet, no node answers), one node is struck.

use super::{ClusterState, Liveness, call, info, process};
use crate::mode::ModeName;

/// A kind of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    One,
    Minority,
    Majority,
    All,
    Primary,
}

/// Every kind of target, in the order the nemesis draws from.
pub const AIMS: [Aim; 5] = [Aim::One, Aim::Minority, Aim::Majority, Aim::All, Aim::Primary];

/// The name of a strike that takes every node.
pub const ALL_NODES: &str = "all";

impl Aim {
    /// The name, as the history's fault marks carry it (`majority n1,n3`).
    pub fn name(self) -> &'static str {
        match self {
            Aim::One => "one",
            Aim::Minority => "minority",
            Aim::Majority => "majority",
            Aim::All => "all",
            Aim::Primary => "primary",
        }
    }

    /// The nodes struck among `nodes`, drawn from `rng`; `primary` is the primary if known.
    pub fn pick(self, nodes: &[String], primary: Option<&str>, rng: &mut fastrand::Rng) -> Vec<String> {
        let mut order = nodes.to_vec();
        rng.shuffle(&mut order);
        let n = order.len();
        let take = match self {
            Aim::One => 1,
            Aim::Minority => ((n.saturating_sub(1)) / 2).max(1),
            Aim::Majority => n / 2 + 1,
            Aim::All => n,
            Aim::Primary => match primary.filter(|p| nodes.iter().any(|n| n == p)) {
                Some(primary) => return vec![primary.to_string()],
                None => 1,
            },
        };
        order.truncate(take.min(n));
        order.sort();
        order
    }

    /// How the history names a strike at `struck`: `all`, or `majority n1,n3`.
    pub fn label(self, struck: &[String], everyone: usize) -> String {
        if struck.len() == everyone && everyone > 1 {
            return ALL_NODES.to_string();
        }
        format!("{} {}", self.name(), struck.join(","))
    }
}

/// The primary of the local cluster `state` for `key` (see the module doc), if known.
pub fn primary(state: &ClusterState, key: &str) -> Option<String> {
    let up: Vec<_> = state.nodes.iter().filter(|n| process::liveness(n) == Liveness::Up).collect();
    let mode = state.mode.as_str();
    for node in up {
        let found = if mode == ModeName::Raft.as_str() {
            info(node).into_iter().find(|(k, _)| k == "raft_leader").and_then(|(_, v)| v.parse::<u32>().ok())
        } else if mode == ModeName::Paxos.as_str() {
            let members = info(node).into_iter().find(|(k, _)| k == "paxos_members").map(|(_, v)| v)?;
            let ids: Vec<u32> =
                members.split(',').filter_map(|m| m.split_once('=')?.0.parse().ok()).collect::<Vec<_>>();
            crate::mode::paxos::home_of(&ids, key.as_bytes())
        } else if mode == ModeName::Dynamo.as_str() {
            coordinator(&node.addr, key)
        } else {
            return None;
        };
        if let Some(id) = found {
            return Some(crate::node::peer_name(id));
        }
    }
    None
}

/// The first node of `key`'s preference list, as the node at `addr` sees it.
fn coordinator(addr: &str, key: &str) -> Option<u32> {
    let redis_protocol::resp2::types::BytesFrame::Array(lines) = call(addr, &["DYNAMO.RING", key]).ok()? else {
        return None;
    };
    lines.iter().find_map(|line| {
        let redis_protocol::resp2::types::BytesFrame::BulkString(b) = line else { return None };
        let text = String::from_utf8_lossy(b);
        let owners = text.strip_prefix("preference list ")?;
        owners.split_whitespace().next()?.strip_prefix('n')?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn each_aim_strikes_as_many_nodes_as_it_says() {
        let mut rng = fastrand::Rng::with_seed(3);
        for (n, minority, majority) in [(3, 1, 2), (5, 2, 3), (4, 1, 3)] {
            let all = nodes(n);
            assert_eq!(Aim::One.pick(&all, None, &mut rng).len(), 1);
            assert_eq!(Aim::Minority.pick(&all, None, &mut rng).len(), minority);
            assert_eq!(Aim::Majority.pick(&all, None, &mut rng).len(), majority);
            assert_eq!(Aim::All.pick(&all, None, &mut rng), all);
        }
    }

    #[test]
    fn the_primary_is_struck_when_known_and_one_node_otherwise() {
        let mut rng = fastrand::Rng::with_seed(3);
        let all = nodes(3);
        assert_eq!(Aim::Primary.pick(&all, Some("n2"), &mut rng), ["n2"]);
        assert_eq!(Aim::Primary.pick(&all, None, &mut rng).len(), 1);
        // A primary that is not a member (a stale answer) is no target.
        assert_eq!(Aim::Primary.pick(&all, Some("n9"), &mut rng).len(), 1);
    }

    #[test]
    fn labels_name_the_aim_and_the_nodes() {
        assert_eq!(Aim::Majority.label(&["n1".into(), "n3".into()], 3), "majority n1,n3");
        assert_eq!(Aim::All.label(&nodes(3), 3), "all");
        assert_eq!(Aim::Primary.label(&["n2".into()], 3), "primary n2");
    }
}
