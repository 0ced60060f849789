//! A raft-mode node: openraft, its storage, the peer server, and start-up.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{Raft, SnapshotPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::node::{Faults, NodeOptions, Tasks};
use crate::peer::proto::raft_peer_server::RaftPeerServer;
use crate::peer::{self, proto};

use crate::node::codec;

use super::network::Network;
use super::service::Service;
use super::types::{NodeId, RaftMember, Request, TypeConfig};
use super::write::InFlight;
use super::{log, machine};

/// How long a command may keep retrying (new leader, forward) before it gives up.
pub(super) const COMMAND_DEADLINE: Duration = Duration::from_secs(5);
/// One peer call's limit.
pub(super) const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// The leader's heartbeat.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(100);
/// A follower that hears no leader for a random time between this ...
pub(super) const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(500);
/// ... and this (plus openraft's leader lease, which is this long too) stands for election.
/// A voter that heard from a leader less than this ago refuses every vote (the lease).
pub(super) const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(1000);

/// Options of raft mode.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Id, addresses, initial members and data directory.
    pub node: NodeOptions,
    pub stale_reads: bool,
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// A follower batches the writes it forwards ([`super::forward`]); off, each goes alone.
    pub forward_batch: bool,
}

pub(super) struct Inner {
    pub(super) id: NodeId,
    pub(super) options: RaftOptions,
    pub(super) raft: Raft<TypeConfig>,
    pub(super) machine: machine::Machine,
    pub(super) log: log::LogStore,
    /// The incarnation of this node's data directory (see [`RaftMember`]).
    pub(super) incarnation: u64,
    /// The incarnation the cluster knows this node by, once a message addressed to another
    /// one than [`Inner::incarnation`] arrived: this node's raft state was lost.
    pub(super) lost: std::sync::OnceLock<u64>,
    pub(super) faults: Arc<Faults>,
    /// This node's session of the log: a random number drawn at start (and again when the
    /// session expires), and the sequences still in flight.
    pub(super) epoch: AtomicU64,
    pub(super) in_flight: std::sync::Mutex<InFlight>,
    pub(super) clients: Arc<peer::Clients>,
    /// The peer server and the watchers; stopped with openraft at shutdown.
    pub(super) tasks: Tasks,
    pub(super) forwards_retried: AtomicU64,
    /// Writes this node forwarded to a leader, and the peer calls they went in.
    pub(super) forwarded_writes: AtomicU64,
    pub(super) forward_calls: AtomicU64,
    /// Writes waiting to be forwarded, one queue per leader ([`super::forward`]).
    pub(super) forward_queues: super::forward::ForwardQueues,
    pub(super) leader_changes: AtomicU64,
    /// Client writes proposed to the log, and the log appends they went in.
    pub(super) proposed: AtomicU64,
    pub(super) proposal_batches: AtomicU64,
    /// Leadership confirmations for linearizable reads (read-index rounds) this node ran.
    pub(super) read_index_rounds: AtomicU64,
    /// Writes waiting to go into the log together, and reads waiting for a read index.
    pub(super) proposals: crate::node::Pipeline<Request, super::service::ForwardReply>,
    /// The saved vote's term and the last entry in the log at start-up: in that term, a floor
    /// of the read index (see `read_round`).
    pub(super) recovered: Option<(u64, u64)>,
    pub(super) read_rounds: crate::node::Pipeline<(), super::service::ReadIndexReply>,
    /// Set once openraft was told to stop (see [`Inner::stop_raft`]).
    pub(super) raft_stopped: std::sync::atomic::AtomicBool,
    /// Set when the leader begins to hand its leadership over: no new proposal reaches
    /// openraft, so the log the chosen voter must catch up with stops growing.
    pub(super) stepping_down: std::sync::atomic::AtomicBool,
    /// Proposals handed to openraft and not answered yet: a leader stepping down waits for
    /// them, since each may still append an entry the chosen voter must hold.
    pub(super) proposing: std::sync::atomic::AtomicUsize,
    /// Snapshots from the leader, received here rather than by openraft ([`super::receive`]).
    pub(super) snapshots: super::receive::SnapshotReceiver,
}

/// raft mode's [`Store`].
pub struct RaftMode {
    pub(super) inner: Arc<Inner>,
}

pub(super) fn encode<T: Serialize>(from: NodeId, value: &T) -> std::result::Result<proto::RaftPayload, tonic::Status> {
    let body = codec::encode(value).map_err(tonic::Status::internal)?;
    Ok(proto::RaftPayload { from, body: body.into() })
}

