//! The optimistic-concurrency loop: read, apply, conditional PUT, retry on conflict.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use antithesis_sdk::{assert_reachable, assert_unreachable};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::oneshot;

use super::values::{Unresolved, Values};
use super::{Stats, document, read_error};
use crate::error::{Error, Result};
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

/// Redis' reply to a write past `maxmemory`.
pub const OOM: &str = "command not allowed when used memory > 'maxmemory'.";

/// A document version to apply writes to.
#[derive(Clone)]
pub struct Base {
    /// `None` when the object does not exist yet.
    etag: Option<Etag>,
    keyspace: Arc<Keyspace>,
    /// The bytes of its keys and values (what `maxmemory` limits).
    size: u64,
}

impl Base {
    fn new(etag: Option<Etag>, keyspace: Keyspace) -> Self {
        let size = keyspace.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        Self { etag, keyspace: Arc::new(keyspace), size }
    }
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
}

impl Committer {
    pub fn new(objects: Arc<dyn ObjectStore>, key: String, value_objects_from: u64, maxmemory: u64) -> Self {
        let values = Values::new(&key, value_objects_from);
        Self { objects, key, stats: Stats::default(), decoded: Default::default(), values, maxmemory }
    }

    /// The bytes of keys and values in the last version read or written (INFO).
    pub fn dataset_bytes(&self) -> u64 {
        self.decoded.lock().unwrap().as_ref().map_or(0, |b| b.size)
    }

    /// The `maxmemory` limit (INFO).
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory
    }

    /// Reads the current version of the document, and its value objects.
    async fn fetch(&self) -> Result<Base> {
        for _ in 0..RESOLVE_ATTEMPTS {
            match self.fetch_once().await? {
                Some(base) => return Ok(base),
                None => assert_reachable!("s3: a value object was deleted under a reader", &json!({})),
            }
        }
        Err(Error::TryAgain(format!("the document changed under {RESOLVE_ATTEMPTS} reads in a row")))
    }

    /// [`Committer::fetch`] once; `None` when a value object it names is already gone.
    async fn fetch_once(&self) -> Result<Option<Base>> {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        // Holding a parsed version, ask only whether it is still current (S3: If-None-Match;
        // the local directory: the etag its last writer noted): no transfer, no parse.
        let held = self.decoded.lock().unwrap().clone();
        let fetched = match held.as_ref().and_then(|h| h.etag.as_ref()) {
            Some(etag) => self.objects.get_if_changed(&self.key, etag).await,
            None => self.objects.get(&self.key).await.map(Fetched::Current),
        };
        let object = match fetched {
            Ok(Fetched::Unchanged) => {
                self.stats.unchanged.fetch_add(1, Ordering::Relaxed);
                return Ok(held);
            }
            Ok(Fetched::Current(object)) => object,
            Err(e) => {
                assert_reachable!("s3: object store read failed", &json!({"error": e.to_string()}));
                return Err(read_error(e));
            }
        };
        let Some(object) = object else {
            return Ok(Some(Base::new(None, Keyspace::new())));
        };
        if let Some(hit) = self.decoded.lock().unwrap().as_ref()
            && hit.etag.as_ref() == Some(&object.etag)
        {
            return Ok(Some(hit.clone()));
        }
        let invalid = |e: String| {
            assert_unreachable!("s3: object store holds an invalid document", &json!({"error": e}));
            Error::TryAgain(format!("object store holds an invalid document: {e}"))
        };
        let parsed = document::decode(&object.body).map_err(invalid)?;
        let keyspace = match self.values.resolve(&*self.objects, parsed).await {
            Ok(keyspace) => keyspace,
            Err(Unresolved::Gone) => return Ok(None),
            Err(Unresolved::Failed(e)) => return Err(read_error(e)),
            Err(Unresolved::Corrupt(e)) => return Err(invalid(e)),
        };
        let base = Base::new(Some(object.etag), keyspace);
        self.values.retain(&self.values.referenced(&base.keyspace));
        *self.decoded.lock().unwrap() = Some(base.clone());
        Ok(Some(base))
    }

    /// The held version, if the object store can tell at once that it is still current
    /// (the check happens now, after the reader arrived: a snapshot current at that instant).
    pub fn read_held_if_current(&self) -> Option<Arc<Keyspace>> {
        let held = self.decoded.lock().unwrap().clone()?;
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
                (Ok(_), Some(base)) => self.values.referenced(&base.keyspace),
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
            let replies: Vec<_> = batch.iter().map(|w| self.apply_within(&mut next, &mut size, &w.mutation)).collect();
            if fresh && next == *base.keyspace {
                // Nothing changed and the GET happened after every write in the batch
                // arrived: the batch takes effect at that GET, and no PUT is needed.
                *cache = Some(base);
                return Ok(replies);
            }
            let condition = match &base.etag {
                Some(etag) => PutCondition::IfMatch(etag.clone()),
                None => PutCondition::IfAbsent,
            };
            // Large values new in this version go first, as objects of their own.
            match self.values.store_new(&*self.objects, &next).await {
                Ok(names) => written.extend(names),
                Err(ObjectError::Indeterminate(m) | ObjectError::Unavailable(m)) => {
                    return Err(Error::TryAgain(format!("object store write failed: {m}")));
                }
                Err(e) => return Err(Error::TryAgain(format!("object store write failed: {e}"))),
            }
            let body = document::encode(&next, |value| self.values.name_of(value));
            self.stats.puts.fetch_add(1, Ordering::Relaxed);
            match self.objects.put(&self.key, body, condition).await {
                Ok(etag) => {
                    let dropped: Vec<String> = {
                        let (before, after) = (self.values.referenced(&base.keyspace), self.values.referenced(&next));
                        before.difference(&after).cloned().collect()
                    };
                    let done = Base { etag: Some(etag), keyspace: Arc::new(next), size };
                    // Readers start from it too: until another write, the etag check says so.
                    *self.decoded.lock().unwrap() = Some(done.clone());
                    self.values.retain(&self.values.referenced(&done.keyspace));
                    // This compare-and-swap removed the last reference to them.
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
    fn apply_within(&self, keyspace: &mut Keyspace, size: &mut u64, mutation: &Mutation) -> Result<MutationReply> {
        if let Mutation::FlushAll = mutation {
            *size = 0;
            return keyspace.apply(mutation);
        }
        let mut keys: Vec<Bytes> = match mutation {
            Mutation::Set { key, .. } | Mutation::Update { key, .. } => vec![key.clone()],
            Mutation::Del { keys } => keys.clone(),
            Mutation::FlushAll => Vec::new(),
        };
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
        Ok(reply)
    }
}
