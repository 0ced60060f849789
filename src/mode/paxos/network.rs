//! Talking to the other acceptors: one channel and one outbox per peer, and which peers to
//! bypass (down until they answer a ping).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::ballot::NodeId;
use super::storage::AcceptorReply;
use super::wire;
use crate::error::{Error, Result};
use crate::node::{lock, read_lock};
use crate::peer::{self, PeerClient, proto};

use super::node::{BYTES_PER_SECOND, DriverEvent, Node, Outgoing};

/// How long an acceptor batch may take on the wire, plus [`BYTES_PER_SECOND`] for what it
/// carries. Generous: a crashed peer refuses at once and a hung one is caught by the peer
/// plane's keepalive; this only bounds a peer that is alive but slow (promises may carry a
/// large value back).
pub(super) const PAXOS_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer that failed a call is bypassed at least; after that, until it answers a
/// ping (a hung peer keeps accepting connections, so time alone proves nothing).
pub(super) const DOWN_FOR: Duration = Duration::from_secs(1);
/// How often a peer marked down is pinged.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long a ping may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// How many times messages an acceptor deferred are sent again in one call's turn.
pub(super) const DEFERRED_RESENDS: u32 = 50;
/// The pause before sending again messages an acceptor deferred whole.
pub(super) const DEFERRED_PAUSE: Duration = Duration::from_millis(20);

/// The time allowed for `bytes` to move, beyond a call's base timeout.
pub(super) fn transfer_time(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / BYTES_PER_SECOND as f64)
}

impl Node {
    /// A client for peer `id`, at its address in the current configuration.
    pub(super) fn client(&self, id: NodeId) -> Result<PeerClient<peer::PeerChannel>> {
        let addr = {
            let config = read_lock(&self.config);
            config.everyone().into_iter().find(|m| m.id == id).map(|m| m.peer_addr)
        };
        let addr = addr.ok_or_else(|| Error::TryAgain(format!("node {id} is not in the configuration")))?;
        self.client_at(id, &addr)
    }

    /// A client for peer `id` at `addr` (a node being added is not in the configuration yet).
    pub(super) fn client_at(&self, id: NodeId, addr: &str) -> Result<PeerClient<peer::PeerChannel>> {
        let channel = self.clients.channel(id, addr).map_err(Error::Config)?;
        Ok(PeerClient::new(channel).max_decoding_message_size(peer::MAX_MESSAGE))
    }

    pub(super) fn outbox(self: &Arc<Self>, to: NodeId) -> mpsc::UnboundedSender<Vec<Outgoing>> {
        let mut outboxes = lock(&self.outboxes);
        outboxes
            .entry(to)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                self.tasks.spawn(run_outbox(Arc::downgrade(self), to, rx));
                tx
            })
            .clone()
    }

    /// Sends acceptor messages to `to` and returns its replies (a lost call: an error).
    pub(super) async fn call_acceptor(
        &self,
        to: NodeId,
        batch: Vec<Outgoing>,
    ) -> Result<Vec<(Bytes, u64, AcceptorReply)>> {
        if to == self.id {
            let rounds: Vec<(Bytes, u64)> = batch.iter().map(|(k, r, _)| (k.clone(), *r)).collect();
            let replies = self.local_acceptor(batch.into_iter().map(|(k, _, m)| (k, m)).collect()).await?;
            return Ok(rounds.into_iter().zip(replies).map(|((k, r), reply)| (k, r, reply)).collect());
        }
        let mut client = self.client(to)?;
        let request = proto::PaxosBatch {
            from: self.id,
            to: read_lock(&self.config).incarnation_of(to),
            messages: batch.iter().map(|(k, r, m)| wire::message_to(k.clone(), *r, m)).collect(),
        };
        let carried: usize = request.messages.iter().map(prost::Message::encoded_len).sum();
        let response = tokio::time::timeout(PAXOS_RPC_TIMEOUT + transfer_time(carried), client.paxos(request))
            .await
            .map_err(|_| Error::Uncertain(format!("n{to} did not answer in time")))?
            .map_err(|s| Error::Uncertain(format!("n{to}: {}", s.message())))?;
        let mut replies = Vec::new();
        let ceiling = self.ballot_ceiling();
        for reply in response.into_inner().replies {
            match wire::reply_from(reply, ceiling) {
                Ok(reply) => replies.push(reply),
                // Peer input is input: a malformed reply counts as no answer from n{to}.
                Err(e) => tracing::warn!(peer = to, "dropping a malformed acceptor reply: {e}"),
            }
        }
        Ok(replies)
    }

    pub(super) fn is_down(&self, id: NodeId) -> bool {
        self.isolated_from(id) || lock(&self.down).contains_key(&id)
    }

    /// Bypasses peer `id` for at least [`DOWN_FOR`], then until it answers a ping.
    pub(super) fn mark_down(&self, id: NodeId) {
        let probing = {
            let mut down = lock(&self.down);
            down.insert(id, Instant::now() + DOWN_FOR).is_some()
        };
        if probing {
            return;
        }
        // Its keys' commands now run elsewhere (see `forward`): cached promises may go stale.
        let _ = self.driver.send(DriverEvent::RoutingChanged);
        let Ok(client) = self.client(id) else { return };
        let (down, from, driver) = (self.down.clone(), self.id, self.driver.clone());
        self.tasks.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                // A peer this node is cut off from never answers: its channel refuses to send.
                let mut client = client.clone();
                let ping = tokio::time::timeout(PROBE_TIMEOUT, client.ping(proto::PingRequest { from }));
                let answered = matches!(ping.await, Ok(Ok(_)));
                let mut down = lock(&down);
                match down.get(&id) {
                    None => return,
                    Some(until) if answered && Instant::now() >= *until => {
                        down.remove(&id);
                        let _ = driver.send(DriverEvent::RoutingChanged);
                        tracing::debug!(peer = id, "peer answers again");
                        return;
                    }
                    Some(_) => {}
                }
            }
        });
    }
}

