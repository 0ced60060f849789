//! dynamo mode behind the [`Store`] trait (plain Redis clients) and the [`Siblings`] trait
//! (VGET/VSET/VDEL), and how a node starts.
//!
//! A plain SET or DEL writes under the coordinating owner's current context: it replaces what
//! that owner has seen, and a concurrent write through another owner survives as a sibling.
//! GET answers one sibling (the latest by timestamp, then dot) unless `--sibling-read error`.
//! Commands that need an atomic read-modify-write (INCR, APPEND, SET NX/XX/GET) are refused:
//! dynamo mode cannot give them, and a silent last-writer-wins would lose updates.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::coordinator::Reply;
use super::dvv::{ContextKey, Object, VersionVector};
use super::node::{DynamoOptions, Node, SHUTDOWN_GRACE, SiblingRead, Stats, run_driver, spawn_writer};
use super::ring::Ring;
use super::service::Service;
use super::storage::Storage;
use super::swim::{self, Health, Swim};
use super::wire::{ForwardReply, Forwarded};
use crate::error::{Error, Result};
use crate::node::lock;
use crate::node::{Faults, Tasks};
use crate::peer::{self, CallError};
use crate::store::{
    Membership, MembershipChange, ModeInfo, Mutation, MutationReply, Pattern, ScanPage, SetCondition, SetReply,
    SiblingView, Siblings, Store, UpdateOp, Versioned, VersionedWrite, merge,
};

/// Keys FLUSHALL deletes (and DBSIZE reads) at once.
const FLUSH_PARALLELISM: usize = 32;

/// The refusal of a read-modify-write command.
fn no_atomic_update(command: &str) -> Error {
    Error::Input(format!(
        "{command} needs an atomic read-modify-write, which dynamo mode cannot give (concurrent writes \
         become siblings); read with VGET, compute, and write with VSET and the context VGET returned"
    ))
}

/// dynamo mode's [`Store`].
pub struct DynamoMode {
    node: Arc<Node>,
}

impl DynamoMode {
    /// Starts a node: storage, the coordinator's driver, the peer server, the failure
    /// detector and hint replay.
    pub async fn start(options: DynamoOptions, faults: Arc<Faults>) -> Result<Self> {
        options.check().map_err(Error::Config)?;
        let id = options.node.node_id;
        let members = options.node.initial_members().map_err(Error::Config)?;
        // A joining node waits for the cluster's ring (`cluster add-node` sends it); until
        // then it owns nothing and refuses requests.
        let configured = if options.node.join {
            let me = crate::node::Member { id, peer_addr: options.node.peer_addr.clone() };
            Ring::joining(me, options.partitions, options.replicas)
        } else {
            Ring::new(&members, options.partitions, options.replicas).map_err(Error::Config)?
        };
        let (mut storage, counter) = Storage::open(&options.node.fs, &options.node.data_dir, options.partitions)?;
        let ring = match storage.load_ring()? {
            Some(stored) if stored.version() >= configured.version() => {
                if (stored.partitions(), stored.replicas()) != (options.partitions, options.replicas) {
                    return Err(Error::Config(format!(
                        "{} holds a ring of {} partitions and {} replicas: --vnodes and --replicas must match it",
                        options.node.data_dir.display(),
                        stored.partitions(),
                        stored.replicas()
                    )));
                }
                stored
            }
            _ => {
                if configured.version() > 0 {
                    storage.save_ring(&configured)?;
                }
                configured
            }
        };
        storage.set_max_hints(options.max_hints);
        storage.set_max_siblings(options.max_siblings);
        storage.set_causality(options.causality);
        if options.causality != super::dvv::Causality::Dvv {
            tracing::warn!(causality = ?options.causality, "dynamo: a broken reconciliation, for testing the checker");
        }
        let storage = Arc::new(storage);
        let listener = tokio::net::TcpListener::bind(options.node.listen_addr())
            .await
            .map_err(|e| Error::Config(format!("cannot listen for peers on {}: {e}", options.node.listen_addr())))?;
        tracing::info!(
            node = id,
            actor = format!("{:016x}", storage.actor()),
            members = ?ring.member_ids(),
            ring_version = ring.version(),
            n = options.replicas,
            r = options.r,
            w = options.w,
            "dynamo node starting"
        );
        let writer = spawn_writer(storage.clone(), counter);
        let (driver, driver_rx) = tokio::sync::mpsc::unbounded_channel();
        let (swim, inbox) = Swim::new();
        let (secret, tls) = (options.node.secret.clone(), options.node.peer_tls.clone());
        let node = Arc::new(Node {
            id,
            clients: peer::Clients::new(id, faults.clone(), secret.clone(), tls.clone(), options.node.metrics.clone()),
            options,
            storage,
            writer,
            ring: std::sync::RwLock::new(Arc::new(ring)),
            tasks: Tasks::default(),
            faults,
            driver,
            swim,
            stats: Stats::default(),
            rebalance: Default::default(),
            context_key: secret.as_ref().map(|s| ContextKey::new(s.key_for("dynamo contexts"))),
            peer_commands: Default::default(),
        });
        node.tasks.spawn(run_driver(node.clone(), driver_rx));
        let service = crate::peer::proto::dynamo_peer_server::DynamoPeerServer::new(Service { node: node.clone() })
            .max_decoding_message_size(peer::MAX_MESSAGE)
            .max_encoding_message_size(peer::MAX_MESSAGE);
        node.tasks.spawn(peer::serve(
            listener,
            service,
            node.faults.clone(),
            node.options.node.clone(),
            node.tasks.stopping(),
        ));
        node.tasks.spawn(swim::run(Arc::downgrade(&node), inbox));
        node.tasks.spawn(super::hints::run(Arc::downgrade(&node)));
        node.tasks.spawn(super::background::run(Arc::downgrade(&node)));
        Ok(Self { node })
    }

