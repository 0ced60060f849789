//! A dynamo node: its options, its state, and the driver that runs the coordinator — the
//! thin async shell around the protocol core (timers, the writer thread, peer calls).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::coordinator::{self, Coordinator, OpId, Output, Reply, Request, Response};
use super::dvv::{Causality, Object, VersionVector};
use super::ring::Ring;
use super::storage::{Counter, Storage, Write, Written};
use super::swim::Swim;
use crate::error::{Error, Result};
use crate::node::{Faults, NodeId, NodeOptions, Tasks, now_ms, peer_name};
use crate::node::{lock, read_lock, write_lock};
use crate::peer;

/// One coordinator tick.
pub const TICK: Duration = Duration::from_millis(10);
/// How long a request waits for its replicas (2 s, in ticks): past it a write short of W
/// is uncertain and a read short of R is refused.
pub const REQUEST_TIMEOUT_TICKS: u64 = 200;
/// A request moving a large value waits one more tick for each this many bytes: 4 MiB/s,
/// what the peer plane's calls assume too (`network::BYTES_PER_SECOND`), so a 64 MB value
/// gets 16 s more.
pub const REQUEST_BYTES_PER_TICK: u64 = (4 << 20) * TICK.as_millis() as u64 / 1000;
/// How long the background tasks get to stop.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Replica reads of one batch served on the async thread; more go to the blocking pool.
const INLINE_READS: usize = 16;
/// Writes one writer-thread transaction carries at most.
const WRITE_BATCH: usize = 512;

/// The most siblings a write may leave a key with (Riak's `max_siblings` default): blind
/// writes (VSET with the empty context) each add one, and every read returns them all.
pub const DEFAULT_MAX_SIBLINGS: usize = 100;

/// What a plain GET answers when a key has several live siblings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SiblingRead {
    /// The latest sibling (timestamp, then dot); every sibling stays stored.
    #[default]
    Pick,
    /// `-CONFLICT`: the client must read them with VGET.
    Error,
}

/// dynamo mode's settings (`valthree serve --mode dynamo`'s flags).
#[derive(Debug, Clone)]
pub struct DynamoOptions {
    pub node: NodeOptions,
    /// Partitions of the ring (`--vnodes`), a power of two.
    pub partitions: u32,
    /// Copies of every key (`--replicas`, N).
    pub replicas: usize,
    /// Replicas a read waits for (`--r`).
    pub r: usize,
    /// Replicas a write waits for (`--w`).
    pub w: usize,
    /// `--read-repair sync`: a read answers once the stale replicas it read are repaired.
    pub sync_read_repair: bool,
    /// `--hinted-handoff on|off`.
    pub hinted_handoff: bool,
    /// At most this many hints are kept (`--max-hints`); past it, new ones are dropped (and
    /// counted): anti-entropy is what repairs a replica that far behind.
    pub max_hints: u64,
    /// Hints older than this are dropped unreplayed (`--hint-window`).
    pub hint_window: Duration,
    pub sibling_read: SiblingRead,
    /// A write that would leave a key with more siblings than this is refused
    /// (`--max-siblings`, Riak's `max_siblings`).
    pub max_siblings: usize,
    /// How often the failure detector probes a member (`--swim-period`).
    pub swim_period: Duration,
    /// How long a member stays SUSPECT before it is DEAD (`--suspect-timeout`).
    pub suspect_timeout: Duration,
    /// How writes and replicas reconcile: DVV, or (hidden test switches) a broken scheme.
    pub causality: Causality,
    /// `--sloppy-quorum`: live nodes past the preference list stand in for down owners.
    pub sloppy_quorum: bool,
    /// `--read-repair off`: a read repairs nothing (anti-entropy alone converges replicas).
    pub read_repair: bool,
    /// How often anti-entropy compares this node's partitions with each co-owner
    /// (`--aae-interval`; zero: never).
    pub aae_interval: Duration,
    /// Keys one exchange repairs at most (`--aae-max-keys`); also tombstones reaped per round.
    pub aae_max_keys: usize,
    /// How old a tombstone every owner holds must be before it is reaped (`--tombstone-grace`).
    pub tombstone_grace: Duration,
    /// How long a node keeps a partition it no longer holds after a membership change
    /// before it hands it over and deletes it (`--handoff-grace`).
    pub handoff_grace: Duration,
}

