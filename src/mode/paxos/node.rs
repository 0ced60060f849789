//! A paxos-mode node: the I/O around the protocol core.
//!
//! * The **acceptor** is one thread over [`Storage`]: it takes every batch of messages queued
//!   at that moment (from its own proposer and from peers' `Paxos` calls), handles them in one
//!   redb transaction, fsyncs once, and only then replies.
//! * The **driver** task owns the [`Proposer`]: it feeds it commands, acceptor replies and a
//!   10 ms tick, persists the ballot high-water mark before any ballot above it leaves, and
//!   hands requests to one **outbox** per acceptor, which packs whatever is queued into one
//!   gRPC call (or one local call for its own acceptor).
//! * **Routing**: every key has a home node (a hash over the members); commands go there,
//!   so one proposer owns a key, its 1-RTT cache keeps hitting and its queue batches
//!   concurrent commands. When the home is cut off or down, the command runs on this node's
//!   proposer instead — CASPaxos is leaderless, so that is always safe, only slower.
//! * **Garbage collection** (§3.1) runs on every node for the tombstones whose home it is.
//! * **Membership** changes run joint consensus: see [`PaxosMode::change_membership`].

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::ballot::{Ballot, NodeId};
use super::proposer::{Command, CommandId, Options, Outcome, Output, Proposer, ProposerStats};
use super::storage::{AcceptorMessage, AcceptorReply, Config, KeyFilter, Member, Storage};
use super::wire;
use crate::error::{Error, Result};
use crate::node::Faults;
use crate::peer::{self, PeerClient, proto};
use crate::store::{MembershipChange, ModeInfo, Mutation, MutationReply, Store};

/// One proposer tick.
pub const TICK: Duration = Duration::from_millis(10);
/// Ticks a phase waits for its quorum (500 ms).
pub const PHASE_TIMEOUT_TICKS: u64 = 50;
/// How long an acceptor batch may take on the wire, plus [`BYTES_PER_SECOND`] for what it
/// carries. Generous: a crashed peer refuses at once and a hung one is caught by the peer
/// plane's keepalive; this only bounds a peer that is alive but slow (promises may carry a
/// large value back).
const PAXOS_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// The rate a value is assumed to move at, for the time allowed to calls and phases that
/// carry one (a conservative figure: a debug build on a loaded machine).
const BYTES_PER_SECOND: u64 = 4 << 20;
/// How long a forwarded command may take at its home (plus the time its bytes take to move).
/// A hung home is not waited for: the peer plane's keepalive closes its connection within
/// 1.5 s, which fails the forward, and the home is bypassed until it answers a ping.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);
/// How long a peer that failed a call is bypassed at least; after that, until it answers a
/// ping (a hung peer keeps accepting connections, so time alone proves nothing).
const DOWN_FOR: Duration = Duration::from_secs(1);
/// How often a peer marked down is pinged.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long a ping may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Ballots reserved per durable write of the high-water mark.
const COUNTER_RESERVE: u64 = 1000;
/// Keys handled at once by FLUSHALL, DBSIZE and the rescan.
const SCAN_PARALLELISM: usize = 32;

/// Options of paxos mode.
#[derive(Debug, Clone)]
pub struct PaxosOptions {
    pub node_id: NodeId,
    /// Where peers reach this node.
    pub peer_addr: String,
    /// The initial members (`--peers`); used only when the data directory holds no configuration.
    pub peers: Vec<Member>,
    /// Start without a configuration and wait to be added (`cluster add-node`).
    pub join: bool,
    pub data_dir: PathBuf,
    pub one_round_trip: bool,
    /// Test only: see [`Options::unsafe_accept_quorum`].
    pub unsafe_accept_quorum: Option<usize>,
    /// How often tombstones are collected.
    pub gc_interval: Duration,
}

enum DriverEvent {
    Submit { key: Bytes, command: Command, reply: oneshot::Sender<Result<Outcome>> },
    Replies { from: NodeId, replies: Vec<(Bytes, u64, super::acceptor::Response)> },
    SetConfig { config: Config, done: oneshot::Sender<()> },
}

type Outgoing = (Bytes, u64, AcceptorMessage);

struct AcceptorJob {
    batch: Vec<(Bytes, AcceptorMessage)>,
    reply: oneshot::Sender<Result<Vec<AcceptorReply>>>,
}

#[derive(Default)]
struct Stats {
    forwarded: AtomicU64,
    served_for_peers: AtomicU64,
    local_fallbacks: AtomicU64,
    collected: AtomicU64,
    proposer: Mutex<ProposerStats>,
}

struct Node {
    id: NodeId,
    options: PaxosOptions,
    storage: Arc<Storage>,
    acceptor: std::sync::mpsc::Sender<AcceptorJob>,
    driver: mpsc::UnboundedSender<DriverEvent>,
    config: RwLock<Config>,
    /// The installed configuration's version, read by the acceptor thread.
    config_version: Arc<AtomicU64>,
    clients: Mutex<HashMap<NodeId, (String, PeerClient<Channel>)>>,
    outboxes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Vec<Outgoing>>>>,
    /// Peers bypassed (commands for their keys run here), each until the time given and
    /// then until a probe sees it answer again.
    down: Arc<Mutex<HashMap<NodeId, Instant>>>,
    faults: Arc<Faults>,
    stats: Stats,
    membership: tokio::sync::Mutex<()>,
    /// Serializes configuration installs (check, persist, swap).
    installing: tokio::sync::Mutex<()>,
}