    /// A write of `value` (`None`: a delete) to `key`: coordinated here when this node owns
    /// the key, else forwarded to the first live owner.
    async fn write(&self, key: Bytes, context: Option<VersionVector>, value: Option<Bytes>, w: usize) -> Result<Reply> {
        let node = &self.node;
        let ring = node.ring();
        if ring.version() == 0 {
            return Err(Error::TryAgain(format!("n{} is joining the cluster and owns no key yet", node.id)));
        }
        let owners = ring.owners(&key);
        if owners.contains(&node.id) {
            return node.coordinate_put(key, context, value, w).await;
        }
        let alive = node.alive();
        let request = Forwarded { key, context, value, w };
        let mut why = Vec::new();
        for owner in owners.iter().copied().filter(|o| alive.contains(o)) {
            node.stats.forwarded.fetch_add(1, Ordering::Relaxed);
            match node.forward(owner, &request).await {
                Ok(ForwardReply::Written { context, dot }) => {
                    return Ok(Reply::Written { context, dot });
                }
                Ok(ForwardReply::TryAgain(m)) => why.push(format!("n{owner}: {m}")),
                Ok(ForwardReply::Uncertain(m)) => return Err(Error::Uncertain(format!("n{owner}: {m}"))),
                Ok(ForwardReply::Conflict(message)) => return Err(Error::Prefixed { prefix: "CONFLICT", message }),
                Err(e @ (CallError::NotSent(_) | CallError::Refused(_))) => why.push(format!("n{owner}: {e}")),
                Err(CallError::MaybeSent(m)) => {
                    return Err(Error::Uncertain(format!("the write was forwarded to n{owner}, which failed: {m}")));
                }
            }
        }
        if why.is_empty() {
            why.push(format!("no owner of the key ({owners:?}) is up"));
        }
        Err(Error::TryAgain(why.join("; ")))
    }

    /// DEL of one key: a quorum read, then a tombstone under the context read, so the delete
    /// supersedes every value the read could see (not only the coordinator's own). True when
    /// the key had a live value.
    async fn delete(&self, key: Bytes) -> Result<bool> {
        let object = self.read(key.clone(), self.node.options.r).await?;
        // Nothing live to delete: no tombstone (a DEL of keys never written must not grow
        // every replica).
        if object.live().next().is_none() {
            return Ok(false);
        }
        self.write(key, Some(object.context().clone()), None, self.node.options.w).await?;
        Ok(true)
    }

    async fn read(&self, key: Bytes, r: usize) -> Result<Object> {
        if self.node.ring().version() == 0 {
            return Err(Error::TryAgain(format!("n{} is joining the cluster and owns no key yet", self.node.id)));
        }
        match self.node.coordinate_get(key, r).await? {
            Reply::Read(object) => Ok(object),
            Reply::Written { .. } => Err(Error::TryAgain("a read was answered as a write".into())),
        }
    }

