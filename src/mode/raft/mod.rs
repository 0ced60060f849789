//! raft mode: a Raft log replicated to a majority, on openraft 0.9 (the stable line, with its
//! v2 storage traits under the `storage-v2` feature).
//!
//! * **Storage.** The log, vote and committed index live in redb (`DATA/raft-log.redb`),
//!   every transaction fsync'd before it returns ([`log`]); the state machine is in memory,
//!   snapshotted to a file every `--raft-snapshot-every` entries (default
//!   [`SNAPSHOT_EVERY`]), after which the log is purged but for a quarter of that
//!   ([`machine`]). A node that was down long catches up by snapshot.
//! * **Start.** The node with the smallest id in `--peers` initialises the cluster once: only
//!   while its own storage is empty and every peer answers that its storage is empty too.
//!   A restart (or a wiped node whose peers have state) never initialises again.
//! * **Writes** go to the leader: a follower forwards them over the peer plane. Every write
//!   carries its node's session (node, durable epoch of the start) and a sequence number; the
//!   state machine keeps each session's replies until the node says they are answered, so
//!   the node may retry a write whose outcome it did not learn — on the same or a new leader
//!   — and it is applied exactly once ([`machine`]). Only when no retry settles it
//!   before the deadline does the client get `-UNCERTAIN` (or `-TRYAGAIN` if no attempt can
//!   have reached a leader).
//! * **Reads** are linearizable on every node: the leader confirms its leadership with a
//!   quorum and returns its commit index (`get_read_log_id`, the read index); the reading
//!   node waits until it has applied that index and reads locally. `--stale-reads` reads the
//!   local state machine directly — fast, possibly stale, documented as such.
//! * **Membership**: `VALTHREE.MEMBERS ADD/REMOVE` (behind `cluster add-node/remove-node`)
//!   adds a learner, waits for it to catch up, then makes it a voter; or removes a voter.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

mod codec;
mod log;
mod machine;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, ChangeMembers, LogId, Raft, ServerState, SnapshotPolicy};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::mode::paxos::storage::Member;
use crate::node::Faults;
use crate::peer::proto;
use crate::peer::proto::raft_peer_client::RaftPeerClient;
use crate::peer::proto::raft_peer_server::{RaftPeer, RaftPeerServer};
use crate::store::{MembershipChange, ModeInfo, Mutation, MutationReply, Store};

pub type NodeId = u64;

/// A client session of the log: (the node that accepted the command from a client, the
/// durable epoch of that node's start). See [`machine`] for how sessions deduplicate.
pub type SessionId = (NodeId, u64);

/// A client write as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session, and the request's sequence number in it (unique, never reused).
    pub session: SessionId,
    pub seq: u64,
    /// The lowest sequence the session still has in flight: all below are answered.
    pub done_below: u64,
    pub command: Command,
}

/// What one log entry asks of the state machine.
///
/// openraft gives every AppendEntries one heartbeat interval (100 ms) to be sent, written
/// and fsync'd, so an entry must stay small: a value larger than [`CHUNK`] travels as
/// consecutive `Chunk` entries (replicated and committed like any other, each deduplicated on
/// its own) and a final `Assemble` entry that applies the mutation with the value put back
/// together. A value is never visible before its `Assemble` entry is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A whole mutation.
    Mutate(Mutation),
    /// Part `part` of the value of the request with sequence `of` in the same session.
    Chunk { of: u64, part: u32, data: Bytes },
    /// Applies `mutation` with its value made of the `parts` chunks staged for this request.
    Assemble { parts: u32, mutation: Mutation },
}

/// The largest value carried in one log entry; larger ones are split.
pub const CHUNK: usize = 1 << 20;
/// Chunks of one value being committed at once.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Splits a mutation whose value is larger than [`CHUNK`] into the chunks and the mutation
/// without its value; `None` when it fits in one entry.
fn split_value(mutation: &Mutation) -> Option<(Vec<Bytes>, Mutation)> {
    let (value, hollow) = match mutation {
        Mutation::Set { key, value, options } if value.len() > CHUNK => {
            (value, Mutation::Set { key: key.clone(), value: Bytes::new(), options: *options })
        }
        Mutation::Update { key, op: crate::store::UpdateOp::Append(value) } if value.len() > CHUNK => {
            (value, Mutation::Update { key: key.clone(), op: crate::store::UpdateOp::Append(Bytes::new()) })
        }
        _ => return None,
    };
    let chunks = (0..value.len()).step_by(CHUNK).map(|at| value.slice(at..(at + CHUNK).min(value.len()))).collect();
    Some((chunks, hollow))
}

