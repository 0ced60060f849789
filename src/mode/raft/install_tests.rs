//! A follower receiving a snapshot, end to end through openraft with the real log store and
//! state machine: a transfer that arrives damaged or cut short is refused before openraft
//! takes it, so the leader sends it again and the follower goes on from its own state.

#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{CommittedLeaderId, LogId, Membership, Raft, SnapshotMeta, StoredMembership, Vote};

use super::machine::{Machine, MachineState};
use super::receive::SnapshotReceiver;
use super::types::{NodeId, RaftMember, TypeConfig};
use super::{log, snapshot};
use crate::node::FileSystem;

/// A network on which every call fails: the follower under test only receives.
struct Nowhere;

impl RaftNetworkFactory<TypeConfig> for Nowhere {
    type Network = Nowhere;

    async fn new_client(&mut self, _: NodeId, _: &RaftMember) -> Nowhere {
        Nowhere
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<NodeId, RaftMember, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("no network in this test")))
}

impl RaftNetwork<TypeConfig> for Nowhere {
    async fn append_entries(
        &mut self,
        _: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, RaftMember, RaftError<NodeId>>> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, RaftMember, RaftError<NodeId, InstallSnapshotError>>>
    {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _: VoteRequest<NodeId>,
        _: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, RaftMember, RaftError<NodeId>>> {
        Err(unreachable())
    }
}

/// Node 2 of a two-node cluster, as `node.rs` starts one, on the real storage in `dir`, with an
/// election timeout long enough that it does not stand for election meanwhile.
async fn follower(dir: &Path) -> (Raft<TypeConfig>, Machine) {
    follower_electing_after(dir, Duration::from_secs(60)).await
}

/// [`follower`], standing for election after `timeout` without word from a leader.
async fn follower_electing_after(dir: &Path, timeout: Duration) -> (Raft<TypeConfig>, Machine) {
    let fs = FileSystem::real();
    let mut log = log::LogStore::open(&fs, &dir.join("raft-log.redb")).unwrap();
    let machine = Machine::open(&fs, dir).unwrap();
    log.guard_purges(machine.durable_index());
    let config = openraft::Config {
        election_timeout_min: timeout.as_millis() as u64,
        election_timeout_max: timeout.as_millis() as u64 + 1,
        heartbeat_interval: timeout.as_millis() as u64 / 3,
        install_snapshot_timeout: 2000,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let raft = Raft::new(2, Arc::new(config), Nowhere, log, machine.clone()).await.unwrap();
    (raft, machine)
}

/// A leader's snapshot at `index` of `keys` keys, as the bytes of its file, and its meta.
fn leaders_snapshot(index: u64, keys: usize) -> (Vec<u8>, SnapshotMeta<NodeId, RaftMember>) {
    let dir = tempfile::tempdir().unwrap();
    let last = LogId::new(CommittedLeaderId::new(1, 1), index);
    let nodes: BTreeMap<NodeId, RaftMember> =
        (1..=2).map(|id| (id, RaftMember { addr: format!("127.0.0.1:{id}"), incarnation: 0 })).collect();
    let membership = StoredMembership::new(Some(LogId::new(CommittedLeaderId::new(1, 1), 1)), {
        Membership::new(vec![BTreeSet::from([1, 2])], nodes)
    });
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: membership.clone(),
        snapshot_id: format!("{index}-1"),
    };
    let mut state = MachineState { last_applied: Some(last), membership, ..MachineState::default() };
    for i in 0..keys {
        state.keyspace.insert(Bytes::from(format!("k{i:05}")), Bytes::from(vec![i as u8; 100]));
    }
    let path = dir.path().join(snapshot::FILE);
    snapshot::write(&FileSystem::real(), &path, &meta, &state).unwrap();
    (std::fs::read(&path).unwrap(), meta)
}

/// What the follower answered the last chunk of a transfer.
type Answer = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

/// Sends `bytes` to `raft` as a leader of term 1 does, in chunks; the last call's result,
/// or `None` when it did not answer within 10 s.
async fn send(
    receiver: &SnapshotReceiver,
    raft: &Raft<TypeConfig>,
    meta: &SnapshotMeta<NodeId, RaftMember>,
    bytes: &[u8],
) -> Option<Answer> {
    send_paced(receiver, raft, meta, bytes, Duration::ZERO).await
}

/// [`send`], a chunk every `pause` (a large snapshot over a busy network).
async fn send_paced(
    receiver: &SnapshotReceiver,
    raft: &Raft<TypeConfig>,
    meta: &SnapshotMeta<NodeId, RaftMember>,
    bytes: &[u8],
    pause: Duration,
) -> Option<Answer> {
    const CHUNK: usize = 256 << 10;
    let mut offset = 0;
    loop {
        let end = (offset + CHUNK).min(bytes.len());
        let request = InstallSnapshotRequest {
            vote: Vote::new_committed(1, 1),
            meta: meta.clone(),
            offset: offset as u64,
            data: bytes[offset..end].to_vec(),
            done: end == bytes.len(),
        };
        let result = tokio::time::timeout(Duration::from_secs(10), receiver.receive(raft, request)).await.ok()?;
        if end == bytes.len() || result.is_err() {
            return Some(result);
        }
        offset = end;
        tokio::time::sleep(pause).await;
    }
}

fn keys_in(machine: &Machine) -> usize {
    machine.state.read().unwrap().keyspace.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_and_the_follower_takes_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, machine) = follower(dir.path()).await;
    let receiver = SnapshotReceiver::default();
    let (good, meta) = leaders_snapshot(100, 3000);
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    let cut = &good[..good.len() - 100];
    for (what, damaged, first) in [("a flipped byte", &flipped[..], true), ("a lost tail", cut, false)] {
        let answer = send(&receiver, &raft, &meta, damaged).await;
        let answer = answer.unwrap_or_else(|| panic!("the follower never answered a snapshot with {what}"));
        match (&answer, first) {
            // Refused as a transfer to start again from the first byte: the leader sends it
            // again at once.
            (Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch))), true) => {
                assert_eq!(mismatch.expect.offset, 0);
            }
            // The same snapshot damaged again: the leader's copy is suspect, and a storage error
            // makes the leader pause and send its snapshot afresh.
            (Err(RaftError::Fatal(openraft::error::Fatal::StorageError(_))), false) => {}
            (other, _) => panic!("a snapshot with {what} was refused as {other:?}"),
        }
        assert_eq!(keys_in(&machine), 0, "nothing of a snapshot with {what} was installed");
        // Its chunks were word from the leader, as heartbeats are (the leader sends none meanwhile).
        assert_eq!(raft.metrics().borrow().current_leader, Some(1));
        // The follower is not wedged: openraft still answers and is not stopped.
        let committed = tokio::time::timeout(Duration::from_secs(5), raft.with_raft_state(|s| s.committed))
            .await
            .unwrap_or_else(|_| panic!("openraft is wedged after a snapshot with {what}"));
        let committed = committed.unwrap_or_else(|e| panic!("openraft stopped after a snapshot with {what}: {e}"));
        assert_eq!(committed, None, "a refused snapshot is not taken as committed");
    }
    // The leader sends it again, intact: it is installed.
    let answer = send(&receiver, &raft, &meta, &good).await.expect("the follower answers the intact snapshot");
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(keys_in(&machine), 3000);
    let metrics = raft.metrics().borrow().clone();
    assert_eq!(metrics.snapshot.map(|l| l.index), Some(100));
    assert_eq!(metrics.last_applied.map(|l| l.index), Some(100));
    raft.shutdown().await.unwrap();
    // And it is what the follower starts from.
    let restarted = Machine::open(&FileSystem::real(), dir.path()).unwrap();
    assert_eq!(keys_in(&restarted), 3000);
}

