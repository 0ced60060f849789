//! The coordinator: a protocol core that does no I/O. It turns a client's PUT or GET into
//! messages to the key's replicas, counts their answers against W or R, answers the client,
//! and repairs the replicas a read found stale. Messages out and answers in go through
//! [`Coordinator::take_output`] and [`Coordinator::step`]; time through [`Coordinator::tick`]
//! — so the same code runs in a node (a thin async driver) and in the seeded simulator.
//!
//! * PUT: only an owner of the key coordinates one (others forward it). The local replica
//!   applies it first (a fresh dot, fsync'd); the resulting object goes to every other live
//!   owner, and the client is answered after W replicas (the local one included) hold it.
//!   Fewer than W live owners: refused before anything is written (`TryAgain`). Written
//!   locally but fewer than W acknowledgements in time: `Uncertain` — the write exists and
//!   will spread. Owners that are down or do not answer get a durable hint.
//! * GET: any node coordinates one. Every live owner is asked; after R answers the client
//!   gets their join. Once every owner asked has answered (or the deadline passed), each one
//!   whose object differs from the join of all answers is sent the join (read repair).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::dvv::{Causality, Dot, Object, VersionVector};
use crate::error::{Error, Result};
use crate::node::NodeId;

/// A request's id, unique per coordinator; never [`REPAIR`].
pub type OpId = u64;

/// The refusal of a write that would leave its key with `siblings` siblings, more than `max`
/// (Riak's `max_siblings`): definite, and it says how to resolve them.
pub fn too_many_siblings(siblings: u64, max: u64) -> Error {
    Error::Prefixed {
        prefix: "CONFLICT",
        message: format!(
            "the write would leave the key with {siblings} siblings, more than --max-siblings ({max}); nothing was \
             written. Resolve them: VGET the key, then VSET the merged value with the context VGET returned (or SET \
             it, which replaces them all)"
        ),
    }
}

/// The id a read repair is sent under: its answer finds no request and is dropped.
pub const REPAIR: OpId = 0;

/// What a coordinator asks of a replica.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// Apply a client's write (only ever to the coordinator's own replica), under `context`
    /// or, when `None`, under the replica's own current context (a plain SET or DEL).
    Put { key: Bytes, context: Option<VersionVector>, value: Option<Bytes>, timestamp_ms: u64, hints: Vec<NodeId> },
    /// Join this object into yours.
    Merge { key: Bytes, object: Object },
    /// Sloppy quorum: join this object into yours and hold it for `owner`, which is down,
    /// until it can be handed over (a hint on this node).
    Handoff { key: Bytes, object: Object, owner: NodeId },
    /// Your object for the key.
    Get { key: Bytes },
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// The object after the write, and the write's dot.
    Put {
        object: Object,
        dot: Dot,
    },
    Merged,
    Got(Object),
    /// The replica could not do it (a storage error, a refused object).
    Failed(String),
    /// The local replica refused a PUT, nothing written: it would have left the key with
    /// `siblings` siblings, more than `max` (`--max-siblings`).
    TooManySiblings {
        siblings: u64,
        max: u64,
    },
    /// The call never reached the replica, or its answer was lost (the driver says which
    /// does not matter here: either way the replica did not answer).
    Unreachable(String),
}

/// What the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A PUT held by W replicas: the new context and the write's dot.
    Written { context: VersionVector, dot: Dot },
    /// A GET: the join of R replicas' objects.
    Read(Object),
}

/// What the coordinator wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        op: OpId,
        to: NodeId,
        request: Request,
    },
    Reply {
        op: OpId,
        result: Result<Reply>,
    },
    /// Record durably that `target` missed `key`.
    Hint {
        target: NodeId,
        key: Bytes,
    },
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct Options {
    /// How replies are joined (only [`Causality::Dvv`] is correct).
    pub causality: Causality,
    /// Ticks a request may wait for its replicas...
    pub timeout: u64,
    /// ...plus one tick for each this many bytes of the value it moves (0: no more): a
    /// 64 MB value is copied, sent and fsync'd on every replica, which no fixed deadline
    /// fits both for it and for the small values a dead replica should not hold up.
    pub bytes_per_tick: u64,
    /// Block a read's answer until the stale replicas among its R are repaired.
    pub sync_read_repair: bool,
    /// Off: a read repairs no replica (anti-entropy must converge them).
    pub read_repair: bool,
    /// Record hints for the owners a write missed.
    pub hinted_handoff: bool,
    /// Let live nodes beyond the preference list stand in for down owners and count toward
    /// W (breaks R + W > N: a read of the owners may miss a write the stand-ins hold).
    pub sloppy_quorum: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            causality: Causality::Dvv,
            timeout: 50,
            bytes_per_tick: 0,
            sync_read_repair: false,
            read_repair: true,
            hinted_handoff: true,
            sloppy_quorum: false,
        }
    }
}

