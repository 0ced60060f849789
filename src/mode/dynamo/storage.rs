//! A dynamo node's durable state, in redb (the engine every replicated mode uses): one object
//! per key, the hints it owes other nodes, and its actor id and counter lease.
//!
//! Every batch of writes is one write transaction committed with redb's default
//! `Durability::Immediate` (fsync) before any of them is acknowledged, so concurrent writes
//! share one fsync (group commit) and an acknowledged write survives kill -9. A PUT's dot
//! comes from the node-wide counter; the counter is *leased* in blocks, the lease written in
//! the same transaction as the first write that needs it, so no dot is ever handed out twice,
//! whatever crashes.

use std::path::Path;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::aae::{self, Shape, Trees};
use super::dvv::{Actor, Causality, Dot, Object, VersionVector};
use super::ring::{Partition, Ring};
use crate::error::{Error, Result};
use crate::node::lock;
use crate::node::{FileSystem, NodeId, codec};
use crate::store::{Listing, MAX_SCAN_COUNT, scan_hash};

/// Objects under [`aae::storage_key`] (position, then key): one AAE segment is one range.
const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects_by_position");
/// Objects by bare key, as an earlier release stored them: moved at start-up.
const OLD_OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// The keys (by storage key) whose object holds only tombstones, and the latest delete's time.
const TOMBSTONES: TableDefinition<&[u8], u64> = TableDefinition::new("tombstones");
/// (target node, key): the target missed a write to the key and must be sent the object.
/// The value is when the hint was recorded (ms since the epoch), for `--hint-window`.
const HINTS: TableDefinition<(u32, &[u8]), u64> = TableDefinition::new("hints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The latest ring this node has adopted (postcard), under [`RING_KEY`].
const RING: TableDefinition<&str, &[u8]> = TableDefinition::new("ring");
const RING_KEY: &str = "ring";

const ACTOR: &str = "actor";
const LEASE: &str = "counter_lease";
/// The latest life this data directory's node started as ([`Storage::life`]).
const LIFE: &str = "swim_life";
/// Room left above the last life for the renewals a life may make (each adds one).
pub const LIFE_RENEWALS: u64 = 1000;

/// Counters leased per durable write of the lease.
pub const LEASE_BLOCK: u64 = 1000;

/// One write in a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// A client's write coordinated here: a fresh dot, the context's siblings dropped (no
    /// context: this replica's own, so every sibling here). The owners in `hints` are down:
    /// hints for them go in the same transaction.
    Put { key: Bytes, context: Option<VersionVector>, value: Option<Bytes>, timestamp_ms: u64, hints: Vec<NodeId> },
    /// Another replica's object, joined into this one's.
    Merge { key: Bytes, object: Object },
    /// Remember (since `at_ms`) that `target` needs `key`'s object.
    Hint { target: NodeId, key: Bytes, at_ms: u64 },
    /// `target` has `key`'s object as it was when the hint recorded at `recorded_ms` was
    /// replayed: drop that hint (not a newer one, for a write since).
    DropHint { target: NodeId, key: Bytes, recorded_ms: u64 },
    /// Delete `key`'s object if it still hashes to `hash` and holds only tombstones (one
    /// every owner holds).
    Reap { key: Bytes, hash: u64 },
    /// Delete `key`'s object if it still hashes to `hash`: a copy this node no longer holds
    /// after a membership change, handed over to the new owners.
    Forget { key: Bytes, hash: u64 },
}

/// What one write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object after a PUT, and the PUT's dot.
    Put { object: Object, dot: Dot },
    /// The object after a merge; `changed` when the merge taught this replica something.
    Merged { object: Object, changed: bool },
    /// A hint recorded or dropped.
    Hint,
    /// A reap: whether the object was still the one to delete.
    Reaped(bool),
    /// A PUT refused, nothing written: it would have left the key with `siblings` siblings,
    /// more than `--max-siblings`.
    TooManySiblings { siblings: usize },
}

fn db_error(e: impl std::fmt::Display) -> Error {
    Error::Io(format!("dynamo storage: {e}"))
}

