//! A paxos-mode node: the I/O around the protocol core.
//!
//! * The **acceptor** is one thread over [`Storage`]: it takes every batch of messages queued
//!   at that moment (from its own proposer and from peers' `Paxos` calls), handles them in one
//!   redb transaction, fsyncs once, and only then replies.
//! * The **driver** task owns the [`Proposer`]: it feeds it commands, acceptor replies and a
//!   10 ms tick, persists the ballot high-water mark before any ballot above it leaves, and
//!   hands each peer's requests to one **outbox** per peer, which packs whatever is queued
//!   into one gRPC call. Its own acceptor's requests go last, straight to the acceptor
//!   thread, which hands the replies, once durable, straight back to the driver.
//! * **Routing**: every key has a home node (a hash over the members); commands go there,
//!   so one proposer owns a key, its 1-RTT cache keeps hitting and its queue batches
//!   concurrent commands. When the home is cut off, down or stopping, the command runs at the
//!   next member in the key's order instead — CASPaxos is leaderless, so that is always
//!   safe; every node picks the same one, so no two proposers duel over the key
//!   ([`super::presence`]: how a stopping and a started node tell their peers).
//! * **Garbage collection** (§3.1) runs on every node for the tombstones whose home it is.
//! * **Membership** changes run joint consensus: see [`PaxosMode::change_membership`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::ballot::{Ballot, NodeId};
use super::gc::run_gc;
use super::proposer::{Command, CommandId, Options, Outcome, Output, Proposer, ProposerStats};
use super::service::PeerService;
use super::storage::{AcceptorMessage, AcceptorReply, Config, Incoming, ReplyRoom, Storage};
use crate::error::{Error, Result};
use crate::node::{Faults, NodeOptions, Tasks, peer_name};
use crate::node::{lock, read_lock};
use crate::peer::{self};

/// One proposer tick.
pub const TICK: Duration = Duration::from_millis(10);
/// Ticks a prepare waits for its quorum (500 ms) before it retries.
pub const PHASE_TIMEOUT_TICKS: u64 = 50;
/// An accept's deadline in ticks (2 s): past it the outcome is unknown, so it waits out a
/// slow fsync on a loaded machine rather than answer `-UNCERTAIN` on a healthy cluster.
pub const ACCEPT_TIMEOUT_TICKS: u64 = 200;
/// The rate a value is assumed to move at, for the time allowed to calls and phases that
/// carry one (a conservative figure: a debug build on a loaded machine).
pub(super) const BYTES_PER_SECOND: u64 = 4 << 20;
/// Ballots reserved per durable write of the high-water mark.
pub(super) const COUNTER_RESERVE: u64 = 1000;
/// Keys handled at once by FLUSHALL, DBSIZE and the rescan.
pub(super) const SCAN_PARALLELISM: usize = 32;

/// How long a stopping node waits for its background tasks.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Options of paxos mode.
#[derive(Debug, Clone)]
pub struct PaxosOptions {
    /// Id, addresses, members (`--peers` is used only when the data directory holds no
    /// configuration) and data directory.
    pub node: NodeOptions,
    pub one_round_trip: bool,
    /// Test only: see [`Options::unsafe_accept_quorum`].
    pub unsafe_accept_quorum: Option<usize>,
    /// How often tombstones are collected.
    pub gc_interval: Duration,
    /// Whether peers' ballots above [`Ballot::ceiling`] are refused (off only in tests).
    pub ballot_ceiling: bool,
}

pub(super) enum DriverEvent {
    Submit {
        key: Bytes,
        command: Command,
        reply: oneshot::Sender<Result<Outcome>>,
        /// Held by the driver until the proposer answers the command, not by its caller,
        /// who may give up while the round runs on.
        proposing: Proposing,
    },
    Replies {
        from: NodeId,
        replies: Vec<(Bytes, u64, super::acceptor::Response)>,
    },
    SetConfig {
        config: Config,
        done: oneshot::Sender<()>,
    },
    /// A peer was bypassed or taken back: see [`Proposer::forget_promises`].
    RoutingChanged,
    /// Another node sent a key here as its home's stand-in: see [`Proposer::forget_promise`].
    StandingIn {
        key: Bytes,
    },
}

pub(super) type Outgoing = (Bytes, u64, AcceptorMessage);

pub(super) type AcceptorJob = crate::node::BatchJob<Incoming, AcceptorReply>;

