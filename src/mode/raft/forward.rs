//! A follower's writes on their way to the leader, batched: the writes that arrive while
//! earlier forwards are out go to the leader in one peer call, as the leader batches its
//! proposals ([`super::write::PROPOSALS`]), and the leader queues them for its next log entry
//! together.
//!
//! Batching changes no write's identity: each keeps its session and sequence, and the leader
//! proposes and answers each on its own, so a write retried after a call that failed is
//! applied at most once, as when it went alone. What batching adds is a queue before the
//! call, and a write that gives up while still queued was certainly not sent: it is taken out
//! of the queue (it never leaves later) and says so, so that the node can answer `-TRYAGAIN`
//! rather than `-UNCERTAIN` ([`Forward::state`]). Each leader has its own queue, so the calls
//! to a leader that was deposed and hangs never hold back those to its successor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::node::{Pipeline, PipelineLimits, lock};

use super::network::{CallFailure, LeaderCall};
use super::node::{Inner, RPC_TIMEOUT, encode};
use super::service::{ForwardReply, Forwarded};
use super::types::{NodeId, Request};

/// How a follower batches the writes it forwards to one leader: each call up to about one
/// chunk's worth of bytes, as the leader's entries ([`super::write::PROPOSALS`]), and twice as
/// many calls out at once as the leader has entries in flight, so that while the leader's
/// entries commit, the writes for the next ones are already queued there (a large value's
/// chunks, one per call, stream as fast as when each went alone).
pub(super) const FORWARDS: PipelineLimits =
    PipelineLimits { in_flight: 2 * super::write::PROPOSALS.in_flight, ..super::write::PROPOSALS };

/// A write queued to be forwarded.
pub(super) struct Forward {
    request: Request,
    /// How long its call may take.
    timeout: Duration,
    /// [`QUEUED`] until a batch takes it ([`SENT`]) or its writer gives up on it first
    /// ([`ABANDONED`]); whichever happens first decides.
    state: Arc<AtomicU8>,
}

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const ABANDONED: u8 = 2;

/// The queues of writes to forward, one per leader.
pub(super) type ForwardQueues = std::sync::Mutex<std::collections::HashMap<NodeId, Pipeline<Forward, ForwardReply>>>;

impl Inner {
    /// Forwards `request` to `leader`, with the writes queued beside it, waiting at most
    /// `timeout` for the answer. A write whose call never started says it was not sent.
    pub(super) async fn forward(self: &Arc<Self>, leader: NodeId, request: Request, timeout: Duration) -> ForwardReply {
        if !self.options.forward_batch {
            return match tokio::time::timeout(timeout, self.forward_to(leader, vec![request], timeout)).await {
                Ok(mut replies) => replies
                    .pop()
                    .unwrap_or_else(|| ForwardReply::Failed { message: "no reply for the write".into(), maybe: true }),
                Err(_) => ForwardReply::Failed { message: format!("n{leader} did not answer in time"), maybe: true },
            };
        }
        let state = Arc::new(AtomicU8::new(QUEUED));
        let forward = Forward { request, timeout, state: state.clone() };
        let queue = self.forward_queue(leader);
        let answer = tokio::time::timeout(timeout, queue.call(forward)).await;
        match answer {
            Ok(Some(reply)) => reply,
            _ if state.compare_exchange(QUEUED, ABANDONED, Ordering::SeqCst, Ordering::SeqCst).is_ok() => {
                ForwardReply::Failed { message: format!("the write was not sent to n{leader} in time"), maybe: false }
            }
            Ok(None) => {
                ForwardReply::Failed { message: "the node stopped before the write settled".into(), maybe: true }
            }
            Err(_) => ForwardReply::Failed { message: format!("n{leader} did not answer in time"), maybe: true },
        }
    }

