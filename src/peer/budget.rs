//! The memory peer messages may take on a node: one budget of bytes for every call on every
//! connection of the peer server, charged with a message's declared length before a byte of
//! its body is read.
//!
//! A gRPC message is framed by a 5-byte prefix carrying its length, and the decoder reserves
//! that length at once and buffers the message whole (a value travels in one message). So
//! without a budget a peer holding the cluster secret could make a node hold whatever it
//! declares, on as many calls at once as it opens. With it:
//!
//! * a message declaring more than the whole budget is refused (`RESOURCE_EXHAUSTED`) as soon
//!   as its prefix is read;
//! * a message that fits waits, unread, until the budget has room for all of it — it is
//!   charged whole or not at all, so calls waiting for room hold nothing and cannot starve
//!   each other — and HTTP/2 flow control then stops its sender at the connection's window;
//! * the charge is held until the call's handler has answered (the message lives that long).
//!
//! The budget is twice the longest value a client may write (`--proto-max-bulk-len`) plus
//! [`SLACK`]: the largest message a node sends carries one such value and a bounded batch of
//! small messages (paxos and dynamo split their batches at [`BATCH_BYTES`]; raft sends values
//! in chunks), so two of the largest calls fit at once.
//!
//! Replies count too: a small request can ask for a large reply (a batch of prepares, each
//! promise carrying the key's value). A handler whose reply carries values takes their bytes
//! from the same budget, through the call's [`ReplyBudget`], before it builds the reply, and
//! the charge is held until the reply has been sent (read by the caller, or the call ended). A
//! reply the budget has no room for is not built: the handler answers what fits and asks the
//! caller to send the rest again.
//!
//! [`MAX_STREAMS`] bounds the calls one connection carries at once; a peer's client queues the
//! rest.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::node::LogThrottle;

/// The calls one peer connection may carry at once.
pub const MAX_STREAMS: u32 = 64;

/// What the budget holds beyond twice the longest value: room for the batches of small
/// messages that travel beside it.
pub const SLACK: u64 = 32 << 20;

/// The bytes of small messages a paxos or dynamo batch to one peer gathers before it is sent
/// (one large value may still ride on it).
pub const BATCH_BYTES: usize = 8 << 20;

/// Splits `items` (in order) into batches of at most [`BATCH_BYTES`] by `bytes`, except
/// that an item larger than that travels alone: the largest message a batch makes is one
/// value or [`BATCH_BYTES`], whichever is larger.
pub fn split_batch<T>(items: Vec<T>, bytes: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut filled = 0usize;
    for item in items {
        let size = bytes(&item);
        match batches.last_mut() {
            Some(batch) if filled.saturating_add(size) <= BATCH_BYTES => {
                batch.push(item);
                filled += size;
            }
            _ => {
                batches.push(vec![item]);
                filled = size;
            }
        }
    }
    batches
}

/// The budget is counted in units of this many bytes, so that any budget a `u64` can name
/// fits the semaphore's `u32` acquisitions.
const UNIT: u64 = 1024;

/// How often a refused or waiting message is logged, at most.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Room in the budget being waited for.
type Granting = BoxFuture<Result<OwnedSemaphorePermit, AcquireError>>;

/// The bytes every call on a node's peer server may hold together.
#[derive(Clone)]
pub struct MessageBudget {
    room: Arc<Semaphore>,
    units: u64,
    log: Arc<LogThrottle>,
}

impl std::fmt::Debug for MessageBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageBudget({} bytes, {} free)", self.units * UNIT, self.room.available_permits() as u64 * UNIT)
    }
}

impl MessageBudget {
    /// The budget for a node whose clients may write values of `max_value` bytes.
    pub fn for_values(max_value: u64) -> Self {
        Self::new(max_value.saturating_mul(2).saturating_add(SLACK))
    }

    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, (Semaphore::MAX_PERMITS as u64).min(u32::MAX as u64));
        Self { room: Arc::new(Semaphore::new(units as usize)), units, log: Arc::new(LogThrottle::new(LOG_EVERY)) }
    }

    /// The bytes free now.
    pub fn available(&self) -> u64 {
        self.room.available_permits() as u64 * UNIT
    }
}

impl<S> tower_layer::Layer<S> for MessageBudget {
    type Service = Budgeted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budgeted { inner, budget: self.clone() }
    }
}

/// [`MessageBudget`]'s service: every request body charged, the charge held until the handler
/// has answered.
#[derive(Clone)]
pub struct Budgeted<S> {
    inner: S,
    budget: MessageBudget,
}

impl<S> tower_service::Service<http::Request<tonic::body::Body>> for Budgeted<S>
where
    S: tower_service::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let charge = Arc::new(Charge::default());
        let reply = ReplyBudget { budget: self.budget.clone(), held: Arc::new(Charge::default()) };
        let held = reply.held.clone();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(reply);
        let body = ChargedBody {
            inner: body,
            budget: self.budget.clone(),
            charge: charge.clone(),
            framing: Framing::default(),
            waiting: None,
        };
        let answered = self.inner.call(http::Request::from_parts(parts, tonic::body::Body::new(body)));
        Box::pin(async move {
            let response = answered.await;
            drop(charge);
            // What the reply took is held until its body has been sent (or the call dropped).
            response.map(|r| r.map(|body| tonic::body::Body::new(HeldUntilSent { inner: body, _held: held })))
        })
    }
}

/// The budget as a handler sees it, for the bytes of its reply (found in the request's
/// extensions; absent where no budget layer runs, e.g. in-process tests).
#[derive(Clone)]
pub struct ReplyBudget {
    budget: MessageBudget,
    held: Arc<Charge>,
}

