//! The optimistic-concurrency loop: read, apply, conditional PUT, retry on conflict.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use antithesis_sdk::{assert_reachable, assert_unreachable};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::oneshot;

use super::values::{Unresolved, Values, digest_of};
use super::{Stats, document, read_error};
use crate::error::{Error, Result};
use crate::node::lock;
use crate::object::{Etag, Fetched, ObjectError, ObjectStore, PutCondition};
use crate::store::{Keyspace, Mutation, MutationReply};

/// How many read-apply-PUT rounds a batch gets before it answers `-TRYAGAIN`.
pub const OCC_ATTEMPTS: u32 = 12;
/// The first backoff after a conflict; it doubles each round up to `MAX_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(2);
/// The longest backoff between two rounds.
pub const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// A write waiting for its commit.
pub struct PendingWrite {
    pub mutation: Mutation,
    pub reply: oneshot::Sender<Result<MutationReply>>,
}

/// How many times a reader re-reads a document whose value objects were deleted under it
/// (each time, a later version replaced it) before it answers `-TRYAGAIN`.
const RESOLVE_ATTEMPTS: u32 = 8;

/// A document over a snapshot holds at most about this many keys, and (counting the first
/// 64 bytes of each value; large values are references) bytes, before a new snapshot is
/// written and the document starts over from it.
pub const DIFF_KEYS: usize = 1024;
const DIFF_BYTES: usize = 256 * 1024;

/// Redis' reply to a write past `maxmemory`.
pub const OOM: &str = "command not allowed when used memory > 'maxmemory'.";

/// A whole keyspace stored as an immutable object of its own (see the module docs of s3
/// mode): the base the document's keys are applied to.
pub struct Snapshot {
    name: String,
    keyspace: Keyspace,
    /// Its keys whose values are value objects, and their objects.
    large: imbl::OrdMap<Bytes, String>,
    /// The bytes of its keys and values.
    size: u64,
}

/// A document version to apply writes to.
#[derive(Clone)]
pub struct Base {
    /// `None` when the object does not exist yet.
    etag: Option<Etag>,
    /// The whole keyspace: the snapshot with the document's keys applied.
    keyspace: Arc<Keyspace>,
    /// The bytes of its keys and values (what `maxmemory` limits).
    size: u64,
    snapshot: Option<Arc<Snapshot>>,
    /// The keys whose values differ from the snapshot's (`None`: deleted), as the document
    /// holds them.
    diff: imbl::OrdMap<Bytes, Option<Bytes>>,
    /// The keys whose values are value objects, and their objects.
    large: imbl::OrdMap<Bytes, String>,
}

impl Base {
    fn empty() -> Self {
        Self {
            etag: None,
            keyspace: Arc::default(),
            size: 0,
            snapshot: None,
            diff: Default::default(),
            large: Default::default(),
        }
    }

    /// Every object this version references: its snapshot, the value objects the snapshot
    /// names (a reader loads the whole snapshot, keys the document overrides included), and
    /// those of its current values.
    fn objects(&self) -> HashSet<String> {
        let snapshot = self.snapshot.iter().flat_map(|s| s.large.values().cloned().chain([s.name.clone()]));
        self.large.values().cloned().chain(snapshot).collect()
    }
}

/// Why a version of the database could not be read.
pub enum Unreadable {
    /// The object store failed, or kept deleting what the document named.
    Failed(Error),
    /// An object holds what no writer wrote: a document, snapshot or value object that does
    /// not parse or does not match its checksum or digest.
    Invalid {
        /// The object's key.
        object: String,
        why: String,
    },
}

impl From<Error> for Unreadable {
    fn from(e: Error) -> Self {
        Unreadable::Failed(e)
    }
}

impl Unreadable {
    /// The error a client gets: an invalid object is reported, never served.
    fn into_error(self) -> Error {
        match self {
            Unreadable::Failed(e) => e,
            Unreadable::Invalid { object, why } => {
                assert_unreachable!("s3: object store holds an invalid document", &json!({"error": why}));
                Error::TryAgain(format!("object store holds an invalid document: {object}: {why}"))
            }
        }
    }
}