    /// The queue of writes to `leader`, started on first use.
    fn forward_queue(self: &Arc<Self>, leader: NodeId) -> Pipeline<Forward, ForwardReply> {
        let mut queues = lock(&self.forward_queues);
        if let Some(queue) = queues.get(&leader) {
            return queue.clone();
        }
        let (queue, serve) = crate::node::pipeline();
        let weak = Arc::downgrade(self);
        self.tasks.spawn(serve.serve(
            FORWARDS,
            |f: &Forward| f.request.weight(),
            move |batch| {
                let inner = weak.upgrade()?;
                Some(async move { inner.forward_batch(leader, batch).await })
            },
        ));
        queues.insert(leader, queue.clone());
        queue
    }

    /// Forwards the writes of `batch` still wanted to `leader` and answers each.
    async fn forward_batch(&self, leader: NodeId, batch: Vec<Forward>) -> Vec<ForwardReply> {
        let wanted: Vec<bool> = batch
            .iter()
            .map(|f| f.state.compare_exchange(QUEUED, SENT, Ordering::SeqCst, Ordering::SeqCst).is_ok())
            .collect();
        let timeout = batch.iter().map(|f| f.timeout).max().unwrap_or(RPC_TIMEOUT);
        let requests: Vec<Request> =
            batch.into_iter().zip(&wanted).filter(|(_, wanted)| **wanted).map(|(f, _)| f.request).collect();
        let mut replies =
            if requests.is_empty() { Vec::new() } else { self.forward_to(leader, requests, timeout).await }.into_iter();
        // An abandoned write's writer is gone; its place gets a reply nobody reads.
        let gone = || ForwardReply::Failed { message: "abandoned".into(), maybe: false };
        wanted.into_iter().map(|wanted| if wanted { replies.next().unwrap_or_else(gone) } else { gone() }).collect()
    }

    /// Forwards `requests` to `leader` in one call and answers each of them.
    ///
    /// A lone write goes as [`Forwarded::Write`], which a leader of an older version knows
    /// too; more go as [`Forwarded::Writes`]. A leader that cannot decode that (an older
    /// version, during a rolling upgrade) ran none of it, and the writes go again one by one.
    async fn forward_to(&self, leader: NodeId, requests: Vec<Request>, timeout: Duration) -> Vec<ForwardReply> {
        let count = requests.len();
        self.forward_calls.fetch_add(1, Ordering::Relaxed);
        self.forwarded_writes.fetch_add(count as u64, Ordering::Relaxed);
        let failed =
            |e: crate::peer::CallError| ForwardReply::Failed { maybe: !e.certainly_not_run(), message: e.to_string() };
        let unencodable =
            |status: tonic::Status| ForwardReply::Failed { message: status.message().to_string(), maybe: false };
        if count == 1 {
            let Some(request) = requests.into_iter().next() else { return Vec::new() };
            let reply = match encode(self.id, &Forwarded::Write(request)) {
                Ok(payload) => {
                    match self.call_leader::<ForwardReply>(leader, LeaderCall::Forward, payload, timeout).await {
                        Ok(reply) => reply,
                        Err(failure) => failed(failure.error),
                    }
                }
                Err(status) => unencodable(status),
            };
            return vec![reply];
        }
        let payload = match encode(self.id, &Forwarded::Writes(requests.clone())) {
            Ok(payload) => payload,
            Err(status) => return vec![unencodable(status); count],
        };
        match self.call_leader::<Vec<ForwardReply>>(leader, LeaderCall::Forward, payload, timeout).await {
            Ok(replies) if replies.len() == count => replies,
            Ok(_) => {
                let message = format!("n{leader} answered a batch of writes with the wrong number of replies");
                vec![ForwardReply::Failed { message, maybe: true }; count]
            }
            Err(CallFailure { undecodable: true, .. }) => {
                let one_by_one =
                    requests.into_iter().map(|request| Box::pin(self.forward_to(leader, vec![request], timeout)));
                futures_util::future::join_all(one_by_one).await.into_iter().flatten().collect()
            }
            Err(failure) => vec![failed(failure.error); count],
        }
    }
}
