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
//! A message is charged what it takes *decoded*, not only its wire bytes: a repeated field of
//! empty messages costs two bytes an element on the wire and a hundred decoded (an element's
//! size, and the slack of the vector holding it), so a 15 MB batch of them decoded to 834 MB
//! before any handler saw it. The charge counts the message's top-level fields as its body
//! passes (every repeated field of a request is top-level: see [`FIELD_COST`]), without
//! decoding anything: each costs [`FIELD_COST`] beside the message's bytes. Until the whole
//! body has arrived the count is not known, so a message is charged, when its prefix is read,
//! as if it held as many fields as it could (at most [`MAX_FIELDS`]), and what it did not
//! use is given back once its last byte has been counted; a message whose body arrives with
//! its prefix is charged its exact cost at once. A message of more than [`MAX_FIELDS`]
//! top-level fields is refused (`RESOURCE_EXHAUSTED`) as soon as the count passes it: senders
//! split their batches far below ([`BATCH_ITEMS`]). Raft and dynamo carry their messages as
//! postcard inside one bytes field; their handlers charge what those decode to through the
//! call's [`ReplyBudget`] (see `crate::node::codec::decode_within`).
//!
//! The budget is twice the longest value a client may write (`--proto-max-bulk-len`) plus
//! [`SLACK`]: the largest message a node sends carries one such value and a bounded batch of
//! small messages (paxos and dynamo split their batches at [`BATCH_BYTES`]; raft sends values
//! in chunks), so two of the largest calls fit at once, even while each is still charged for
//! every field it may hold ([`MAX_FIELDS`] × [`FIELD_COST`], under 8 MiB).
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

/// The messages a paxos or dynamo batch to one peer gathers at most, far below what a
/// receiver takes in one message ([`MAX_FIELDS`]).
pub const BATCH_ITEMS: usize = 1 << 13;

/// The top-level fields one peer message may have: a receiver refuses a message with more.
/// Four times a batch's items, so a sender with another batch size (an older or newer node)
/// still gets through.
pub const MAX_FIELDS: u64 = 4 * BATCH_ITEMS as u64;

/// What one top-level field of a request may take decoded, at most: the largest element of a
/// repeated field of any request ([`PaxosMessage`](super::proto::PaxosMessage), or a
/// [`Member`](super::proto::Member) of a `Config`), twice, for the vector holding it (it
/// grows by doubling). No request has a repeated field below its top level (a message field
/// sent twice is merged, not kept twice), so the top-level count bounds every element a
/// request decodes to; a test checks the sizes.
pub const FIELD_COST: u64 =
    2 * max_size(std::mem::size_of::<super::proto::PaxosMessage>(), std::mem::size_of::<super::proto::Member>()) as u64;

// What a message is charged for its fields while it arrives fits the budget's slack twice
// beside two batches (see the module doc).
const _: () = assert!(2 * (MAX_FIELDS * FIELD_COST + BATCH_BYTES as u64) <= SLACK);

