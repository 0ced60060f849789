//! What dynamo nodes say to each other, inside the `DynamoPeer` service's payloads
//! (postcard, see [`crate::node::codec`]). Input from a peer is checked where it is used:
//! a merged object is validated before it is stored, a write is never taken from a peer.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::coordinator::{OpId, Request, Response};
use super::dvv::{Dot, VersionVector};
use super::ring::{Partition, Ring};
use crate::error::Error;
use crate::node::{NodeId, codec};
use crate::peer::proto;

/// Replica requests from a coordinator, and their answers, in order.
pub type ReplicaBatch = Vec<(OpId, Request)>;
pub type ReplicaReplies = Vec<(OpId, Response)>;

/// SCAN: a page of a replica's keys in scan order from `cursor` (see [`crate::store::scan`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanRequest {
    pub cursor: u64,
    pub count: u32,
}

/// A replica's page: each key with whether it holds a live sibling, and the hash up to which
/// the page lists everything the replica holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanReply {
    pub keys: Vec<(Bytes, bool)>,
    pub through: u64,
}

/// A client's write, for an owner of the key to coordinate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    pub key: Bytes,
    /// `None`: the owner's own current context (a plain SET or DEL).
    pub context: Option<VersionVector>,
    pub value: Option<Bytes>,
    pub w: usize,
}

/// The owner's answer to a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    Written {
        context: VersionVector,
        dot: Dot,
    },
    /// Not done: certainly not (`TryAgain`), or maybe (`Uncertain`).
    TryAgain(String),
    Uncertain(String),
    /// Certainly not done, and no other owner should be asked: the key has too many siblings
    /// (`--max-siblings`); the message says how to resolve them.
    Conflict(String),
}

impl ForwardReply {
    pub fn from_error(e: Error) -> Self {
        match e {
            Error::Uncertain(m) => ForwardReply::Uncertain(m),
            Error::Prefixed { prefix: "CONFLICT", message } => ForwardReply::Conflict(message),
            other => ForwardReply::TryAgain(other.to_string()),
        }
    }
}

/// Anti-entropy's questions to a co-owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AaeRequest {
    /// The roots of these partitions' trees.
    Roots(Vec<Partition>),
    /// One partition's branch hashes.
    Branches(Partition),
    /// The segment hashes under these branches.
    Segments(Partition, Vec<u16>),
    /// Every key in these segments, with its object's hash.
    Keys(Partition, Vec<u16>),
    /// The hash of each key's object (0: none).
    Hashes(Vec<Bytes>),
    /// Delete each key's object if it still hashes as given (a tombstone every owner holds).
    Reap(Vec<(Bytes, u64)>),
    /// The asker's ring (gossip, and a membership change's news): the answer is the
    /// answerer's ring after it adopted the asker's, if that was newer.
    Ring(Box<Ring>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AaeReply {
    Hashes(Vec<u64>),
    Segments(Vec<(u16, u64)>),
    Keys(Vec<(Bytes, u64)>),
    Reaped(u64),
    Ring(Box<Ring>),
    Refused(String),
}

pub fn encode<T: Serialize>(from: NodeId, value: &T) -> Result<proto::DynamoPayload, tonic::Status> {
    let body = codec::encode(value).map_err(tonic::Status::internal)?;
    Ok(proto::DynamoPayload { from, body: body.into() })
}

pub fn decode<T: DeserializeOwned>(payload: &proto::DynamoPayload) -> Result<T, tonic::Status> {
    codec::decode(&payload.body).map_err(tonic::Status::invalid_argument)
}

/// Decodes a peer's call, what it decodes to charged to the call's share of the node's peer
/// message budget (see [`codec::decode_within`]).
pub fn decode_request<T: DeserializeOwned>(request: &tonic::Request<proto::DynamoPayload>) -> Result<T, tonic::Status> {
    let budget = crate::peer::ReplyBudget::of(request);
    let room = |bytes| budget.as_ref().is_none_or(|budget| budget.try_take(bytes));
    codec::decode_within(&request.get_ref().body, &room).map_err(tonic::Status::from)
}