/// Where a write goes: the key's preference list (this node among them), the nodes about to
/// hold it during a membership change, and the ring's other nodes in order (stand-ins under
/// a sloppy quorum).
#[derive(Debug, Clone, Copy, Default)]
pub struct Targets<'a> {
    pub owners: &'a [NodeId],
    pub pending: &'a [NodeId],
    pub fallbacks: &'a [NodeId],
}

/// Counters for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub puts: u64,
    pub gets: u64,
    pub read_repairs: u64,
    pub hints_recorded: u64,
    pub quorum_failures: u64,
    /// Reads that found more than one live sibling.
    pub sibling_reads: u64,
    /// Writes refused for leaving their key with more than `--max-siblings` siblings.
    pub sibling_limit_refusals: u64,
}

#[derive(Debug)]
enum Op {
    Put {
        key: Bytes,
        w: usize,
        /// The live owners besides this node, sent the object once it is written here.
        others: Vec<NodeId>,
        /// Nodes about to hold the key (a membership change): sent the object too, but not
        /// waited for and not counted toward W.
        pending: Vec<NodeId>,
        /// Sloppy quorum: stand-in → the down owner it holds the write for.
        stand_ins: BTreeMap<NodeId, NodeId>,
        /// The client's context (`None`: a plain SET or DEL, under the replica's own).
        context: Option<VersionVector>,
        /// The local replica's object and dot, once it applied the write.
        written: Option<(Object, Dot)>,
        acks: BTreeSet<NodeId>,
        /// Replicas sent a request that have not answered.
        waiting: BTreeSet<NodeId>,
        answered: bool,
    },
    Get {
        key: Bytes,
        r: usize,
        replies: BTreeMap<NodeId, Object>,
        /// Owners asked that have not answered.
        waiting: BTreeSet<NodeId>,
        answered: bool,
        /// Sync read repair: replicas sent a repair the held answer waits for.
        repairing: BTreeSet<NodeId>,
        held: Option<Object>,
        /// Read repairs sent (async), so a late answer is compared once.
        repaired: bool,
        /// Replicas asked a second time after their call failed (see `step_get`).
        asked_again: BTreeSet<NodeId>,
    },
}

/// One node's coordinator.
pub struct Coordinator {
    id: NodeId,
    options: Options,
    now: u64,
    ops: HashMap<OpId, (Op, u64)>,
    output: Vec<Output>,
    stats: Stats,
}