/// paxos mode's [`Store`].
pub struct PaxosMode {
    node: Arc<Node>,
}

/// The time allowed for `bytes` to move, beyond a call's base timeout.
fn transfer_time(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / BYTES_PER_SECOND as f64)
}

fn peer_name(id: NodeId) -> String {
    format!("n{id}")
}

/// FNV-1a: a stable hash, the same in every process and build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Parses `1=127.0.0.1:7380,2=127.0.0.1:7381`.
pub fn parse_peers(text: &str) -> std::result::Result<Vec<Member>, String> {
    let mut members: Vec<Member> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("expected id=host:port, got {part:?}"))?;
        let id: NodeId = id.trim().parse().map_err(|_| format!("not a node id: {id:?}"))?;
        if id == 0 {
            return Err("node ids start at 1".into());
        }
        if members.iter().any(|m| m.id == id) {
            return Err(format!("node {id} is listed twice"));
        }
        members.push(Member { id, peer_addr: addr.trim().to_string() });
    }
    members.sort_by_key(|m| m.id);
    Ok(members)
}

impl PaxosMode {
    /// Opens the node's storage, starts its peer server, acceptor, driver and GC.
    pub async fn start(options: PaxosOptions, faults: Arc<Faults>) -> Result<Self> {
        let id = options.node_id;
        let (storage, recovered) = Storage::open(&options.data_dir)?;
        let config = match recovered.config {
            Some(config) => config,
            None if options.join => Config::default(),
            None => {
                let members = if options.peers.is_empty() {
                    vec![Member { id, peer_addr: options.peer_addr.clone() }]
                } else {
                    options.peers.clone()
                };
                if !members.iter().any(|m| m.id == id) {
                    return Err(Error::Config(format!("--peers does not list this node (--node-id {id})")));
                }
                let highest_id = members.iter().map(|m| m.id).max().unwrap_or(0);
                let config = Config { version: 1, members, previous: None, highest_id };
                storage.save_config(&config)?;
                config
            }
        };
        let storage = Arc::new(storage);
        let listener = tokio::net::TcpListener::bind(&options.peer_addr)
            .await
            .map_err(|e| Error::Config(format!("cannot listen for peers on {}: {e}", options.peer_addr)))?;
        let config_version = Arc::new(AtomicU64::new(config.version));
        let acceptor = spawn_acceptor(storage.clone(), config_version.clone());
        let (driver, driver_rx) = mpsc::unbounded_channel();
        let proposer = Proposer::with_quorums(
            id,
            config.quorums(),
            Options {
                phase_timeout: PHASE_TIMEOUT_TICKS,
                bytes_per_tick: BYTES_PER_SECOND * TICK.as_millis() as u64 / 1000,
                max_attempts: 8,
                one_round_trip: options.one_round_trip,
                unsafe_accept_quorum: options.unsafe_accept_quorum,
                backoff: 2,
            },
            recovered.counter,
        );
        tracing::info!(
            node = id,
            config = config.version,
            members = ?config.ids(),
            floor = ?recovered.floor,
            counter = recovered.counter,
            "paxos node starting"
        );
        let node = Arc::new(Node {
            id,
            options,
            storage,
            acceptor,
            driver,
            config: RwLock::new(config),
            config_version,
            clients: Mutex::new(HashMap::new()),
            outboxes: Mutex::new(HashMap::new()),
            down: Arc::new(Mutex::new(HashMap::new())),
            faults,
            stats: Stats::default(),
            membership: tokio::sync::Mutex::new(()),
            installing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(run_driver(node.clone(), proposer, recovered.counter, driver_rx));
        let server = PeerService { node: node.clone() };
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            if let Err(e) = crate::peer::server()
                .add_service(
                    peer::PeerServer::new(server)
                        .max_decoding_message_size(peer::MAX_MESSAGE)
                        .max_encoding_message_size(peer::MAX_MESSAGE),
                )
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!("peer server stopped: {e}");
            }
        });
        tokio::spawn(run_gc(Arc::downgrade(&node)));
        Ok(Self { node })
    }
}