/// The node's database and its dot sequence.
pub struct Storage {
    db: Database,
    actor: Actor,
    /// Hints kept at most; past it a new hint is dropped (and counted).
    max_hints: u64,
    hints_dropped: std::sync::atomic::AtomicU64,
    /// How writes and merges reconcile (only [`Causality::Dvv`] is correct).
    causality: Causality,
    /// A PUT that would leave a key with more siblings is refused (`--max-siblings`).
    max_siblings: usize,
    /// The AAE hash trees of what is stored, kept up to date by every commit.
    trees: std::sync::Mutex<Trees>,
    /// Which life of the node this run is, for SWIM ([`Self::life`]).
    life: u64,
}

/// The life a node starts as at wall-clock time `now`, after `last` ([`Storage::life`]).
fn next_life(now: u64, last: Option<u64>) -> u64 {
    last.map_or(now, |last| now.max(last.saturating_add(LIFE_RENEWALS)))
}

/// The latest delete's time when every sibling of `object` is a tombstone.
fn tombstone_time(object: &Object) -> Option<u64> {
    let siblings = object.siblings();
    (!siblings.is_empty() && siblings.iter().all(|s| s.value.is_none()))
        .then(|| siblings.iter().map(|s| s.timestamp_ms).max().unwrap_or(0))
}

/// A tree change a commit makes: (position, old hash, new hash).
type TreeChange = (u32, u64, u64);

/// Stores `object` (or removes it, when empty) under `skey`, keeping the tombstone index;
/// returns the tree change.
fn store_object(
    objects: &mut redb::Table<&[u8], &[u8]>,
    tombstones: &mut redb::Table<&[u8], u64>,
    key: &[u8],
    skey: &[u8],
    old_hash: u64,
    object: &Object,
) -> Result<TreeChange> {
    let position = u32::from_be_bytes(skey[..4].try_into().expect("a position prefix"));
    let new_hash = if object.is_empty() {
        objects.remove(skey).map_err(db_error)?;
        0
    } else {
        let encoded = encode_object(object)?;
        objects.insert(skey, encoded.as_slice()).map_err(db_error)?;
        aae::object_hash(key, &encoded)
    };
    // A tombstone's age is this node's own clock from when it first stored the key as only
    // tombstones (not the coordinator's timestamp: a clock that runs late elsewhere must not
    // make a fresh delete reapable).
    match tombstone_time(object) {
        Some(_) => {
            let since = tombstones.get(skey).map_err(db_error)?.map(|at| at.value());
            if since.is_none() {
                tombstones.insert(skey, crate::node::now_ms()).map_err(db_error)?;
            }
        }
        None => {
            tombstones.remove(skey).map_err(db_error)?;
        }
    }
    Ok((position, old_hash, new_hash))
}

/// The object stored under `skey` and its hash (empty and 0 when none).
fn load(objects: &impl ReadableTable<&'static [u8], &'static [u8]>, key: &[u8], skey: &[u8]) -> Result<(Object, u64)> {
    match objects.get(skey).map_err(db_error)? {
        Some(bytes) => Ok((decode_object(bytes.value())?, aae::object_hash(key, bytes.value()))),
        None => Ok((Object::new(), 0)),
    }
}

/// Why an object or context that names `dot`, a write of this node's own actor beyond any
/// counter it handed out, is refused.
fn never_made(actor: Actor, dot: Dot) -> String {
    format!("the context names write {dot} of this node (actor {actor:x}), which it never made: refused")
}

/// The dot sequence, owned by whoever writes (one writer at a time): `next` is the next
/// counter to hand out, `leased` the highest one durably leased (every counter up to it may
/// have been handed out before a crash, so a restart starts above it).
pub struct Counter {
    next: u64,
    leased: u64,
}