impl Coordinator {
    pub fn new(id: NodeId, options: Options) -> Self {
        Self { id, options, now: 0, ops: HashMap::new(), output: Vec::new(), stats: Stats::default() }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// What to send and whom to answer, since the last call.
    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.output)
    }

    fn reply(&mut self, op: OpId, result: Result<Reply>) {
        if result.is_err() {
            self.stats.quorum_failures += 1;
        }
        self.output.push(Output::Reply { op, result });
    }

    /// `target` missed a write to `key`: a hint, if hints are on.
    fn hint(&mut self, target: NodeId, key: &Bytes) {
        if self.options.hinted_handoff {
            self.stats.hints_recorded += 1;
            self.output.push(Output::Hint { target, key: key.clone() });
        }
    }

    fn send(&mut self, op: OpId, to: NodeId, request: Request) {
        self.output.push(Output::Send { op, to, request });
    }

    /// A client's write of `value` (`None`: a delete) to `key` under `context`, needing `w`
    /// replicas. `owners` is the key's preference list (this node among them), `fallbacks`
    /// the ring's other nodes in order (stand-ins under a sloppy quorum), `alive` the nodes
    /// believed up.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        op: OpId,
        key: Bytes,
        targets: Targets<'_>,
        alive: &[NodeId],
        context: Option<VersionVector>,
        value: Option<Bytes>,
        timestamp_ms: u64,
        w: usize,
    ) {
        self.stats.puts += 1;
        let Targets { owners, pending, fallbacks } = targets;
        if !owners.contains(&self.id) {
            return self.reply(op, Err(Error::TryAgain("this node does not hold the key (forward the write)".into())));
        }
        let up = |o: &NodeId| *o == self.id || alive.contains(o);
        let down: Vec<NodeId> = owners.iter().copied().filter(|o| !up(o)).collect();
        // Sloppy quorum: the next live nodes past the preference list stand in for the down owners.
        let stand_ins: BTreeMap<NodeId, NodeId> = if self.options.sloppy_quorum {
            fallbacks
                .iter()
                .copied()
                .filter(|f| alive.contains(f) && !owners.contains(f))
                .zip(down.iter().copied())
                .collect()
        } else {
            BTreeMap::new()
        };
        let live = owners.len() - down.len() + stand_ins.len();
        // While a membership change moves the key's partition, its pending replicas count
        // toward the write and are added to what it needs (W plus one per pending replica,
        // as Cassandra adds pending endpoints to a write's block-for): whichever replicas
        // acknowledge, W of the owners-to-be hold the write when the change completes, and W
        // of today's owners if it is called off.
        let pending: Vec<NodeId> = pending.iter().copied().filter(|p| *p != self.id && !owners.contains(p)).collect();
        let pending_up: Vec<NodeId> = pending.iter().copied().filter(|p| alive.contains(p)).collect();
        let need = w + pending.len();
        if live + pending_up.len() < need {
            let n = owners.len();
            let why = if pending.is_empty() {
                format!("replicas up: {live} of the key's {n}, W is {w}; nothing written")
            } else {
                format!(
                    "replicas up: {live} of the key's {n} and {} of its {} joining, W is {w} plus one per joining \
                     replica; nothing written",
                    pending_up.len(),
                    pending.len()
                )
            };
            return self.reply(op, Err(Error::TryAgain(why)));
        }
        let covered: BTreeSet<NodeId> = stand_ins.values().copied().collect();
        let hints: Vec<NodeId> = if self.options.hinted_handoff {
            down.iter().copied().filter(|o| !covered.contains(o)).collect()
        } else {
            Vec::new()
        };
        self.stats.hints_recorded += hints.len() as u64;
        let others = owners.iter().copied().filter(|o| *o != self.id && up(o)).collect();
        let deadline = self.deadline(value.as_ref().map_or(0, |v| key.len() + v.len()));
        let request = Request::Put { key: key.clone(), context: context.clone(), value, timestamp_ms, hints };
        self.send(op, self.id, request);
        let state = Op::Put {
            key,
            w: need,
            others,
            pending: pending_up,
            stand_ins,
            context,
            written: None,
            acks: BTreeSet::new(),
            waiting: BTreeSet::from([self.id]),
            answered: false,
        };
        self.ops.insert(op, (state, deadline));
    }

    /// When a request that moves `bytes` of value times out: [`Options::timeout`] ticks from
    /// now, and more for a large value.
    fn deadline(&self, bytes: usize) -> u64 {
        let extra = match self.options.bytes_per_tick {
            0 => 0,
            per_tick => bytes as u64 / per_tick,
        };
        self.now + self.options.timeout + extra
    }

    /// A client's read of `key` from `r` replicas; `owners` and `alive` as for [`Self::put`].
    pub fn get(&mut self, op: OpId, key: Bytes, owners: &[NodeId], alive: &[NodeId], r: usize) {
        self.stats.gets += 1;
        let asked: BTreeSet<NodeId> = owners.iter().copied().filter(|o| *o == self.id || alive.contains(o)).collect();
        if asked.len() < r {
            let (live, n) = (asked.len(), owners.len());
            return self.reply(op, Err(Error::TryAgain(format!("replicas up: {live} of the key's {n}, R is {r}"))));
        }
        for to in &asked {
            self.send(op, *to, Request::Get { key: key.clone() });
        }
        let state = Op::Get {
            key,
            r,
            replies: BTreeMap::new(),
            waiting: asked,
            answered: false,
            repairing: BTreeSet::new(),
            held: None,
            repaired: false,
            asked_again: BTreeSet::new(),
        };
        self.ops.insert(op, (state, self.now + self.options.timeout));
    }

    /// Replica `from`'s answer to request `op`.
    pub fn step(&mut self, op: OpId, from: NodeId, response: Response) {
        let Some((mut state, deadline)) = self.ops.remove(&op) else { return };
        // A replica's answer to a read shows how large the value is: the others, still
        // sending theirs, get the time that size needs.
        let deadline = match &response {
            Response::Got(object) => deadline.max(self.deadline(object.value_bytes())),
            _ => deadline,
        };
        let done = match &mut state {
            Op::Put { .. } => self.step_put(op, &mut state, from, response),
            Op::Get { .. } => self.step_get(op, &mut state, from, response),
        };
        if !done {
            self.ops.insert(op, (state, deadline));
        }
    }

    /// True when the request is over.
    fn step_put(&mut self, op: OpId, state: &mut Op, from: NodeId, response: Response) -> bool {
        let Op::Put { key, w, others, pending, stand_ins, context, written, acks, waiting, answered } = state else {
            unreachable!()
        };
        if !waiting.remove(&from) {
            return false; // a duplicate, or an answer to nothing asked
        }
        match response {
            Response::Put { object, dot } if from == self.id && written.is_none() => {
                acks.insert(from);
                for to in others.iter().copied() {
                    waiting.insert(to);
                    self.output.push(Output::Send {
                        op,
                        to,
                        request: Request::Merge { key: key.clone(), object: object.clone() },
                    });
                }
                for to in pending.iter().copied() {
                    waiting.insert(to);
                    self.output.push(Output::Send {
                        op,
                        to,
                        request: Request::Merge { key: key.clone(), object: object.clone() },
                    });
                }
                for (&to, &owner) in stand_ins.iter() {
                    waiting.insert(to);
                    self.output.push(Output::Send {
                        op,
                        to,
                        request: Request::Handoff { key: key.clone(), object: object.clone(), owner },
                    });
                }
                *written = Some((object, dot));
            }
            Response::Merged if from != self.id && written.is_some() => {
                acks.insert(from);
            }
            Response::TooManySiblings { siblings, max } if from == self.id => {
                *answered = true;
                self.stats.sibling_limit_refusals += 1;
                self.output.push(Output::Reply { op, result: Err(too_many_siblings(siblings, max)) });
                return true;
            }
            Response::Failed(why) | Response::Unreachable(why) if from == self.id => {
                // The local write failed: its transaction may or may not have committed.
                *answered = true;
                self.reply(op, Err(Error::Uncertain(format!("the local write failed: {why}"))));
                return true;
            }
            // A stand-in that failed leaves the down owner to this node's hint.
            Response::Failed(_) | Response::Unreachable(_) => {
                self.hint(stand_ins.get(&from).copied().unwrap_or(from), key)
            }
            other => {
                tracing::warn!(peer = from, "a PUT got an answer of the wrong kind: {other:?}");
                self.hint(from, key);
            }
        }
        if !*answered && acks.len() >= *w {
            *answered = true;
            let (object, dot) = written.as_ref().expect("acknowledged, so written");
            let seen = match context {
                Some(c) => seen_after(c, object, *dot),
                None => object.context().clone(),
            };
            let reply = Reply::Written { context: seen, dot: *dot };
            self.output.push(Output::Reply { op, result: Ok(reply) });
        }
        if waiting.is_empty() && !*answered {
            let (have, need) = (acks.len(), *w);
            self.reply(
                op,
                Err(Error::Uncertain(format!("replicas holding the write: {have}, W is {need}; it may spread"))),
            );
            return true;
        }
        waiting.is_empty()
    }

    fn step_get(&mut self, op: OpId, state: &mut Op, from: NodeId, response: Response) -> bool {
        let Op::Get { key, r, replies, waiting, answered, repairing, held, repaired, asked_again } = state else {
            unreachable!()
        };
        if repairing.remove(&from) {
            // A sync repair's acknowledgement (or failure: the answer goes out anyway).
            if repairing.is_empty()
                && let Some(object) = held.take()
            {
                self.output.push(Output::Reply { op, result: Ok(Reply::Read(object)) });
            }
            return waiting.is_empty() && repairing.is_empty();
        }
        if !waiting.remove(&from) {
            return false;
        }
        match response {
            Response::Got(object) => {
                replies.insert(from, object);
            }
            // The call failed (a connection reset by a peer that restarted a moment ago, or
            // refused by one stopping): a read changes nothing, so the replica is asked once
            // more before the read counts it out, within the read's deadline.
            Response::Unreachable(why) if !*answered && from != self.id && asked_again.insert(from) => {
                tracing::debug!(peer = from, "a read's call failed ({why}); asking again");
                waiting.insert(from);
                self.send(op, from, Request::Get { key: key.clone() });
                return false;
            }
            other => tracing::debug!(peer = from, "a read got no object: {other:?}"),
        }
        if !*answered && replies.len() >= *r {
            *answered = true;
            let joined = join(self.options.causality, replies.values());
            if joined.live().count() > 1 {
                self.stats.sibling_reads += 1;
            }
            if self.options.sync_read_repair && self.options.read_repair {
                let stale: Vec<NodeId> = replies.iter().filter(|(_, o)| **o != joined).map(|(n, _)| *n).collect();
                for to in stale {
                    self.stats.read_repairs += 1;
                    repairing.insert(to);
                    self.send(op, to, Request::Merge { key: key.clone(), object: joined.clone() });
                }
            }
            if repairing.is_empty() {
                self.output.push(Output::Reply { op, result: Ok(Reply::Read(joined)) });
            } else {
                *held = Some(joined);
            }
        }
        if !*answered && replies.len() + waiting.len() < *r {
            let (got, need) = (replies.len(), *r);
            self.reply(op, Err(Error::TryAgain(format!("only {got} replicas answered the read; R is {need}"))));
            return true;
        }
        if waiting.is_empty() && !*repaired && self.options.read_repair {
            *repaired = true;
            self.repair(key, replies);
        }
        waiting.is_empty() && repairing.is_empty()
    }

    /// Sends the join of every answer to each replica that answered with less.
    fn repair(&mut self, key: &Bytes, replies: &BTreeMap<NodeId, Object>) {
        let joined = join(self.options.causality, replies.values());
        let stale: Vec<NodeId> = replies.iter().filter(|(_, o)| **o != joined).map(|(n, _)| *n).collect();
        for to in stale {
            self.stats.read_repairs += 1;
            self.output.push(Output::Send {
                op: REPAIR,
                to,
                request: Request::Merge { key: key.clone(), object: joined.clone() },
            });
        }
    }

    /// Advances the clock one tick; requests past their deadline are answered with what
    /// they have.
    pub fn tick(&mut self) {
        self.now += 1;
        let due: Vec<OpId> = self.ops.iter().filter(|(_, (_, d))| *d <= self.now).map(|(op, _)| *op).collect();
        for op in due {
            let Some((state, _)) = self.ops.remove(&op) else { continue };
            match state {
                Op::Put { key, w, written, acks, waiting, answered, stand_ins, .. } => {
                    let me = self.id;
                    for target in waiting.iter().copied().filter(|t| *t != me) {
                        self.hint(stand_ins.get(&target).copied().unwrap_or(target), &key);
                    }
                    if !answered {
                        let why = match written {
                            None => "the local write did not finish in time".to_string(),
                            Some(_) => {
                                format!("replicas holding the write in time: {}, W is {w}; it may spread", acks.len())
                            }
                        };
                        self.reply(op, Err(Error::Uncertain(why)));
                    }
                }
                Op::Get { key, r, replies, answered, held, repaired, .. } => {
                    if let Some(object) = held {
                        self.output.push(Output::Reply { op, result: Ok(Reply::Read(object)) });
                    } else if !answered {
                        let got = replies.len();
                        self.reply(
                            op,
                            Err(Error::TryAgain(format!("only {got} replicas answered the read in time; R is {r}"))),
                        );
                    }
                    if !repaired && !replies.is_empty() {
                        self.repair(&key, &replies);
                    }
                }
            }
        }
    }
}