/// Acceptor messages one transaction handles at most.
const ACCEPTOR_BATCH: usize = 4096;

#[derive(Default)]
pub(super) struct Stats {
    pub(super) forwarded: AtomicU64,
    pub(super) served_for_peers: AtomicU64,
    pub(super) local_fallbacks: AtomicU64,
    /// Forwards given up on because their home stopped answering pings (see `forward`).
    pub(super) hedged: AtomicU64,
    pub(super) collected: AtomicU64,
    pub(super) proposer: Mutex<ProposerStats>,
}

pub(super) struct Node {
    pub(super) id: NodeId,
    pub(super) options: PaxosOptions,
    pub(super) storage: Arc<Storage>,
    pub(super) acceptor: std::sync::mpsc::Sender<AcceptorJob>,
    pub(super) driver: mpsc::UnboundedSender<DriverEvent>,
    pub(super) config: RwLock<Config>,
    /// The installed configuration's version, read by the acceptor thread.
    pub(super) config_version: Arc<AtomicU64>,
    pub(super) clients: peer::Clients,
    /// Every background task (driver, outboxes' calls, GC, probes, the peer server).
    pub(super) tasks: Tasks,
    pub(super) outboxes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Vec<Outgoing>>>>,
    /// Peers bypassed (commands for their keys run here), each until the time given and
    /// then until a probe sees it answer again.
    pub(super) down: Arc<Mutex<HashMap<NodeId, Instant>>>,
    /// Peers that said they are stopping and have not yet said they are done, each with the
    /// time after which their keys run elsewhere anyway ([`super::presence`]).
    pub(super) leaving: Mutex<HashMap<NodeId, Instant>>,
    /// Peers that said they have left and have not yet said they are back, each with when
    /// ([`super::presence`]).
    pub(super) left: Mutex<HashMap<NodeId, Instant>>,
    pub(super) faults: Arc<Faults>,
    pub(super) stats: Stats,
    pub(super) membership: tokio::sync::Mutex<()>,
    /// Serializes configuration installs (check, persist, swap).
    pub(super) installing: tokio::sync::Mutex<()>,
    /// Commands other nodes forwarded here (this node is their key's home), drained at stop.
    pub(super) peer_commands: crate::node::PeerCommands,
    /// Recent forwards' latencies: when a forward is late enough to ask whether its home hung.
    pub(super) forward_latency: super::forward::ForwardLatency,
    /// The keys of the commands this node's proposer runs now, each with how many: a peer
    /// coming back gets its keys once none of them is here ([`super::presence`]).
    pub(super) proposing: Arc<Mutex<HashMap<Bytes, usize>>>,
    /// Set once this node, started, has told its peers it is back and they have handed its
    /// keys back: no command runs here before ([`super::presence`]).
    pub(super) back: tokio::sync::watch::Sender<bool>,
    /// The incarnation of this node's data directory ([`super::identity`]).
    pub(super) incarnation: u64,
    /// The data directory held acceptor state before it had an incarnation.
    pub(super) late: bool,
    /// The incarnation the cluster knows this node by, once it turned out not to be this
    /// directory's: this node's acceptor state was lost, and it votes no more.
    pub(super) lost: std::sync::OnceLock<u64>,
}

/// One command on this node's proposer, counted in [`Node::proposing`] until dropped: when
/// the proposer has answered it. Its caller may have given up before (a forward's sender
/// hedged or timed out, a client went away), while the round still runs (up to the accept
/// timeout); until it ends, the command still counts, or a peer coming back would take the
/// key while this round is in flight and the two would duel.
pub(super) struct Proposing {
    proposing: Arc<Mutex<HashMap<Bytes, usize>>>,
    key: Bytes,
}

impl Proposing {
    fn new(node: &Node, key: &Bytes) -> Self {
        *lock(&node.proposing).entry(key.clone()).or_default() += 1;
        Self { proposing: node.proposing.clone(), key: key.clone() }
    }
}

impl Drop for Proposing {
    fn drop(&mut self) {
        let mut proposing = lock(&self.proposing);
        if let Some(count) = proposing.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                proposing.remove(&self.key);
            }
        }
    }
}

/// paxos mode's [`Store`].
pub struct PaxosMode {
    pub(super) node: Arc<Node>,
}