impl Storage {
    /// Opens (or creates) `dir/dynamo.redb` for a ring of `partitions`, and builds the AAE
    /// trees with one scan, through the file layer `fs`. A new database gets a new random actor id.
    pub fn open(fs: &FileSystem, dir: &Path, partitions: u32) -> Result<(Self, Counter)> {
        fs.create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create data directory {}: {e}", dir.display())))?;
        let db = fs.open_database(&dir.join("dynamo.redb")).map_err(Error::Config)?;
        let txn = db.begin_write().map_err(db_error)?;
        let (actor, leased, life) = {
            let mut objects = txn.open_table(OBJECTS).map_err(db_error)?;
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(db_error)?;
            {
                let old = txn.open_table(OLD_OBJECTS).map_err(db_error)?;
                for entry in old.iter().map_err(db_error)? {
                    let (k, v) = entry.map_err(db_error)?;
                    let object = decode_object(v.value())?;
                    store_object(&mut objects, &mut tombstones, k.value(), &aae::storage_key(k.value()), 0, &object)?;
                }
            }
            txn.delete_table(OLD_OBJECTS).map_err(db_error)?;
            txn.open_table(HINTS).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let existing = meta.get(ACTOR).map_err(db_error)?.map(|a| a.value());
            let actor = match existing {
                Some(a) => a,
                None => {
                    let actor = fastrand::u64(1..);
                    meta.insert(ACTOR, actor).map_err(db_error)?;
                    actor
                }
            };
            let leased = meta.get(LEASE).map_err(db_error)?.map_or(0, |l| l.value());
            let last_life = meta.get(LIFE).map_err(db_error)?.map(|l| l.value());
            let life = next_life(crate::node::now_ms(), last_life);
            meta.insert(LIFE, life).map_err(db_error)?;
            (actor, leased, life)
        };
        txn.commit().map_err(db_error)?;
        // Everything up to the old lease may have been handed out before a crash.
        let mut trees = Trees::new(Shape::new(partitions));
        {
            let txn = db.begin_read().map_err(db_error)?;
            let objects = txn.open_table(OBJECTS).map_err(db_error)?;
            for entry in objects.iter().map_err(db_error)? {
                let (k, v) = entry.map_err(db_error)?;
                let skey = k.value();
                let position =
                    u32::from_be_bytes(skey[..4].try_into().map_err(|_| Error::Io("a bad object key".into()))?);
                trees.update(position, 0, aae::object_hash(&skey[4..], v.value()));
            }
        }
        let storage = Self {
            db,
            actor,
            max_hints: u64::MAX,
            hints_dropped: Default::default(),
            causality: Causality::Dvv,
            max_siblings: usize::MAX,
            trees: std::sync::Mutex::new(trees),
            life,
        };
        Ok((storage, Counter { next: leased + 1, leased }))
    }

    /// Refuses a PUT that would leave a key with more than `n` siblings.
    pub fn set_max_siblings(&mut self, n: usize) {
        self.max_siblings = n;
    }

    /// Keeps at most `n` hints.
    pub fn set_max_hints(&mut self, n: u64) {
        self.max_hints = n;
    }

    /// Reconciles under `causality` (a broken one: tests of the checker only).
    pub fn set_causality(&mut self, causality: Causality) {
        self.causality = causality;
    }

    /// Hints not recorded because `max_hints` were pending.
    pub fn hints_dropped(&self) -> u64 {
        self.hints_dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This replica's actor id.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// Which life of the node this run is: its start time on the wall clock (ms since the
    /// epoch), but always above every earlier life of this data directory and the renewals
    /// it may have made ([`LIFE_RENEWALS`]). SWIM keeps the later of two lives of a node, so
    /// a node restarted with its clock stepped back behind its last start must not come back
    /// as an older life, which its peers would ignore in favour of the dead one.
    pub fn life(&self) -> u64 {
        self.life
    }

    /// The object stored for `key` (empty when none).
    pub fn get(&self, key: &[u8]) -> Result<Object> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(OBJECTS).map_err(db_error)?;
        match table.get(aae::storage_key(key).as_slice()).map_err(db_error)? {
            Some(bytes) => decode_object(bytes.value()),
            None => Ok(Object::new()),
        }
    }

    /// Applies a batch in one fsync'd transaction; one result per write, in order. A write
    /// that is refused (a malformed object from a peer) fails alone; a failed commit fails all.
    ///
    /// The counter changes only once the transaction has committed: a batch that fails (an
    /// early error, a failed commit) leaves the lease as it is durably, so the next batch
    /// writes a lease again, and its dots are never handed out again either.
    pub fn apply(&self, counter: &mut Counter, batch: &[Write]) -> Result<Vec<Result<Written>>> {
        let mut staged = Counter { next: counter.next, leased: counter.leased };
        let result = self.apply_staged(&mut staged, batch);
        match result {
            Ok(_) => *counter = staged,
            Err(_) => counter.next = staged.next,
        }
        result
    }