/// Puts the assembled value back into a mutation [`split_value`] emptied.
fn fill_value(mutation: &Mutation, value: Bytes) -> Mutation {
    match mutation {
        Mutation::Set { key, options, .. } => Mutation::Set { key: key.clone(), value, options: *options },
        Mutation::Update { key, .. } => {
            Mutation::Update { key: key.clone(), op: crate::store::UpdateOp::Append(value) }
        }
        other => other.clone(),
    }
}

/// The state machine's answer to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub result: std::result::Result<MutationReply, String>,
}

openraft::declare_raft_types!(
    /// valthree's Raft types.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// Entries between snapshots.
pub const SNAPSHOT_EVERY: u64 = 2000;
/// How long a command may keep retrying (new leader, forward) before it gives up.
const COMMAND_DEADLINE: Duration = Duration::from_secs(5);
/// The bytes one AppendEntries should carry at most (openraft gives it one heartbeat
/// interval to be sent, written and fsync'd); more entries wait for the next one.
const APPEND_BUDGET: usize = 4 * CHUNK;
/// One peer call's limit.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// Options of raft mode.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    pub node_id: NodeId,
    pub peer_addr: String,
    pub peers: Vec<Member>,
    pub join: bool,
    pub data_dir: PathBuf,
    pub stale_reads: bool,
    /// Entries between snapshots.
    pub snapshot_every: u64,
}

struct Inner {
    id: NodeId,
    options: RaftOptions,
    raft: Raft<TypeConfig>,
    machine: machine::Machine,
    log: log::LogStore,
    faults: Arc<Faults>,
    /// This start's session of the log: its epoch and the sequences still in flight.
    epoch: u64,
    in_flight: std::sync::Mutex<InFlight>,
    clients: std::sync::Mutex<BTreeMap<String, RaftPeerClient<Channel>>>,
    forwards_retried: AtomicU64,
    leader_changes: AtomicU64,
}

/// raft mode's [`Store`].
pub struct RaftMode {
    inner: Arc<Inner>,
}

fn peer_name(id: NodeId) -> String {
    format!("n{id}")
}

fn client_for(inner: &Inner, addr: &str) -> Result<RaftPeerClient<Channel>> {
    let mut clients = inner.clients.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(addr) {
        return Ok(c.clone());
    }
    let endpoint = crate::peer::endpoint(addr).map_err(Error::Config)?;
    let client = RaftPeerClient::new(endpoint.connect_lazy()).max_decoding_message_size(crate::peer::MAX_MESSAGE);
    clients.insert(addr.to_string(), client.clone());
    Ok(client)
}

fn encode<T: Serialize>(from: NodeId, value: &T) -> std::result::Result<proto::RaftPayload, tonic::Status> {
    let body = codec::encode(value).map_err(tonic::Status::internal)?;
    Ok(proto::RaftPayload { from, body: body.into() })
}

fn decode<T: DeserializeOwned>(payload: &proto::RaftPayload) -> std::result::Result<T, tonic::Status> {
    codec::decode(&payload.body).map_err(tonic::Status::invalid_argument)
}

// ---- the network openraft uses ----

/// Makes connections to peers for openraft.
pub struct Network {
    from: NodeId,
    faults: Arc<Faults>,
}

/// One peer, as openraft sees it.
pub struct Connection {
    from: NodeId,
    target: NodeId,
    /// Entries in the append being sent, for a "payload too large" hint.
    last_entries: u64,
    client: std::result::Result<RaftPeerClient<Channel>, String>,
    faults: Arc<Faults>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        let client = crate::peer::endpoint(&node.addr)
            .map(|e| RaftPeerClient::new(e.connect_lazy()).max_decoding_message_size(crate::peer::MAX_MESSAGE));
        Connection { from: self.from, target, last_entries: 0, client, faults: self.faults.clone() }
    }
}

