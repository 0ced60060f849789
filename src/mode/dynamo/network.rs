//! This node's calls to its peers: replica batches, forwarded writes, SWIM packets and key
//! listings, each with a deadline; what a failed call means comes from [`peer::CallError`].

use std::time::Duration;

use bytes::Bytes;

use super::coordinator::{OpId, Request, Response};
use super::node::Node;
use super::wire::{self, AaeReply, AaeRequest, ForwardReply, Forwarded, ScanReply, ScanRequest};
use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::peer::proto::dynamo_peer_client::DynamoPeerClient;
use crate::peer::{self, CallError};
use crate::store::{Listing, scan_hash};

/// How long a replica batch may take, plus the time its bytes need at [`BYTES_PER_SECOND`]
/// (a crashed peer refuses at once; a hung one is caught by the peer plane's keepalive).
const REPLICA_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a forwarded write may take at its owner (which waits up to 2 s for W).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a SWIM packet may take to deliver (the detector has its own timeouts).
const SWIM_TIMEOUT: Duration = Duration::from_millis(500);
/// The rate a value is assumed to move at, for the time allowed to calls that carry one.
const BYTES_PER_SECOND: u64 = 4 << 20;

fn transfer_time(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / BYTES_PER_SECOND as f64)
}

impl Node {
    pub(super) fn client(&self, id: NodeId) -> Result<DynamoPeerClient<peer::PeerChannel>> {
        let addr = self.addr_of(id).ok_or_else(|| Error::TryAgain(format!("n{id} is not a member")))?;
        let channel = self.clients.channel(id, &addr).map_err(Error::Config)?;
        Ok(DynamoPeerClient::new(channel)
            .max_decoding_message_size(peer::MAX_MESSAGE)
            .max_encoding_message_size(peer::MAX_MESSAGE))
    }

    /// Sends a replica batch to `to`; a failed call answers every request `Unreachable`.
    pub(super) async fn call_replica(&self, to: NodeId, batch: Vec<(OpId, Request)>) -> Vec<(OpId, Response)> {
        let ops: Vec<OpId> = batch.iter().map(|(op, _)| *op).collect();
        let failed = |why: String| ops.iter().map(|op| (*op, Response::Unreachable(why.clone()))).collect();
        let result = async {
            let mut client = self.client(to).map_err(|e| e.to_string())?;
            let payload = wire::encode(self.id, &batch).map_err(|s| s.message().to_string())?;
            let deadline = REPLICA_TIMEOUT + transfer_time(payload.body.len());
            let reply = match tokio::time::timeout(deadline, client.replica(payload)).await {
                Ok(Ok(reply)) => reply.into_inner(),
                Ok(Err(status)) => return Err(CallError::from_status(&status).to_string()),
                Err(_) => return Err(format!("n{to} did not answer in time")),
            };
            let replies: wire::ReplicaReplies = wire::decode(&reply).map_err(|s| s.message().to_string())?;
            Ok::<_, String>(replies)
        };
        match result.await {
            // Peer input is input: only answers to requests this batch carried count.
            Ok(replies) => replies.into_iter().filter(|(op, _)| ops.contains(op)).collect(),
            Err(why) => {
                tracing::trace!(peer = to, "replica call failed: {why}");
                failed(why)
            }
        }
    }

    /// Asks owner `to` to coordinate a write.
    pub(super) async fn forward(
        &self,
        to: NodeId,
        request: &Forwarded,
    ) -> std::result::Result<ForwardReply, CallError> {
        let mut client = self.client(to).map_err(|e| CallError::NotSent(e.to_string()))?;
        let payload = wire::encode(self.id, request).map_err(|s| CallError::NotSent(s.message().to_string()))?;
        // The owner's coordinator waits for its replicas longer for a large value too.
        let deadline = FORWARD_TIMEOUT + transfer_time(payload.body.len()) * 2;
        match tokio::time::timeout(deadline, client.forward(payload)).await {
            Ok(Ok(reply)) => {
                wire::decode(&reply.into_inner()).map_err(|s| CallError::MaybeSent(s.message().to_string()))
            }
            Ok(Err(status)) => Err(CallError::from_status(&status)),
            Err(_) => Err(CallError::timed_out(&format!("n{to}"))),
        }
    }