    /// Without a cluster secret contexts are not signed, so one a client hands back is
    /// checked against what the key's replicas know: a context naming writes no replica holds
    /// (an actor at a counter it never reached) would make every later write of that actor
    /// look already seen, and replicas would drop it. This node's own copy answers when it
    /// knows all of the context; otherwise an R-quorum read does. A context it still does not
    /// explain is refused before anything is written (TRYAGAIN: a client that read the key
    /// from replicas this read missed gets a context that passes by reading it again).
    async fn check_unsigned_context(&self, key: &Bytes, context: &VersionVector) -> Result<()> {
        if context.is_empty() {
            return Ok(());
        }
        let storage = self.node.storage.clone();
        let k = key.clone();
        let local =
            tokio::task::spawn_blocking(move || storage.get(&k)).await.map_err(|e| Error::Io(e.to_string()))??;
        if local.context().descends(context) {
            return Ok(());
        }
        let known = self.read(key.clone(), self.node.options.r).await?;
        if known.context().descends(context) {
            return Ok(());
        }
        Err(Error::TryAgain(
            "the context names writes no replica that answered holds; nothing was written (read the key again with VGET)"
                .into(),
        ))
    }

    /// A plain GET's answer from an object.
    fn plain(&self, object: &Object) -> Result<Option<Bytes>> {
        if self.node.options.sibling_read == SiblingRead::Error && object.live().count() > 1 {
            return Err(Error::Prefixed {
                prefix: "CONFLICT",
                message: format!("the key has {} siblings: read them with VGET", object.live().count()),
            });
        }
        Ok(object.pick().cloned())
    }

    fn check_quorum(&self, what: &str, n: Option<usize>, default: usize) -> Result<usize> {
        let n = n.unwrap_or(default);
        let replicas = self.node.ring().replicas();
        if n == 0 || n > replicas {
            return Err(Error::Input(format!("{what} {n} is not from 1 to the number of replicas ({replicas})")));
        }
        Ok(n)
    }

    /// Every key a live node holds an object for.
    async fn all_keys(&self) -> Result<Vec<Bytes>> {
        let storage = self.node.storage.clone();
        let mut keys: std::collections::BTreeSet<Bytes> = tokio::task::spawn_blocking(move || storage.keys())
            .await
            .map_err(|e| Error::Io(e.to_string()))??
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for peer in self.node.alive() {
            keys.extend(self.node.keys_of(peer).await?);
        }
        Ok(keys.into_iter().collect())
    }
}

/// How long `VALTHREE.MEMBERS ADD|REMOVE` waits for the data to move before it answers.
const MEMBERSHIP_WAIT: std::time::Duration = std::time::Duration::from_secs(280);

#[async_trait]
impl Membership for DynamoMode {
    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        let node = &self.node;
        let ring = node.ring();
        let (subject, joins) = match &change {
            MembershipChange::Add { id, .. } => (*id, true),
            MembershipChange::Remove { id } => (*id, false),
            MembershipChange::Show => (0, false),
        };
        let next = match change {
            MembershipChange::Show => {
                let mut lines = vec![format!(
                    "ring version {}{}",
                    ring.version(),
                    if ring.changing() { " (a change in progress)" } else { "" }
                )];
                for m in ring.members() {
                    lines.push(format!("n{} {} holds {} partitions", m.id, m.peer_addr, ring.held_by(m.id).len()));
                }
                return Ok(lines);
            }
            // The change already in progress, asked for again (after an answer that it goes
            // on in the background): wait for it once more.
            MembershipChange::Add { id, .. } if ring.adding(id) => (*ring).clone(),
            MembershipChange::Remove { id } if ring.removing(id) => (*ring).clone(),
            MembershipChange::Add { id, peer_addr } => {
                ring.with_join(crate::node::Member { id, peer_addr }).map_err(Error::Input)?
            }
            MembershipChange::Remove { id } => ring.with_leave(id).map_err(Error::Input)?,
        };
        let moving = next.moving().len();
        if next.version() > ring.version() {
            node.adopt(next.clone())?;
            super::rebalance::announce(node, &next, &ring).await;
        }
        if next.changing() {
            super::rebalance::wait_done(node, &next, MEMBERSHIP_WAIT).await?;
        }
        let done = node.ring();
        if done.member_ids().contains(&subject) != joins {
            let what = if joins { "join" } else { "leave" };
            return Err(Error::TryAgain(format!("the {what} of n{subject} was called off")));
        }
        let mut lines = vec![format!(
            "ring version {}: {moving} of {} preference lists changed",
            done.version(),
            done.partitions()
        )];
        for id in done.member_ids() {
            lines.push(format!("n{id} holds {} partitions", done.held_by(id).len()));
        }
        Ok(lines)
    }
}