impl DynamoOptions {
    /// The defaults: N=3 (or fewer nodes), R=W=2 (or N), 256 partitions, hints on.
    pub fn new(node: NodeOptions) -> Self {
        // A joining node has no --peers: it takes a cluster of at least three for granted
        // (the ring it is sent must match, or it is refused with what to pass).
        let nodes = if node.join { 3 } else { node.peers.len().max(1) };
        let replicas = nodes.min(3);
        Self {
            node,
            partitions: super::ring::DEFAULT_PARTITIONS,
            replicas,
            r: replicas.min(2),
            w: replicas.min(2),
            sync_read_repair: false,
            hinted_handoff: true,
            max_hints: 1_000_000,
            hint_window: Duration::from_secs(3 * 3600),
            sibling_read: SiblingRead::Pick,
            max_siblings: DEFAULT_MAX_SIBLINGS,
            swim_period: Duration::from_millis(500),
            suspect_timeout: Duration::from_secs(2),
            causality: Causality::Dvv,
            sloppy_quorum: false,
            read_repair: true,
            aae_interval: Duration::from_secs(30),
            aae_max_keys: 1000,
            tombstone_grace: Duration::from_secs(600),
            handoff_grace: Duration::from_secs(60),
        }
    }

    /// Refuses what cannot work; warns about what works but promises less.
    pub fn check(&self) -> std::result::Result<(), String> {
        let n = self.replicas;
        for (flag, v) in [("--r", self.r), ("--w", self.w)] {
            if v == 0 || v > n {
                return Err(format!("{flag} {v}: must be from 1 to --replicas ({n})"));
            }
        }
        if self.sloppy_quorum && !self.hinted_handoff {
            return Err("--sloppy-quorum needs --hinted-handoff on: a stand-in hands its copy over by a hint".into());
        }
        if self.sloppy_quorum {
            tracing::warn!(
                "--sloppy-quorum: stand-ins count toward W, so R + W > N no longer promises read-your-writes"
            );
        }
        if self.r + self.w <= n {
            tracing::warn!(
                r = self.r,
                w = self.w,
                n,
                "R + W <= N: a read may miss an acknowledged write (no read-your-writes)"
            );
        }
        if self.swim_period < Duration::from_millis(50) {
            return Err("--swim-period must be at least 50ms".into());
        }
        Ok(())
    }
}

/// A batch of writes for the writer thread.
pub(super) type WriteJob = crate::node::BatchJob<Write, Result<Written>>;

pub(super) enum DriverEvent {
    Put {
        key: Bytes,
        context: Option<VersionVector>,
        value: Option<Bytes>,
        w: usize,
        reply: oneshot::Sender<Result<Reply>>,
    },
    Get {
        key: Bytes,
        r: usize,
        reply: oneshot::Sender<Result<Reply>>,
    },
    Replies {
        from: NodeId,
        replies: Vec<(OpId, Response)>,
    },
}

/// Counters for INFO, beside the coordinator's own.
#[derive(Default)]
pub(super) struct Stats {
    pub coordinator: Mutex<coordinator::Stats>,
    pub forwarded: AtomicU64,
    pub hints_replayed: AtomicU64,
    pub hints_expired: AtomicU64,
    pub aae_exchanges: AtomicU64,
    /// Partitions found differing by the latest exchange.
    pub aae_partitions_differing: AtomicU64,
    pub aae_keys_repaired: AtomicU64,
    /// Anti-entropy's bytes: tree levels, key lists and the objects moved.
    pub aae_bytes: AtomicU64,
    pub tombstones_reaped: AtomicU64,
}