fn spawn_acceptor(storage: Arc<Storage>, config_version: Arc<AtomicU64>) -> std::sync::mpsc::Sender<AcceptorJob> {
    let (tx, rx) = std::sync::mpsc::channel::<AcceptorJob>();
    std::thread::Builder::new()
        .name("paxos-acceptor".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while let Ok(more) = rx.try_recv() {
                    jobs.push(more);
                    if jobs.len() >= 256 {
                        break;
                    }
                }
                let all: Vec<(Bytes, AcceptorMessage)> = jobs.iter().flat_map(|j| j.batch.iter().cloned()).collect();
                match storage.handle(&all, config_version.load(Ordering::SeqCst)) {
                    Ok(replies) => {
                        let mut replies = replies.into_iter();
                        for job in jobs {
                            let mine: Vec<AcceptorReply> = replies.by_ref().take(job.batch.len()).collect();
                            let _ = job.reply.send(Ok(mine));
                        }
                    }
                    Err(e) => {
                        tracing::error!("acceptor storage failed: {e}");
                        for job in jobs {
                            let _ = job.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        })
        .expect("spawning the acceptor thread");
    tx
}

impl Node {
    fn config(&self) -> Config {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn isolated_from(&self, id: NodeId) -> bool {
        id != self.id && self.faults.is_isolated_from(&peer_name(id))
    }

    async fn local_acceptor(&self, batch: Vec<(Bytes, AcceptorMessage)>) -> Result<Vec<AcceptorReply>> {
        let (reply, rx) = oneshot::channel();
        self.acceptor
            .send(AcceptorJob { batch, reply })
            .map_err(|_| Error::TryAgain("the acceptor has stopped".into()))?;
        rx.await.map_err(|_| Error::TryAgain("the acceptor has stopped".into()))?
    }

    /// The gRPC client for node `id`, (re)made when its address changed.
    fn client(&self, id: NodeId) -> Result<PeerClient<Channel>> {
        let addr = {
            let config = self.config.read().unwrap_or_else(|e| e.into_inner());
            config
                .members
                .iter()
                .chain(config.previous.iter().flatten())
                .find(|m| m.id == id)
                .map(|m| m.peer_addr.clone())
                .ok_or_else(|| Error::TryAgain(format!("node {id} is not in the configuration")))?
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, client)) = clients.get(&id)
            && *known == addr
        {
            return Ok(client.clone());
        }
        let client = peer::client(&addr).map_err(Error::Config)?;
        clients.insert(id, (addr, client.clone()));
        Ok(client)
    }

    fn outbox(self: &Arc<Self>, to: NodeId) -> mpsc::UnboundedSender<Vec<Outgoing>> {
        let mut outboxes = self.outboxes.lock().unwrap_or_else(|e| e.into_inner());
        outboxes
            .entry(to)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run_outbox(Arc::downgrade(self), to, rx));
                tx
            })
            .clone()
    }

    /// Sends acceptor messages to `to` and returns its replies (a lost call: an error).
    async fn call_acceptor(&self, to: NodeId, batch: Vec<Outgoing>) -> Result<Vec<(Bytes, u64, AcceptorReply)>> {
        if to == self.id {
            let rounds: Vec<(Bytes, u64)> = batch.iter().map(|(k, r, _)| (k.clone(), *r)).collect();
            let replies = self.local_acceptor(batch.into_iter().map(|(k, _, m)| (k, m)).collect()).await?;
            return Ok(rounds.into_iter().zip(replies).map(|((k, r), reply)| (k, r, reply)).collect());
        }
        if self.isolated_from(to) {
            return Err(Error::TryAgain(format!("partitioned from n{to}")));
        }
        let mut client = self.client(to)?;
        let request = proto::PaxosBatch {
            from: self.id,
            messages: batch.iter().map(|(k, r, m)| wire::message_to(k.clone(), *r, m)).collect(),
        };
        let carried: usize = request.messages.iter().map(prost::Message::encoded_len).sum();
        let response = tokio::time::timeout(PAXOS_RPC_TIMEOUT + transfer_time(carried), client.paxos(request))
            .await
            .map_err(|_| Error::Uncertain(format!("n{to} did not answer in time")))?
            .map_err(|s| Error::Uncertain(format!("n{to}: {}", s.message())))?;
        let mut replies = Vec::new();
        for reply in response.into_inner().replies {
            match wire::reply_from(reply) {
                Ok(reply) => replies.push(reply),
                // Peer input is input: a malformed reply counts as no answer from n{to}.
                Err(e) => tracing::warn!(peer = to, "dropping a malformed acceptor reply: {e}"),
            }
        }
        Ok(replies)
    }

    fn is_down(&self, id: NodeId) -> bool {
        self.isolated_from(id) || self.down.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id)
    }

    /// Bypasses peer `id` for at least [`DOWN_FOR`], then until it answers a ping.
    fn mark_down(&self, id: NodeId) {
        let probing = {
            let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            down.insert(id, Instant::now() + DOWN_FOR).is_some()
        };
        if probing {
            return;
        }
        let Ok(client) = self.client(id) else { return };
        let (down, faults, from) = (self.down.clone(), self.faults.clone(), self.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let answered = !faults.is_isolated_from(&peer_name(id))
                    && matches!(
                        tokio::time::timeout(PROBE_TIMEOUT, client.clone().ping(proto::PingRequest { from })).await,
                        Ok(Ok(_))
                    );
                let mut down = down.lock().unwrap_or_else(|e| e.into_inner());
                match down.get(&id) {
                    None => return,
                    Some(until) if answered && Instant::now() >= *until => {
                        down.remove(&id);
                        tracing::debug!(peer = id, "peer answers again");
                        return;
                    }
                    Some(_) => {}
                }
            }
        });
    }

    /// The home node of `key`: a stable hash over the members.
    fn home(&self, key: &[u8]) -> Option<NodeId> {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        let n = config.members.len() as u64;
        (n > 0).then(|| config.members[(fnv1a(key) % n) as usize].id)
    }

    /// Runs a command on this node's proposer.
    async fn propose(&self, key: Bytes, command: Command) -> Result<Outcome> {
        if self.config.read().unwrap_or_else(|e| e.into_inner()).members.is_empty() {
            return Err(Error::TryAgain("this node has not joined a cluster yet".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(DriverEvent::Submit { key, command, reply })
            .map_err(|_| Error::TryAgain("the proposer has stopped".into()))?;
        rx.await.map_err(|_| Error::Uncertain("the proposer stopped while the command ran".into()))?
    }

    /// Runs a command at its key's home, or here when the home is unreachable.
    async fn run(&self, key: Bytes, command: Command) -> Result<Outcome> {
        let home = self.home(&key);
        let Some(home) = home.filter(|h| *h != self.id && !self.is_down(*h)) else {
            if home.is_some_and(|h| h != self.id) {
                self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            return self.propose(key, command).await;
        };
        let request = wire::forward_to(self.id, key.clone(), &command)?;
        let mut client = self.client(home)?;
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let deadline = FORWARD_TIMEOUT + transfer_time(prost::Message::encoded_len(&request));
        match tokio::time::timeout(deadline, client.forward(request)).await {
            Ok(Ok(reply)) => wire::outcome_from(reply.into_inner()),
            Ok(Err(status)) if peer::never_sent(&status) || status.code() == tonic::Code::FailedPrecondition => {
                tracing::debug!(home, "forward not sent ({}); running here", status.message());
                antithesis_sdk::assert_sometimes!(true, "paxos: a forward to an unreachable home ran locally");
                self.mark_down(home);
                self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
                self.propose(key, command).await
            }
            Err(_) => {
                // The home is alive (a hung one loses its connection to the keepalive first)
                // but slow: running the command here too would only duel with it.
                let why = format!("n{home} did not answer the forwarded command in time");
                if command == Command::Read { Err(Error::TryAgain(why)) } else { Err(Error::Uncertain(why)) }
            }
            Ok(Err(status)) => {
                // The connection failed after the command was sent (reset, or the keepalive
                // found the home hung): bypass the home for a while.
                self.mark_down(home);
                if command == Command::Read {
                    // A read changes nothing: running it again here is safe.
                    self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
                    self.propose(key, command).await
                } else {
                    Err(Error::Uncertain(format!("forward to n{home}: {}", status.message())))
                }
            }
        }
    }

    /// Every key some acceptor of a quorum holds a value for: a superset of the keys whose
    /// value was chosen before the call (every chosen value is on a quorum, and quorums meet).
    async fn keys_from_quorum(self: &Arc<Self>, tombstones: bool) -> Result<BTreeSet<Bytes>> {
        let filter = if tombstones { KeyFilter::All } else { KeyFilter::Values };
        let config = self.config();
        let calls = config.everyone().into_iter().map(|m| {
            let node = self.clone();
            async move {
                let keys = async {
                    if m.id == node.id {
                        let storage = node.storage.clone();
                        tokio::task::spawn_blocking(move || storage.keys(filter, None, usize::MAX, |_| true))
                            .await
                            .map_err(|e| Error::Io(e.to_string()))?
                    } else if node.isolated_from(m.id) {
                        Err(Error::TryAgain(format!("partitioned from n{}", m.id)))
                    } else {
                        let mut client = node.client(m.id)?;
                        let request = proto::ListKeysRequest { from: node.id, tombstones };
                        match tokio::time::timeout(Duration::from_secs(2), client.list_keys(request)).await {
                            Ok(Ok(reply)) => Ok(reply.into_inner().keys),
                            Ok(Err(s)) => Err(Error::TryAgain(s.message().to_string())),
                            Err(_) => Err(Error::TryAgain(format!("n{} did not answer in time", m.id))),
                        }
                    }
                }
                .await;
                (m.id, keys)
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let mut answered = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (id, result) in results {
            if let Ok(list) = result {
                answered.insert(id);
                keys.extend(list);
            }
        }
        if !config.quorums().is_quorum(&answered) {
            return Err(Error::TryAgain("no quorum of acceptors answered the key listing".into()));
        }
        Ok(keys)
    }

    /// Installs `config` if it is newer: persisted first, then the proposer switches.
    async fn install(&self, config: Config) -> Result<bool> {
        let _one_at_a_time = self.installing.lock().await;
        {
            let current = self.config.read().unwrap_or_else(|e| e.into_inner());
            if config.version <= current.version {
                return Ok(config == *current);
            }
        }
        let storage = self.storage.clone();
        let saved = config.clone();
        tokio::task::spawn_blocking(move || storage.save_config(&saved))
            .await
            .map_err(|e| Error::Io(e.to_string()))??;
        {
            let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
            if config.version <= current.version {
                return Ok(config == *current);
            }
            *current = config.clone();
            self.config_version.store(config.version, Ordering::SeqCst);
        }
        tracing::info!(version = config.version, members = ?config.ids(), joint = config.previous.is_some(), "configuration installed");
        let (done, rx) = oneshot::channel();
        let _ = self.driver.send(DriverEvent::SetConfig { config, done });
        let _ = rx.await;
        Ok(true)
    }

    /// Pushes `config` to `nodes` (and installs it here); returns the nodes that refused or failed.
    async fn push_config(self: &Arc<Self>, config: &Config, nodes: &[Member]) -> Vec<String> {
        let calls = nodes.iter().map(|m| {
            let node = self.clone();
            let config = config.clone();
            let m = m.clone();
            async move {
                let result = if m.id == node.id {
                    node.install(config).await
                } else {
                    let mut client = match peer::client(&m.peer_addr) {
                        Ok(c) => c,
                        Err(e) => return Some(format!("n{}: {e}", m.id)),
                    };
                    match tokio::time::timeout(Duration::from_secs(5), client.configure(wire::config_to(&config))).await
                    {
                        Ok(Ok(reply)) => Ok(reply.into_inner().installed),
                        Ok(Err(s)) => Err(Error::TryAgain(s.message().to_string())),
                        Err(_) => Err(Error::TryAgain("timed out".into())),
                    }
                };
                match result {
                    Ok(true) => None,
                    Ok(false) => Some(format!("n{} holds a newer configuration", m.id)),
                    Err(e) => Some(format!("n{}: {e}", m.id)),
                }
            }
        });
        futures_util::future::join_all(calls).await.into_iter().flatten().collect()
    }
}

async fn run_outbox(node: std::sync::Weak<Node>, to: NodeId, mut rx: mpsc::UnboundedReceiver<Vec<Outgoing>>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let Some(node) = node.upgrade() else { return };
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        tokio::spawn(async move {
            let _permit = permit;
            match node.call_acceptor(to, batch).await {
                Ok(replies) => {
                    let mut paxos = Vec::new();
                    for (key, round, reply) in replies {
                        match reply {
                            AcceptorReply::Paxos(r) => paxos.push((key, round, r)),
                            AcceptorReply::Removed(true) => {
                                node.stats.collected.fetch_add(1, Ordering::Relaxed);
                            }
                            AcceptorReply::Removed(false) => {}
                        }
                    }
                    if !paxos.is_empty() {
                        let _ = node.driver.send(DriverEvent::Replies { from: to, replies: paxos });
                    }
                }
                Err(e) => tracing::trace!(to, "acceptor call failed: {e}"),
            }
        });
    }
}

async fn run_driver(
    node: Arc<Node>,
    mut proposer: Proposer,
    mut reserved: u64,
    mut rx: mpsc::UnboundedReceiver<DriverEvent>,
) {
    let mut waiting: HashMap<CommandId, oneshot::Sender<Result<Outcome>>> = HashMap::new();
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
        for event in events {
            match event {
                DriverEvent::Submit { key, command, reply } => {
                    next_id += 1;
                    waiting.insert(next_id, reply);
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
            }
        }
        let Some(node) = node_weak.upgrade() else { return };
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
                    if let Some(reply) = waiting.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
        for (to, batch) in sends {
            let _ = node.outbox(to).send(batch);
        }
        *node.stats.proposer.lock().unwrap_or_else(|e| e.into_inner()) = proposer.stats();
    }
}

/// Collects tombstones: each pass takes the next batch of tombstones this node holds and is
/// home for (a cursor walks the whole table), and every tenth pass any tombstone it holds, so
/// one whose removal message was lost on the way to this acceptor is collected again.
async fn run_gc(node: std::sync::Weak<Node>) {
    const BATCH: usize = 256;
    let interval = match node.upgrade() {
        Some(n) => n.options.gc_interval,
        None => return,
    };
    if interval.is_zero() {
        return;
    }
    let mut cursor: Option<Bytes> = None;
    let mut pass = 0u64;
    loop {
        tokio::time::sleep(interval).await;
        let Some(node) = node.upgrade() else { return };
        let config = node.config();
        if config.previous.is_some() || !config.members.iter().any(|m| m.id == node.id) {
            continue; // no collection while a membership change runs
        }
        pass += 1;
        let everything = pass.is_multiple_of(10);
        let scan = node.clone();
        let after = cursor.clone();
        let found = tokio::task::spawn_blocking(move || {
            scan.storage
                .keys(KeyFilter::Tombstones, after.as_deref(), BATCH, |k| everything || scan.home(k) == Some(scan.id))
        })
        .await;
        let Ok(Ok(tombstones)) = found else { continue };
        cursor = if tombstones.len() < BATCH { None } else { tombstones.last().cloned() };
        for key in tombstones {
            match node.propose(key.clone(), Command::Collect).await {
                Ok(Outcome::Collected(Some(ballot))) => {
                    remove_everywhere(&node, &config, key, ballot);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("collecting a tombstone: {e}"),
            }
        }
    }
}

fn remove_everywhere(node: &Arc<Node>, config: &Config, key: Bytes, ballot: Ballot) {
    for m in &config.members {
        let message = AcceptorMessage::Remove { ballot, config_version: config.version };
        let _ = node.outbox(m.id).send(vec![(key.clone(), 0, message)]);
    }
}

fn outcome_reply(outcome: Outcome) -> Result<MutationReply> {
    match outcome {
        Outcome::Write(reply) => Ok(reply),
        other => Err(Error::Io(format!("a write answered {other:?}"))),
    }
}

/// Combines per-key results of a multi-key write: any doubt makes the whole doubtful, and a
/// failure after some keys changed is doubtful too (the command was partly applied).
fn combine<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    let applied = results.iter().filter(|r| r.is_ok()).count();
    let mut values = Vec::new();
    let mut failure: Option<Error> = None;
    for r in results {
        match r {
            Ok(v) => values.push(v),
            Err(e @ Error::Uncertain(_)) => failure = Some(e),
            Err(e) => {
                if !matches!(failure, Some(Error::Uncertain(_))) {
                    failure = Some(e);
                }
            }
        }
    }
    match failure {
        None => Ok(values),
        Some(Error::Uncertain(m)) => Err(Error::Uncertain(m)),
        Some(e) if applied > 0 => Err(Error::Uncertain(format!("partly applied: {e}"))),
        Some(e) => Err(e),
    }
}

#[async_trait]
impl Store for PaxosMode {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        match self.node.run(Bytes::copy_from_slice(key), Command::Read).await? {
            Outcome::Read(v) => Ok(v),
            other => Err(Error::Io(format!("a read answered {other:?}"))),
        }
    }

    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        let reads = keys.iter().map(|k| self.get(k));
        futures_util::future::join_all(reads).await.into_iter().collect()
    }

    async fn dbsize(&self) -> Result<u64> {
        // Tombstones included, and each key read through a quorum (see FLUSHALL).
        let keys = self.node.keys_from_quorum(true).await?;
        let node = self.node.clone();
        let results: Vec<Result<Outcome>> = futures_util::stream::iter(keys)
            .map(|k| {
                let node = node.clone();
                async move { node.run(k, Command::Read).await }
            })
            .buffer_unordered(SCAN_PARALLELISM)
            .collect()
            .await;
        let mut n = 0;
        for r in results {
            if let Outcome::Read(Some(_)) = r? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply> {
        match mutation {
            Mutation::Set { ref key, .. } | Mutation::Update { ref key, .. } => {
                let key = key.clone();
                outcome_reply(self.node.run(key, Command::Write(mutation)).await?)
            }
            Mutation::Del { keys } => {
                let mut unique = keys.clone();
                unique.sort();
                unique.dedup();
                let dels = unique.into_iter().map(|k| {
                    let node = self.node.clone();
                    async move { node.run(k.clone(), Command::Write(Mutation::Del { keys: vec![k] })).await }
                });
                let results = combine(futures_util::future::join_all(dels).await)?;
                let mut n = 0;
                for r in results {
                    if let MutationReply::Count(c) = outcome_reply(r)? {
                        n += c;
                    }
                }
                Ok(MutationReply::Count(n))
            }
            Mutation::FlushAll => {
                // Every slot, tombstones included: a key whose value is chosen on {A,B} while an
                // in-doubt DEL's tombstone landed only on B lists from {B,C} only as B's
                // tombstone. Deleting through it (a write on a quorum) settles the key.
                let keys = self.node.keys_from_quorum(true).await?;
                let node = self.node.clone();
                let results: Vec<Result<Outcome>> = futures_util::stream::iter(keys)
                    .map(|k| {
                        let node = node.clone();
                        async move { node.run(k.clone(), Command::Write(Mutation::Del { keys: vec![k] })).await }
                    })
                    .buffer_unordered(SCAN_PARALLELISM)
                    .collect()
                    .await;
                combine(results)?;
                Ok(MutationReply::Done)
            }
        }
    }

    /// This node's acceptor slots: keys with a value here, plus tombstones not yet collected
    /// (an approximation; DBSIZE gives the exact, linearizable count).
    fn local_dbsize(&self) -> Option<u64> {
        self.node.storage.slot_count().ok()
    }

    fn describe(&self) -> ModeInfo {
        let node = &self.node;
        let config = node.config();
        let p = *node.stats.proposer.lock().unwrap_or_else(|e| e.into_inner());
        let list = |ms: &[Member]| ms.iter().map(|m| format!("{}={}", m.id, m.peer_addr)).collect::<Vec<_>>().join(",");
        let mut details = vec![
            ("paxos_node_id".into(), node.id.to_string()),
            ("paxos_peer_addr".into(), node.options.peer_addr.clone()),
            ("paxos_config_version".into(), config.version.to_string()),
            ("paxos_members".into(), list(&config.members)),
            ("paxos_joint".into(), if config.previous.is_some() { "1" } else { "0" }.into()),
            ("paxos_one_round_trip".into(), if node.options.one_round_trip { "on" } else { "off" }.into()),
            ("paxos_slots".into(), node.storage.slot_count().map(|n| n.to_string()).unwrap_or_else(|e| e.to_string())),
            (
                "paxos_gc_floor".into(),
                node.storage.floor().map(|b| format!("{}.{}", b.counter, b.node)).unwrap_or_default(),
            ),
            ("paxos_tombstones_collected".into(), node.stats.collected.load(Ordering::Relaxed).to_string()),
            ("paxos_rounds".into(), p.rounds.to_string()),
            ("paxos_commands".into(), p.commands.to_string()),
            ("paxos_one_round_trip_rounds".into(), p.one_round_trip.to_string()),
            ("paxos_retries".into(), p.retries.to_string()),
            ("paxos_forwarded".into(), node.stats.forwarded.load(Ordering::Relaxed).to_string()),
            ("paxos_served_for_peers".into(), node.stats.served_for_peers.load(Ordering::Relaxed).to_string()),
            ("paxos_local_fallbacks".into(), node.stats.local_fallbacks.load(Ordering::Relaxed).to_string()),
        ];
        if let Some(previous) = &config.previous {
            details.push(("paxos_previous_members".into(), list(previous)));
        }
        ModeInfo { mode: "paxos", details }
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        self.change_membership(change).await
    }
}

impl PaxosMode {
    /// Membership change by joint consensus (the safe reading of §2.3):
    ///
    /// 1. Every node of the old and new configuration installs the *joint* configuration,
    ///    whose quorums are a majority of the new members **and** a majority of the old ones;
    ///    each node drops its cached 1-RTT promises and restarts or fails rounds counted
    ///    against the old quorums. All must confirm, or the change is rolled back.
    /// 2. Rescan: every key any old quorum holds is read through the proposer. A read is an
    ///    identity write, so its value is re-accepted by a joint quorum, which includes a
    ///    majority of the new members.
    /// 3. Every node installs the new configuration alone.
    ///
    /// Any two quorums used before, during and after the change intersect, so no chosen
    /// value is lost and none comes back. One change at a time; a change interrupted after
    /// step 1 leaves the cluster in the (safe, slower) joint configuration and is finished by
    /// asking for the same change again.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        let node = &self.node;
        let _one_at_a_time = node.membership.lock().await;
        let current = node.config();
        let target: Vec<Member> = match &change {
            MembershipChange::Show => return Ok(show(&current)),
            MembershipChange::Add { id, peer_addr } => {
                let base = current.members.clone();
                let resuming = current.previous.is_some() && base.iter().any(|m| m.id == *id);
                if *id <= current.highest_id && !base.iter().any(|m| m.id == *id) && !resuming {
                    return Err(Error::Input(format!(
                        "node id {id} was already used (highest so far: {}): a new node needs a new id",
                        current.highest_id
                    )));
                }
                if let Some(m) = base.iter().find(|m| m.id == *id) {
                    if m.peer_addr != *peer_addr {
                        return Err(Error::Input(format!("node {id} is already a member at {}", m.peer_addr)));
                    }
                    if current.previous.is_none() {
                        return Ok(show(&current));
                    }
                }
                let mut members = base;
                if !members.iter().any(|m| m.id == *id) {
                    members.push(Member { id: *id, peer_addr: peer_addr.clone() });
                }
                members.sort_by_key(|m| m.id);
                members
            }
            MembershipChange::Remove { id } => {
                if !current.members.iter().any(|m| m.id == *id) && current.previous.is_none() {
                    return Ok(show(&current));
                }
                let members: Vec<Member> = current.members.iter().filter(|m| m.id != *id).cloned().collect();
                if members.is_empty() {
                    return Err(Error::Input("cannot remove the last member".into()));
                }
                members
            }
        };
        let joint = match &current.previous {
            Some(_) if current.members == target => current.clone(), // finish an interrupted change
            Some(_) => {
                return Err(Error::TryAgain(
                    "another membership change is unfinished: repeat it before starting a new one".into(),
                ));
            }
            None => Config {
                version: current.version + 1,
                highest_id: target.iter().map(|m| m.id).max().unwrap_or(0).max(current.highest_id),
                members: target.clone(),
                previous: Some(current.members.clone()),
            },
        };
        let everyone = joint.everyone();
        let failed = node.push_config(&joint, &everyone).await;
        if !failed.is_empty() {
            if current.previous.is_none() {
                let back = Config {
                    version: joint.version + 1,
                    members: current.members.clone(),
                    previous: None,
                    highest_id: joint.highest_id,
                };
                let _ = node.push_config(&back, &everyone).await;
            }
            return Err(Error::TryAgain(format!(
                "every node must install the joint configuration; failed: {}",
                failed.join("; ")
            )));
        }
        // Rescan: bring every key — values and tombstones — onto a quorum of the new members.
        let keys = node.keys_from_quorum(true).await?;
        let scanned = keys.len();
        let results: Vec<Result<Outcome>> = futures_util::stream::iter(keys)
            .map(|k| {
                let node = node.clone();
                async move {
                    let mut last = Err(Error::TryAgain("not tried".into()));
                    for _ in 0..5 {
                        last = node.propose(k.clone(), Command::Read).await;
                        if last.is_ok() {
                            break;
                        }
                    }
                    last
                }
            })
            .buffer_unordered(SCAN_PARALLELISM)
            .collect()
            .await;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            return Err(Error::TryAgain(format!(
                "rescan failed ({e}); the cluster stays in the joint configuration: repeat the command"
            )));
        }
        let last = Config { version: joint.version + 1, members: target, previous: None, highest_id: joint.highest_id };
        let failed = node.push_config(&last, &everyone).await;
        tracing::info!(scanned, version = last.version, "membership change done");
        let mut lines = show(&last);
        lines.push(format!("rescanned {scanned} keys"));
        if !failed.is_empty() {
            lines.push(format!("not yet told (they stay joint, which is safe): {}", failed.join("; ")));
        }
        Ok(lines)
    }
}

fn show(config: &Config) -> Vec<String> {
    let mut lines = vec![format!("version {}", config.version)];
    lines.extend(config.members.iter().map(|m| format!("member {} {}", m.id, m.peer_addr)));
    if let Some(previous) = &config.previous {
        lines.extend(previous.iter().map(|m| format!("previous {} {}", m.id, m.peer_addr)));
    }
    lines
}

struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    fn check_from(&self, from: NodeId) -> std::result::Result<(), tonic::Status> {
        if self.node.isolated_from(from) {
            // Refused before anything ran: the caller may run the command elsewhere.
            return Err(tonic::Status::failed_precondition(format!("partitioned from n{from}")));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl peer::Peer for PeerService {
    async fn paxos(
        &self,
        request: tonic::Request<proto::PaxosBatch>,
    ) -> std::result::Result<tonic::Response<proto::PaxosReplies>, tonic::Status> {
        let batch = request.into_inner();
        self.check_from(batch.from)?;
        let mut rounds = Vec::with_capacity(batch.messages.len());
        let mut messages = Vec::with_capacity(batch.messages.len());
        for m in batch.messages {
            let (key, round, message) =
                wire::message_from(m).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            rounds.push((key.clone(), round));
            messages.push((key, message));
        }
        let replies =
            self.node.local_acceptor(messages).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let replies = rounds.into_iter().zip(replies).map(|((k, r), reply)| wire::reply_to(k, r, reply)).collect();
        Ok(tonic::Response::new(proto::PaxosReplies { replies }))
    }

    async fn forward(
        &self,
        request: tonic::Request<proto::ForwardRequest>,
    ) -> std::result::Result<tonic::Response<proto::ForwardReply>, tonic::Status> {
        let request = request.into_inner();
        self.check_from(request.from)?;
        self.node.stats.served_for_peers.fetch_add(1, Ordering::Relaxed);
        let result = match wire::forward_from(request) {
            Ok((key, command)) => self.node.propose(key, command).await,
            Err(e) => Err(e),
        };
        Ok(tonic::Response::new(wire::outcome_to(result)))
    }

    async fn list_keys(
        &self,
        request: tonic::Request<proto::ListKeysRequest>,
    ) -> std::result::Result<tonic::Response<proto::ListKeysReply>, tonic::Status> {
        let request = request.into_inner();
        self.check_from(request.from)?;
        let storage = self.node.storage.clone();
        let filter = if request.tombstones { KeyFilter::All } else { KeyFilter::Values };
        let keys = tokio::task::spawn_blocking(move || storage.keys(filter, None, usize::MAX, |_| true))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let config_version = self.node.config_version.load(Ordering::SeqCst);
        Ok(tonic::Response::new(proto::ListKeysReply { keys, config_version }))
    }

    async fn ping(
        &self,
        request: tonic::Request<proto::PingRequest>,
    ) -> std::result::Result<tonic::Response<proto::Empty>, tonic::Status> {
        self.check_from(request.into_inner().from)?;
        Ok(tonic::Response::new(proto::Empty {}))
    }

    async fn configure(
        &self,
        request: tonic::Request<proto::Config>,
    ) -> std::result::Result<tonic::Response<proto::ConfigReply>, tonic::Status> {
        let config = wire::config_from(request.into_inner());
        let installed = self.node.install(config).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let current = wire::config_to(&self.node.config());
        Ok(tonic::Response::new(proto::ConfigReply { installed, current: Some(current) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_homes_are_stable() {
        let peers = parse_peers("2=127.0.0.1:2, 1=127.0.0.1:1").unwrap();
        assert_eq!(peers.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2]);
        assert!(parse_peers("1=a,1=b").is_err());
        assert!(parse_peers("0=a").is_err());
        assert!(parse_peers("x").is_err());
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a test vector");
    }

    /// The sequence from a review: a value chosen on {A,B}; an in-doubt DEL whose tombstone
    /// landed on B alone; a FLUSHALL whose key listing comes from {B,C}. Listing only slots
    /// that hold values skipped the key, FLUSHALL answered OK, and a GET served by {A,C}
    /// returned the value. Every slot is listed now, tombstones too, and read through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flushall_removes_a_key_whose_listing_quorum_holds_only_a_tombstone() {
        use super::super::acceptor::Request as AcceptorRequest;
        use crate::store::SetOptions;
        let tmp = tempfile::tempdir().unwrap();
        let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let members: Vec<Member> =
            (1..=3).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", port()) }).collect();
        let mut nodes = Vec::new();
        for m in &members {
            let options = PaxosOptions {
                node_id: m.id,
                peer_addr: m.peer_addr.clone(),
                peers: members.clone(),
                join: false,
                data_dir: tmp.path().join(format!("n{}", m.id)),
                one_round_trip: false,
                unsafe_accept_quorum: None,
                gc_interval: Duration::ZERO,
            };
            nodes.push(PaxosMode::start(options, Arc::new(Faults::default())).await.unwrap());
        }
        let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
        let key = Bytes::from_static(b"k");
        // The value is chosen on {A,B}: C is cut off from both while it is written through A.
        c.node.faults.isolate(["n1".to_string(), "n2".to_string()]);
        a.node.faults.isolate(["n3".to_string()]);
        b.node.faults.isolate(["n3".to_string()]);
        let written = a.node.propose(
            key.clone(),
            Command::Write(Mutation::Set {
                key: key.clone(),
                value: Bytes::from_static(b"v"),
                options: SetOptions::default(),
            }),
        );
        assert!(written.await.is_ok());
        // An in-doubt DEL: its accept (a tombstone at a higher ballot) reached B alone.
        let ballot = Ballot { counter: 1 << 40, node: 2 };
        let tombstone = AcceptorMessage::Paxos(AcceptorRequest::Accept { ballot, value: None, promise_next: false });
        let version = b.node.config_version.load(Ordering::SeqCst);
        b.node.storage.handle(&[(key.clone(), tombstone)], version).unwrap();
        // FLUSHALL through C, which reaches B but not A: its listing quorum is {B,C}.
        for n in [a, b, c] {
            n.node.faults.heal();
        }
        c.node.faults.isolate(["n1".to_string()]);
        a.node.faults.isolate(["n3".to_string()]);
        c.flushall().await.unwrap();
        // A GET served by {A,C} must not bring the value back.
        for n in [a, b, c] {
            n.node.faults.heal();
        }
        a.node.faults.isolate(["n2".to_string()]);
        c.node.faults.isolate(["n2".to_string()]);
        assert_eq!(c.node.propose(key.clone(), Command::Read).await.unwrap(), Outcome::Read(None));
        assert_eq!(c.dbsize().await.unwrap(), 0);
    }

    #[test]
    fn multi_key_results_combine_conservatively() {
        let ok = |n: u64| Ok::<u64, Error>(n);
        assert_eq!(combine(vec![ok(1), ok(0)]).unwrap(), vec![1, 0]);
        assert!(matches!(combine(vec![ok(1), Err(Error::TryAgain("x".into()))]), Err(Error::Uncertain(_))));
        assert!(matches!(combine::<u64>(vec![Err(Error::TryAgain("x".into()))]), Err(Error::TryAgain(_))));
        assert!(matches!(
            combine::<u64>(vec![Err(Error::Uncertain("u".into())), Err(Error::TryAgain("x".into()))]),
            Err(Error::Uncertain(_))
        ));
    }
}