#[async_trait]
impl Store for DynamoMode {
    fn membership(&self) -> Option<&dyn Membership> {
        Some(self)
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let object = self.read(Bytes::copy_from_slice(key), self.node.options.r).await?;
        self.plain(&object)
    }

    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        self.get_each(keys).await.into_iter().collect()
    }

    async fn get_each(&self, keys: &[Bytes]) -> Vec<Result<Option<Bytes>>> {
        let reads = keys.iter().map(|k| self.read(k.clone(), self.node.options.r));
        let objects = futures_util::future::join_all(reads).await;
        objects.into_iter().map(|o| o.and_then(|o| self.plain(&o))).collect()
    }

    /// Counts keys with a live sibling (siblings are no conflict for EXISTS).
    async fn exists(&self, keys: &[Bytes]) -> Result<u64> {
        let reads = keys.iter().map(|k| self.read(k.clone(), self.node.options.r));
        let mut n = 0;
        for object in futures_util::future::join_all(reads).await {
            n += u64::from(object?.live().next().is_some());
        }
        Ok(n)
    }

    /// The keys with a live value: every key a live node holds, each read from a quorum
    /// (R + W > N makes it count every acknowledged write; documented as a scan, not O(1)).
    async fn dbsize(&self) -> Result<u64> {
        let keys = self.all_keys().await?;
        let reads: Vec<Result<Object>> = futures_util::stream::iter(keys)
            .map(|k| self.read(k, self.node.options.r))
            .buffer_unordered(FLUSH_PARALLELISM)
            .collect()
            .await;
        let mut n = 0;
        for object in reads {
            n += u64::from(object?.live().next().is_some());
        }
        Ok(n)
    }

    /// One page: every live node lists its keys in the page's range of the scan order, and
    /// the page ends where the shortest listing ends. A key some node holds live is returned;
    /// if another node holds only a tombstone for it, it is first read from an R-quorum (as
    /// GET reads it) and returned only if a sibling is live, so a key deleted before the page
    /// is not returned once a tombstone reached any node asked.
    async fn scan(&self, cursor: u64, count: usize, pattern: Option<&Pattern>) -> Result<ScanPage> {
        let storage = self.node.storage.clone();
        let mut listings = vec![
            tokio::task::spawn_blocking(move || storage.scan(cursor, count))
                .await
                .map_err(|e| Error::Io(e.to_string()))??,
        ];
        let peers = self.node.alive();
        let remote = futures_util::future::join_all(peers.iter().map(|&p| self.node.scan_of(p, cursor, count))).await;
        for listing in remote {
            listings.push(listing?);
        }
        let merged = merge(cursor, &listings);
        let matching = |k: &Bytes| pattern.is_none_or(|p| p.matches_everything() || p.matches(k));
        let candidates: Vec<_> = merged.keys.into_iter().filter(|m| matching(&m.key)).collect();
        let checked: Vec<(Bytes, Result<bool>)> = futures_util::stream::iter(candidates)
            .map(|m| async move {
                if m.dead_in == 0 {
                    return (m.key, Ok(true));
                }
                let read = self.read(m.key.clone(), self.node.options.r).await;
                (m.key, read.map(|o| o.live().next().is_some()))
            })
            .buffered(FLUSH_PARALLELISM)
            .collect()
            .await;
        let mut keys = Vec::new();
        for (key, live) in checked {
            if live? {
                keys.push(key);
            }
        }
        Ok(ScanPage { keys, cursor: merged.cursor })
    }

    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply> {
        let w = self.node.options.w;
        match mutation {
            Mutation::Set { key, value, options } => {
                match options.condition {
                    Some(SetCondition::IfAbsent | SetCondition::IfPresent) => {
                        return Err(no_atomic_update("SET NX/XX (and SETNX)"));
                    }
                    Some(SetCondition::IfValue(_)) => return Err(no_atomic_update("SET IFEQ/IFNE/IFDEQ/IFDNE")),
                    None => {}
                }
                if options.get {
                    return Err(no_atomic_update("SET GET (and GETSET)"));
                }
                self.write(key, None, Some(value), w).await?;
                Ok(MutationReply::Set(SetReply { written: true, previous: None }))
            }
            Mutation::Del { keys } => {
                let mut unique = keys;
                unique.sort();
                unique.dedup();
                let deletes = unique.into_iter().map(|k| self.delete(k));
                let mut count = 0;
                let mut failure = None;
                for result in futures_util::future::join_all(deletes).await {
                    match result {
                        Ok(existed) => count += u64::from(existed),
                        // An uncertain failure wins: some delete may have happened.
                        Err(e) => {
                            failure = Some(failure.map_or(e.clone(), |f: Error| if f.is_definite() { e } else { f }))
                        }
                    }
                }
                match failure {
                    Some(e) => Err(e),
                    None => Ok(MutationReply::Count(count)),
                }
            }
            Mutation::Update { op: UpdateOp::IncrBy(_), .. } => Err(no_atomic_update("INCR/INCRBY/DECR/DECRBY")),
            Mutation::Update { op: UpdateOp::Append(_), .. } => Err(no_atomic_update("APPEND")),
            Mutation::Remove { .. } => Err(no_atomic_update("GETDEL/DELEX/DELIFEQ")),
            Mutation::MultiSet { .. } => Err(Error::Input(
                "MSET/MSETNX write several keys as one, which dynamo mode cannot do atomically (each key \
                 is replicated on its own, and concurrent writes become siblings); use SET, or VSET, per key"
                    .into(),
            )),
            Mutation::FlushAll => {
                // Documented: a DEL of every key a live node holds; a write concurrent with it
                // survives as a sibling.
                let keys = self.all_keys().await?;
                let results: Vec<Result<bool>> = futures_util::stream::iter(keys)
                    .map(|k| self.delete(k))
                    .buffer_unordered(FLUSH_PARALLELISM)
                    .collect()
                    .await;
                for r in results {
                    r?;
                }
                Ok(MutationReply::Done)
            }
        }
    }

    /// Ready when, for every partition this node holds (every partition, while it holds
    /// none), at least R of the owners are alive as its failure detector sees them: a quorum
    /// read of any of its keys can then succeed.
    async fn readiness(&self) -> std::result::Result<(), String> {
        let node = &self.node;
        let ring = node.ring();
        let mut partitions = ring.held_by(node.id);
        if partitions.is_empty() {
            partitions = (0..ring.partitions()).collect();
        }
        let r = node.options.r;
        let mut short = 0usize;
        let mut first = None;
        for p in partitions {
            let owners = ring.preference_list(p);
            let alive = owners.iter().filter(|id| health_of(node, **id) == Health::Alive).count();
            if alive < r {
                short += 1;
                first.get_or_insert_with(|| {
                    let down: Vec<String> = owners
                        .iter()
                        .filter(|id| health_of(node, **id) != Health::Alive)
                        .map(|id| format!("n{id} {}", health_of(node, *id).name()))
                        .collect();
                    format!("partition {p}: {alive} of R={r} owners reachable ({})", down.join(", "))
                });
            }
        }
        match first {
            None => Ok(()),
            Some(example) => Err(format!("{short} partition(s) have fewer than R owners reachable; {example}")),
        }
    }

    fn describe(&self) -> ModeInfo {
        let node = &self.node;
        let c = *lock(&node.stats.coordinator);
        let ring = node.ring();
        let members = ring
            .members()
            .iter()
            .map(|m| format!("{}={}:{}", m.id, m.peer_addr, health_of(node, m.id).name()))
            .collect::<Vec<_>>()
            .join(",");
        let count = |r: Result<u64>| r.map(|n| n.to_string()).unwrap_or_else(|e| e.to_string());
        let stat = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed).to_string();
        let read_repair = match (node.options.read_repair, node.options.sync_read_repair) {
            (false, _) => "off",
            (true, true) => "sync",
            (true, false) => "async",
        };
        let details = vec![
            ("dynamo_node_id".into(), node.id.to_string()),
            ("dynamo_actor".into(), format!("{:016x}", node.storage.actor())),
            ("dynamo_peer_addr".into(), node.options.node.peer_addr.clone()),
            ("dynamo_members".into(), members),
            ("dynamo_replicas".into(), ring.replicas().to_string()),
            ("dynamo_r".into(), node.options.r.to_string()),
            ("dynamo_w".into(), node.options.w.to_string()),
            ("dynamo_sloppy_quorum".into(), if node.options.sloppy_quorum { "on" } else { "off" }.into()),
            ("dynamo_partitions".into(), ring.partitions().to_string()),
            ("dynamo_ring_version".into(), ring.version().to_string()),
            ("dynamo_ring_changing".into(), u8::from(ring.changing()).to_string()),
            ("dynamo_partitions_pending".into(), ring.moving().len().to_string()),
            ("dynamo_objects".into(), count(node.storage.object_count())),
            ("dynamo_puts".into(), c.puts.to_string()),
            ("dynamo_gets".into(), c.gets.to_string()),
            ("dynamo_sibling_reads".into(), c.sibling_reads.to_string()),
            ("dynamo_max_siblings".into(), node.options.max_siblings.to_string()),
            ("dynamo_sibling_limit_refusals".into(), c.sibling_limit_refusals.to_string()),
            ("dynamo_read_repairs".into(), c.read_repairs.to_string()),
            ("dynamo_quorum_failures".into(), c.quorum_failures.to_string()),
            ("dynamo_forwarded".into(), node.stats.forwarded.load(Ordering::Relaxed).to_string()),
            ("dynamo_hinted_handoff".into(), if node.options.hinted_handoff { "on" } else { "off" }.into()),
            ("dynamo_hints_pending".into(), count(node.storage.hint_count())),
            ("dynamo_hints_recorded".into(), c.hints_recorded.to_string()),
            ("dynamo_hints_replayed".into(), node.stats.hints_replayed.load(Ordering::Relaxed).to_string()),
            ("dynamo_hints_expired".into(), node.stats.hints_expired.load(Ordering::Relaxed).to_string()),
            ("dynamo_hints_dropped".into(), node.storage.hints_dropped().to_string()),
            ("dynamo_membership_changes".into(), node.swim.changes().to_string()),
            ("dynamo_read_repair".into(), read_repair.into()),
            ("dynamo_aae_interval_ms".into(), node.options.aae_interval.as_millis().to_string()),
            ("dynamo_aae_exchanges".into(), stat(&node.stats.aae_exchanges)),
            ("dynamo_aae_partitions_differing".into(), stat(&node.stats.aae_partitions_differing)),
            ("dynamo_aae_keys_repaired".into(), stat(&node.stats.aae_keys_repaired)),
            ("dynamo_aae_bytes".into(), stat(&node.stats.aae_bytes)),
            ("dynamo_tombstones".into(), count(node.storage.tombstone_count())),
            ("dynamo_tombstones_reaped".into(), stat(&node.stats.tombstones_reaped)),
        ];
        ModeInfo { mode: "dynamo", details }
    }

    fn local_dbsize(&self) -> Option<u64> {
        self.node.storage.object_count().ok()
    }

    async fn shutdown(&self, hand_over: std::time::Duration) -> Vec<String> {
        // SWIM's leave, then forwarded writes (new ones go to another owner), then hints, while the peer
        // server and the writer still run: what this node keeps for an owner that missed a
        // write is better delivered now than after its restart.
        let started = std::time::Instant::now();
        // Leave SWIM first: the peers' coordinators stop asking this node as a replica and
        // forwarding writes to it, so nothing they do from here on waits for it.
        let told = self.node.send_leave(self.node.swim.leave().await).await;
        let cut = self.node.peer_commands.drain(hand_over.saturating_sub(started.elapsed())).await;
        let (replayed, kept) = super::hints::hand_over(&self.node, hand_over.saturating_sub(started.elapsed())).await;
        let mut notes = vec![format!("left the cluster ({told} peers told)")];
        if cut > 0 {
            notes.push(format!("{cut} writes forwarded here were cut off (their clients got -UNCERTAIN)"));
        }
        if replayed > 0 {
            notes.push(format!("{replayed} hints replayed"));
        }
        notes.push(match kept {
            0 => "no hints kept".to_string(),
            n => format!("{n} hints kept on disk (replayed once this node runs again)"),
        });
        if !self.node.tasks.shutdown(SHUTDOWN_GRACE).await {
            tracing::warn!("dynamo: background tasks still running after {SHUTDOWN_GRACE:?}");
        }
        notes
    }

    fn siblings(&self) -> Option<&dyn Siblings> {
        Some(self)
    }
}