    /// Sends one SWIM packet to `to`, without waiting for it.
    /// Sends this node's SWIM leave packets and waits until each is delivered or failed.
    pub(super) async fn send_leave(&self, packets: Vec<(NodeId, Bytes)>) -> usize {
        let sends = packets.into_iter().map(|(to, packet)| async move {
            let Ok(mut client) = self.client(to) else { return false };
            let payload = crate::peer::proto::DynamoPayload { from: self.id, body: packet };
            matches!(tokio::time::timeout(SWIM_TIMEOUT, client.swim(payload)).await, Ok(Ok(_)))
        });
        futures_util::future::join_all(sends).await.into_iter().filter(|told| *told).count()
    }

    pub(super) fn send_swim(&self, to: NodeId, packet: Bytes) {
        let Ok(mut client) = self.client(to) else { return };
        let payload = crate::peer::proto::DynamoPayload { from: self.id, body: packet };
        self.tasks.spawn(async move {
            let _ = tokio::time::timeout(SWIM_TIMEOUT, client.swim(payload)).await;
        });
    }

    /// Asks co-owner `to` an anti-entropy question; the answer, and the bytes both ways.
    pub(super) async fn call_aae(&self, to: NodeId, question: &AaeRequest) -> Result<(AaeReply, u64)> {
        let mut client = self.client(to)?;
        let payload = wire::encode(self.id, question).map_err(|s| Error::TryAgain(s.message().to_string()))?;
        let sent = payload.body.len() as u64;
        match tokio::time::timeout(REPLICA_TIMEOUT * 5, client.anti_entropy(payload)).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                let got = reply.body.len() as u64;
                let answer: AaeReply = wire::decode(&reply).map_err(|s| Error::TryAgain(s.message().to_string()))?;
                if let AaeReply::Refused(why) = answer {
                    return Err(Error::TryAgain(format!("n{to} refused: {why}")));
                }
                Ok((answer, sent + got))
            }
            Ok(Err(status)) => Err(Error::TryAgain(format!("n{to}: {}", CallError::from_status(&status)))),
            Err(_) => Err(Error::TryAgain(format!("n{to} did not answer anti-entropy in time"))),
        }
    }

    /// One page of peer `to`'s keys in scan order from `cursor`.
    pub(super) async fn scan_of(&self, to: NodeId, cursor: u64, count: usize) -> Result<Listing> {
        let mut client = self.client(to)?;
        let request = ScanRequest { cursor, count: u32::try_from(count).unwrap_or(u32::MAX) };
        let payload = wire::encode(self.id, &request).map_err(|s| Error::TryAgain(s.message().to_string()))?;
        match tokio::time::timeout(REPLICA_TIMEOUT * 5, client.scan(payload)).await {
            Ok(Ok(reply)) => {
                let ScanReply { keys, through } =
                    wire::decode(&reply.into_inner()).map_err(|s| Error::TryAgain(s.message().to_string()))?;
                // The peer's hashes are recomputed, not taken (merge drops what does not fit).
                let keys = keys.into_iter().map(|(k, live)| (scan_hash(&k), k, live)).collect();
                Ok(Listing { keys, through })
            }
            Ok(Err(status)) => Err(Error::TryAgain(format!("n{to}: {}", CallError::from_status(&status)))),
            Err(_) => Err(Error::TryAgain(format!("n{to} did not list its keys in time"))),
        }
    }

    /// The keys peer `to` holds an object for.
    pub(super) async fn keys_of(&self, to: NodeId) -> Result<Vec<Bytes>> {
        let mut client = self.client(to)?;
        let payload = wire::encode(self.id, &()).map_err(|s| Error::TryAgain(s.message().to_string()))?;
        match tokio::time::timeout(REPLICA_TIMEOUT * 5, client.keys(payload)).await {
            Ok(Ok(reply)) => wire::decode(&reply.into_inner()).map_err(|s| Error::TryAgain(s.message().to_string())),
            Ok(Err(status)) => Err(Error::TryAgain(format!("n{to}: {}", CallError::from_status(&status)))),
            Err(_) => Err(Error::TryAgain(format!("n{to} did not list its keys in time"))),
        }
    }
}