/// The context a write's client may write under next: what it had seen (`sent`) and its own
/// write `dot` — never a sibling the replica also held that the client has not seen, or its
/// next write would silently supersede it. A version vector covers an actor's counters up to
/// its entry, so adding the dot would also cover this actor's earlier dots: when one of them
/// is a sibling the client has not seen (a concurrent write through the same node), the dot
/// is left out, and the client's own write stays a sibling of its next one (a VGET shows
/// both, and a write under that context supersedes both).
pub fn seen_after(sent: &VersionVector, object: &Object, dot: Dot) -> VersionVector {
    let mut seen = sent.clone();
    let unseen_sibling =
        object.siblings().iter().any(|s| s.dot != dot && s.dot.actor == dot.actor && !sent.covers(s.dot));
    if !unseen_sibling {
        seen.add(dot);
    }
    seen
}

/// The join of `objects`.
pub fn join<'a>(causality: Causality, objects: impl Iterator<Item = &'a Object>) -> Object {
    let mut out = Object::new();
    for o in objects {
        out.merge_as(causality, o);
    }
    out
}

#[cfg(test)]
mod tests {
    //! Hand-played exchanges: what W, R, deadlines and read repair do.

    use super::*;

    fn t<'a>(owners: &'a [NodeId], fallbacks: &'a [NodeId]) -> Targets<'a> {
        Targets { owners, pending: &[], fallbacks }
    }