impl ReplyBudget {
    /// The budget of the call `request` belongs to.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Self> {
        request.extensions().get::<Self>().cloned()
    }

    /// Takes `bytes` for the reply now, or nothing (there is no room now): never waits, so a
    /// handler holding other charges cannot wait on them in a circle. Held until the reply
    /// has been sent.
    pub fn try_take(&self, bytes: u64) -> bool {
        let units = bytes.div_ceil(UNIT);
        if units == 0 {
            return true;
        }
        let Ok(units) = u32::try_from(units) else { return false };
        match self.budget.room.clone().try_acquire_many_owned(units) {
            Ok(permit) => {
                self.held.add(permit);
                true
            }
            Err(_) => false,
        }
    }
}

/// A response body holding its reply's charge until it has been sent (dropped).
struct HeldUntilSent {
    inner: tonic::body::Body,
    _held: Arc<Charge>,
}

impl Body for HeldUntilSent {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What one call holds of the budget; given back when the last holder (its body, its
/// handler's future) drops it.
#[derive(Default)]
struct Charge(Mutex<Option<OwnedSemaphorePermit>>);

impl Charge {
    fn add(&self, permit: OwnedSemaphorePermit) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
    }
}

/// Where a body stands in gRPC's framing: within a 5-byte prefix, or within a message.
#[derive(Default)]
struct Framing {
    prefix: [u8; 5],
    prefix_read: usize,
    body_left: u64,
}

impl Framing {
    /// Reads `data`, returning the bytes declared by the prefixes it completes.
    fn declared_in(&mut self, mut data: &[u8]) -> u64 {
        let mut declared = 0u64;
        while !data.is_empty() {
            if self.body_left > 0 {
                let skip = self.body_left.min(data.len() as u64);
                self.body_left -= skip;
                data = &data[skip as usize..];
                continue;
            }
            let take = (5 - self.prefix_read).min(data.len());
            self.prefix[self.prefix_read..self.prefix_read + take].copy_from_slice(&data[..take]);
            self.prefix_read += take;
            data = &data[take..];
            if self.prefix_read == 5 {
                self.prefix_read = 0;
                let length = u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]);
                self.body_left = u64::from(length);
                declared += 5 + u64::from(length);
            }
        }
        declared
    }
}

/// A request body that passes a frame on only once the budget has room for the messages
/// whose prefixes it completes.
struct ChargedBody {
    inner: tonic::body::Body,
    budget: MessageBudget,
    charge: Arc<Charge>,
    framing: Framing,
    /// A frame held back until its charge is granted.
    waiting: Option<(Frame<Bytes>, Granting)>,
}

impl Body for ChargedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if let Some((_, acquiring)) = &mut this.waiting {
            let granted = ready!(acquiring.as_mut().poll(cx));
            let (frame, _) = this.waiting.take().expect("waiting");
            return match granted {
                Ok(permit) => {
                    this.charge.add(permit);
                    Poll::Ready(Some(Ok(frame)))
                }
                Err(_) => Poll::Ready(Some(Err(tonic::Status::unavailable("the peer server is stopping")))),
            };
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let declared = frame.data_ref().map_or(0, |data| this.framing.declared_in(data));
        if declared == 0 {
            return Poll::Ready(Some(Ok(frame)));
        }
        let units = declared.div_ceil(UNIT);
        if units > this.budget.units {
            if let Some(held_back) = this.budget.log.allow() {
                tracing::warn!(
                    declared,
                    held_back,
                    "refused a peer message larger than the node's peer message budget"
                );
            }
            return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(format!(
                "a message of {declared} bytes is more than this node's peer message budget ({} bytes)",
                this.budget.units * UNIT
            )))));
        }
        // At most the budget, which fits a u32 of units.
        let units = units as u32;
        if let Ok(permit) = this.budget.room.clone().try_acquire_many_owned(units) {
            this.charge.add(permit);
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(held_back) = this.budget.log.allow() {
            tracing::debug!(declared, held_back, "a peer message waits for room in the peer message budget");
        }
        let room = this.budget.room.clone();
        this.waiting = Some((frame, Box::pin(async move { room.acquire_many_owned(units).await })));
        self.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(length: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes
    }

    #[test]
    fn a_prefix_is_read_across_frames_and_bodies_are_skipped() {
        let mut framing = Framing::default();
        let mut stream = prefix(3);
        stream.extend_from_slice(b"abc");
        stream.extend(prefix(0));
        stream.extend(prefix(10));
        // Split everywhere: the declared total does not depend on where frames end.
        for split in 0..stream.len() {
            let mut framing_split = Framing::default();
            let total = framing_split.declared_in(&stream[..split]) + framing_split.declared_in(&stream[split..]);
            assert_eq!(total, 8 + 5 + 15, "split at {split}");
        }
        assert_eq!(framing.declared_in(&stream), 28);
        assert_eq!(framing.body_left, 10);
    }

    #[test]
    fn a_batch_is_split_by_bytes_and_a_large_item_travels_alone() {
        let sizes = vec![1, BATCH_BYTES - 1, 1, 3 * BATCH_BYTES, 2, 2];
        let batches = split_batch(sizes, |s| *s);
        assert_eq!(batches, vec![vec![1, BATCH_BYTES - 1], vec![1], vec![3 * BATCH_BYTES], vec![2, 2]]);
        assert!(split_batch(Vec::<usize>::new(), |s| *s).is_empty());
    }

    #[test]
    fn the_budget_holds_two_of_the_longest_values() {
        let budget = MessageBudget::for_values(8 << 20);
        assert_eq!(budget.available(), (16 << 20) + SLACK);
        assert_eq!(MessageBudget::new(0).available(), UNIT);
    }
}