pub(super) async fn run_outbox(
    node: std::sync::Weak<Node>,
    to: NodeId,
    mut rx: mpsc::UnboundedReceiver<Vec<Outgoing>>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let Some(node) = node.upgrade() else { return };
        // The receiver's message budget holds one large value with a few megabytes beside it,
        // not many large values at once.
        for batch in peer::split_batch(batch, outgoing_bytes) {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let node = node.clone();
            node.tasks.clone().spawn(async move {
                let _permit = permit;
                node.call_acceptor_batch(to, batch).await;
            });
        }
    }
}

/// About the bytes `message` takes on the wire.
fn outgoing_bytes((key, _, message): &Outgoing) -> usize {
    let value = match message {
        super::storage::AcceptorMessage::Paxos(super::acceptor::Request::Accept { value: Some(value), .. }) => {
            value.len()
        }
        _ => 0,
    };
    key.len() + value + 32
}

impl Node {
    /// Sends one batch to acceptor `to` and hands its replies to the driver. Messages the
    /// acceptor deferred (their replies would have carried more than one call may) are sent
    /// again, in calls of their own, until answered or [`DEFERRED_RESENDS`] calls went by.
    async fn call_acceptor_batch(&self, to: NodeId, mut batch: Vec<Outgoing>) {
        let mut stalled = 0u32;
        for _ in 0..=DEFERRED_RESENDS {
            if stalled > 0 {
                // A call deferred whole found the receiver's budget full: let it drain.
                tokio::time::sleep(DEFERRED_PAUSE * stalled.min(10)).await;
            }
            let sent = batch.clone();
            let replies = match self.call_acceptor(to, batch).await {
                Ok(replies) => replies,
                Err(e) => {
                    tracing::debug!(peer = to, "acceptor call failed: {e}");
                    return;
                }
            };
            let mut paxos = Vec::new();
            let mut deferred = std::collections::HashSet::new();
            for (key, round, reply) in replies {
                match reply {
                    AcceptorReply::Paxos(r) => paxos.push((key, round, r)),
                    AcceptorReply::Removed(true) => {
                        self.stats.collected.fetch_add(1, Ordering::Relaxed);
                    }
                    AcceptorReply::Removed(false) => {}
                    AcceptorReply::Deferred => {
                        deferred.insert((key, round));
                    }
                }
            }
            let progressed = !paxos.is_empty();
            if progressed {
                let _ = self.driver.send(DriverEvent::Replies { from: to, replies: paxos });
            }
            batch = sent.into_iter().filter(|(k, r, _)| deferred.contains(&(k.clone(), *r))).collect();
            if batch.is_empty() {
                return;
            }
            stalled = if progressed { 0 } else { stalled + 1 };
        }
        tracing::debug!(to, left = batch.len(), "acceptor kept deferring messages; the rounds will retry");
    }
}