fn invalid(object: &str) -> impl FnOnce(String) -> Unreadable + '_ {
    move |why| Unreadable::Invalid { object: object.to_owned(), why }
}

/// The bytes of a keyspace's keys and values.
fn footprint(keyspace: &Keyspace) -> u64 {
    keyspace.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// Reads and conditionally replaces the document.
pub struct Committer {
    pub(super) objects: Arc<dyn ObjectStore>,
    key: String,
    pub(super) stats: Stats,
    /// The last version read, so an unchanged document is not parsed twice.
    decoded: std::sync::Mutex<Option<Base>>,
    /// Large values' objects.
    pub(super) values: Values,
    /// The most bytes of keys and values (0: no limit).
    maxmemory: u64,
    /// The most keys a document holds over its snapshot ([`DIFF_KEYS`]).
    snapshot_keys: usize,
}

impl Committer {
    pub fn new(objects: Arc<dyn ObjectStore>, key: String, options: &super::S3ModeOptions) -> Self {
        let values = Values::new(&key, options.value_objects_from);
        let (maxmemory, snapshot_keys) = (options.maxmemory, options.snapshot_keys);
        Self { objects, key, stats: Stats::default(), decoded: Default::default(), values, maxmemory, snapshot_keys }
    }

    /// The bytes of keys and values in the last version read or written (INFO).
    pub fn dataset_bytes(&self) -> u64 {
        lock(&self.decoded).as_ref().map_or(0, |b| b.size)
    }

    /// The `maxmemory` limit (INFO).
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory
    }

    /// Reads the current version of the document, and its value objects.
    async fn fetch(&self) -> Result<Base> {
        self.fetch_checked().await.map_err(Unreadable::into_error)
    }

    /// Reads the current version of the document and every object it names, as a reader
    /// does: at start-up, to refuse a database the object store's disk corrupted.
    pub async fn check(&self) -> std::result::Result<(), Unreadable> {
        self.fetch_checked().await.map(|_| ())
    }

    /// [`Committer::fetch`], telling an invalid object from a failed read.
    async fn fetch_checked(&self) -> std::result::Result<Base, Unreadable> {
        let mut missing = String::new();
        for _ in 0..RESOLVE_ATTEMPTS {
            match self.fetch_once().await? {
                Ok(base) => return Ok(base),
                Err(name) => {
                    assert_reachable!("s3: a value object was deleted under a reader", &json!({}));
                    missing = name;
                }
            }
        }
        Err(Unreadable::Failed(Error::TryAgain(format!(
            "the document names {missing}, which does not exist ({RESOLVE_ATTEMPTS} reads in a row)"
        ))))
    }

    /// [`Committer::fetch`] once; `Err(name)` when an object it names is already gone.
    async fn fetch_once(&self) -> std::result::Result<std::result::Result<Base, String>, Unreadable> {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        // Holding a parsed version, ask only whether it is still current (S3: If-None-Match;
        // the local directory: the etag its last writer noted): no transfer, no parse.
        let held = lock(&self.decoded).clone();
        let fetched = match held.as_ref().and_then(|h| h.etag.as_ref()) {
            Some(etag) => self.objects.get_if_changed(&self.key, etag).await,
            None => self.objects.get(&self.key).await.map(Fetched::Current),
        };
        let object = match fetched {
            Ok(Fetched::Unchanged) => {
                self.stats.unchanged.fetch_add(1, Ordering::Relaxed);
                return Ok(held.ok_or_else(String::new));
            }
            Ok(Fetched::Current(object)) => object,
            Err(e) => {
                assert_reachable!("s3: object store read failed", &json!({"error": e.to_string()}));
                return Err(read_error(e).into());
            }
        };
        let Some(object) = object else {
            return Ok(Ok(Base::empty()));
        };
        if let Some(hit) = lock(&self.decoded).as_ref()
            && hit.etag.as_ref() == Some(&object.etag)
        {
            return Ok(Ok(hit.clone()));
        }
        let parsed = document::decode(&object.body).map_err(invalid(&self.key))?;
        let held = held.and_then(|h| h.snapshot);
        let snapshot = match parsed.base {
            None => None,
            Some(name) => match held.filter(|s| s.name == name) {
                Some(same) => Some(same),
                None => match self.read_snapshot(name).await? {
                    Ok(snapshot) => Some(Arc::new(snapshot)),
                    Err(gone) => return Ok(Err(gone)),
                },
            },
        };
        let mut keyspace = snapshot.as_ref().map(|s| s.keyspace.clone()).unwrap_or_default();
        let mut large = snapshot.as_ref().map(|s| s.large.clone()).unwrap_or_default();
        let mut size = snapshot.as_ref().map_or(0, |s| s.size);
        let mut diff = imbl::OrdMap::new();
        for (key, value) in parsed.entries {
            let value = match value {
                Some(value) => match self.values.resolve(&*self.objects, value).await {
                    Ok(value) => Some(value),
                    Err(Unresolved::Gone(name)) => return Ok(Err(name)),
                    Err(Unresolved::Failed(e)) => return Err(read_error(e).into()),
                    Err(Unresolved::Corrupt(object, why)) => return Err(invalid(&object)(why)),
                },
                None => None,
            };
            let weight = |v: Option<&Bytes>| v.map_or(0, |v| (key.len() + v.len()) as u64);
            size = size - weight(keyspace.get(&key)) + weight(value.as_ref());
            match &value {
                Some(value) => {
                    keyspace.insert(key.clone(), value.clone());
                    match self.values.name_of(value) {
                        Some(name) => large.insert(key.clone(), name),
                        None => large.remove(&key),
                    };
                }
                None => {
                    keyspace.remove(&key);
                    large.remove(&key);
                }
            }
            if snapshot.is_some() {
                diff.insert(key, value);
            }
        }
        let base = Base { etag: Some(object.etag), size, keyspace: Arc::new(keyspace), snapshot, diff, large };
        self.values.retain(&base.objects());
        *lock(&self.decoded) = Some(base.clone());
        Ok(Ok(base))
    }

    /// Reads the snapshot `name`; `Err(name)` when it or an object it names is already gone
    /// (the document that named it was replaced).
    async fn read_snapshot(
        &self,
        name: String,
    ) -> std::result::Result<std::result::Result<Snapshot, String>, Unreadable> {
        let Some(object) = self.objects.get(&name).await.map_err(read_error)? else { return Ok(Err(name)) };
        let digest = digest_of(object.body.clone()).await.map_err(read_error)?;
        if name.strip_prefix(&format!("{}.base.", self.key)).and_then(|rest| rest.split_once('-')).map(|(d, _)| d)
            != Some(digest.as_str())
        {
            return Err(invalid(&name)("the snapshot does not match the digest in its name".into()));
        }
        let parsed = document::decode(&object.body).map_err(invalid(&name))?;
        if parsed.base.is_some() {
            return Err(invalid(&name)("the snapshot names a base of its own".into()));
        }
        let (mut keyspace, mut large) = (Keyspace::new(), imbl::OrdMap::new());
        for (key, value) in parsed.entries {
            let Some(value) = value else { return Err(invalid(&name)("the snapshot deletes a key".into())) };
            let value = match self.values.resolve(&*self.objects, value).await {
                Ok(value) => value,
                Err(Unresolved::Gone(name)) => return Ok(Err(name)),
                Err(Unresolved::Failed(e)) => return Err(read_error(e).into()),
                Err(Unresolved::Corrupt(object, why)) => return Err(invalid(&object)(why)),
            };
            if let Some(object) = self.values.name_of(&value) {
                large.insert(key.clone(), object);
            }
            keyspace.insert(key, value);
        }
        let size = footprint(&keyspace);
        Ok(Ok(Snapshot { name, keyspace, large, size }))
    }

    /// The held version, if the object store can tell at once that it is still current
    /// (the check happens now, after the reader arrived: a snapshot current at that instant).
    pub fn read_held_if_current(&self) -> Option<Arc<Keyspace>> {
        let held = lock(&self.decoded).clone()?;
        let etag = held.etag.as_ref()?;
        if self.objects.is_current_now(&self.key, etag)? {
            self.stats.gets.fetch_add(1, Ordering::Relaxed);
            self.stats.unchanged.fetch_add(1, Ordering::Relaxed);
            self.stats.reads.fetch_add(1, Ordering::Relaxed);
            return Some(held.keyspace);
        }
        None
    }

    /// A consistent snapshot for readers: the version current at the GET.
    pub async fn read(&self) -> Result<Arc<Keyspace>> {
        let base = self.fetch().await?;
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        Ok(base.keyspace)
    }

    /// Commits `batch` in one conditional PUT and answers every writer in it.
    ///
    /// `cache` holds the version this committer's last PUT created; a batch starts from it
    /// instead of a GET, and the conditional PUT catches the case where it is stale.
    pub async fn commit(&self, batch: Vec<PendingWrite>, cache: &mut Option<Base>) {
        let mut written = Vec::new();
        let outcome = self.commit_rounds(&batch, cache, &mut written).await;
        if !written.is_empty() {
            // Objects this commit wrote that its document does not reference (an earlier
            // round's, or all of them if it failed for certain) are nobody's.
            let kept = match (&outcome, cache.as_ref()) {
                (Ok(_), Some(base)) => base.objects(),
                (Err(Error::Uncertain(_)), _) => written.iter().cloned().collect(),
                _ => Default::default(),
            };
            self.values.unpin(&written);
            self.delete_objects(written.into_iter().filter(|name| !kept.contains(name)).collect());
        }
        match outcome {
            Ok(replies) => {
                self.stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (write, reply) in batch.into_iter().zip(replies) {
                    let _ = write.reply.send(reply);
                }
            }
            Err(e) => {
                for write in batch {
                    let _ = write.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Deletes value objects no document references any more, in the background (a failure
    /// leaves an unreferenced object behind, never a reference to a missing one).
    fn delete_objects(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let objects = self.objects.clone();
        tokio::spawn(async move {
            for name in names {
                if let Err(e) = objects.delete(&name).await {
                    tracing::warn!("could not delete the unreferenced value object {name}: {e}");
                }
            }
        });
    }

    async fn commit_rounds(
        &self,
        batch: &[PendingWrite],
        cache: &mut Option<Base>,
        written: &mut Vec<String>,
    ) -> Result<Vec<Result<MutationReply>>> {
        let mut backoff = FIRST_BACKOFF;
        for _ in 0..OCC_ATTEMPTS {
            let (base, fresh) = match cache.take() {
                Some(base) => (base, false),
                None => (self.fetch().await?, true),
            };
            let mut next = (*base.keyspace).clone();
            let mut size = base.size;
            let (mut touched, mut flushed) = (BTreeSet::new(), false);
            let replies: Vec<_> = batch
                .iter()
                .map(|w| self.apply_within(&mut next, &mut size, &w.mutation, &mut touched, &mut flushed))
                .collect();
            let changed = (flushed && !base.keyspace.is_empty())
                || touched.iter().any(|k: &Bytes| next.get(k) != base.keyspace.get(k));
            if fresh && !changed {
                // Nothing changed and the GET happened after every write in the batch
                // arrived: the batch takes effect at that GET, and no PUT is needed.
                *cache = Some(base);
                return Ok(replies);
            }
            let condition = match &base.etag {
                Some(etag) => PutCondition::IfMatch(etag.clone()),
                None => PutCondition::IfAbsent,
            };
            let failed = |e: ObjectError| match e {
                ObjectError::Indeterminate(m) | ObjectError::Unavailable(m) => {
                    Error::TryAgain(format!("object store write failed: {m}"))
                }
                e => Error::TryAgain(format!("object store write failed: {e}")),
            };
            // Large values new in this version go first, as objects of their own.
            let new_values: Vec<&Bytes> = if flushed {
                next.iter().map(|(_, v)| v).collect()
            } else {
                touched.iter().filter_map(|k| next.get(k)).collect()
            };
            written.extend(self.values.store_new(&*self.objects, new_values.into_iter()).await.map_err(failed)?);
            let done = self.next_version(&base, next, size, &touched, flushed, written).await.map_err(failed)?;
            let body = match &done.snapshot {
                Some(snapshot) => {
                    document::encode_over(Some(&snapshot.name), done.diff.iter().map(|(k, v)| (k, v.as_ref())), |v| {
                        self.values.name_of(v)
                    })
                }
                None => document::encode(&done.keyspace, |v| self.values.name_of(v)),
            };
            self.stats.puts.fetch_add(1, Ordering::Relaxed);
            self.stats.put_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            match self.objects.put(&self.key, body, condition).await {
                Ok(etag) => {
                    let done = Base { etag: Some(etag), ..done };
                    // This compare-and-swap removed the last reference to them.
                    let (before, after) = (base.objects(), done.objects());
                    let dropped: Vec<String> = before.difference(&after).cloned().collect();
                    // Readers start from it too: until another write, the etag check says so.
                    *lock(&self.decoded) = Some(done.clone());
                    self.values.retain(&after);
                    self.delete_objects(dropped);
                    *cache = Some(done);
                    return Ok(replies);
                }
                Err(ObjectError::PreconditionFailed | ObjectError::Conflict) => {
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    assert_reachable!("s3: OCC rollback after a conflicting write", &json!({}));
                    let jitter = backoff.mul_f64(fastrand::f64());
                    tokio::time::sleep(backoff / 2 + jitter / 2).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(ObjectError::Unavailable(m)) => {
                    assert_reachable!("s3: object store write failed", &json!({"error": m}));
                    return Err(Error::TryAgain(format!("object store write failed: {m}")));
                }
                Err(ObjectError::Indeterminate(m)) => {
                    assert_reachable!("s3: object store write outcome unknown", &json!({"error": m}));
                    return Err(Error::Uncertain(format!("object store write outcome unknown: {m}")));
                }
            }
        }
        Err(Error::TryAgain(format!("write conflict: gave up after {OCC_ATTEMPTS} attempts")))
    }

    /// Applies `mutation` to `keyspace` whose keys and values hold `size` bytes, unless it
    /// would grow them past `maxmemory`: then it is undone and answers Redis' `-OOM` (a write
    /// that shrinks or keeps the size, DEL and FLUSHALL among them, always goes through).
    fn apply_within(
        &self,
        keyspace: &mut Keyspace,
        size: &mut u64,
        mutation: &Mutation,
        touched: &mut BTreeSet<Bytes>,
        flushed: &mut bool,
    ) -> Result<MutationReply> {
        if let Mutation::FlushAll = mutation {
            *size = 0;
            *flushed = true;
            touched.clear();
            return keyspace.apply(mutation);
        }
        let mut keys: Vec<Bytes> = mutation.keys().unwrap_or_default().into_iter().cloned().collect();
        keys.sort();
        keys.dedup();
        let before: Vec<Option<Bytes>> = keys.iter().map(|k| keyspace.get(k).cloned()).collect();
        let footprint = |k: &Bytes, v: Option<&Bytes>| v.map_or(0, |v| (k.len() + v.len()) as u64);
        let old: u64 = keys.iter().zip(&before).map(|(k, v)| footprint(k, v.as_ref())).sum();
        let reply = keyspace.apply(mutation)?;
        let new: u64 = keys.iter().map(|k| footprint(k, keyspace.get(k))).sum();
        let grown = *size - old + new;
        if self.maxmemory > 0 && new > old && grown > self.maxmemory {
            for (key, value) in keys.into_iter().zip(before) {
                match value {
                    Some(value) => keyspace.insert(key, value),
                    None => {
                        keyspace.remove(&key);
                    }
                }
            }
            return Err(Error::Prefixed { prefix: "OOM", message: OOM.into() });
        }
        *size = grown;
        touched.extend(keys);
        Ok(reply)
    }

    /// The version after a batch: `next` (with `size` bytes), its `touched` keys changed from
    /// `base`'s (or all of them, if `flushed`). The document then holds only the keys that
    /// differ from the snapshot; once they are many (or after FLUSHALL) the whole keyspace is
    /// written as a new snapshot first (its name added to `written`), and the document starts
    /// over from it, so a write costs about the keys written since the last snapshot, not the
    /// database.
    async fn next_version(
        &self,
        base: &Base,
        next: Keyspace,
        size: u64,
        touched: &BTreeSet<Bytes>,
        flushed: bool,
        written: &mut Vec<String>,
    ) -> std::result::Result<Base, ObjectError> {
        let name_of = |k: &Bytes, next: &Keyspace| next.get(k).and_then(|v| self.values.name_of(v));
        let (mut diff, mut large) = if flushed {
            let large: imbl::OrdMap<Bytes, String> =
                next.iter().filter_map(|(k, v)| self.values.name_of(v).map(|n| (k.clone(), n))).collect();
            (imbl::OrdMap::new(), large)
        } else {
            (base.diff.clone(), base.large.clone())
        };
        let snapshot = if flushed { None } else { base.snapshot.clone() };
        if !flushed {
            for key in touched {
                match name_of(key, &next) {
                    Some(name) => large.insert(key.clone(), name),
                    None => large.remove(key),
                };
                let now = next.get(key);
                // A value equal to the snapshot's is left to it only if it is the same value
                // in memory: one stored as an object must keep the snapshot's object, not a
                // new one with the same bytes.
                let same = |then: Option<&Bytes>| match (then, now) {
                    (None, None) => true,
                    (Some(a), Some(b)) if self.values.name_of(b).is_some() || self.values.name_of(a).is_some() => {
                        a.as_ptr() == b.as_ptr() && a.len() == b.len()
                    }
                    (a, b) => a == b,
                };
                match &snapshot {
                    Some(s) if same(s.keyspace.get(key)) => diff.remove(key),
                    Some(_) => diff.insert(key.clone(), now.cloned()),
                    None => None,
                };
            }
        }
        let (diff_keys, diff_bytes) = match &snapshot {
            Some(_) => {
                (diff.len(), diff.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len().min(64))).sum())
            }
            None => (next.len(), 0),
        };
        let base_it = diff_keys > self.snapshot_keys || diff_bytes > DIFF_BYTES;
        let snapshot = if base_it && !next.is_empty() {
            // Large values still in the document (from a version 1 document, or a lower
            // threshold than when they were written) move to objects of their own now.
            let moved = self.values.store_new(&*self.objects, next.iter().map(|(_, v)| v)).await?;
            if !moved.is_empty() {
                written.extend(moved);
                large = next.iter().filter_map(|(k, v)| self.values.name_of(v).map(|n| (k.clone(), n))).collect();
            }
            let body = document::encode(&next, |v| self.values.name_of(v));
            let digest = digest_of(body.clone()).await?;
            let name = format!("{}.base.{digest}-{:016x}", self.key, fastrand::u64(..));
            written.push(name.clone());
            let bytes = body.len() as u64;
            self.objects.put(&name, body, PutCondition::IfAbsent).await?;
            self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
            self.stats.snapshot_bytes.fetch_add(bytes, Ordering::Relaxed);
            diff = imbl::OrdMap::new();
            Some(Arc::new(Snapshot { name, keyspace: next.clone(), large: large.clone(), size }))
        } else if base_it {
            diff = imbl::OrdMap::new();
            None
        } else {
            snapshot
        };
        Ok(Base { etag: None, keyspace: Arc::new(next), size, snapshot, diff, large })
    }
}