/// openraft's leader sends no heartbeat to a follower it is sending a snapshot to, so a transfer
/// longer than the election timeout made the follower stand for election, and its higher term,
/// in its answer to the next chunk, cost the leader its leadership and the transfer its
/// progress: a 60 MB snapshot never reached a follower. Each chunk is word from the leader, and
/// so is the last one for as long as it is being checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_receiving_a_long_transfer_does_not_stand_for_election() {
    let dir = tempfile::tempdir().unwrap();
    // The second snapshot takes six times the election timeout to arrive, and longer to be
    // checked (100,000 keys: about 0.8 s in a debug build).
    let (small, first) = leaders_snapshot(100, 10);
    let (large, meta) = leaders_snapshot(200, 100_000);
    let (raft, machine) = follower_electing_after(dir.path(), Duration::from_millis(150)).await;
    let receiver = SnapshotReceiver::default();
    // The first makes the node a voter of the cluster, which may stand for election.
    assert!(send(&receiver, &raft, &first, &small).await.expect("answered").is_ok());
    let chunks = large.len().div_ceil(256 << 10) as u32;
    let pause = Duration::from_millis(900) / chunks;
    let answer = send_paced(&receiver, &raft, &meta, &large, pause).await.expect("answered");
    assert_eq!(answer.unwrap().vote, Vote::new_committed(1, 1), "the follower kept its leader's vote");
    let metrics = raft.metrics().borrow().clone();
    assert_eq!((metrics.current_term, metrics.current_leader), (1, Some(1)), "it never stood for election");
    assert_eq!(metrics.snapshot.map(|l| l.index), Some(200));
    assert_eq!(keys_in(&machine), 100_000);
    raft.shutdown().await.unwrap();
}

/// The last chunk is answered once the snapshot is checked and installed, which takes seconds
/// for millions of keys — longer than the leader waits (`install_snapshot_timeout`). The
/// leader's call then times out and is dropped; the install goes on regardless, the leader's
/// next attempt is asked to start again, and its second transfer is answered at once, the
/// snapshot installed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_waiting_for_the_last_chunk_does_not_undo_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, meta) = leaders_snapshot(100, 100_000);
    let (raft, machine) = follower(dir.path()).await;
    let receiver = SnapshotReceiver::default();
    let last = bytes.len() - 1000;
    let chunk = |offset: usize, end: usize| InstallSnapshotRequest {
        vote: Vote::new_committed(1, 1),
        meta: meta.clone(),
        offset: offset as u64,
        data: bytes[offset..end].to_vec(),
        done: end == bytes.len(),
    };
    assert!(receiver.receive(&raft, chunk(0, last)).await.is_ok());
    // The leader gives up on the last chunk long before the check is done (about 0.8 s).
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), receiver.receive(&raft, chunk(last, bytes.len()))).await;
    assert!(gave_up.is_err(), "the check of 100,000 keys took under 100 ms");
    // Its retry waits for the install, and is asked to start again: the transfer is over.
    match receiver.receive(&raft, chunk(last, bytes.len())).await {
        Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => assert_eq!(m.expect.offset, 0),
        other => panic!("the retried last chunk was answered {other:?}"),
    }
    assert_eq!(keys_in(&machine), 100_000, "installed although the leader stopped waiting");
    assert_eq!(raft.metrics().borrow().snapshot.map(|l| l.index), Some(100));
    // The leader sends it all again: nothing to check or install, answered at once.
    let started = std::time::Instant::now();
    assert!(send(&receiver, &raft, &meta, &bytes).await.expect("answered").is_ok());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(machine.snapshots_installed(), 1);
    raft.shutdown().await.unwrap();
}