pub(super) struct Node {
    pub id: NodeId,
    pub options: DynamoOptions,
    pub storage: Arc<Storage>,
    pub writer: std::sync::mpsc::Sender<WriteJob>,
    /// The ring this node knows (the highest version it has seen), durable in storage.
    pub ring: std::sync::RwLock<Arc<Ring>>,
    pub clients: peer::Clients,
    pub tasks: Tasks,
    pub faults: Arc<Faults>,
    pub driver: mpsc::UnboundedSender<DriverEvent>,
    pub swim: Swim,
    pub stats: Stats,
    pub rebalance: super::rebalance::Shared,
    /// What contexts handed to clients are signed with (from the cluster secret), so that a
    /// client can only hand back a context a node made: a forged one naming writes no node
    /// made would make later writes look already seen, and replicas would drop them.
    pub context_key: Option<super::dvv::ContextKey>,
    /// Writes other nodes forwarded here to coordinate, drained at stop.
    pub peer_commands: crate::node::PeerCommands,
}

/// The one thread that writes: it owns the dot counter, and every batch of queued writes is
/// one fsync'd transaction (group commit).
pub(super) fn spawn_writer(storage: Arc<Storage>, mut counter: Counter) -> std::sync::mpsc::Sender<WriteJob> {
    crate::node::spawn_batcher("dynamo-writer", WRITE_BATCH, move |all: &[Write]| storage.apply(&mut counter, all))
}

impl Node {
    pub(super) fn isolated_from(&self, id: NodeId) -> bool {
        id != self.id && self.faults.refuses(&peer_name(id))
    }

    /// The ring as this node knows it now.
    pub(super) fn ring(&self) -> Arc<Ring> {
        read_lock(&self.ring).clone()
    }

    /// Adopts `ring` if it is newer than the one held (stored first, so a restart keeps it);
    /// true when it was.
    pub(super) fn adopt(&self, ring: Ring) -> Result<bool> {
        if ring.version() <= self.ring().version() {
            return Ok(false);
        }
        ring.validate(self.options.partitions, self.options.replicas).map_err(Error::Input)?;
        self.storage.save_ring(&ring)?;
        let mut held = write_lock(&self.ring);
        if ring.version() <= held.version() {
            return Ok(false);
        }
        tracing::info!(version = ring.version(), changing = ring.changing(), "dynamo: ring adopted");
        *held = Arc::new(ring);
        Ok(true)
    }