fn health_of(node: &Node, id: u32) -> Health {
    if id == node.id {
        return Health::Alive;
    }
    if node.isolated_from(id) {
        return node.swim.seen(id).map_or(Health::Suspect, |s| s.health);
    }
    node.swim.seen(id).map_or(Health::Alive, |s| s.health)
}

fn versioned(key: &[u8], object: &Object, signer: Option<&ContextKey>) -> Versioned {
    Versioned {
        context: object.context().encode_for(key, signer),
        siblings: object
            .siblings()
            .iter()
            .map(|s| SiblingView { dot: s.dot.to_string(), timestamp_ms: s.timestamp_ms, value: s.value.clone() })
            .collect(),
    }
}

#[async_trait]
impl Siblings for DynamoMode {
    async fn vget(&self, key: Bytes, r: Option<usize>) -> Result<Versioned> {
        let r = self.check_quorum("R", r, self.node.options.r)?;
        let object = self.read(key.clone(), r).await?;
        Ok(versioned(&key, &object, self.node.context_key.as_ref()))
    }

    async fn local(&self, key: Bytes) -> Result<Versioned> {
        let storage = self.node.storage.clone();
        let k = key.clone();
        let object =
            tokio::task::spawn_blocking(move || storage.get(&k)).await.map_err(|e| Error::Io(e.to_string()))??;
        Ok(versioned(&key, &object, self.node.context_key.as_ref()))
    }

