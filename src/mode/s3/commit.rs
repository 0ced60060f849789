//! The optimistic-concurrency loop: read, apply, conditional PUT, retry on conflict.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use antithesis_sdk::{assert_reachable, assert_unreachable};
use serde_json::json;
use tokio::sync::oneshot;

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

/// A document version to apply writes to.
#[derive(Clone)]
pub struct Base {
    /// `None` when the object does not exist yet.
    etag: Option<Etag>,
    keyspace: Arc<Keyspace>,
}

/// Reads and conditionally replaces the document.
pub struct Committer {
    pub(super) objects: Arc<dyn ObjectStore>,
    key: String,
    pub(super) stats: Stats,
    /// The last version read, so an unchanged document is not parsed twice.
    decoded: std::sync::Mutex<Option<Base>>,
}

impl Committer {
    pub fn new(objects: Arc<dyn ObjectStore>, key: String) -> Self {
        Self { objects, key, stats: Stats::default(), decoded: Default::default() }
    }

    /// Reads the current version of the document.
    async fn fetch(&self) -> Result<Base> {
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
                return Ok(held.expect("a version was held"));
            }
            Ok(Fetched::Current(object)) => object,
            Err(e) => {
                assert_reachable!("s3: object store read failed", &json!({"error": e.to_string()}));
                return Err(read_error(e));
            }
        };
        let Some(object) = object else {
            return Ok(Base { etag: None, keyspace: Arc::default() });
        };
        if let Some(hit) = self.decoded.lock().unwrap().as_ref()
            && hit.etag.as_ref() == Some(&object.etag)
        {
            return Ok(hit.clone());
        }
        let keyspace = document::decode(&object.body).map_err(|e| {
            assert_unreachable!("s3: object store holds an invalid document", &json!({"error": e}));
            Error::TryAgain(format!("object store holds an invalid document: {e}"))
        })?;
        let base = Base { etag: Some(object.etag), keyspace: Arc::new(keyspace) };
        *self.decoded.lock().unwrap() = Some(base.clone());
        Ok(base)
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
        let outcome = self.commit_rounds(&batch, cache).await;
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

    async fn commit_rounds(
        &self,
        batch: &[PendingWrite],
        cache: &mut Option<Base>,
    ) -> Result<Vec<Result<MutationReply>>> {
        let mut backoff = FIRST_BACKOFF;
        for _ in 0..OCC_ATTEMPTS {
            let (base, fresh) = match cache.take() {
                Some(base) => (base, false),
                None => (self.fetch().await?, true),
            };
            let mut next = (*base.keyspace).clone();
            let replies: Vec<_> = batch.iter().map(|w| next.apply(&w.mutation)).collect();
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
            self.stats.puts.fetch_add(1, Ordering::Relaxed);
            match self.objects.put(&self.key, document::encode(&next), condition).await {
                Ok(etag) => {
                    let written = Base { etag: Some(etag), keyspace: Arc::new(next) };
                    // Readers start from it too: until another write, the etag check says so.
                    *self.decoded.lock().unwrap() = Some(written.clone());
                    *cache = Some(written);
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
}
