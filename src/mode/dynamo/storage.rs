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

use super::dvv::{Actor, Causality, Dot, Object, VersionVector};
use crate::error::{Error, Result};
use crate::node::{NodeId, codec};

const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// (target node, key): the target missed a write to the key and must be sent the object.
/// The value is when the hint was recorded (ms since the epoch), for `--hint-window`.
const HINTS: TableDefinition<(u32, &[u8]), u64> = TableDefinition::new("hints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const ACTOR: &str = "actor";
const LEASE: &str = "counter_lease";

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
}

/// The dot sequence, owned by whoever writes (one writer at a time).
pub struct Counter {
    next: u64,
    leased: u64,
}

impl Storage {
    /// Opens (or creates) `dir/dynamo.redb`. A new database gets a new random actor id.
    pub fn open(dir: &Path) -> Result<(Self, Counter)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create data directory {}: {e}", dir.display())))?;
        let path = dir.join("dynamo.redb");
        let db = Database::create(&path).map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(db_error)?;
        let (actor, leased) = {
            txn.open_table(OBJECTS).map_err(db_error)?;
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
            (actor, leased)
        };
        txn.commit().map_err(db_error)?;
        // Everything up to the old lease may have been handed out before a crash.
        let storage =
            Self { db, actor, max_hints: u64::MAX, hints_dropped: Default::default(), causality: Causality::Dvv };
        Ok((storage, Counter { next: leased + 1, leased }))
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

    /// The object stored for `key` (empty when none).
    pub fn get(&self, key: &[u8]) -> Result<Object> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(OBJECTS).map_err(db_error)?;
        match table.get(key).map_err(db_error)? {
            Some(bytes) => decode_object(bytes.value()),
            None => Ok(Object::new()),
        }
    }

    /// Applies a batch in one fsync'd transaction; one result per write, in order. A write
    /// that is refused (a malformed object from a peer) fails alone; a failed commit fails all.
    pub fn apply(&self, counter: &mut Counter, batch: &[Write]) -> Result<Vec<Result<Written>>> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut objects = txn.open_table(OBJECTS).map_err(db_error)?;
            let mut hints = txn.open_table(HINTS).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            for write in batch {
                let result = match write {
                    Write::Put { key, context, value, timestamp_ms, hints: down } => {
                        let mut object = match objects.get(key.as_ref()).map_err(db_error)? {
                            Some(bytes) => decode_object(bytes.value())?,
                            None => Object::new(),
                        };
                        let context = context.clone().unwrap_or_else(|| object.context().clone());
                        if counter.next > counter.leased {
                            counter.leased = counter.next + LEASE_BLOCK;
                            meta.insert(LEASE, counter.leased).map_err(db_error)?;
                        }
                        let dot = self.causality.dot(self.actor, &context, || {
                            counter.next += 1;
                            counter.next - 1
                        });
                        object.put_as(self.causality, &context, dot, *timestamp_ms, value.clone());
                        objects.insert(key.as_ref(), encode_object(&object)?.as_slice()).map_err(db_error)?;
                        for target in down {
                            self.hint(&mut hints, *target, key, *timestamp_ms)?;
                        }
                        Ok(Written::Put { object, dot })
                    }
                    Write::Merge { key, object: theirs } => match theirs.validate() {
                        Err(e) => Err(Error::Config(format!("refusing a malformed object for a merge: {e}"))),
                        Ok(()) => {
                            let mine = match objects.get(key.as_ref()).map_err(db_error)? {
                                Some(bytes) => decode_object(bytes.value())?,
                                None => Object::new(),
                            };
                            let merged = mine.merged_as(self.causality, theirs);
                            let changed = merged != mine;
                            if changed {
                                objects.insert(key.as_ref(), encode_object(&merged)?.as_slice()).map_err(db_error)?;
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
                };
                results.push(result);
            }
        }
        txn.commit().map_err(db_error)?;
        Ok(results)
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
            keys.push((Bytes::copy_from_slice(k.value()), live));
        }
        Ok(keys)
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

    #[test]
    fn writes_hints_and_the_dot_sequence_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (actor, last) = {
            let (storage, mut counter) = Storage::open(dir.path()).unwrap();
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
        let (storage, mut counter) = Storage::open(dir.path()).unwrap();
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
    fn a_wiped_directory_is_a_new_actor() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_ne!(Storage::open(one.path()).unwrap().0.actor(), Storage::open(two.path()).unwrap().0.actor());
    }

    #[test]
    fn a_merge_joins_and_a_malformed_object_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut counter) = Storage::open(dir.path()).unwrap();
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
