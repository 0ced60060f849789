//! The peer plane's `Peer` service: what other nodes ask of this one. A caller this node is
//! cut off from is refused before any of these runs (the peer plane's partition layer).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::identity::Silenced;
use super::storage::{KeyFilter, ReplyRoom};
use super::wire;
use crate::peer::{self, proto};

use super::node::Node;

pub(super) struct PeerService {
    pub(super) node: Arc<Node>,
}

#[tonic::async_trait]
impl peer::Peer for PeerService {
    async fn paxos(
        &self,
        request: tonic::Request<proto::PaxosBatch>,
    ) -> std::result::Result<tonic::Response<proto::PaxosReplies>, tonic::Status> {
        // The promises' values come out of the node's message budget, at most
        // `BATCH_BYTES` beyond the first value per call; the rest is deferred.
        let budget = peer::ReplyBudget::of(&request);
        let room =
            ReplyRoom::new(peer::BATCH_BYTES as u64, move |bytes| budget.as_ref().is_none_or(|b| b.try_take(bytes)));
        let batch = request.into_inner();
        // A batch meant for another incarnation of this node: this directory is not the one
        // the cluster knows, so its promises are lost ([`super::identity`]).
        if batch.to != 0 && batch.to != self.node.incarnation {
            self.node.lose(batch.to);
        }
        self.refuse_unless_voting()?;
        let ceiling = self.node.ballot_ceiling();
        let mut rounds = Vec::with_capacity(batch.messages.len());
        let mut messages = Vec::with_capacity(batch.messages.len());
        let mut refused = None;
        for m in batch.messages {
            // A message above the ceiling (or malformed) is refused alone, unanswered, as if
            // lost: the rest of the batch is answered. A peer whose clock runs more than a
            // second ahead makes fresh prepares this node refuses, and its batches also
            // carry accepts on promises it holds from before; those go through.
            match wire::message_from(m, ceiling) {
                Ok((key, round, message)) => {
                    rounds.push((key.clone(), round));
                    messages.push((key, message));
                }
                Err(e) => refused = Some(e),
            }
        }
        if let Some(e) = refused {
            if messages.is_empty() {
                return Err(tonic::Status::invalid_argument(e.to_string()));
            }
            tracing::debug!(from = batch.from, "refused a paxos message of a batch: {e}");
        }
        let replies = self
            .node
            .local_acceptor_within(messages, Some(Arc::new(room)))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let replies = rounds.into_iter().zip(replies).map(|((k, r), reply)| wire::reply_to(k, r, reply)).collect();
        Ok(tonic::Response::new(proto::PaxosReplies { replies }))
    }

    async fn forward(
        &self,
        request: tonic::Request<proto::ForwardRequest>,
    ) -> std::result::Result<tonic::Response<proto::ForwardReply>, tonic::Status> {
        let request = request.into_inner();
        // A stopping node runs no new command (its sender runs it itself) and finishes the
        // ones it took before its proposer stops.
        let _running = self.node.peer_commands.admit(format!("n{}", self.node.id))?;
        self.node.stats.served_for_peers.fetch_add(1, Ordering::Relaxed);
        let result = match wire::forward_from(request) {
            Ok((key, command)) => {
                if let Some(home) = self.node.home(&key).filter(|h| *h != self.node.id && !self.node.is_down(*h)) {
                    // The sender bypassed the key's home and this node has not (yet): the home
                    // may have run the key since this node's last round, so a cached promise
                    // may be stale, and an accept on it would wait for the bypassed home.
                    tracing::trace!(home, "standing in for a bypassed home");
                    let _ = self.node.driver.send(super::node::DriverEvent::StandingIn { key: key.clone() });
                }
                self.node.propose(key, command).await
            }
            Err(e) => Err(e),
        };
        Ok(tonic::Response::new(wire::outcome_to(result)))
    }

    async fn list_keys(
        &self,
        request: tonic::Request<proto::ListKeysRequest>,
    ) -> std::result::Result<tonic::Response<proto::ListKeysReply>, tonic::Status> {
        // A listing counts toward a quorum too: an acceptor that lost its state lists nothing.
        self.refuse_unless_voting()?;
        let request = request.into_inner();
        let storage = self.node.storage.clone();
        let filter = if request.tombstones { KeyFilter::All } else { KeyFilter::Values };
        let keys = tokio::task::spawn_blocking(move || storage.keys(filter, None, usize::MAX, |_| true))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let config_version = self.node.config_version.load(Ordering::SeqCst);
        Ok(tonic::Response::new(proto::ListKeysReply { keys, config_version }))
    }

    async fn scan_keys(
        &self,
        request: tonic::Request<proto::ScanKeysRequest>,
    ) -> std::result::Result<tonic::Response<proto::ScanKeysReply>, tonic::Status> {
        self.refuse_unless_voting()?;
        let request = request.into_inner();
        let storage = self.node.storage.clone();
        let listing = tokio::task::spawn_blocking(move || storage.scan(request.cursor, request.count as usize))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let keys = listing.keys.into_iter().map(|(_, key, live)| proto::ScanKey { key, live }).collect();
        Ok(tonic::Response::new(proto::ScanKeysReply { keys, through: listing.through }))
    }

    async fn ping(
        &self,
        _request: tonic::Request<proto::PingRequest>,
    ) -> std::result::Result<tonic::Response<proto::Empty>, tonic::Status> {
        // A stopping node is not up again for a peer's probe: it says when it is back. The
        // refusal says why, so that a peer waiting for a command forwarded here knows this
        // node alive (it ends the commands it took), not hung (`forward`).
        if self.node.peer_commands.is_stopping() {
            return Err(peer::stopping(format!("n{}", self.node.id)));
        }
        Ok(tonic::Response::new(proto::Empty {}))
    }

    async fn presence(
        &self,
        request: tonic::Request<proto::PresenceNote>,
    ) -> std::result::Result<tonic::Response<proto::Empty>, tonic::Status> {
        let note = request.into_inner();
        let change = proto::PresenceChange::try_from(note.change)
            .map_err(|_| tonic::Status::invalid_argument(format!("unknown presence change {}", note.change)))?;
        if !self.node.config().everyone().iter().any(|m| m.id == note.from && m.id != self.node.id) {
            return Err(tonic::Status::invalid_argument(format!("n{} is no other member", note.from)));
        }
        self.node.heard(note.from, change).await;
        Ok(tonic::Response::new(proto::Empty {}))
    }

    async fn configure(
        &self,
        request: tonic::Request<proto::Config>,
    ) -> std::result::Result<tonic::Response<proto::ConfigReply>, tonic::Status> {
        let config = wire::config_from(request.into_inner());
        let installed = self.node.install(config).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let current = wire::config_to(&self.node.config());
        Ok(tonic::Response::new(proto::ConfigReply {
            installed,
            current: Some(current),
            incarnation: self.node.incarnation,
        }))
    }
}

impl PeerService {
    /// Refuses a call that counts toward a quorum unless this node's acceptor may vote.
    fn refuse_unless_voting(&self) -> std::result::Result<(), tonic::Status> {
        match self.node.silenced() {
            None => Ok(()),
            Some(why @ Silenced::Lost(_)) => Err(tonic::Status::failed_precondition(self.node.silenced_message(&why))),
            Some(why) => Err(tonic::Status::unavailable(self.node.silenced_message(&why))),
        }
    }
}