    async fn vset(&self, key: Bytes, value: Option<Bytes>, context: Bytes, w: Option<usize>) -> Result<VersionedWrite> {
        let w = self.check_quorum("W", w, self.node.options.w)?;
        let signer = self.node.context_key.as_ref();
        let context = VersionVector::decode_for(&key, &context, signer).map_err(Error::Input)?;
        if signer.is_none() {
            self.check_unsigned_context(&key, &context).await?;
        }
        match self.write(key.clone(), Some(context), value, w).await? {
            Reply::Written { context, dot, .. } => {
                Ok(VersionedWrite { context: context.encode_for(&key, signer), dot: dot.to_string() })
            }
            Reply::Read(_) => Err(Error::Uncertain("a write was answered as a read".into())),
        }
    }

    fn members(&self) -> Vec<String> {
        let node = &self.node;
        node.ring()
            .members()
            .iter()
            .map(|m| {
                let health = health_of(node, m.id);
                let seen = node.swim.seen(m.id);
                let incarnation = seen.map_or(0, |s| s.incarnation);
                // Which life of the node (its start time): a restart is a new one.
                let life = seen.map_or(String::new(), |s| format!(" life {}", s.life));
                // How long it has had the health shown (since the detector last saw it change).
                let since = seen
                    .map_or(String::new(), |s| format!(", in this state for {:.1}s", s.since.elapsed().as_secs_f64()));
                let me = if m.id == node.id { " (this node)" } else { "" };
                format!("n{} {} {} incarnation {incarnation}{life}{since}{me}", m.id, m.peer_addr, health.name())
            })
            .collect()
    }