/// The entries one AppendEntries carries at most. Each may hold a batch of up to a thousand
/// small writes ([`super::write::PROPOSALS`]), which decode to a few hundred bytes each and
/// are charged to the receiver's peer message budget as they are decoded: 64 such entries
/// take about 15 MB, within the budget of a node whose values are small (openraft's default,
/// 300, took 70 MB). A follower that lags catches up 64 entries a round trip.
pub(super) const MAX_PAYLOAD_ENTRIES: u64 = 64;

/// Decodes a peer's call, what it decodes to charged to the call's share of the node's peer
/// message budget (see [`codec::decode_within`]).
pub(super) fn decode<T: DeserializeOwned>(
    request: &tonic::Request<proto::RaftPayload>,
) -> std::result::Result<T, tonic::Status> {
    let budget = crate::peer::ReplyBudget::of(request);
    let room = |bytes| budget.as_ref().is_none_or(|budget| budget.try_take(bytes));
    codec::decode_within(&request.get_ref().body, &room).map_err(tonic::Status::from)
}

impl Inner {
    pub(super) fn metrics(&self) -> openraft::RaftMetrics<NodeId, RaftMember> {
        self.raft.metrics().borrow().clone()
    }

    /// The current leader, read without copying the metrics (this is on every command's path).
    pub(super) fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub(super) fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub(super) fn addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.metrics();
        metrics.membership_config.nodes().find(|(n, _)| **n == id).map(|(_, node)| node.addr.clone())
    }

    /// Asks node `id` at `addr` whether its raft storage is empty, and its incarnation.
    pub(super) async fn probe(&self, id: NodeId, addr: &str) -> std::result::Result<super::service::Probe, String> {
        let payload = encode(self.id, &()).map_err(|s| s.message().to_string())?;
        let mut client = super::network::client_for(&self.clients, id, addr)?;
        let reply = tokio::time::timeout(RPC_TIMEOUT, client.probe(payload))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|s| s.message().to_string())?;
        codec::decode(&reply.into_inner().body)
    }

    /// Initialises the cluster once: from the smallest id, when it and every peer are empty.
    pub(super) async fn bootstrap(self: Arc<Self>) {
        let peers = self.options.node.peers.clone();
        if self.options.node.join || peers.iter().map(|m| u64::from(m.id)).min() != Some(self.id) {
            return;
        }
        loop {
            if self.raft.is_initialized().await.unwrap_or(true) || self.leader().is_some() {
                return;
            }
            if !self.log.is_pristine().unwrap_or(false) {
                return;
            }
            let mut all_empty = true;
            let mut incarnations = BTreeMap::from([(self.id, self.incarnation)]);
            for m in peers.iter().filter(|m| u64::from(m.id) != self.id) {
                match self.probe(u64::from(m.id), &m.peer_addr).await {
                    Ok(probe) if probe.pristine => {
                        incarnations.insert(u64::from(m.id), probe.incarnation);
                    }
                    Ok(_) => {
                        tracing::info!(peer = m.id, "a peer already has raft state: not initialising");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(peer = m.id, "waiting for peer before initialising: {e}");
                        all_empty = false;
                        break;
                    }
                }
            }
            if all_empty {
                let members: BTreeMap<NodeId, RaftMember> = peers
                    .iter()
                    .map(|m| {
                        let id = u64::from(m.id);
                        let incarnation = incarnations.get(&id).copied().unwrap_or(0);
                        (id, RaftMember { addr: m.peer_addr.clone(), incarnation })
                    })
                    .collect();
                match self.raft.initialize(members).await {
                    Ok(()) => tracing::info!("cluster initialised"),
                    Err(e) => tracing::info!("initialise: {e}"),
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl RaftMode {
    /// Opens storage, starts openraft, the peer server, and (on the first node) the bootstrap.
    pub async fn start(options: RaftOptions, faults: Arc<Faults>) -> Result<Self> {
        let id = u64::from(options.node.node_id);
        let peers = options.node.initial_members().map_err(Error::Config)?;
        options
            .node
            .fs
            .create_dir_all(&options.node.data_dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", options.node.data_dir.display())))?;
        let mut log = log::LogStore::open(&options.node.fs, &options.node.data_dir.join("raft-log.redb"))
            .map_err(Error::Config)?;
        let machine = machine::Machine::open(&options.node.fs, &options.node.data_dir).map_err(Error::Config)?;
        log.guard_purges(machine.durable_index());
        let incarnation = log.incarnation().map_err(Error::Config)?;
        let recovered = log.recovered();
        let config = openraft::Config {
            cluster_name: "valthree".into(),
            heartbeat_interval: HEARTBEAT.as_millis() as u64,
            election_timeout_min: ELECTION_TIMEOUT_MIN.as_millis() as u64,
            election_timeout_max: ELECTION_TIMEOUT_MAX.as_millis() as u64,
            // The log keeper decides, by entries and by bytes (see `compaction`).
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: options.snapshot_every / 4,
            snapshot_max_chunk_size: 1 << 20,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            // One chunk of a snapshot may take this long to be sent and written (openraft's
            // default, 200 ms, is too short for a loaded machine). The last one is answered once
            // the whole snapshot is checked and installed, which takes longer for millions of
            // keys: the leader's call then times out, the install goes on regardless, and the
            // leader sends the snapshot once more, answered at once ([`super::receive`]).
            install_snapshot_timeout: 2000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(options.node.listen_addr())
            .await
            .map_err(|e| Error::Config(format!("cannot listen for peers on {}: {e}", options.node.listen_addr())))?;
        let clients = Arc::new(peer::Clients::new(
            super::network::peer_id(id),
            faults.clone(),
            options.node.secret.clone(),
            options.node.peer_tls.clone(),
            options.node.metrics.clone(),
        ));
        let network = Network { from: id, clients: clients.clone() };
        let raft = Raft::new(id, Arc::new(config), network, log.clone(), machine.clone())
            .await
            .map_err(|e| Error::Config(format!("cannot start raft: {e}")))?;
        let options = RaftOptions { node: NodeOptions { peers, ..options.node }, ..options };
        let (proposals, proposal_queue) = crate::node::pipeline();
        let (read_rounds, read_queue) = crate::node::pipeline();
        let inner = Arc::new(Inner {
            id,
            options,
            raft,
            machine,
            log,
            incarnation,
            lost: std::sync::OnceLock::new(),
            faults,
            epoch: AtomicU64::new(fastrand::u64(1..)),
            in_flight: Default::default(),
            clients,
            tasks: Tasks::default(),
            forwards_retried: AtomicU64::new(0),
            forwarded_writes: AtomicU64::new(0),
            forward_calls: AtomicU64::new(0),
            forward_queues: Default::default(),
            leader_changes: AtomicU64::new(0),
            proposed: AtomicU64::new(0),
            proposal_batches: AtomicU64::new(0),
            read_index_rounds: AtomicU64::new(0),
            proposals,
            read_rounds,
            recovered,
            raft_stopped: Default::default(),
            stepping_down: Default::default(),
            proposing: Default::default(),
            snapshots: Default::default(),
        });
        let weak = Arc::downgrade(&inner);
        inner.tasks.spawn(proposal_queue.serve(super::write::PROPOSALS, Request::weight, move |batch| {
            let inner = weak.upgrade()?;
            Some(async move { inner.propose(batch).await })
        }));
        let weak = Arc::downgrade(&inner);
        inner.tasks.spawn(read_queue.serve(
            super::write::READ_ROUNDS,
            |_| 1,
            move |batch: Vec<()>| {
                let inner = weak.upgrade()?;
                Some(async move { inner.read_round(batch.len()).await })
            },
        ));
        let service = RaftPeerServer::new(Service { inner: inner.clone() })
            .max_decoding_message_size(peer::MAX_MESSAGE)
            .max_encoding_message_size(peer::MAX_MESSAGE);
        inner.tasks.spawn(peer::serve(
            listener,
            service,
            inner.faults.clone(),
            inner.options.node.clone(),
            inner.tasks.stopping(),
        ));
        inner.tasks.spawn(inner.clone().bootstrap());
        inner.tasks.spawn(watch_leader(Arc::downgrade(&inner)));
        inner.tasks.spawn(super::compaction::keep_log(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }
}

async fn watch_leader(inner: std::sync::Weak<Inner>) {
    let Some(mut rx) = inner.upgrade().map(|i| i.raft.metrics()) else { return };
    let mut leader = None;
    while rx.changed().await.is_ok() {
        let now = rx.borrow().current_leader;
        if now != leader {
            if leader.is_some() {
                antithesis_sdk::assert_sometimes!(true, "raft: a leader change was observed");
            }
            tracing::info!(?now, "leader changed");
            leader = now;
            if let Some(i) = inner.upgrade() {
                i.leader_changes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