    fn apply_staged(&self, counter: &mut Counter, batch: &[Write]) -> Result<Vec<Result<Written>>> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut results = Vec::with_capacity(batch.len());
        let mut changes: Vec<TreeChange> = Vec::new();
        {
            let mut objects = txn.open_table(OBJECTS).map_err(db_error)?;
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(db_error)?;
            let mut hints = txn.open_table(HINTS).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            for write in batch {
                let result = match write {
                    Write::Put { key, context, value, timestamp_ms, hints: down } => {
                        let skey = aae::storage_key(key);
                        let (mut object, old_hash) = load(&objects, key, &skey)?;
                        let context = context.clone().unwrap_or_else(|| object.context().clone());
                        // Riak's max_siblings: the siblings the context does not cover stay,
                        // and the write adds one. Checked before a dot is taken.
                        let kept = object.siblings().iter().filter(|s| !context.covers(s.dot)).count();
                        if self.causality != Causality::Lww && kept >= self.max_siblings {
                            results.push(Ok(Written::TooManySiblings { siblings: kept + 1 }));
                            continue;
                        }
                        if counter.next > counter.leased {
                            counter.leased = counter.next + LEASE_BLOCK;
                            meta.insert(LEASE, counter.leased).map_err(db_error)?;
                        }
                        let dot = self.causality.dot(self.actor, &context, || {
                            counter.next += 1;
                            counter.next - 1
                        });
                        if self.causality != Causality::ServerClock
                            && (context.covers(dot) || object.context().covers(dot))
                        {
                            // Only a context naming a write of this node that it never made
                            // covers a fresh dot: taken, the write would look already seen.
                            results.push(Err(Error::Input(never_made(self.actor, dot))));
                            continue;
                        }
                        object.put_as(self.causality, &context, dot, *timestamp_ms, value.clone());
                        changes.push(store_object(&mut objects, &mut tombstones, key, &skey, old_hash, &object)?);
                        for target in down {
                            self.hint(&mut hints, *target, key, *timestamp_ms)?;
                        }
                        Ok(Written::Put { object, dot })
                    }
                    Write::Merge { key, object: theirs } => match theirs.validate() {
                        Err(e) => Err(Error::Peer(format!("a malformed object for a merge: {e}"))),
                        Ok(())
                            if self.causality != Causality::ServerClock
                                && theirs.context().get(self.actor) >= counter.next =>
                        {
                            let dot = Dot { actor: self.actor, counter: theirs.context().get(self.actor) };
                            Err(Error::Peer(never_made(self.actor, dot)))
                        }
                        Ok(()) => {
                            let skey = aae::storage_key(key);
                            let (mine, old_hash) = load(&objects, key, &skey)?;
                            let merged = mine.merged_as(self.causality, theirs);
                            let changed = merged != mine;
                            if changed {
                                changes.push(store_object(
                                    &mut objects,
                                    &mut tombstones,
                                    key,
                                    &skey,
                                    old_hash,
                                    &merged,
                                )?);
                            }
                            Ok(Written::Merged { object: merged, changed })
                        }
                    },
                    Write::Hint { target, key, at_ms } => {
                        self.hint(&mut hints, *target, key, *at_ms)?;
                        Ok(Written::Hint)
                    }
                    Write::DropHint { target, key, recorded_ms } => {
                        let current = hints.get((*target, key.as_ref())).map_err(db_error)?.map(|v| v.value());
                        if current == Some(*recorded_ms) {
                            hints.remove((*target, key.as_ref())).map_err(db_error)?;
                        }
                        Ok(Written::Hint)
                    }
                    Write::Reap { key, hash } | Write::Forget { key, hash } => {
                        let skey = aae::storage_key(key);
                        let (object, current) = load(&objects, key, &skey)?;
                        let only_tombstones = tombstone_time(&object).is_some();
                        let reap = current == *hash
                            && current != 0
                            && (only_tombstones || matches!(write, Write::Forget { .. }));
                        if reap {
                            changes.push(store_object(
                                &mut objects,
                                &mut tombstones,
                                key,
                                &skey,
                                current,
                                &Object::new(),
                            )?);
                        }
                        Ok(Written::Reaped(reap))
                    }
                };
                results.push(result);
            }
        }
        txn.commit().map_err(db_error)?;
        let mut trees = lock(&self.trees);
        for (position, old, new) in changes {
            trees.update(position, old, new);
        }
        Ok(results)
    }

    /// Reads the AAE trees.
    pub fn with_trees<T>(&self, f: impl FnOnce(&Trees) -> T) -> T {
        f(&lock(&self.trees))
    }

    /// Every key in `segments` of `partition`, with its object's hash.
    pub fn segment_keys(&self, partition: Partition, segments: &[u16]) -> Result<Vec<(Bytes, u64)>> {
        let shape = self.with_trees(|t| t.shape());
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(OBJECTS).map_err(db_error)?;
        let mut out = Vec::new();
        for &segment in segments {
            let (first, last) = shape.segment_range(partition, usize::from(segment).min(aae::SEGMENTS - 1));
            let start = first.to_be_bytes();
            let end = u64::from(last) + 1;
            for entry in table.range(&start[..]..).map_err(db_error)? {
                let (k, v) = entry.map_err(db_error)?;
                let skey = k.value();
                if skey.len() < 4 || u64::from(u32::from_be_bytes(skey[..4].try_into().expect("4 bytes"))) >= end {
                    break;
                }
                out.push((Bytes::copy_from_slice(&skey[4..]), aae::object_hash(&skey[4..], v.value())));
            }
        }
        Ok(out)
    }

    /// The hash of each key's object (0: none).
    pub fn hashes(&self, keys: &[Bytes]) -> Result<Vec<u64>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(OBJECTS).map_err(db_error)?;
        keys.iter().map(|k| load(&table, k, &aae::storage_key(k)).map(|(_, h)| h)).collect()
    }

    /// Up to `limit` tombstones whose latest delete is before `before_ms`, with their hashes.
    pub fn old_tombstones(
        &self,
        before_ms: u64,
        limit: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<(Bytes, u64)>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let tombstones = txn.open_table(TOMBSTONES).map_err(db_error)?;
        let objects = txn.open_table(OBJECTS).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in tombstones.iter().map_err(db_error)? {
            let (k, at) = entry.map_err(db_error)?;
            if at.value() >= before_ms {
                continue;
            }
            let skey = k.value();
            let key = &skey[4.min(skey.len())..];
            if !keep(key) {
                continue;
            }
            let (_, hash) = load(&objects, key, skey)?;
            if hash != 0 {
                out.push((Bytes::copy_from_slice(key), hash));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Keys whose object holds only tombstones.
    pub fn tombstone_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_error)?;
        txn.open_table(TOMBSTONES).map_err(db_error)?.len().map_err(db_error)
    }
    fn hint(&self, hints: &mut redb::Table<(u32, &[u8]), u64>, target: NodeId, key: &[u8], at_ms: u64) -> Result<()> {
        if hints.len().map_err(db_error)? >= self.max_hints && hints.get((target, key)).map_err(db_error)?.is_none() {
            self.hints_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        hints.insert((target, key), at_ms).map_err(db_error)?;
        Ok(())
    }

    /// Up to `limit` keys `target` is owed, in key order, with when each hint was recorded.
    pub fn hints_for(&self, target: NodeId, limit: usize) -> Result<Vec<(Bytes, u64)>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(HINTS).map_err(db_error)?;
        let mut keys = Vec::new();
        for entry in table.range((target, &[][..])..).map_err(db_error)? {
            let (k, at) = entry.map_err(db_error)?;
            let (t, key) = k.value();
            if t != target || keys.len() >= limit {
                break;
            }
            keys.push((Bytes::copy_from_slice(key), at.value()));
        }
        Ok(keys)
    }

    /// Hints pending, for every target.
    /// The nodes this replica holds hints for.
    pub fn hint_targets(&self) -> Result<Vec<NodeId>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(HINTS).map_err(db_error)?;
        let mut targets = Vec::new();
        let mut from = 0;
        loop {
            let next = table.range((from, &[][..])..).map_err(db_error)?.next();
            let Some(entry) = next else { return Ok(targets) };
            let target = entry.map_err(db_error)?.0.value().0;
            targets.push(target);
            let Some(after) = target.checked_add(1) else { return Ok(targets) };
            from = after;
        }
    }

    pub fn hint_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_error)?;
        txn.open_table(HINTS).map_err(db_error)?.len().map_err(db_error)
    }

    /// Every key this replica holds an object for, and whether one of its siblings is live.
    pub fn keys(&self) -> Result<Vec<(Bytes, bool)>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(OBJECTS).map_err(db_error)?;
        let mut keys = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let live = decode_object(v.value())?.live().next().is_some();
            keys.push((Bytes::copy_from_slice(&k.value()[4..]), live));
        }
        Ok(keys)
    }

    /// This replica's keys from `cursor` in scan order, about `count` of them, each with whether
    /// one of its siblings is live. Objects are stored by position, the scan hash's top 32 bits
    /// ([`aae::position`]), so a page is one range of the table; within one position the keys
    /// are put in full scan order here, and a page ends only where the position changes.
    pub fn scan(&self, cursor: u64, count: usize) -> Result<Listing> {
        let count = count.clamp(1, MAX_SCAN_COUNT);
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(OBJECTS).map_err(db_error)?;
        let start = ((cursor >> 32) as u32).to_be_bytes();
        let mut keys: Vec<(u64, Bytes, bool)> = Vec::new();
        let mut through = u64::MAX;
        let mut last_position = None;
        for entry in table.range(&start[..]..).map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let skey = k.value();
            let Some(position) = skey.get(..4).map(|p| u32::from_be_bytes(p.try_into().expect("4 bytes"))) else {
                continue;
            };
            if keys.len() >= count && last_position != Some(position) {
                through = (u64::from(last_position.unwrap_or(position)) << 32) | u64::from(u32::MAX);
                break;
            }
            last_position = Some(position);
            let key = &skey[4..];
            let hash = scan_hash(key);
            if hash < cursor {
                continue;
            }
            let live = decode_object(v.value())?.live().next().is_some();
            keys.push((hash, Bytes::copy_from_slice(key), live));
        }
        keys.sort();
        Ok(Listing { keys, through })
    }

    /// Stores `ring` as the one this node goes by (fsync'd before it is used).
    pub fn save_ring(&self, ring: &Ring) -> Result<()> {
        let bytes = codec::encode(ring).map_err(Error::Io)?;
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(RING).map_err(db_error)?.insert(RING_KEY, bytes.as_slice()).map_err(db_error)?;
        txn.commit().map_err(db_error)
    }

    /// The ring stored by [`Self::save_ring`], if any.
    pub fn load_ring(&self) -> Result<Option<Ring>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = match txn.open_table(RING) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        match table.get(RING_KEY).map_err(db_error)? {
            Some(bytes) => codec::decode(bytes.value()).map(Some).map_err(|e| Error::Io(format!("corrupt ring: {e}"))),
            None => Ok(None),
        }
    }

    /// Objects stored.
    pub fn object_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_error)?;
        txn.open_table(OBJECTS).map_err(db_error)?.len().map_err(db_error)
    }
}

