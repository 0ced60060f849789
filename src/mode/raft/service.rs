//! The `RaftPeer` service: openraft's messages from the leader, and what followers ask of it.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use crate::node::codec;
use crate::node::read_lock;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::peer::proto;
use crate::peer::proto::raft_peer_server::RaftPeer;

use super::node::{Inner, decode, encode};
use super::types::{Command, NodeId, Request, Response, TypeConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

// ---- what a follower asks the leader ----

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Forwarded {
    /// One write; answered with a [`ForwardReply`].
    Write(Request),
    Membership(WireChange),
    /// Writes a follower batched ([`super::forward`]); answered with a `Vec<ForwardReply>`,
    /// one per write, in order. (Appended last: the variants before it keep their encoding.)
    Writes(Vec<Request>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum WireChange {
    Add { id: NodeId, peer_addr: String },
    Remove { id: NodeId },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum ForwardReply {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum ReadIndexReply {
    Index(Option<u64>),
    NotLeader(Option<NodeId>),
    Failed(String),
}

/// A raft message and the incarnation of the data directory its sender means it for (see
/// [`RaftMember`]).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Addressed<T> {
    pub(super) to: u64,
    pub(super) rpc: T,
}

/// A node's answer to a probe: whether its raft storage is empty, and its incarnation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Probe {
    pub(super) pristine: bool,
    pub(super) incarnation: u64,
}

pub(super) struct Service {
    pub(super) inner: Arc<Inner>,
}

type RpcResult = std::result::Result<tonic::Response<proto::RaftPayload>, tonic::Status>;

/// How far past this node's term a peer's term may be. A candidate cut off from its peers
/// raises its term about once a second, so a real term is never anywhere near this far
/// ahead; a term near `u64::MAX` is refused (persisted, it would brick the cluster, and
/// openraft panics on overflow).
const MAX_TERM_LEAD: u64 = 1 << 32;

impl Service {
    /// Refuses a message whose term no honest peer can have.
    fn check_term(&self, vote: &openraft::Vote<NodeId>) -> std::result::Result<(), tonic::Status> {
        let term = vote.leader_id().get_term();
        let mine = self.inner.term();
        if term > mine.saturating_add(MAX_TERM_LEAD) || term > u64::MAX / 2 {
            tracing::warn!(term, mine, "refusing a raft message with an absurd term");
            return Err(tonic::Status::invalid_argument(format!("term {term} is absurd (this node is at {mine})")));
        }
        Ok(())
    }

    /// Refuses a message meant for another incarnation of this node: this data directory is
    /// not the one the cluster knows, so this node has forgotten what it voted for and
    /// acknowledged, and must take no part (see [`RaftMember`]).
    fn check_addressee(&self, to: u64) -> std::result::Result<(), tonic::Status> {
        let inner = &self.inner;
        if to == 0 || to == inner.incarnation {
            return Ok(());
        }
        let message = lost_data_message(inner.id, inner.incarnation, to);
        if inner.lost.set(to).is_ok() {
            tracing::error!("{message}");
        }
        Err(tonic::Status::failed_precondition(message))
    }
}

/// What a node whose raft data was lost says (in its log, to its peers and in INFO).
pub(super) fn lost_data_message(id: NodeId, incarnation: u64, known: u64) -> String {
    format!(
        "n{id}'s data directory (incarnation {incarnation:x}) is not the one the cluster knows (incarnation \
         {known:x}): its raft state was lost, so it neither votes nor stores entries; remove it and add it again \
         (`valthree cluster remove-node n{id}`, then `valthree cluster add-node`)"
    )
}

#[tonic::async_trait]
impl RaftPeer for Service {
    async fn append_entries(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let Addressed { to, rpc }: Addressed<AppendEntriesRequest<TypeConfig>> = decode(&request)?;
        // The values are copied out of the payload: it need not be held beside them.
        drop(request);
        self.check_addressee(to)?;
        self.check_term(&rpc.vote)?;
        let result = self.inner.raft.append_entries(rpc).await;
        Ok(tonic::Response::new(encode(self.inner.id, &result)?))
    }

    async fn vote(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let Addressed { to, rpc }: Addressed<VoteRequest<NodeId>> = decode(&request)?;
        self.check_addressee(to)?;
        self.check_term(&rpc.vote)?;
        let result = self.inner.raft.vote(rpc).await;
        Ok(tonic::Response::new(encode(self.inner.id, &result)?))
    }

    async fn install_snapshot(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let Addressed { to, rpc }: Addressed<InstallSnapshotRequest<TypeConfig>> = decode(&request)?;
        // The values are copied out of the payload: it need not be held beside them.
        drop(request);
        self.check_addressee(to)?;
        self.check_term(&rpc.vote)?;
        let result = self.inner.snapshots.receive(&self.inner.raft, rpc).await;
        Ok(tonic::Response::new(encode(self.inner.id, &result)?))
    }

    async fn forward(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let forwarded = decode::<Forwarded>(&request)?;
        drop(request);
        let reply = match forwarded {
            Forwarded::Writes(requests) => {
                // Queued for the next proposal together, in order: each future queues its
                // write on its first poll, and `join_all` polls them in order.
                let replies = futures_util::future::join_all(requests.into_iter().map(|r| self.inner.write_here(r)));
                return Ok(tonic::Response::new(encode(self.inner.id, &replies.await)?));
            }
            Forwarded::Write(request) => self.inner.write_here(request).await,
            Forwarded::Membership(change) => match self.inner.change_here(change).await {
                Ok(lines) => ForwardReply::Membership(lines),
                Err(reply) => reply,
            },
        };
        Ok(tonic::Response::new(encode(self.inner.id, &reply)?))
    }

    async fn read_index(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let _payload = request.into_inner();
        let reply = self.inner.read_index_here().await;
        Ok(tonic::Response::new(encode(self.inner.id, &reply)?))
    }

    async fn probe(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let _payload = request.into_inner();
        let pristine = self.inner.log.is_pristine().map_err(|e| tonic::Status::unavailable(e.to_string()))?
            && read_lock(&self.inner.machine.state).last_applied.is_none();
        let probe = Probe { pristine, incarnation: self.inner.incarnation };
        Ok(tonic::Response::new(encode(self.inner.id, &probe)?))
    }

    async fn campaign(&self, request: tonic::Request<proto::RaftPayload>) -> RpcResult {
        let () = decode(&request)?;
        let outcome: Result<(), String> = self.inner.campaign(request.get_ref().from).await;
        Ok(tonic::Response::new(encode(self.inner.id, &outcome)?))
    }
}

/// Encoded samples of every message a raft peer receives, for the seeded fuzz tests.
#[doc(hidden)]
pub fn sample_messages() -> Vec<Vec<u8>> {
    use crate::store::Mutation;
    use bytes::Bytes;
    use openraft::{Entry, EntryPayload, LogId, Vote};
    let request = Request {
        session: (1, 42),
        seq: 3,
        done_below: 2,
        command: Command::Mutate(Mutation::Set {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            options: Default::default(),
        }),
    };
    let entry = Entry::<TypeConfig> {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 5),
        payload: EntryPayload::Normal(vec![request.clone()]),
    };
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![entry],
    };
    let vote = VoteRequest::<NodeId> { vote: Vote::new(2, 3), last_log_id: None };
    vec![
        codec::encode(&Addressed { to: 7, rpc: append }).unwrap_or_default(),
        codec::encode(&Addressed { to: 7, rpc: vote }).unwrap_or_default(),
        codec::encode(&Probe { pristine: true, incarnation: 7 }).unwrap_or_default(),
        codec::encode(&Forwarded::Write(request.clone())).unwrap_or_default(),
        codec::encode(&Forwarded::Writes(vec![request.clone(), request])).unwrap_or_default(),
        codec::encode(&Forwarded::Membership(WireChange::Remove { id: 2 })).unwrap_or_default(),
    ]
}

/// Decodes `bytes` as each message a raft peer receives; an error is fine, a panic is not.
#[doc(hidden)]
pub fn decode_every_message(bytes: &[u8]) {
    let _ = codec::decode::<Addressed<AppendEntriesRequest<TypeConfig>>>(bytes);
    let _ = codec::decode::<Addressed<VoteRequest<NodeId>>>(bytes);
    let _ = codec::decode::<Addressed<InstallSnapshotRequest<TypeConfig>>>(bytes);
    let _ = codec::decode::<Probe>(bytes);
    let _ = codec::decode::<Forwarded>(bytes);
    let _ = codec::decode::<ForwardReply>(bytes);
    let _ = codec::decode::<Vec<ForwardReply>>(bytes);
    let _ = codec::decode::<ReadIndexReply>(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;
    use bytes::Bytes;
    use openraft::{Entry, EntryPayload, LogId, Vote};

    /// The largest AppendEntries a leader sends of small writes: a payload's most entries,
    /// each a batch of proposals ([`super::super::write::PROPOSALS`]), is charged well within
    /// the budget of a node whose values are small (its slack alone).
    #[test]
    fn the_largest_append_entries_of_small_writes_decodes_within_a_small_budget() {
        let request = |seq| Request {
            session: (1, 42),
            seq,
            done_below: seq,
            command: Command::Mutate(Mutation::Set {
                key: Bytes::from(format!("key-{seq}")),
                value: Bytes::from_static(b"v"),
                options: Default::default(),
            }),
        };
        let per_entry = super::super::write::PROPOSALS.max_items as u64;
        let most = super::super::node::MAX_PAYLOAD_ENTRIES;
        let entries = (0..most)
            .map(|i| Entry::<TypeConfig> {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Normal((0..per_entry).map(|seq| request(i * per_entry + seq)).collect()),
            })
            .collect();
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        };
        let bytes = codec::encode(&Addressed { to: 7, rpc: append }).unwrap();
        let taken = std::cell::Cell::new(0u64);
        let room = |bytes| {
            taken.set(taken.get() + bytes);
            true
        };
        let decoded: Addressed<AppendEntriesRequest<TypeConfig>> = codec::decode_within(&bytes, &room).unwrap();
        assert_eq!(decoded.rpc.entries.len() as u64, most);
        eprintln!(
            "{} bytes on the wire, {} charged decoded (Request {} bytes, Entry {} bytes)",
            bytes.len(),
            taken.get(),
            std::mem::size_of::<Request>(),
            std::mem::size_of::<Entry<TypeConfig>>()
        );
        let budget = crate::peer::MessageBudget::for_values(0).available();
        assert!(taken.get() <= budget / 2, "{} bytes of a budget of {budget}", taken.get());
    }
}
