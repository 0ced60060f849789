//! The `DynamoPeer` service: what other nodes ask of this one. A caller without the cluster
//! secret, or one this node is cut off from, is refused before any of these runs (the peer
//! plane's guard).

use std::sync::Arc;

use super::coordinator::Reply;
use super::node::Node;
use super::wire::{self, AaeRequest, ForwardReply, Forwarded, ReplicaBatch, ScanReply, ScanRequest};
use crate::error::Error;
use crate::peer::proto::{self, dynamo_peer_server::DynamoPeer};

pub(super) struct Service {
    pub(super) node: Arc<Node>,
}

type RpcResult = std::result::Result<tonic::Response<proto::DynamoPayload>, tonic::Status>;

#[tonic::async_trait]
impl DynamoPeer for Service {
    async fn replica(&self, request: tonic::Request<proto::DynamoPayload>) -> RpcResult {
        let batch: ReplicaBatch = wire::decode_request(&request)?;
        // The values are copied out of the payload: it need not be held beside them.
        drop(request);
        let replies = self.node.local_replica(batch, true).await;
        Ok(tonic::Response::new(wire::encode(self.node.id, &replies)?))
    }

    async fn forward(&self, request: tonic::Request<proto::DynamoPayload>) -> RpcResult {
        let Forwarded { key, context, value, w } = wire::decode_request(&request)?;
        // The values are copied out of the payload: it need not be held beside them.
        drop(request);
        // A stopping node coordinates no new write (its sender asks the next owner) and
        // finishes the ones it took before its background work stops.
        let _running = self.node.peer_commands.admit(format!("n{}", self.node.id))?;
        let ring = self.node.ring();
        let reply = if ring.version() == 0 || !ring.owners(&key).contains(&self.node.id) {
            ForwardReply::TryAgain(format!(
                "n{} does not hold this key (ring version {})",
                self.node.id,
                ring.version()
            ))
        } else if w == 0 || w > ring.replicas() {
            ForwardReply::TryAgain(format!("W {w} is not from 1 to {}", ring.replicas()))
        } else {
            match self.node.coordinate_put(key, context, value, w).await {
                Ok(Reply::Written { context, dot }) => ForwardReply::Written { context, dot },
                Ok(Reply::Read(_)) => ForwardReply::Uncertain("a write was answered as a read".into()),
                Err(e) => ForwardReply::from_error(e),
            }
        };
        Ok(tonic::Response::new(wire::encode(self.node.id, &reply)?))
    }

    async fn swim(&self, request: tonic::Request<proto::DynamoPayload>) -> RpcResult {
        let payload = request.into_inner();
        self.node.swim.receive(payload.body);
        Ok(tonic::Response::new(proto::DynamoPayload { from: self.node.id, body: Default::default() }))
    }

    async fn anti_entropy(&self, request: tonic::Request<proto::DynamoPayload>) -> RpcResult {
        let from = request.get_ref().from;
        let question: AaeRequest = wire::decode_request(&request)?;
        let reply = super::anti_entropy::answer(&self.node, from, question).await;
        Ok(tonic::Response::new(wire::encode(self.node.id, &reply)?))
    }

    async fn scan(&self, request: tonic::Request<proto::DynamoPayload>) -> RpcResult {
        let ScanRequest { cursor, count } = wire::decode_request(&request)?;
        let storage = self.node.storage.clone();
        let listing = tokio::task::spawn_blocking(move || storage.scan(cursor, count as usize))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e: Error| tonic::Status::unavailable(e.to_string()))?;
        let reply = ScanReply {
            keys: listing.keys.into_iter().map(|(_, k, live)| (k, live)).collect(),
            through: listing.through,
        };
        Ok(tonic::Response::new(wire::encode(self.node.id, &reply)?))
    }

    async fn keys(&self, _request: tonic::Request<proto::DynamoPayload>) -> RpcResult {
        let storage = self.node.storage.clone();
        let keys = tokio::task::spawn_blocking(move || storage.keys())
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e: Error| tonic::Status::unavailable(e.to_string()))?;
        let keys: Vec<bytes::Bytes> = keys.into_iter().map(|(k, _)| k).collect();
        Ok(tonic::Response::new(wire::encode(self.node.id, &keys)?))
    }
}