const fn max_size(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Splits `items` (in order) into batches of at most [`BATCH_BYTES`] by `bytes` and at most
/// [`BATCH_ITEMS`] items, except that an item larger than that travels alone: the largest
/// message a batch makes is one value or [`BATCH_BYTES`], whichever is larger.
pub fn split_batch<T>(items: Vec<T>, bytes: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut filled = 0usize;
    for item in items {
        let size = bytes(&item);
        match batches.last_mut() {
            Some(batch) if filled.saturating_add(size) <= BATCH_BYTES && batch.len() < BATCH_ITEMS => {
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

    /// Gives back `units` of what is held (a message charged more than it took).
    fn give_back(&self, units: u64) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = held.as_mut() {
            let units = usize::try_from(units).unwrap_or(usize::MAX).min(held.num_permits());
            drop(held.split(units));
        }
    }
}

/// Where a body stands in gRPC's framing (within a 5-byte prefix, or within a message) and,
/// within a message, in protobuf's top-level fields, which it counts.
#[derive(Default)]
struct Framing {
    prefix: [u8; 5],
    prefix_read: usize,
    body_left: u64,
    /// The message being read: its wire bytes, its top-level fields so far, and the units it
    /// was charged when its prefix was read (0 when its body came with its prefix).
    wire: u64,
    fields: u64,
    charged: u64,
    /// Where the message stands in its current field.
    field: Field,
}

/// A position in a protobuf message's top-level fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    /// Reading a varint (`shift` bits of it so far): a field's tag, a varint field's value, or
    /// a length-delimited field's length.
    Varint { of: Varint, value: u64, shift: u32 },
    /// Skipping a field's bytes.
    Skip(u64),
    /// The body is malformed from here (the decoder refuses it at this point): not counted.
    Malformed,
}

/// What a varint being read is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Varint {
    Tag,
    Value,
    Length,
}

impl Default for Field {
    fn default() -> Self {
        Field::Varint { of: Varint::Tag, value: 0, shift: 0 }
    }
}

/// What a frame of a body asks of the budget.
#[derive(Debug, Default, PartialEq, Eq)]
struct Read {
    /// Units to take before the frame passes on.
    charge: u64,
    /// Units given back once it has (charged earlier for messages it completes).
    refund: u64,
}

/// A message with more than [`MAX_FIELDS`] top-level fields.
#[derive(Debug, PartialEq, Eq)]
struct TooManyFields;

impl Framing {
    /// What `wire` bytes of message with `fields` top-level fields take decoded, in units.
    fn units(wire: u64, fields: u64) -> u64 {
        wire.saturating_add(fields.saturating_mul(FIELD_COST)).div_ceil(UNIT)
    }

    /// Reads `data`: what the messages whose prefixes it completes are charged, and what the
    /// ones it completes give back.
    fn read(&mut self, mut data: &[u8]) -> Result<Read, TooManyFields> {
        let mut read = Read::default();
        while !data.is_empty() {
            if self.body_left == 0 {
                let take = (5 - self.prefix_read).min(data.len());
                self.prefix[self.prefix_read..self.prefix_read + take].copy_from_slice(&data[..take]);
                self.prefix_read += take;
                data = &data[take..];
                if self.prefix_read < 5 {
                    break;
                }
                self.prefix_read = 0;
                let length = u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]);
                self.body_left = u64::from(length);
                (self.wire, self.fields, self.field) = (5 + u64::from(length), 0, Field::default());
                if u64::from(length) <= data.len() as u64 {
                    // The body is here: its exact cost is charged once it is counted.
                    self.charged = 0;
                } else {
                    // Charged as if it held every field it could (each takes a byte at least).
                    self.charged = Self::units(self.wire, u64::from(length).min(MAX_FIELDS));
                    read.charge += self.charged;
                }
                if length > 0 {
                    continue;
                }
            } else {
                let take = self.body_left.min(data.len() as u64) as usize;
                self.count(&data[..take])?;
                self.body_left -= take as u64;
                data = &data[take..];
            }
            if self.body_left == 0 {
                let exact = Self::units(self.wire, self.fields);
                if self.charged == 0 {
                    read.charge += exact;
                } else {
                    read.refund += self.charged.saturating_sub(exact);
                }
            }
        }
        Ok(read)
    }

    /// Counts the top-level fields that start in `body` (bytes of the current message).
    fn count(&mut self, mut body: &[u8]) -> Result<(), TooManyFields> {
        while let Some((&byte, rest)) = body.split_first() {
            let (of, value, shift) = match &mut self.field {
                Field::Malformed => return Ok(()),
                Field::Skip(left) => {
                    let skip = (*left).min(body.len() as u64);
                    *left -= skip;
                    body = &body[skip as usize..];
                    if *left == 0 {
                        self.field = Field::default();
                    }
                    continue;
                }
                Field::Varint { of, value, shift } => (of, value, shift),
            };
            body = rest;
            if *of == Varint::Tag && *shift == 0 {
                self.fields += 1;
                if self.fields > MAX_FIELDS {
                    return Err(TooManyFields);
                }
            }
            if *shift < 64 {
                *value |= u64::from(byte & 0x7f) << *shift;
            }
            *shift += 7;
            if byte & 0x80 != 0 {
                if *shift >= 70 {
                    self.field = Field::Malformed;
                }
                continue;
            }
            let varint = |of| Field::Varint { of, value: 0, shift: 0 };
            self.field = match (*of, *value) {
                (Varint::Tag, tag) if tag >> 3 == 0 => Field::Malformed,
                (Varint::Tag, tag) => match tag & 7 {
                    0 => varint(Varint::Value),
                    1 => Field::Skip(8),
                    2 => varint(Varint::Length),
                    5 => Field::Skip(4),
                    // A group's start or end: a field of its own, nothing follows.
                    3 | 4 => Field::default(),
                    _ => Field::Malformed,
                },
                (Varint::Length, length) if length > 0 => Field::Skip(length),
                _ => Field::default(),
            };
        }
        Ok(())
    }
}