    fn digest(&self, partition: Option<u32>) -> Result<Vec<String>> {
        let ring = self.node.ring();
        let held = ring.held_by(self.node.id);
        let parts = match partition {
            Some(p) if p >= ring.partitions() => {
                return Err(Error::Input(format!("partition {p} is not from 0 to {}", ring.partitions() - 1)));
            }
            Some(p) if !held.contains(&p) => {
                return Err(Error::Input(format!("n{} holds no copy of partition {p}", self.node.id)));
            }
            Some(p) => vec![p],
            None => held,
        };
        Ok(self.node.storage.with_trees(|t| parts.iter().map(|p| format!("{p} {:016x}", t.root(*p))).collect()))
    }

    fn ring(&self, key: Option<&[u8]>) -> Vec<String> {
        let ring = self.node.ring();
        match key {
            Some(key) => {
                let p = ring.partition(key);
                let owners = ring.preference_list(p).iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(" ");
                vec![format!("partition {p} of {}", ring.partitions()), format!("preference list {owners}")]
            }
            None => {
                let mut lines = vec![
                    format!("partitions {}", ring.partitions()),
                    format!("replicas {}", ring.replicas()),
                    format!("version {}{}", ring.version(), if ring.changing() { " (changing)" } else { "" }),
                ];
                for id in ring.member_ids() {
                    lines.push(format!("n{id} holds {} partitions", ring.held_by(id).len()));
                }
                lines
            }
        }
    }
}
