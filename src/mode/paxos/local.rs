//! Test only: a cluster of real paxos nodes in one process (their peer plane on loopback,
//! their data in a temporary directory), and what tests need to steer one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::ballot::NodeId;
use super::node::{Node, PaxosMode, PaxosOptions};
use super::proposer::Command;
use crate::node::{Faults, Member, NodeOptions, Packets, lock};
use crate::store::{Mutation, SetOptions};

/// Starts `n` nodes (ids 1..=n, one-round-trip off, no garbage collection) with their data
/// under `dir`.
pub(super) async fn cluster(dir: &std::path::Path, n: NodeId) -> Vec<PaxosMode> {
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let members: Vec<Member> = (1..=n).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", port()) }).collect();
    let starts = members.iter().map(|m| {
        let options = PaxosOptions {
            node: NodeOptions::local(m.id, &m.peer_addr, members.clone(), dir.join(format!("n{}", m.id))),
            one_round_trip: false,
            unsafe_accept_quorum: None,
            gc_interval: Duration::ZERO,
            ballot_ceiling: true,
        };
        PaxosMode::start(options, Arc::new(Faults::default()))
    });
    // Together: each one's *back* note waits (a while) for the others to answer.
    let nodes: Vec<PaxosMode> =
        futures_util::future::join_all(starts).await.into_iter().map(|started| started.unwrap()).collect();
    until_recorded(&nodes).await;
    nodes
}

/// Waits until every node's acceptor votes: a new cluster's, once the first node has recorded
/// every member's incarnation ([`super::identity`]).
pub(super) async fn until_recorded(nodes: &[PaxosMode]) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while nodes.iter().any(|n| n.node.silenced().is_some()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the incarnations are recorded");
}

/// A key whose members' order (home first) begins with `order`.
pub(super) fn key_in_order(node: &Node, order: &[NodeId]) -> Bytes {
    (0u32..)
        .map(|i| Bytes::from(format!("key-{i}")))
        .find(|key| node.homes(key).starts_with(order))
        .expect("some key has every order")
}

/// A SET of `key`.
pub(super) fn set(key: &Bytes) -> Command {
    Command::Write(Mutation::Set { key: key.clone(), value: Bytes::from_static(b"v"), options: SetOptions::default() })
}

/// Delays every call `node` makes to `peers` (and its reply) by `delay`: its rounds take
/// four times that (a prepare and an accept, there and back), without any phase timing out.
pub(super) fn slow_calls_to(node: &Node, peers: &[NodeId], delay: Duration) {
    let packets = Packets { delay, ..Packets::default() };
    node.faults.set_packets(peers.iter().map(|id| format!("n{id}")), packets, None);
}

/// Waits until `node`'s proposer runs a command on `key`.
pub(super) async fn until_proposing(node: &Node, key: &Bytes) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !lock(&node.proposing).contains_key(key) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the command reaches the proposer");
}