    /// The other members this node believes up: not DEAD to the failure detector, not cut
    /// off by a test partition.
    pub(super) fn alive(&self) -> Vec<NodeId> {
        self.ring()
            .members()
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != self.id && !self.isolated_from(*id) && !self.swim.is_dead(*id))
            .collect()
    }

    pub(super) fn addr_of(&self, id: NodeId) -> Option<String> {
        self.ring().addr_of(id).map(str::to_owned)
    }

    /// Runs writes on the writer thread (one fsync'd transaction with whatever else is queued).
    pub(super) async fn write(&self, batch: Vec<Write>) -> Result<Vec<Result<Written>>> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(crate::node::BatchJob { batch, reply: reply.into() })
            .map_err(|_| Error::TryAgain("the dynamo writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Uncertain("the dynamo writer stopped during a write".into()))?
    }

    /// This node's replica answers a coordinator's requests. `from_peer`: a write (Put) is
    /// only ever taken from this node's own coordinator.
    pub(super) async fn local_replica(&self, batch: Vec<(OpId, Request)>, from_peer: bool) -> Vec<(OpId, Response)> {
        let mut replies: Vec<Option<Response>> = vec![None; batch.len()];
        let mut writes = Vec::new();
        let mut written_at = Vec::new();
        let mut reads = Vec::new();
        for (i, (_, request)) in batch.iter().enumerate() {
            match request {
                Request::Put { .. } if from_peer => {
                    replies[i] = Some(Response::Failed("a replica takes writes only from its own coordinator".into()))
                }
                Request::Put { key, context, value, timestamp_ms, hints } => {
                    let hints = if self.options.hinted_handoff { hints.clone() } else { Vec::new() };
                    writes.push(Write::Put {
                        key: key.clone(),
                        context: context.clone(),
                        value: value.clone(),
                        timestamp_ms: *timestamp_ms,
                        hints,
                    });
                    written_at.push(i);
                }
                Request::Merge { key, object } => {
                    writes.push(Write::Merge { key: key.clone(), object: object.clone() });
                    written_at.push(i);
                }
                // A stand-in's copy and its hint for the owner, in one transaction.
                Request::Handoff { key, object, owner } => {
                    writes.push(Write::Merge { key: key.clone(), object: object.clone() });
                    writes.push(Write::Hint { target: *owner, key: key.clone(), at_ms: now_ms() });
                    written_at.extend([i, i]);
                }
                Request::Get { key } => reads.push((i, key.clone())),
            }
        }
        if !writes.is_empty() {
            match self.write(writes).await {
                Ok(results) => {
                    for (i, result) in written_at.into_iter().zip(results) {
                        replies[i] = Some(match result {
                            Ok(Written::Put { object, dot }) => Response::Put { object, dot },
                            Ok(Written::TooManySiblings { siblings }) => Response::TooManySiblings {
                                siblings: siblings as u64,
                                max: self.options.max_siblings as u64,
                            },
                            Ok(_) => Response::Merged,
                            Err(e) => Response::Failed(e.to_string()),
                        });
                    }
                }
                Err(e) => {
                    for i in written_at {
                        replies[i] = Some(Response::Failed(e.to_string()));
                    }
                }
            }
        }
        if !reads.is_empty() {
            let storage = self.storage.clone();
            let keys: Vec<Bytes> = reads.iter().map(|(_, k)| k.clone()).collect();
            // A few reads are served in place: each is a short read transaction on pages redb
            // (or the kernel) has cached, cheaper than handing them to the blocking pool and
            // waking a thread for them; a large batch goes to the pool.
            let got = if keys.len() <= INLINE_READS {
                Ok(keys.iter().map(|k| storage.get(k)).collect::<Vec<_>>())
            } else {
                tokio::task::spawn_blocking(move || keys.iter().map(|k| storage.get(k)).collect::<Vec<_>>()).await
            };
            match got {
                Ok(objects) => {
                    for ((i, _), object) in reads.into_iter().zip(objects) {
                        replies[i] = Some(match object {
                            Ok(o) => Response::Got(o),
                            Err(e) => Response::Failed(e.to_string()),
                        });
                    }
                }
                Err(e) => {
                    for (i, _) in reads {
                        replies[i] = Some(Response::Failed(format!("the read task failed: {e}")));
                    }
                }
            }
        }
        batch
            .into_iter()
            .zip(replies)
            .map(|((op, _), r)| (op, r.unwrap_or_else(|| Response::Failed("unanswered".into()))))
            .collect()
    }

    /// Coordinates a write here (this node must own the key).
    pub(super) async fn coordinate_put(
        &self,
        key: Bytes,
        context: Option<VersionVector>,
        value: Option<Bytes>,
        w: usize,
    ) -> Result<Reply> {
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(DriverEvent::Put { key, context, value, w, reply })
            .map_err(|_| Error::TryAgain("the coordinator has stopped".into()))?;
        rx.await.map_err(|_| Error::Uncertain("the coordinator stopped while the write ran".into()))?
    }

    /// Coordinates a read here.
    pub(super) async fn coordinate_get(&self, key: Bytes, r: usize) -> Result<Reply> {
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(DriverEvent::Get { key, r, reply })
            .map_err(|_| Error::TryAgain("the coordinator has stopped".into()))?;
        rx.await.map_err(|_| Error::TryAgain("the coordinator stopped while the read ran".into()))?
    }
}