fn encode_object(object: &Object) -> Result<Vec<u8>> {
    codec::encode(object).map_err(Error::Io)
}

fn decode_object(bytes: &[u8]) -> Result<Object> {
    let object: Object = codec::decode(bytes).map_err(|e| Error::Io(format!("corrupt object: {e}")))?;
    object.validate().map_err(|e| Error::Io(format!("corrupt object: {e}")))?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, context: VersionVector, value: &str) -> Write {
        Write::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            context: Some(context),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            timestamp_ms: 1,
            hints: vec![3],
        }
    }

    // Moves the process's clock: nextest runs each test in its own process.
    #[test]
    fn a_node_restarted_with_its_clock_stepped_back_comes_back_as_a_later_life() {
        let dir = tempfile::tempdir().unwrap();
        let first = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap().0.life();
        let now = crate::node::now_ms();
        assert!(first.abs_diff(now) < 60_000, "a life is the start time: {first} at {now}");
        // An operator or NTP steps the host's clock an hour back; the node restarts.
        crate::node::clock::bump(-3_600_000);
        let second = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap().0.life();
        crate::node::clock::reset();
        assert!(second >= first + LIFE_RENEWALS, "life {second} after {first}: SWIM would keep the dead one");
        let third = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap().0.life();
        assert!(third > second, "and a restart with the clock right is later still");
        assert_eq!(next_life(5_000, Some(1_000)), 5_000, "a clock that moved on is the life");
        assert_eq!(next_life(5_000, None), 5_000);
    }

    #[test]
    fn writes_hints_and_the_dot_sequence_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (actor, last) = {
            let (storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
            let results = storage
                .apply(&mut counter, &[put("a", VersionVector::new(), "1"), put("b", VersionVector::new(), "2")])
                .unwrap();
            let Ok(Written::Put { dot, .. }) = &results[1] else { panic!("{results:?}") };
            assert_eq!(
                storage.hints_for(3, 10).unwrap(),
                vec![(Bytes::from_static(b"a"), 1), (Bytes::from_static(b"b"), 1)]
            );
            (storage.actor(), *dot)
        };
        let (storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
        assert_eq!(storage.actor(), actor, "the actor is born with the data directory");
        assert_eq!(storage.get(b"b").unwrap().pick(), Some(&Bytes::from_static(b"2")));
        let results = storage.apply(&mut counter, &[put("a", VersionVector::new(), "3")]).unwrap();
        let Ok(Written::Put { dot, object }) = &results[0] else { panic!("{results:?}") };
        assert!(dot.counter > last.counter, "no dot is handed out twice: {dot} after {last}");
        assert_eq!(object.siblings().len(), 2, "a blind write supersedes nothing");
        storage
            .apply(&mut counter, &[Write::DropHint { target: 3, key: Bytes::from_static(b"a"), recorded_ms: 1 }])
            .unwrap();
        assert_eq!(storage.hints_for(3, 10).unwrap(), vec![(Bytes::from_static(b"b"), 1)]);
        assert_eq!(storage.hint_count().unwrap(), 1);
    }

    #[test]
    fn a_batch_that_fails_before_its_commit_leaves_no_dot_to_be_handed_out_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut before = Vec::new();
        {
            let (storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
            // A stored object that no longer decodes: a batch touching it aborts before
            // its commit, after an earlier write in it took a fresh lease.
            let txn = storage.db.begin_write().unwrap();
            txn.open_table(OBJECTS).unwrap().insert(aae::storage_key(b"bad").as_slice(), &b"\xff\xff"[..]).unwrap();
            txn.commit().unwrap();
            let failed = storage
                .apply(&mut counter, &[put("a", VersionVector::new(), "1"), put("bad", VersionVector::new(), "2")]);
            assert!(failed.is_err(), "{failed:?}");
            for key in ["b", "c"] {
                let results = storage.apply(&mut counter, &[put(key, VersionVector::new(), "3")]).unwrap();
                let Ok(Written::Put { dot, .. }) = &results[0] else { panic!("{results:?}") };
                before.push(*dot);
            }
        }
        let (storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
        for key in ["d", "e", "f"] {
            let results = storage.apply(&mut counter, &[put(key, VersionVector::new(), "4")]).unwrap();
            let Ok(Written::Put { dot, .. }) = &results[0] else { panic!("{results:?}") };
            assert!(
                before.iter().all(|b| dot.counter > b.counter),
                "{dot} was handed out before the restart: {before:?}"
            );
        }
    }

    #[test]
    fn a_context_or_object_naming_writes_this_node_never_made_is_refused_and_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
        let me = storage.actor();
        let mut forged = VersionVector::new();
        forged.add(Dot { actor: me, counter: u64::MAX });
        let results = storage.apply(&mut counter, &[put("k", forged.clone(), "x")]).unwrap();
        assert!(results[0].as_ref().is_err_and(|e| e.to_string().contains("never made")), "{results:?}");
        let mut theirs = Object::new();
        theirs.put(&forged, Dot { actor: 42, counter: 1 }, 5, Some(Bytes::from_static(b"y")));
        let results =
            storage.apply(&mut counter, &[Write::Merge { key: Bytes::from_static(b"k"), object: theirs }]).unwrap();
        assert!(results[0].as_ref().is_err_and(|e| e.to_string().contains("never made")), "{results:?}");
        let results = storage.apply(&mut counter, &[put("k", VersionVector::new(), "z")]).unwrap();
        assert!(matches!(&results[0], Ok(Written::Put { .. })), "{results:?}");
        assert_eq!(storage.get(b"k").unwrap().pick(), Some(&Bytes::from_static(b"z")));
    }

    #[test]
    fn a_put_that_would_leave_more_than_max_siblings_is_refused_and_a_covering_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (mut storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
        storage.set_max_siblings(2);
        let blind = |storage: &Storage, counter: &mut Counter, value: &str| {
            storage.apply(counter, &[put("k", VersionVector::new(), value)]).unwrap().remove(0).unwrap()
        };
        assert!(matches!(blind(&storage, &mut counter, "a"), Written::Put { .. }));
        assert!(matches!(blind(&storage, &mut counter, "b"), Written::Put { .. }));
        let stored = storage.get(b"k").unwrap();
        assert!(matches!(blind(&storage, &mut counter, "c"), Written::TooManySiblings { siblings: 3 }));
        assert_eq!(storage.get(b"k").unwrap(), stored, "nothing written");
        // A context covering one sibling leaves two: let in. A plain write covers them all.
        let one = VersionVector::from_iter([(stored.siblings()[0].dot.actor, stored.siblings()[0].dot.counter)]);
        let results = storage.apply(&mut counter, &[put("k", one, "d")]).unwrap();
        assert!(matches!(&results[0], Ok(Written::Put { object, .. }) if object.siblings().len() == 2), "{results:?}");
        let plain = Write::Put {
            key: Bytes::from_static(b"k"),
            context: None,
            value: Some(Bytes::from_static(b"e")),
            timestamp_ms: 2,
            hints: vec![],
        };
        let results = storage.apply(&mut counter, &[plain]).unwrap();
        assert!(matches!(&results[0], Ok(Written::Put { object, .. }) if object.siblings().len() == 1), "{results:?}");
    }

    #[test]
    fn a_wiped_directory_is_a_new_actor() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_ne!(
            Storage::open(&FileSystem::real(), one.path(), 256).unwrap().0.actor(),
            Storage::open(&FileSystem::real(), two.path(), 256).unwrap().0.actor()
        );
    }

    #[test]
    fn a_merge_joins_and_a_malformed_object_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut counter) = Storage::open(&FileSystem::real(), dir.path(), 256).unwrap();
        let mut theirs = Object::new();
        theirs.put(&VersionVector::new(), Dot { actor: 42, counter: 1 }, 5, Some(Bytes::from_static(b"x")));
        let key = Bytes::from_static(b"k");
        let results = storage
            .apply(
                &mut counter,
                &[Write::Merge { key: key.clone(), object: theirs.clone() }, put("k", VersionVector::new(), "y")],
            )
            .unwrap();
        assert!(matches!(&results[0], Ok(Written::Merged { changed: true, .. })), "{results:?}");
        assert_eq!(storage.get(b"k").unwrap().siblings().len(), 2);
        let again = storage.apply(&mut counter, &[Write::Merge { key: key.clone(), object: theirs }]).unwrap();
        assert!(matches!(&again[0], Ok(Written::Merged { changed: false, .. })), "idempotent: {again:?}");
        let bogus: Object = codec::decode(
            &codec::encode(&(
                VersionVector::new(),
                vec![super::super::dvv::Sibling { dot: Dot { actor: 9, counter: 9 }, timestamp_ms: 0, value: None }],
            ))
            .unwrap(),
        )
        .unwrap();
        let refused = storage.apply(&mut counter, &[Write::Merge { key, object: bogus }]).unwrap();
        assert!(refused[0].is_err());
        assert_eq!(storage.get(b"k").unwrap().siblings().len(), 2, "nothing changed");
    }
}
