//! The network openraft uses, over the peer plane, and this node's calls to the leader.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::peer::proto::raft_peer_client::RaftPeerClient;
use crate::peer::{self, proto};

use crate::node::codec;

use super::node::{Inner, encode};
use super::types::{CHUNK, NodeId, RaftMember, TypeConfig};

/// The bytes one AppendEntries should carry at most (openraft gives it one heartbeat
/// interval to be sent, written and fsync'd); more entries wait for the next one.
const APPEND_BUDGET: usize = 4 * CHUNK;

/// The peer plane's id of raft node `id` (raft's ids are the `--node-id`s, widened).
pub(super) fn peer_id(id: NodeId) -> crate::node::NodeId {
    crate::node::NodeId::try_from(id).unwrap_or(crate::node::NodeId::MAX)
}

/// A client for node `id` at `addr`, on the node's shared channels.
pub(super) fn client_for(
    clients: &peer::Clients,
    id: NodeId,
    addr: &str,
) -> std::result::Result<RaftPeerClient<peer::PeerChannel>, String> {
    let channel = clients.channel(peer_id(id), addr)?;
    Ok(RaftPeerClient::new(channel).max_decoding_message_size(peer::MAX_MESSAGE))
}

/// openraft's calls to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RaftCall {
    Append,
    Vote,
    Snapshot,
}

/// This node's calls to another node outside openraft: mostly to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaderCall {
    /// A write or membership change, for the leader to run.
    Forward,
    /// The leader's read index.
    ReadIndex,
    /// From a leader stepping down to the follower it chose: stand for election now.
    Campaign,
}

// ---- the network openraft uses ----

/// Makes connections to peers for openraft.
pub struct Network {
    pub(super) from: NodeId,
    pub(super) clients: Arc<peer::Clients>,
}

/// One peer, as openraft sees it.
pub struct Connection {
    from: NodeId,
    target: NodeId,
    /// The incarnation of the target's data directory the membership records: every message
    /// is addressed to it, and a node with other data refuses it.
    incarnation: u64,
    /// Entries in the append being sent, for a "payload too large" hint.
    last_entries: u64,
    client: std::result::Result<RaftPeerClient<peer::PeerChannel>, String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &RaftMember) -> Connection {
        let client = client_for(&self.clients, target, &node.addr);
        Connection { from: self.from, target, incarnation: node.incarnation, last_entries: 0, client }
    }
}

impl Connection {
    async fn call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        kind: RaftCall,
        request: &Req,
        option: &RPCOption,
    ) -> std::result::Result<Resp, RPCError<NodeId, RaftMember, RaftError<NodeId, E>>> {
        let unreachable = |why: String| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why)));
        let network = |why: String| RPCError::Network(NetworkError::new(&std::io::Error::other(why)));
        let mut client = self.client.clone().map_err(unreachable)?;
        let addressed = super::service::Addressed { to: self.incarnation, rpc: request };
        let payload = encode(self.from, &addressed).map_err(|s| network(s.message().to_string()))?;
        if kind == RaftCall::Append && payload.body.len() > APPEND_BUDGET && self.last_entries > 1 {
            // openraft gives an append one heartbeat interval: send fewer entries at a time.
            let fit = self.last_entries * APPEND_BUDGET as u64 / payload.body.len() as u64;
            return Err(RPCError::PayloadTooLarge(openraft::error::PayloadTooLarge::new_entries_hint(fit.max(1))));
        }
        let call = async {
            match kind {
                RaftCall::Append => client.append_entries(payload).await,
                RaftCall::Vote => client.vote(payload).await,
                RaftCall::Snapshot => client.install_snapshot(payload).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => return Err(RPCError::Network(NetworkError::new(&std::io::Error::other("timed out")))),
            // The receiver had no room in its peer message budget to decode this many entries
            // (it is busy with large values): send fewer at a time.
            Ok(Err(status))
                if kind == RaftCall::Append
                    && status.code() == tonic::Code::ResourceExhausted
                    && self.last_entries > 1 =>
            {
                let fewer = (self.last_entries / 2).max(1);
                return Err(RPCError::PayloadTooLarge(openraft::error::PayloadTooLarge::new_entries_hint(fewer)));
            }
            // A peer that cannot be reached (or that this node is cut off from) is
            // unreachable: openraft then backs off instead of retrying at once.
            Ok(Err(status)) if peer::CallError::from_status(&status).certainly_not_run() => {
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
    ) -> std::result::Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, RaftMember, RaftError<NodeId>>> {
        self.last_entries = rpc.entries.len() as u64;
        self.call(RaftCall::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, RaftMember, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(RaftCall::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> std::result::Result<VoteResponse<NodeId>, RPCError<NodeId, RaftMember, RaftError<NodeId>>> {
        self.call(RaftCall::Vote, &rpc, &option).await
    }
}

/// A failed call to another node: what may have run there, and whether it could not decode
/// the call (an older version that does not know it: nothing ran).
pub(super) struct CallFailure {
    pub(super) error: peer::CallError,
    pub(super) undecodable: bool,
}

impl From<peer::CallError> for CallFailure {
    fn from(error: peer::CallError) -> Self {
        Self { error, undecodable: false }
    }
}

impl Inner {
    /// Calls the leader `id`; a failure says whether the call may have run there.
    pub(super) async fn call_peer<T: DeserializeOwned>(
        &self,
        id: NodeId,
        kind: LeaderCall,
        payload: proto::RaftPayload,
        timeout: Duration,
    ) -> std::result::Result<T, peer::CallError> {
        self.call_leader(id, kind, payload, timeout).await.map_err(|failure| failure.error)
    }

    /// [`Inner::call_peer`], telling apart a call the node could not decode.
    pub(super) async fn call_leader<T: DeserializeOwned>(
        &self,
        id: NodeId,
        kind: LeaderCall,
        payload: proto::RaftPayload,
        timeout: Duration,
    ) -> std::result::Result<T, CallFailure> {
        let addr =
            self.addr_of(id).ok_or_else(|| peer::CallError::NotSent(format!("n{id} is not in the membership")))?;
        let mut client = client_for(&self.clients, id, &addr).map_err(peer::CallError::NotSent)?;
        let call = async {
            match kind {
                LeaderCall::Forward => client.forward(payload).await,
                LeaderCall::ReadIndex => client.read_index(payload).await,
                LeaderCall::Campaign => client.campaign(payload).await,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(peer::CallError::timed_out(&format!("n{id}")).into()),
            Ok(Err(status)) => Err(CallFailure {
                error: peer::CallError::from_status(&status),
                // Sent by the peer (a status from the wire has no local source): its decoding
                // refused the call before anything ran (see `node::decode`).
                undecodable: status.code() == tonic::Code::InvalidArgument
                    && std::error::Error::source(&status).is_none(),
            }),
            // The call ran there; only its answer is unreadable.
            Ok(Ok(reply)) => codec::decode(&reply.into_inner().body).map_err(|e| peer::CallError::MaybeSent(e).into()),
        }
    }
}