pub(super) async fn run_driver(node: Arc<Node>, mut rx: mpsc::UnboundedReceiver<DriverEvent>) {
    let options = coordinator::Options {
        causality: node.options.causality,
        sloppy_quorum: node.options.sloppy_quorum,
        timeout: REQUEST_TIMEOUT_TICKS,
        bytes_per_tick: REQUEST_BYTES_PER_TICK,
        sync_read_repair: node.options.sync_read_repair,
        read_repair: node.options.read_repair,
        hinted_handoff: node.options.hinted_handoff,
    };
    let mut coordinator = Coordinator::new(node.id, options);
    let mut waiting: HashMap<OpId, oneshot::Sender<Result<Reply>>> = HashMap::new();
    let mut next_op: OpId = coordinator::REPAIR;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let weak = Arc::downgrade(&node);
    drop(node);
    loop {
        let mut events = Vec::new();
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => events.push(e),
                None => return,
            },
            _ = ticker.tick() => coordinator.tick(),
        }
        while events.len() < 1024
            && let Ok(e) = rx.try_recv()
        {
            events.push(e);
        }
        let Some(node) = weak.upgrade() else { return };
        for event in events {
            match event {
                DriverEvent::Put { key, context, value, w, reply } => {
                    next_op += 1;
                    waiting.insert(next_op, reply);
                    let ring = node.ring();
                    let owners = ring.owners(&key);
                    let pending = ring.pending(ring.partition(&key));
                    let fallbacks = if node.options.sloppy_quorum { ring.fallbacks(&key) } else { Vec::new() };
                    let alive = node.alive();
                    let targets =
                        super::coordinator::Targets { owners: &owners, pending: &pending, fallbacks: &fallbacks };
                    coordinator.put(next_op, key, targets, &alive, context, value, now_ms(), w);
                }
                DriverEvent::Get { key, r, reply } => {
                    next_op += 1;
                    waiting.insert(next_op, reply);
                    let owners = node.ring().owners(&key);
                    coordinator.get(next_op, key, &owners, &node.alive(), r);
                }
                DriverEvent::Replies { from, replies } => {
                    for (op, response) in replies {
                        coordinator.step(op, from, response);
                    }
                }
            }
        }
        let mut sends: HashMap<NodeId, Vec<(OpId, Request)>> = HashMap::new();
        let mut hints = Vec::new();
        for out in coordinator.take_output() {
            match out {
                Output::Send { op, to, request } => sends.entry(to).or_default().push((op, request)),
                Output::Reply { op, result } => {
                    if let Some(reply) = waiting.remove(&op) {
                        let _ = reply.send(result);
                    }
                }
                Output::Hint { target, key } => hints.push(Write::Hint { target, key, at_ms: now_ms() }),
            }
        }
        if !hints.is_empty() {
            let node = node.clone();
            node.tasks.clone().spawn(async move {
                if let Err(e) = node.write(hints).await {
                    tracing::warn!("cannot record hints: {e}");
                }
            });
        }
        // The receiver's message budget holds one large object with a few megabytes beside
        // it, not many large objects at once.
        let sends = sends.into_iter().flat_map(|(to, batch)| {
            peer::split_batch(batch, replica_request_bytes).into_iter().map(move |batch| (to, batch))
        });
        for (to, batch) in sends {
            let node = node.clone();
            node.tasks.clone().spawn(async move {
                let replies = if to == node.id {
                    node.local_replica(batch, false).await
                } else {
                    node.call_replica(to, batch).await
                };
                let _ = node.driver.send(DriverEvent::Replies { from: to, replies });
            });
        }
        *lock(&node.stats.coordinator) = coordinator.stats();
    }
}

/// About the bytes `request` takes on the wire.
fn replica_request_bytes((_, request): &(OpId, Request)) -> usize {
    let object_bytes =
        |object: &Object| object.siblings().iter().map(|s| s.value.as_ref().map_or(0, Bytes::len) + 32).sum::<usize>();
    match request {
        Request::Put { key, value, .. } => key.len() + value.as_ref().map_or(0, Bytes::len) + 64,
        Request::Merge { key, object } | Request::Handoff { key, object, .. } => key.len() + object_bytes(object) + 64,
        Request::Get { key } => key.len() + 32,
    }
}