/// A request body that passes a frame on only once the budget has room for the messages
/// whose prefixes it completes.
struct ChargedBody {
    inner: tonic::body::Body,
    budget: MessageBudget,
    charge: Arc<Charge>,
    framing: Framing,
    /// A frame held back until its charge is granted, with the units to give back once it is.
    waiting: Option<(Frame<Bytes>, u64, Granting)>,
}

impl Body for ChargedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if let Some((_, _, acquiring)) = &mut this.waiting {
            let granted = ready!(acquiring.as_mut().poll(cx));
            let (frame, refund, _) = this.waiting.take().expect("waiting");
            return match granted {
                Ok(permit) => {
                    this.charge.add(permit);
                    this.charge.give_back(refund);
                    Poll::Ready(Some(Ok(frame)))
                }
                Err(_) => Poll::Ready(Some(Err(tonic::Status::unavailable("the peer server is stopping")))),
            };
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let read = match frame.data_ref().map(|data| this.framing.read(data)) {
            None => Read::default(),
            Some(Ok(read)) => read,
            Some(Err(TooManyFields)) => {
                if let Some(held_back) = this.budget.log.allow() {
                    tracing::warn!(held_back, "refused a peer message of more than {MAX_FIELDS} fields");
                }
                return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(format!(
                    "a message of more than {MAX_FIELDS} fields is more than this node takes in one message"
                )))));
            }
        };
        if read.charge == 0 {
            this.charge.give_back(read.refund);
            return Poll::Ready(Some(Ok(frame)));
        }
        let units = read.charge;
        if units > this.budget.units {
            let declared = units * UNIT;
            if let Some(held_back) = this.budget.log.allow() {
                tracing::warn!(
                    declared,
                    held_back,
                    "refused a peer message larger than the node's peer message budget"
                );
            }
            return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(format!(
                "a message costing {declared} bytes is more than this node's peer message budget ({} bytes)",
                this.budget.units * UNIT
            )))));
        }
        // At most the budget, which fits a u32 of units.
        let units = units as u32;
        if let Ok(permit) = this.budget.room.clone().try_acquire_many_owned(units) {
            this.charge.add(permit);
            this.charge.give_back(read.refund);
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(held_back) = this.budget.log.allow() {
            tracing::debug!(units, held_back, "a peer message waits for room in the peer message budget");
        }
        let room = this.budget.room.clone();
        this.waiting = Some((frame, read.refund, Box::pin(async move { room.acquire_many_owned(units).await })));
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

    /// `body` framed as one gRPC message.
    fn message(body: &[u8]) -> Vec<u8> {
        let mut bytes = prefix(body.len() as u32);
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn fields_are_counted_across_frames_and_each_message_is_charged_its_decoded_cost() {
        // A varint field; an empty message; ten empty elements; a 300-byte field with a
        // two-byte tag and a two-byte length; a fixed64, a fixed32 and a group's start and end.
        let mut long = vec![0x82, 0x01, 0xac, 0x02];
        long.extend([0u8; 300]);
        let mut stream = message(&[0x08, 0x01]);
        stream.extend(message(&[]));
        stream.extend(message(&b"\x12\x00".repeat(10)));
        stream.extend(message(&long));
        stream.extend(message(&[0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4, 0x1b, 0x1c]));
        let exact = Framing::units(7, 1)
            + Framing::units(5, 0)
            + Framing::units(25, 10)
            + Framing::units(309, 1)
            + Framing::units(21, 4);
        for split in 0..stream.len() {
            let mut framing = Framing::default();
            let first = framing.read(&stream[..split]).unwrap();
            let second = framing.read(&stream[split..]).unwrap();
            assert_eq!(first.charge + second.charge - first.refund - second.refund, exact, "split at {split}");
            assert_eq!(framing.body_left, 0);
        }
        // Whole, each message is charged its exact cost and nothing is given back.
        assert_eq!(Framing::default().read(&stream), Ok(Read { charge: exact, refund: 0 }));
    }

    #[test]
    fn a_message_is_charged_for_every_field_it_may_hold_until_it_has_arrived() {
        let body = b"\x12\x00".repeat(1000);
        let stream = message(&body);
        let mut framing = Framing::default();
        let upfront = framing.read(&stream[..100]).unwrap();
        assert_eq!(upfront, Read { charge: Framing::units(2005, 2000), refund: 0 });
        let rest = framing.read(&stream[100..]).unwrap();
        assert_eq!(rest, Read { charge: 0, refund: upfront.charge - Framing::units(2005, 1000) });
        // A large value declares far more fields than it may hold: it is charged at most
        // MAX_FIELDS of them while it arrives.
        let mut framing = Framing::default();
        let large = framing.read(&prefix(64 << 20)).unwrap();
        assert_eq!(large.charge, Framing::units(5 + (64 << 20), MAX_FIELDS));
    }

    #[test]
    fn a_message_of_more_fields_than_a_batch_may_hold_is_refused_as_they_arrive() {
        let most = message(&b"\x12\x00".repeat(MAX_FIELDS as usize));
        assert!(Framing::default().read(&most).is_ok());
        let more = message(&b"\x12\x00".repeat(MAX_FIELDS as usize + 1));
        let mut framing = Framing::default();
        let refused = more.chunks(16 << 10).map(|frame| framing.read(frame)).find(Result::is_err);
        assert_eq!(refused, Some(Err(TooManyFields)));
        // A malformed body stops the count where the decoder would refuse it.
        assert_eq!(
            Framing::default().read(&message(&[0x00, 0x12, 0x00])),
            Ok(Read { charge: Framing::units(8, 1), refund: 0 })
        );
        assert_eq!(
            Framing::default().read(&message(&[0xff; 12])),
            Ok(Read { charge: Framing::units(17, 1), refund: 0 })
        );
    }

    #[test]
    fn a_field_costs_what_the_largest_repeated_element_of_a_request_takes_decoded() {
        use super::super::proto;
        use prost::Message;
        assert!(FIELD_COST >= 2 * std::mem::size_of::<proto::PaxosMessage>() as u64);
        assert!(FIELD_COST >= 2 * std::mem::size_of::<proto::Member>() as u64);
        // What decoding a batch of empty messages really allocates is within the charge.
        for elements in [1, 1000, 100_000] {
            let body = b"\x12\x00".repeat(elements);
            let batch = proto::PaxosBatch::decode(&body[..]).unwrap();
            let taken = (batch.messages.capacity() * std::mem::size_of::<proto::PaxosMessage>()) as u64;
            let charged = Framing::units(5 + body.len() as u64, elements as u64) * UNIT;
            assert!(taken + body.len() as u64 <= charged, "{elements} elements took {taken} bytes");
        }
    }

    #[test]
    fn a_batch_is_split_by_bytes_and_a_large_item_travels_alone() {
        let sizes = vec![1, BATCH_BYTES - 1, 1, 3 * BATCH_BYTES, 2, 2];
        let batches = split_batch(sizes, |s| *s);
        assert_eq!(batches, vec![vec![1, BATCH_BYTES - 1], vec![1], vec![3 * BATCH_BYTES], vec![2, 2]]);
        assert!(split_batch(Vec::<usize>::new(), |s| *s).is_empty());
        let small = split_batch(vec![0; 2 * BATCH_ITEMS + 1], |s| *s);
        assert_eq!(small.iter().map(Vec::len).collect::<Vec<_>>(), vec![BATCH_ITEMS, BATCH_ITEMS, 1]);
    }

    #[test]
    fn the_budget_holds_two_of_the_longest_values() {
        let budget = MessageBudget::for_values(8 << 20);
        assert_eq!(budget.available(), (16 << 20) + SLACK);
        assert_eq!(MessageBudget::new(0).available(), UNIT);
    }
}