impl Connection {
    async fn call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        kind: &'static str,
        request: &Req,
        option: &RPCOption,
    ) -> std::result::Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        let unreachable = |why: String| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why)));
        if self.faults.is_isolated_from(&peer_name(self.target)) {
            return Err(unreachable(format!("partitioned from n{}", self.target)));
        }
        let network = |why: String| RPCError::Network(NetworkError::new(&std::io::Error::other(why)));
        let mut client = self.client.clone().map_err(unreachable)?;
        let payload = encode(self.from, request).map_err(|s| network(s.message().to_string()))?;
        if kind == "append" && payload.body.len() > APPEND_BUDGET && self.last_entries > 1 {
            // openraft gives an append one heartbeat interval: send fewer entries at a time.
            let fit = self.last_entries * APPEND_BUDGET as u64 / payload.body.len() as u64;
            return Err(RPCError::PayloadTooLarge(openraft::error::PayloadTooLarge::new_entries_hint(fit.max(1))));
        }
        let call = async {
            match kind {
                "append" => client.append_entries(payload).await,
                "vote" => client.vote(payload).await,
                _ => client.install_snapshot(payload).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => return Err(RPCError::Network(NetworkError::new(&std::io::Error::other("timed out")))),
            // A peer that cannot be connected to is unreachable: openraft then backs off
            // instead of retrying at once.
            Ok(Err(status)) if crate::peer::never_sent(&status) => {
                return Err(unreachable(status.message().into()));
            }
            Ok(Err(status)) => {
                return Err(RPCError::Network(NetworkError::new(&std::io::Error::other(status.message().to_string()))));
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let result: std::result::Result<Resp, RaftError<NodeId, E>> = codec::decode(&reply.body).map_err(network)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.last_entries = rpc.entries.len() as u64;
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> std::result::Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

// ---- this node's session of the log ----

/// The sequences of this node's session that are still in flight.
#[derive(Default)]
struct InFlight {
    next: u64,
    open: BTreeSet<u64>,
}

/// One request's place in the session, given up (as answered) when dropped.
struct Ticket<'a> {
    in_flight: &'a std::sync::Mutex<InFlight>,
    seq: u64,
    /// The lowest sequence in flight when this request began (its own included).
    done_below: u64,
}

impl<'a> Ticket<'a> {
    fn new(in_flight: &'a std::sync::Mutex<InFlight>) -> Self {
        let mut state = in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let seq = state.next;
        state.next += 1;
        state.open.insert(seq);
        let done_below = state.open.first().copied().unwrap_or(seq);
        Self { in_flight, seq, done_below }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).open.remove(&self.seq);
    }
}

// ---- what a follower asks the leader ----

#[derive(Debug, Serialize, Deserialize)]
enum Forwarded {
    Write(Request),
    Membership(WireChange),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum WireChange {
    Add { id: NodeId, peer_addr: String },
    Remove { id: NodeId },
}

#[derive(Debug, Serialize, Deserialize)]
enum ForwardReply {
    Write(Response),
    Membership(Vec<String>),
    /// Not the leader (any more); the entry was not appended here.
    NotLeader(Option<NodeId>),
    /// Something else; `maybe` when the entry may have been appended.
    Failed {
        message: String,
        maybe: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum ReadIndexReply {
    Index(Option<u64>),
    NotLeader(Option<NodeId>),
    Failed(String),
}

struct Service {
    inner: Arc<Inner>,
}

impl Service {
    fn check_from(&self, from: u64) -> std::result::Result<(), tonic::Status> {
        if from != self.inner.id && self.inner.faults.is_isolated_from(&peer_name(from)) {
            return Err(tonic::Status::unavailable(format!("partitioned from n{from}")));
        }
        Ok(())
    }
}

type RpcResult = std::result::Result<tonic::Response<proto::RaftPayload>, tonic::Status>;

#[tonic::async_trait]
impl RaftPeer for Service {
    async fn append_entries(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.check_from(payload.from)?;
        let result = self.inner.raft.append_entries(decode(&payload)?).await;
        Ok(tonic::Response::new(encode(self.inner.id, &result)?))
    }

    async fn vote(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.check_from(payload.from)?;
        let result = self.inner.raft.vote(decode(&payload)?).await;
        Ok(tonic::Response::new(encode(self.inner.id, &result)?))
    }

    async fn install_snapshot(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.check_from(payload.from)?;
        let result = self.inner.raft.install_snapshot(decode(&payload)?).await;
        Ok(tonic::Response::new(encode(self.inner.id, &result)?))
    }

    async fn forward(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.check_from(payload.from)?;
        let reply = match decode::<Forwarded>(&payload)? {
            Forwarded::Write(request) => self.inner.write_here(request).await,
            Forwarded::Membership(change) => match self.inner.change_here(change).await {
                Ok(lines) => ForwardReply::Membership(lines),
                Err(reply) => reply,
            },
        };
        Ok(tonic::Response::new(encode(self.inner.id, &reply)?))
    }

    async fn read_index(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.check_from(payload.from)?;
        let reply = match tokio::time::timeout(RPC_TIMEOUT, self.inner.raft.get_read_log_id()).await {
            Ok(Ok((read, _applied))) => ReadIndexReply::Index(read.map(|l| l.index)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                ReadIndexReply::NotLeader(f.leader_id)
            }
            Ok(Err(e)) => ReadIndexReply::Failed(e.to_string()),
            Err(_) => ReadIndexReply::Failed("leadership could not be confirmed in time".into()),
        };
        Ok(tonic::Response::new(encode(self.inner.id, &reply)?))
    }

    async fn probe(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.check_from(payload.from)?;
        let pristine = self.inner.log.is_pristine().map_err(|e| tonic::Status::unavailable(e.to_string()))?
            && self.inner.machine.state.read().unwrap_or_else(|e| e.into_inner()).last_applied.is_none();
        Ok(tonic::Response::new(encode(self.inner.id, &pristine)?))
    }
}

impl Inner {
    fn metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The current leader, read without copying the metrics (this is on every command's path).
    fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    fn addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.metrics();
        metrics.membership_config.nodes().find(|(n, _)| **n == id).map(|(_, node)| node.addr.clone())
    }

    fn isolated_from(&self, id: NodeId) -> bool {
        id != self.id && self.faults.is_isolated_from(&peer_name(id))
    }

    /// Calls the leader `leader`; `Err((message, maybe_sent))`.
    async fn call_peer<T: DeserializeOwned>(
        &self,
        id: NodeId,
        kind: &'static str,
        payload: proto::RaftPayload,
        timeout: Duration,
    ) -> std::result::Result<T, (String, bool)> {
        if self.isolated_from(id) {
            return Err((format!("partitioned from n{id}"), false));
        }
        let addr = self.addr_of(id).ok_or_else(|| (format!("n{id} is not in the membership"), false))?;
        let mut client = client_for(self, &addr).map_err(|e| (e.to_string(), false))?;
        let call = async {
            match kind {
                "forward" => client.forward(payload).await,
                "read_index" => client.read_index(payload).await,
                _ => client.probe(payload).await,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err((format!("n{id} did not answer in time"), true)),
            Ok(Err(status)) => Err((format!("n{id}: {}", status.message()), !crate::peer::never_sent(&status))),
            Ok(Ok(reply)) => codec::decode(&reply.into_inner().body).map_err(|e| (e, true)),
        }
    }

    /// Appends a write on this node, if it leads.
    async fn write_here(&self, request: Request) -> ForwardReply {
        // Metrics lag the core: a term change during the call also means the entry may have
        // been appended by a leader that just lost its leadership.
        let (was_leader, term_before) = (self.leader() == Some(self.id), self.term());
        // A leader cut off from its quorum keeps the entry pending until it learns of a newer
        // term; do not wait for that longer than a command may take.
        let written = match tokio::time::timeout(COMMAND_DEADLINE, self.raft.client_write(request)).await {
            Ok(written) => written,
            Err(_) => {
                return ForwardReply::Failed {
                    message: "the leader could not commit the write in time".into(),
                    maybe: true,
                };
            }
        };
        match written {
            Ok(response) => ForwardReply::Write(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                if was_leader || self.term() != term_before {
                    // Leadership was lost while the entry may already have been appended.
                    ForwardReply::Failed { message: "leadership changed during the write".into(), maybe: true }
                } else {
                    ForwardReply::NotLeader(f.leader_id)
                }
            }
            Err(e) => ForwardReply::Failed { message: e.to_string(), maybe: true },
        }
    }

    /// Runs a write through the leader; a large value goes first as chunks (see [`Command`]).
    async fn write(&self, mutation: Mutation) -> Result<MutationReply> {
        let ticket = Ticket::new(&self.in_flight);
        let session = (self.id, self.epoch);
        let command = match split_value(&mutation) {
            None => Command::Mutate(mutation),
            Some((chunks, hollow)) => {
                let parts = u32::try_from(chunks.len()).map_err(|_| Error::Input("value too large".into()))?;
                let sends = chunks.into_iter().enumerate().map(|(part, data)| {
                    let chunk = Ticket::new(&self.in_flight);
                    let command = Command::Chunk { of: ticket.seq, part: part as u32, data };
                    async move {
                        let request = Request { session, seq: chunk.seq, done_below: chunk.done_below, command };
                        self.write_request(request).await
                    }
                });
                // A few chunks at a time (about one append's worth), each with its own deadline:
                // the value streams at the speed the cluster commits. The value is applied only
                // by the final entry, so a chunk that failed leaves nothing visible (its
                // staging is dropped once the session moves past this request).
                let mut sent = futures_util::stream::iter(sends).buffer_unordered(CHUNKS_IN_FLIGHT);
                while let Some(result) = sent.next().await {
                    if let Err(e) = result {
                        return Err(match e {
                            Error::Uncertain(m) | Error::TryAgain(m) => {
                                Error::TryAgain(format!("a part of the value was not stored: {m}"))
                            }
                            other => other,
                        });
                    }
                }
                Command::Assemble { parts, mutation: hollow }
            }
        };
        let request = Request { session, seq: ticket.seq, done_below: ticket.done_below, command };
        self.write_request(request).await
    }

    /// Runs one request through the leader, retrying it with the same id (the state machine
    /// applies it once) until it settles or the deadline passes.
    async fn write_request(&self, request: Request) -> Result<MutationReply> {
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let mut maybe_applied = false;
        let mut last = String::from("no leader is known");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            if attempt > 0 {
                self.forwards_retried.fetch_add(1, Ordering::Relaxed);
                antithesis_sdk::assert_sometimes!(true, "raft: a write was retried");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt.min(10)))).await;
            }
            attempt += 1;
            let Some(leader) = self.leader() else { continue };
            let reply = if leader == self.id {
                self.write_here(request.clone()).await
            } else {
                let payload = match encode(self.id, &Forwarded::Write(request.clone())) {
                    Ok(payload) => payload,
                    Err(status) => return Err(Error::Input(status.message().to_string())),
                };
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                match self.call_peer::<ForwardReply>(leader, "forward", payload, left.min(RPC_TIMEOUT)).await {
                    Ok(reply) => reply,
                    Err((message, maybe)) => ForwardReply::Failed { message, maybe },
                }
            };
            match reply {
                ForwardReply::Write(response) => {
                    return response.result.map_err(Error::Input);
                }
                ForwardReply::NotLeader(_) => last = format!("n{leader} is not the leader"),
                ForwardReply::Failed { message, maybe } => {
                    maybe_applied |= maybe;
                    last = message;
                }
                ForwardReply::Membership(_) => last = "unexpected reply".into(),
            }
        }
        if maybe_applied {
            Err(Error::Uncertain(format!("the write may have been committed: {last}")))
        } else {
            Err(Error::TryAgain(format!("no leader accepted the write: {last}")))
        }
    }

    /// Waits until a read here is linearizable: the leader's read index, applied locally.
    async fn read_barrier(&self) -> Result<()> {
        if self.options.stale_reads {
            return Ok(());
        }
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let mut last = String::from("no leader is known");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt.min(10)))).await;
            }
            attempt += 1;
            let Some(leader) = self.leader() else { continue };
            let index = if leader == self.id {
                match tokio::time::timeout(RPC_TIMEOUT, self.raft.get_read_log_id()).await {
                    Ok(Ok((read, _))) => read.map(|l| l.index),
                    Ok(Err(e)) => {
                        last = e.to_string();
                        continue;
                    }
                    Err(_) => {
                        last = "leadership could not be confirmed in time".into();
                        continue;
                    }
                }
            } else {
                let payload = encode(self.id, &()).map_err(|s| Error::Io(s.message().to_string()))?;
                match self.call_peer::<ReadIndexReply>(leader, "read_index", payload, RPC_TIMEOUT).await {
                    Ok(ReadIndexReply::Index(index)) => index,
                    Ok(ReadIndexReply::NotLeader(_)) => {
                        last = format!("n{leader} is not the leader");
                        continue;
                    }
                    Ok(ReadIndexReply::Failed(e)) | Err((e, _)) => {
                        last = e;
                        continue;
                    }
                }
            };
            let Some(index) = index else { return Ok(()) };
            let left = deadline.saturating_duration_since(Instant::now());
            match self.raft.wait(Some(left)).applied_index_at_least(Some(index), "read index").await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::TryAgain(format!("no linearizable read possible: {last}")))
    }

    async fn change_here(&self, change: WireChange) -> std::result::Result<Vec<String>, ForwardReply> {
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

    fn show(&self) -> Vec<String> {
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

    /// Initialises the cluster once: from the smallest id, when it and every peer are empty.
    async fn bootstrap(self: Arc<Self>) {
        let peers = self.options.peers.clone();
        if self.options.join || peers.iter().map(|m| u64::from(m.id)).min() != Some(self.id) {
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
            for m in peers.iter().filter(|m| u64::from(m.id) != self.id) {
                let answer = async {
                    let payload = encode(self.id, &()).map_err(|s| s.message().to_string())?;
                    let mut client = client_for(&self, &m.peer_addr).map_err(|e| e.to_string())?;
                    let reply = tokio::time::timeout(RPC_TIMEOUT, client.probe(payload))
                        .await
                        .map_err(|_| "timed out".to_string())?
                        .map_err(|s| s.message().to_string())?;
                    codec::decode::<bool>(&reply.into_inner().body)
                };
                match answer.await {
                    Ok(true) => {}
                    Ok(false) => {
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
                let members: BTreeMap<NodeId, BasicNode> =
                    peers.iter().map(|m| (u64::from(m.id), BasicNode::new(m.peer_addr.clone()))).collect();
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
        let id = options.node_id;
        let mut peers = options.peers.clone();
        if peers.is_empty() && !options.join {
            peers = vec![Member { id: options.node_id as u32, peer_addr: options.peer_addr.clone() }];
        }
        if !options.join && !peers.iter().any(|m| u64::from(m.id) == id) {
            return Err(Error::Config(format!("--peers does not list this node (--node-id {id})")));
        }
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", options.data_dir.display())))?;
        let mut log = log::LogStore::open(&options.data_dir.join("raft-log.redb")).map_err(Error::Config)?;
        let machine = machine::Machine::open(&options.data_dir).map_err(Error::Config)?;
        log.guard_purges(machine.durable_index());
        let epoch = log.next_epoch().map_err(Error::Config)?;
        let config = openraft::Config {
            cluster_name: "valthree".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: options.snapshot_every / 4,
            snapshot_max_chunk_size: 1 << 20,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&options.peer_addr)
            .await
            .map_err(|e| Error::Config(format!("cannot listen for peers on {}: {e}", options.peer_addr)))?;
        let network = Network { from: id, faults: faults.clone() };
        let raft = Raft::new(id, Arc::new(config), network, log.clone(), machine.clone())
            .await
            .map_err(|e| Error::Config(format!("cannot start raft: {e}")))?;
        let options = RaftOptions { peers, ..options };
        let inner = Arc::new(Inner {
            id,
            options,
            raft,
            machine,
            log,
            faults,
            epoch,
            in_flight: Default::default(),
            clients: Default::default(),
            forwards_retried: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
        });
        let service = Service { inner: inner.clone() };
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            if let Err(e) = crate::peer::server()
                .add_service(
                    RaftPeerServer::new(service)
                        .max_decoding_message_size(crate::peer::MAX_MESSAGE)
                        .max_encoding_message_size(crate::peer::MAX_MESSAGE),
                )
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!("peer server stopped: {e}");
            }
        });
        tokio::spawn(inner.clone().bootstrap());
        tokio::spawn(watch_leader(Arc::downgrade(&inner)));
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

#[async_trait]
impl Store for RaftMode {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.read_barrier().await?;
        Ok(machine::read(&self.inner.machine.state, &[Bytes::copy_from_slice(key)]).pop().flatten())
    }

    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        self.inner.read_barrier().await?;
        Ok(machine::read(&self.inner.machine.state, keys))
    }

    async fn dbsize(&self) -> Result<u64> {
        self.inner.read_barrier().await?;
        Ok(self.inner.machine.state.read().unwrap_or_else(|e| e.into_inner()).keyspace.len() as u64)
    }

    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply> {
        self.inner.write(mutation).await
    }

    fn local_dbsize(&self) -> Option<u64> {
        Some(self.inner.machine.state.read().unwrap_or_else(|e| e.into_inner()).keyspace.len() as u64)
    }

    fn describe(&self) -> ModeInfo {
        let inner = &self.inner;
        let m = inner.metrics();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| format!("{id}={}{}", n.addr, if voters.contains(id) { "" } else { "(learner)" }))
            .collect::<Vec<_>>()
            .join(",");
        let idx = |l: Option<LogId<NodeId>>| l.map_or(0, |l| l.index).to_string();
        let details = vec![
            ("raft_node_id".into(), inner.id.to_string()),
            ("raft_role".into(), role.into()),
            ("raft_term".into(), m.current_term.to_string()),
            ("raft_leader".into(), m.current_leader.map_or("none".into(), |l| l.to_string())),
            ("raft_last_log_index".into(), m.last_log_index.unwrap_or(0).to_string()),
            ("raft_commit_index".into(), inner.log.committed_index().unwrap_or(0).to_string()),
            ("raft_last_applied".into(), idx(m.last_applied)),
            ("raft_snapshot_index".into(), idx(m.snapshot)),
            ("raft_log_entries_kept".into(), inner.log.len().to_string()),
            ("raft_members".into(), members),
            ("raft_stale_reads".into(), if inner.options.stale_reads { "on" } else { "off" }.into()),
            ("raft_writes_retried".into(), inner.forwards_retried.load(Ordering::Relaxed).to_string()),
            ("raft_leader_changes".into(), inner.leader_changes.load(Ordering::Relaxed).to_string()),
            ("raft_snapshots_installed".into(), inner.machine.snapshots_installed().to_string()),
            (
                "raft_replies_remembered".into(),
                inner.machine.state.read().unwrap_or_else(|e| e.into_inner()).remembered_replies().to_string(),
            ),
        ];
        ModeInfo { mode: "raft", details }
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        let inner = &self.inner;
        let change = match change {
            MembershipChange::Show => return Ok(inner.show()),
            MembershipChange::Add { id, peer_addr } => WireChange::Add { id: u64::from(id), peer_addr },
            MembershipChange::Remove { id } => WireChange::Remove { id: u64::from(id) },
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::from("no leader is known");
        while Instant::now() < deadline {
            let Some(leader) = inner.leader() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let reply = if leader == inner.id {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, inner.change_here(change.clone())).await {
                    Ok(Ok(lines)) => return Ok(lines),
                    Ok(Err(reply)) => reply,
                    Err(_) => {
                        ForwardReply::Failed { message: "the new node did not catch up in time".into(), maybe: true }
                    }
                }
            } else {
                let payload = encode(inner.id, &Forwarded::Membership(change.clone()))
                    .map_err(|s| Error::Io(s.message().to_string()))?;
                match inner.call_peer::<ForwardReply>(leader, "forward", payload, Duration::from_secs(60)).await {
                    Ok(reply) => reply,
                    Err((message, _)) => ForwardReply::Failed { message, maybe: true },
                }
            };
            match reply {
                ForwardReply::Membership(lines) => return Ok(lines),
                ForwardReply::Failed { message, .. } => last = message,
                ForwardReply::NotLeader(_) | ForwardReply::Write(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Uncertain(format!("membership change not confirmed: {last}")))
    }
}