    fn v(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn key() -> Bytes {
        Bytes::from_static(b"k")
    }

    fn sends(out: &[Output]) -> Vec<(NodeId, &Request)> {
        out.iter()
            .filter_map(|o| if let Output::Send { to, request, .. } = o { Some((*to, request)) } else { None })
            .collect()
    }

    fn replies(out: &[Output]) -> Vec<&Result<Reply>> {
        out.iter().filter_map(|o| if let Output::Reply { result, .. } = o { Some(result) } else { None }).collect()
    }

    fn written(actor: u64, counter: u64, value: &str) -> (Object, Dot) {
        let mut o = Object::new();
        let dot = Dot { actor, counter };
        o.put(&VersionVector::new(), dot, 1, v(value));
        (o, dot)
    }

    /// A 64 MB value's write waits for its replicas longer than a small one's: before, both
    /// had [`Options::timeout`] ticks, and on a loaded machine the large one's replicas
    /// could not store it in time (`-UNCERTAIN`).
    #[test]
    fn a_large_values_deadline_grows_with_its_size() {
        let options = Options { bytes_per_tick: 1 << 20, ..Options::default() };
        let mut c = Coordinator::new(1, options.clone());
        let large = Some(Bytes::from(vec![7u8; 64 << 20]));
        c.put(7, key(), t(&[1, 2, 3], &[]), &[2, 3], None, large, 1, 2);
        c.take_output();
        c.put(8, Bytes::from_static(b"small"), t(&[1, 2, 3], &[]), &[2, 3], None, v("x"), 1, 2);
        c.take_output();
        for _ in 0..=options.timeout {
            c.tick();
        }
        let out = c.take_output();
        assert_eq!(replies(&out).len(), 1, "only the small write timed out: {out:?}");
        assert_eq!(c.in_flight(), 1, "the large write still waits");
        for _ in 0..64 {
            c.tick();
        }
        assert_eq!(replies(&c.take_output()).len(), 1, "and times out once its size's time is up");

        // A read: the first replica's answer shows the size, and the others get its time.
        let mut c = Coordinator::new(1, options.clone());
        c.get(9, key(), &[1, 2, 3], &[2, 3], 2);
        c.take_output();
        let mut object = Object::new();
        object.put(&VersionVector::new(), Dot { actor: 1, counter: 1 }, 1, Some(Bytes::from(vec![1u8; 64 << 20])));
        c.step(9, 1, Response::Got(object));
        for _ in 0..=options.timeout {
            c.tick();
        }
        assert!(replies(&c.take_output()).is_empty(), "the read still waits for a second replica");
    }

    #[test]
    fn a_put_answers_after_w_replicas_and_hints_the_ones_that_do_not_answer() {
        let mut c = Coordinator::new(1, Options::default());
        c.put(7, key(), t(&[1, 2, 3], &[]), &[2, 3], None, v("x"), 1, 2);
        let out = c.take_output();
        assert_eq!(sends(&out).len(), 1, "the local replica first");
        let (object, dot) = written(1, 1, "x");
        c.step(7, 1, Response::Put { object: object.clone(), dot });
        let out = c.take_output();
        assert_eq!(sends(&out).iter().map(|s| s.0).collect::<Vec<_>>(), vec![2, 3]);
        assert!(replies(&out).is_empty(), "1 of W=2");
        c.step(7, 3, Response::Merged);
        let out = c.take_output();
        assert!(matches!(replies(&out)[..], [Ok(Reply::Written { .. })]), "{out:?}");
        for _ in 0..=Options::default().timeout {
            c.tick();
        }
        let out = c.take_output();
        assert_eq!(out, vec![Output::Hint { target: 2, key: key() }], "n2 never answered");
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_pending_replica_counts_toward_the_write_which_needs_one_more_replica_per_pending_one() {
        // n3 leaves the partition to n4. Acknowledged by {1, 2} alone, the write would be on
        // one owner-to-be (n2) when the change completes: it needs a third replica.
        let mut c = Coordinator::new(1, Options::default());
        let targets = Targets { owners: &[1, 2, 3], pending: &[4], fallbacks: &[] };
        c.put(7, key(), targets, &[2, 3, 4], None, v("x"), 1, 2);
        c.take_output();
        let (object, dot) = written(1, 1, "x");
        c.step(7, 1, Response::Put { object, dot });
        let out = c.take_output();
        assert_eq!(sends(&out).iter().map(|s| s.0).collect::<Vec<_>>(), vec![2, 3, 4]);
        c.step(7, 2, Response::Merged);
        assert!(replies(&c.take_output()).is_empty(), "W=2 of the owners is not enough while n4 is pending");
        c.step(7, 4, Response::Merged);
        assert!(matches!(replies(&c.take_output())[..], [Ok(Reply::Written { .. })]), "n1, n2 and the pending n4");
        for _ in 0..=Options::default().timeout {
            c.tick();
        }
        assert_eq!(c.take_output(), vec![Output::Hint { target: 3, key: key() }], "n3 never answered");

        // The same write with n4 down needs every owner, and n3 down as well refuses it.
        let mut c = Coordinator::new(1, Options::default());
        let targets = Targets { owners: &[1, 2, 3], pending: &[4], fallbacks: &[] };
        c.put(8, key(), targets, &[2], None, v("y"), 1, 2);
        let out = c.take_output();
        assert!(matches!(replies(&out)[..], [Err(Error::TryAgain(_))]), "{out:?}");
        let targets = Targets { owners: &[1, 2, 3], pending: &[4], fallbacks: &[] };
        c.put(9, key(), targets, &[2, 3], None, v("y"), 1, 2);
        c.take_output();
        let (object, dot) = written(1, 2, "y");
        c.step(9, 1, Response::Put { object, dot });
        c.take_output();
        c.step(9, 2, Response::Merged);
        assert!(replies(&c.take_output()).is_empty());
        c.step(9, 3, Response::Merged);
        assert!(matches!(replies(&c.take_output())[..], [Ok(Reply::Written { .. })]));
    }

    #[test]
    fn a_write_reply_context_never_covers_a_sibling_its_client_has_not_seen() {
        // A and B write blind through the same node (one actor): dots 5 and 6.
        let mut object = Object::new();
        let (a, b) = (Dot { actor: 1, counter: 5 }, Dot { actor: 1, counter: 6 });
        object.put(&VersionVector::new(), a, 1, v("a"));
        object.put(&VersionVector::new(), b, 2, v("b"));
        // Covering dot 6 would cover 5, A's write, which B never saw: the dot is left out.
        let seen = seen_after(&VersionVector::new(), &object, b);
        assert!(!seen.covers(a) && !seen.covers(b), "{seen:?}");
        // Alone (or once A is known), B's reply covers its own write.
        let mut alone = Object::new();
        alone.put(&VersionVector::new(), b, 2, v("b"));
        assert!(seen_after(&VersionVector::new(), &alone, b).covers(b));
        let knows_a: VersionVector = [(1, 5)].into_iter().collect();
        assert!(seen_after(&knows_a, &object, b).covers(b));
    }

    #[test]
    fn a_sloppy_quorum_lets_a_stand_in_hold_a_down_owners_copy_and_count_toward_w() {
        // Owners 1, 2, 3 with 3 down; W = 3. Strict: refused. Sloppy: 4 stands in for 3.
        let mut strict = Coordinator::new(1, Options::default());
        strict.put(1, key(), t(&[1, 2, 3], &[4, 5]), &[2, 4, 5], None, v("x"), 1, 3);
        assert!(matches!(replies(&strict.take_output())[..], [Err(Error::TryAgain(_))]));
        let mut c = Coordinator::new(1, Options { sloppy_quorum: true, ..Options::default() });
        c.put(1, key(), t(&[1, 2, 3], &[4, 5]), &[2, 4, 5], None, v("x"), 1, 3);
        let out = c.take_output();
        let Some(Output::Send { request: Request::Put { hints, .. }, .. }) = out.first() else { panic!("{out:?}") };
        assert!(hints.is_empty(), "the stand-in holds n3's copy: no hint here");
        let (object, dot) = written(1, 1, "x");
        c.step(1, 1, Response::Put { object: object.clone(), dot });
        let out = c.take_output();
        let handoff = Request::Handoff { key: key(), object: object.clone(), owner: 3 };
        assert!(out.contains(&Output::Send { op: 1, to: 4, request: handoff }), "{out:?}");
        c.step(1, 2, Response::Merged);
        assert!(replies(&c.take_output()).is_empty(), "2 of W=3");
        c.step(1, 4, Response::Merged);
        assert!(matches!(replies(&c.take_output())[..], [Ok(Reply::Written { .. })]), "the stand-in counts");
        // A stand-in that never answers leaves the hint for the owner it stood in for.
        c.put(2, key(), t(&[1, 2, 3], &[4, 5]), &[2, 4, 5], None, v("y"), 1, 2);
        c.take_output();
        c.step(2, 1, Response::Put { object, dot: Dot { actor: 1, counter: 2 } });
        c.step(2, 2, Response::Merged);
        c.take_output();
        for _ in 0..=Options::default().timeout {
            c.tick();
        }
        assert_eq!(c.take_output(), vec![Output::Hint { target: 3, key: key() }]);
    }

    #[test]
    fn a_put_without_w_live_owners_is_refused_before_writing() {
        let mut c = Coordinator::new(1, Options::default());
        c.put(1, key(), t(&[1, 2, 3], &[]), &[], None, v("x"), 1, 2);
        let out = c.take_output();
        assert!(sends(&out).is_empty());
        assert!(matches!(replies(&out)[..], [Err(Error::TryAgain(_))]));
        // Not an owner: refused too (the node forwards such writes).
        c.put(2, key(), t(&[2, 3, 4], &[]), &[2, 3, 4], None, v("x"), 1, 2);
        assert!(matches!(replies(&c.take_output())[..], [Err(Error::TryAgain(_))]));
    }

    #[test]
    fn a_put_written_locally_but_short_of_w_is_uncertain_and_down_owners_get_hints() {
        let mut c = Coordinator::new(1, Options::default());
        c.put(1, key(), t(&[1, 2, 3], &[]), &[2], None, v("x"), 1, 2);
        let out = c.take_output();
        assert!(matches!(sends(&out)[..], [(1, Request::Put { hints, .. })] if *hints == vec![3]), "{out:?}");
        let (object, dot) = written(1, 1, "x");
        c.step(1, 1, Response::Put { object, dot });
        c.take_output();
        c.step(1, 2, Response::Unreachable("reset".into()));
        let out = c.take_output();
        assert!(out.contains(&Output::Hint { target: 2, key: key() }));
        assert!(matches!(replies(&out)[..], [Err(Error::Uncertain(_))]), "{out:?}");
    }

    #[test]
    fn a_get_joins_r_answers_and_repairs_the_stale_replicas() {
        let mut c = Coordinator::new(1, Options::default());
        c.get(5, key(), &[1, 2, 3], &[2, 3], 2);
        assert_eq!(sends(&c.take_output()).len(), 3);
        let (fresh, _) = written(9, 2, "new");
        c.step(5, 2, Response::Got(fresh.clone()));
        c.step(5, 1, Response::Got(Object::new()));
        let out = c.take_output();
        assert!(matches!(replies(&out)[..], [Ok(Reply::Read(o))] if *o == fresh), "{out:?}");
        c.step(5, 3, Response::Got(fresh.clone()));
        let out = c.take_output();
        assert_eq!(
            sends(&out),
            vec![(1, &Request::Merge { key: key(), object: fresh.clone() })],
            "only the stale replica is repaired"
        );
        assert_eq!(c.stats().read_repairs, 1);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_sync_read_repair_answers_once_the_stale_replicas_hold_the_join() {
        let mut c = Coordinator::new(1, Options { sync_read_repair: true, ..Options::default() });
        c.get(5, key(), &[1, 2, 3], &[2, 3], 2);
        c.take_output();
        let (fresh, _) = written(9, 2, "new");
        c.step(5, 2, Response::Got(fresh.clone()));
        c.step(5, 1, Response::Got(Object::new()));
        let out = c.take_output();
        assert!(replies(&out).is_empty(), "held for the repair");
        assert_eq!(sends(&out), vec![(1, &Request::Merge { key: key(), object: fresh.clone() })]);
        c.step(5, 1, Response::Merged);
        assert!(matches!(replies(&c.take_output())[..], [Ok(Reply::Read(o))] if *o == fresh));
    }

    #[test]
    fn a_get_asks_again_a_replica_whose_call_failed_once() {
        // n3 is down (left the cluster for a restart); the call to n2 fails once (its
        // connection was reset: n2 had itself restarted a moment before) and then goes through.
        let mut c = Coordinator::new(1, Options::default());
        c.get(5, key(), &[1, 2, 3], &[2], 2);
        c.take_output();
        c.step(5, 1, Response::Got(Object::new()));
        c.step(5, 2, Response::Unreachable("connection reset".into()));
        let out = c.take_output();
        assert!(replies(&out).is_empty(), "not given up on: {out:?}");
        assert_eq!(sends(&out), vec![(2, &Request::Get { key: key() })], "asked again");
        c.step(5, 2, Response::Unreachable("connection refused".into()));
        assert!(matches!(replies(&c.take_output())[..], [Err(Error::TryAgain(_))]), "but only once");
        // Asked again, it answers: the read is served.
        c.get(6, key(), &[1, 2, 3], &[2], 2);
        c.take_output();
        c.step(6, 1, Response::Got(Object::new()));
        c.step(6, 2, Response::Unreachable("connection reset".into()));
        c.take_output();
        c.step(6, 2, Response::Got(Object::new()));
        assert!(matches!(replies(&c.take_output())[..], [Ok(Reply::Read(_))]));
    }

    #[test]
    fn a_get_short_of_r_is_tryagain() {
        let mut c = Coordinator::new(1, Options::default());
        c.get(5, key(), &[1, 2, 3], &[2, 3], 2);
        c.take_output();
        c.step(5, 2, Response::Unreachable("down".into()));
        c.step(5, 3, Response::Failed("disk".into()));
        c.step(5, 2, Response::Unreachable("down".into())); // asked again: down indeed
        assert!(matches!(replies(&c.take_output())[..], [Err(Error::TryAgain(_))]));
        c.get(6, key(), &[1, 2, 3], &[2, 3], 3);
        c.take_output();
        for _ in 0..=Options::default().timeout {
            c.tick();
        }
        assert!(matches!(replies(&c.take_output())[..], [Err(Error::TryAgain(_))]));
    }
}