/// FNV-1a: a stable hash, the same in every process and build.
/// The home node of `key` among `members` (in the configuration's order, as INFO's
/// `paxos_members` lists them): the proposer commands on the key are forwarded to.
pub fn home_of(members: &[NodeId], key: &[u8]) -> Option<NodeId> {
    let n = members.len() as u64;
    (n > 0).then(|| members[(fnv1a(key) % n) as usize])
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl PaxosMode {
    /// Opens the node's storage, starts its peer server, acceptor, driver and GC.
    pub async fn start(options: PaxosOptions, faults: Arc<Faults>) -> Result<Self> {
        let id = options.node.node_id;
        super::compact::refuse_unfinished(&options.node.data_dir)?;
        let (storage, recovered) = Storage::open(&options.node.fs, &options.node.data_dir)?;
        let config = match recovered.config {
            Some(config) => config,
            None if options.node.join => Config::default(),
            None => {
                let members = options.node.initial_members().map_err(Error::Config)?;
                let highest_id = members.iter().map(|m| m.id).max().unwrap_or(0);
                let config =
                    Config { version: 1, members, previous: None, highest_id, incarnations: Default::default() };
                storage.save_config(&config)?;
                config
            }
        };
        let storage = Arc::new(storage);
        let listener = tokio::net::TcpListener::bind(options.node.listen_addr())
            .await
            .map_err(|e| Error::Config(format!("cannot listen for peers on {}: {e}", options.node.listen_addr())))?;
        let counter = Ballot::resumable_counter(recovered.counter);
        if counter != recovered.counter {
            tracing::warn!(
                durable = recovered.counter,
                resumed = counter,
                "the ballot counter was past what peers accept (a peer's absurd ballot followed); resuming below it"
            );
        }
        let config_version = Arc::new(AtomicU64::new(config.version));
        let acceptor = spawn_acceptor(storage.clone(), config_version.clone(), options.ballot_ceiling);
        let (driver, driver_rx) = mpsc::unbounded_channel();
        let proposer = Proposer::with_quorums(
            id,
            config.quorums(),
            Options {
                phase_timeout: PHASE_TIMEOUT_TICKS,
                accept_timeout: ACCEPT_TIMEOUT_TICKS,
                bytes_per_tick: BYTES_PER_SECOND * TICK.as_millis() as u64 / 1000,
                max_attempts: 8,
                one_round_trip: options.one_round_trip,
                unsafe_accept_quorum: options.unsafe_accept_quorum,
                backoff: 2,
            },
            counter,
        );
        tracing::info!(
            node = id,
            config = config.version,
            members = ?config.ids(),
            floor = ?recovered.floor,
            counter,
            incarnation = format!("{:x}", recovered.incarnation),
            "paxos node starting"
        );
        let (secret, peer_tls) = (options.node.secret.clone(), options.node.peer_tls.clone());
        let metrics = options.node.metrics.clone();
        let node = Arc::new(Node {
            id,
            options,
            storage,
            acceptor,
            driver,
            config: RwLock::new(config),
            config_version,
            clients: peer::Clients::new(id, faults.clone(), secret, peer_tls, metrics),
            tasks: Tasks::default(),
            outboxes: Mutex::new(HashMap::new()),
            down: Arc::new(Mutex::new(HashMap::new())),
            leaving: Mutex::new(HashMap::new()),
            left: Mutex::new(HashMap::new()),
            faults,
            stats: Stats::default(),
            membership: tokio::sync::Mutex::new(()),
            installing: tokio::sync::Mutex::new(()),
            peer_commands: Default::default(),
            forward_latency: Default::default(),
            proposing: Arc::new(Mutex::new(HashMap::new())),
            back: tokio::sync::watch::Sender::new(false),
            incarnation: recovered.incarnation,
            late: recovered.late,
            lost: std::sync::OnceLock::new(),
        });
        node.tasks.spawn(run_driver(node.clone(), proposer, counter, driver_rx));
        let service = peer::PeerServer::new(PeerService { node: node.clone() })
            .max_decoding_message_size(peer::MAX_MESSAGE)
            .max_encoding_message_size(peer::MAX_MESSAGE);
        node.tasks.spawn(peer::serve(
            listener,
            service,
            node.faults.clone(),
            node.options.node.clone(),
            node.tasks.stopping(),
        ));
        node.tasks.spawn(run_gc(Arc::downgrade(&node)));
        // A node alone in its configuration (or the first of a new cluster whose peers are
        // up) records incarnations before it serves: its acceptor votes only once recorded.
        node.record_if_recorder().await;
        node.tasks.spawn(super::identity::run_identity(Arc::downgrade(&node)));
        // Before any client is served: peers that ran this node's keys while it was away
        // hand them back now, not once their probes notice, and only then does this node
        // run a command (a peer's forward, a garbage collection) on one of them.
        node.announce(crate::peer::proto::PresenceChange::Back).await;
        node.back.send_replace(true);
        Ok(Self { node })
    }
}

/// The acceptor thread: every batch of acceptor messages queued at once is one fsync'd
/// transaction.
/// `ballot_ceiling` says whether the clock's [ceiling](Ballot::ceiling) applies (as
/// [`Node::ballot_ceiling`]); it is read once per transaction, here, not in the storage.
fn spawn_acceptor(
    storage: Arc<Storage>,
    config_version: Arc<AtomicU64>,
    ballot_ceiling: bool,
) -> std::sync::mpsc::Sender<AcceptorJob> {
    crate::node::spawn_batcher("paxos-acceptor", ACCEPTOR_BATCH, move |all: &[Incoming]| {
        storage.handle_bounded(all, config_version.load(Ordering::SeqCst), ceiling_now(ballot_ceiling))
    })
}

/// The highest ballot counter a node takes from a peer now: [`Ballot::ceiling`] of the clock,
/// or (without the ceiling, in tests only) every counter the wire allows.
fn ceiling_now(ballot_ceiling: bool) -> u64 {
    if ballot_ceiling { Ballot::ceiling(crate::node::clock::now()) } else { Ballot::MAX_COUNTER }
}

impl Node {
    pub(super) fn config(&self) -> Config {
        read_lock(&self.config).clone()
    }

    /// The highest ballot counter this node takes from a peer now.
    pub(super) fn ballot_ceiling(&self) -> u64 {
        ceiling_now(self.options.ballot_ceiling)
    }

    pub(super) fn isolated_from(&self, id: NodeId) -> bool {
        id != self.id && self.faults.refuses(&peer_name(id))
    }

    pub(super) async fn local_acceptor(&self, batch: Vec<(Bytes, AcceptorMessage)>) -> Result<Vec<AcceptorReply>> {
        self.local_acceptor_within(batch, None).await
    }

    /// Runs `batch` on this node's acceptor, its promises' values within `room` when given.
    pub(super) async fn local_acceptor_within(
        &self,
        batch: Vec<(Bytes, AcceptorMessage)>,
        room: Option<Arc<ReplyRoom>>,
    ) -> Result<Vec<AcceptorReply>> {
        self.may_vote()?;
        let batch = batch.into_iter().map(|(k, m)| (k, m, room.clone())).collect();
        let (reply, rx) = oneshot::channel();
        self.acceptor
            .send(AcceptorJob { batch, reply: reply.into() })
            .map_err(|_| Error::TryAgain("the acceptor has stopped".into()))?;
        rx.await.map_err(|_| Error::TryAgain("the acceptor has stopped".into()))?
    }

    /// Runs the driver's messages on this node's own acceptor: the acceptor thread hands its
    /// replies, once durable, straight to the driver. No task sits between them (the round
    /// trip through an outbox task and a call task cost two wake-ups on each side).
    fn accept_here(&self, batch: Vec<Outgoing>) {
        if let Err(e) = self.may_vote() {
            tracing::debug!("own acceptor not voting: {e}");
            return;
        }
        let rounds: Vec<(Bytes, u64)> = batch.iter().map(|(k, r, _)| (k.clone(), *r)).collect();
        let (driver, from) = (self.driver.clone(), self.id);
        let then = move |replies: Result<Vec<AcceptorReply>>| match replies {
            Ok(replies) => {
                let replies: Vec<_> = rounds
                    .into_iter()
                    .zip(replies)
                    .filter_map(|((key, round), reply)| match reply {
                        AcceptorReply::Paxos(response) => Some((key, round, response)),
                        _ => None,
                    })
                    .collect();
                if !replies.is_empty() {
                    let _ = driver.send(DriverEvent::Replies { from, replies });
                }
            }
            Err(e) => tracing::debug!("own acceptor failed a batch: {e}"),
        };
        let batch = batch.into_iter().map(|(k, _, m)| (k, m, None)).collect();
        let job = AcceptorJob { batch, reply: crate::node::BatchReply::Then(Box::new(then)) };
        if self.acceptor.send(job).is_err() {
            tracing::debug!("the acceptor has stopped");
        }
    }

    /// The home node of `key`: a stable hash over the members.
    pub(super) fn home(&self, key: &[u8]) -> Option<NodeId> {
        self.homes(key).first().copied()
    }

    /// The members in `key`'s order: its home first, then the members after it in the
    /// configuration, wrapping around. The same on every node of one configuration.
    pub(super) fn homes(&self, key: &[u8]) -> Vec<NodeId> {
        let config = read_lock(&self.config);
        let n = config.members.len();
        if n == 0 {
            return Vec::new();
        }
        let first = (fnv1a(key) % n as u64) as usize;
        (0..n).map(|i| config.members[(first + i) % n].id).collect()
    }

    /// Runs a command on this node's proposer (once its peers handed its keys back, after a
    /// start).
    pub(super) async fn propose(&self, key: Bytes, command: Command) -> Result<Outcome> {
        if read_lock(&self.config).members.is_empty() {
            return Err(Error::TryAgain("this node has not joined a cluster yet".into()));
        }
        if !*self.back.borrow() {
            self.until_back().await;
        }
        let proposing = Proposing::new(self, &key);
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(DriverEvent::Submit { key, command, reply, proposing })
            .map_err(|_| Error::TryAgain("the proposer has stopped".into()))?;
        rx.await.map_err(|_| Error::Uncertain("the proposer stopped while the command ran".into()))?
    }
}

async fn run_driver(
    node: Arc<Node>,
    mut proposer: Proposer,
    mut reserved: u64,
    mut rx: mpsc::UnboundedReceiver<DriverEvent>,
) {
    // Each command's reply and its count in `Node::proposing`, until the proposer answers it.
    let mut waiting: HashMap<CommandId, (oneshot::Sender<Result<Outcome>>, Proposing)> = HashMap::new();
    let mut next_id: CommandId = 0;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let node_weak = Arc::downgrade(&node);
    drop(node);
    loop {
        let mut events = Vec::new();
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => events.push(e),
                None => return,
            },
            _ = ticker.tick() => proposer.tick(),
        }
        while events.len() < 1024
            && let Ok(e) = rx.try_recv()
        {
            events.push(e);
        }
        let Some(node) = node_weak.upgrade() else { return };
        proposer.set_ceiling(node.ballot_ceiling());
        for event in events {
            match event {
                DriverEvent::Submit { key, command, reply, proposing } => {
                    next_id += 1;
                    waiting.insert(next_id, (reply, proposing));
                    proposer.submit(next_id, key, command);
                }
                DriverEvent::Replies { from, replies } => {
                    for (key, round, response) in replies {
                        proposer.step(from, &key, round, response);
                    }
                }
                DriverEvent::SetConfig { config, done } => {
                    proposer.set_quorums(config.quorums());
                    let _ = done.send(());
                }
                DriverEvent::RoutingChanged => proposer.forget_promises(),
                DriverEvent::StandingIn { key } => proposer.forget_promise(&key),
            }
        }
        let mut output = proposer.take_output();
        if proposer.counter() >= reserved {
            // No ballot above the durable mark may leave before the mark moves past it.
            let mark = proposer.counter() + COUNTER_RESERVE;
            let storage = node.storage.clone();
            match tokio::task::spawn_blocking(move || storage.save_counter(mark)).await {
                Ok(Ok(())) => reserved = mark,
                failed => {
                    tracing::error!("cannot persist the ballot counter ({failed:?}); holding messages back");
                    output.retain(|o| matches!(o, Output::Reply { .. }));
                }
            }
        }
        let mut sends: HashMap<NodeId, Vec<Outgoing>> = HashMap::new();
        for out in output {
            match out {
                Output::Send { to, key, round, request } => {
                    sends.entry(to).or_default().push((key, round, AcceptorMessage::Paxos(request)))
                }
                Output::Reply { id, result } => {
                    if let Some((reply, proposing)) = waiting.remove(&id) {
                        let _ = reply.send(result);
                        drop(proposing);
                    }
                }
            }
        }
        // Peers first (their round trip is the longer one), then this node's own acceptor,
        // straight to its thread.
        let own = sends.remove(&node.id);
        for (to, batch) in sends {
            let _ = node.outbox(to).send(batch);
        }
        if let Some(batch) = own {
            node.accept_here(batch);
        }
        *lock(&node.stats.proposer) = proposer.stats();
    }
}
