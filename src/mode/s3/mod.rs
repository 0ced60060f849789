//! s3 mode: the whole database is one JSON object, replaced by compare-and-swap.
//!
//! ## Protocol
//!
//! A write reads the document and its ETag, applies the mutation in memory, and PUTs the new
//! document with `If-Match: <etag>` (`If-None-Match: *` when there is none yet). The object
//! store accepts the PUT only if nobody replaced the document in between; otherwise it answers
//! 412 (or 409 for a concurrent conditional write) and the writer re-reads and tries again,
//! with jittered exponential backoff, a bounded number of times. This is optimistic
//! concurrency control over a single register, as in antithesishq/valthree.
//!
//! ## Group commit
//!
//! With `--s3-batch on` (the default) one committer task per node takes every write queued
//! at that moment, applies them in arrival order to one copy of the document, and carries
//! them all in one conditional PUT; each client is answered only after that PUT succeeded,
//! in batch order. The committer also remembers the document and ETag its last PUT produced
//! and starts the next batch from them: if another node wrote meanwhile the PUT fails with
//! 412 and the batch re-reads, so the shortcut costs nothing in correctness and saves a GET
//! per batch when one node does most writing. Reads that are queued together share one GET
//! — but only reads that arrived before it was sent, so a read never returns a document
//! older than its own arrival. A connection's pipeline joins in: its run of pipelined SETs is
//! queued whole, in order ([`Store::mutate_each`]), so it shares a PUT rather than waiting
//! for one PUT per SET. `--s3-batch off` gives every request its own GET/PUT cycle.
//!
//! ## Invariants and promises
//!
//! * Every acknowledged write is in the document version its PUT created, and every later
//!   version descends from it (compare-and-swap never skips a version).
//! * A read returns a version that was current at some instant between its arrival and its
//!   reply. Together: **strict serializability** — each request, batch or not, takes effect
//!   at the instant of the GET or PUT that served it.
//! * A PUT whose outcome is unknown (timeout, 5xx) answers `-UNCERTAIN`, never OK; a write
//!   that gave up after conflicts, or found the store unreachable, answers `-TRYAGAIN`.

mod args;
mod commit;
mod document;
mod values;

pub use args::{S3Args, S3ConnectArgs};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::node::lock;
use crate::object::{ObjectError, ObjectStore};
use crate::store::{
    Keyspace, ModeInfo, Mutation, MutationReply, Pattern, ScanPage, SetCondition, Snapshot, Store, ValueCondition,
};
use commit::{Base, Committer, PendingWrite, Unreadable};

/// The default object key of the database document.
pub const DEFAULT_OBJECT_KEY: &str = "db.json";
/// The most writes one group commit carries.
pub const MAX_BATCH: usize = 512;
/// How many requests may wait for the committer or the reader before callers wait too.
pub const QUEUE_DEPTH: usize = 4096;

/// Options of s3 mode.
#[derive(Debug, Clone)]
pub struct S3ModeOptions {
    /// The object holding the document.
    pub object_key: String,
    /// Group commit of writes and shared GETs of reads.
    pub batch: bool,
    /// A planted bug for testing the checker: answer about half of the reads from an old
    /// snapshot. Never use it for data you care about.
    pub unsafe_stale_reads: bool,
    /// A planted bug for testing the checker: `SET … IFEQ` writes without comparing (a
    /// compare-and-set that always swaps). Never use it for data you care about.
    pub unsafe_blind_cas: bool,
    /// Values this large or larger are stored as objects of their own (0: never).
    pub value_objects_from: u64,
    /// The most bytes of keys and values (0: no limit).
    pub maxmemory: u64,
    /// The most keys the document holds over its snapshot before a new one is written.
    pub snapshot_keys: usize,
}

impl Default for S3ModeOptions {
    fn default() -> Self {
        Self {
            object_key: DEFAULT_OBJECT_KEY.into(),
            batch: true,
            unsafe_stale_reads: false,
            unsafe_blind_cas: false,
            value_objects_from: values::DEFAULT_MIN,
            maxmemory: 0,
            snapshot_keys: commit::DIFF_KEYS,
        }
    }
}

/// Counters for INFO.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub puts: AtomicU64,
    pub writes: AtomicU64,
    pub gets: AtomicU64,
    /// GETs answered "unchanged": the held version was current, nothing transferred.
    pub unchanged: AtomicU64,
    pub reads: AtomicU64,
    pub conflicts: AtomicU64,
    /// Snapshots written (the document started over from a new one).
    pub snapshots: AtomicU64,
    /// Bytes of the document's PUTs (each attempt's).
    pub put_bytes: AtomicU64,
    /// Bytes of the snapshots written.
    pub snapshot_bytes: AtomicU64,
}

/// A reader waiting for a snapshot of the keyspace.
type PendingRead = oneshot::Sender<Result<Arc<Keyspace>>>;

/// The s3-mode store of one node.
pub struct S3Mode {
    committer: Arc<Committer>,
    options: S3ModeOptions,
    writes: Option<mpsc::Sender<PendingWrite>>,
    reads: Option<mpsc::Sender<PendingRead>>,
    /// The old snapshot `unsafe_stale_reads` serves.
    stale: std::sync::Mutex<Option<Arc<Keyspace>>>,
}

impl S3Mode {
    /// Starts s3 mode on `objects`; with batching on it spawns the committer and reader tasks.
    pub fn start(objects: Arc<dyn ObjectStore>, options: S3ModeOptions) -> Self {
        let committer = Arc::new(Committer::new(objects, options.object_key.clone(), &options));
        let (mut writes, mut reads) = (None, None);
        if options.batch {
            let (wtx, wrx) = mpsc::channel(QUEUE_DEPTH);
            let (rtx, rrx) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(commit_loop(committer.clone(), wrx));
            tokio::spawn(read_loop(committer.clone(), rrx));
            (writes, reads) = (Some(wtx), Some(rtx));
        }
        Self { committer, options, writes, reads, stale: Default::default() }
    }

    /// Starts s3 mode as [`S3Mode::start`] does, after reading the database once as a reader
    /// would: a document, snapshot or value object that does not match its checksum or
    /// digest (a byte flipped or a tail lost on the object store's disk) refuses the start,
    /// naming the object and what to do, rather than meet the first client. A store that
    /// cannot be read right now does not: every read checks again.
    pub async fn open(objects: Arc<dyn ObjectStore>, options: S3ModeOptions) -> Result<Self> {
        let mode = Self::start(objects, options);
        match mode.committer.check().await {
            Ok(()) => Ok(mode),
            Err(Unreadable::Invalid { object, why }) => {
                let (objects, key) = (&mode.committer.objects, &mode.options.object_key);
                let document = objects.locate(key);
                let aside = if object == *key {
                    "move it aside".to_string()
                } else {
                    format!("move the document {document} aside")
                };
                Err(Error::Config(format!(
                    "{} is corrupt ({why}): refusing to start rather than serve wrong data. The object store \
                     holds the only copy of the database: put back a good copy of this object (from a \
                     backup of the directory, or the bucket's versioning), or {aside} (the database then \
                     starts empty) and restore a backup with `valthree restore`",
                    objects.locate(&object)
                )))
            }
            Err(Unreadable::Failed(e)) => {
                tracing::warn!("could not read the database at start ({e}); serving, each read tries again");
                Ok(mode)
            }
        }
    }

    async fn snapshot(&self) -> Result<Arc<Keyspace>> {
        if !self.options.unsafe_stale_reads {
            return self.fresh_snapshot().await;
        }
        let old = lock(&self.stale).clone();
        match old {
            Some(old) if fastrand::bool() => Ok(old),
            _ => {
                let fresh = self.fresh_snapshot().await?;
                let mut stale = lock(&self.stale);
                if stale.is_none() || fastrand::u8(..) < 16 {
                    *stale = Some(fresh.clone());
                }
                Ok(fresh)
            }
        }
    }

    async fn fresh_snapshot(&self) -> Result<Arc<Keyspace>> {
        // A local directory says at once whether the parsed version is current: no trip
        // through the shared reader then.
        if let Some(held) = self.committer.read_held_if_current() {
            return Ok(held);
        }
        let Some(reads) = &self.reads else {
            return self.committer.read().await;
        };
        let (tx, rx) = oneshot::channel();
        reads.send(tx).await.map_err(|_| Error::TryAgain("server is shutting down".into()))?;
        rx.await.map_err(|_| Error::TryAgain("server is shutting down".into()))?
    }
}

impl S3Mode {
    /// `mutation` as a write for the committer (planted bugs applied), and where its answer
    /// comes.
    fn pending(&self, mut mutation: Mutation) -> (PendingWrite, oneshot::Receiver<Result<MutationReply>>) {
        if self.options.unsafe_blind_cas
            && let Mutation::Set { options, .. } = &mut mutation
            && matches!(options.condition, Some(SetCondition::IfValue(ValueCondition::Equal(_))))
        {
            options.condition = None;
        }
        let (tx, rx) = oneshot::channel();
        (PendingWrite { mutation, reply: tx }, rx)
    }
}

/// The committer's answer to one write.
async fn answer(rx: oneshot::Receiver<Result<MutationReply>>) -> Result<MutationReply> {
    // The committer always answers; a dropped sender means it died mid-commit.
    rx.await.map_err(|_| Error::Uncertain("commit task ended before answering".into()))?
}

/// Serves queued writes in batches, one conditional PUT per batch.
async fn commit_loop(committer: Arc<Committer>, mut queue: mpsc::Receiver<PendingWrite>) {
    let mut cache: Option<Base> = None;
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        committer.commit(std::mem::take(&mut batch), &mut cache).await;
    }
}

/// Serves queued reads, one GET for all reads that arrived before it was sent.
async fn read_loop(committer: Arc<Committer>, mut queue: mpsc::Receiver<PendingRead>) {
    let mut waiting = Vec::new();
    while queue.recv_many(&mut waiting, QUEUE_DEPTH).await > 0 {
        let snapshot = committer.read().await;
        for reader in waiting.drain(..) {
            let _ = reader.send(snapshot.clone());
        }
    }
}

/// Maps an object-store failure of a read: a read changes nothing, so it is always definite.
fn read_error(e: ObjectError) -> Error {
    Error::TryAgain(format!("object store read failed: {e}"))
}

#[async_trait]
impl Store for S3Mode {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.snapshot().await?.get(key).cloned())
    }

    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        let snapshot = self.snapshot().await?;
        Ok(keys.iter().map(|k| snapshot.get(k).cloned()).collect())
    }

    async fn dbsize(&self) -> Result<u64> {
        Ok(self.snapshot().await?.len() as u64)
    }

    /// Each page reads the document's current version, so a page is one point in time; a
    /// scan is several (a key written between pages may be missed or seen, as in Redis).
    async fn scan(&self, cursor: u64, count: usize, pattern: Option<&Pattern>) -> Result<ScanPage> {
        Ok(self.snapshot().await?.scan(cursor, count).matching(pattern))
    }

    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply> {
        let (write, rx) = self.pending(mutation);
        match &self.writes {
            Some(queue) => {
                queue.send(write).await.map_err(|_| Error::TryAgain("server is shutting down".into()))?;
            }
            None => self.committer.commit(vec![write], &mut None).await,
        }
        answer(rx).await
    }

    fn groups_writes(&self) -> bool {
        self.writes.is_some()
    }

    /// Queues every write at once, in order, so the committer carries them in one batch (or
    /// in consecutive ones: its queue is first in, first out), and one conditional PUT makes
    /// them durable together, as it does for writes from many connections.
    async fn mutate_each(&self, mutations: Vec<Mutation>) -> Vec<Result<MutationReply>> {
        let Some(queue) = &self.writes else {
            let mut results = Vec::with_capacity(mutations.len());
            for mutation in mutations {
                results.push(self.mutate(mutation).await);
            }
            return results;
        };
        let mut waiting = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            let (write, rx) = self.pending(mutation);
            // A closed queue stays closed: this write and every later one were never queued.
            waiting.push(queue.send(write).await.ok().map(|()| rx));
        }
        let mut results = Vec::with_capacity(waiting.len());
        for rx in waiting {
            results.push(match rx {
                Some(rx) => answer(rx).await,
                None => Err(Error::TryAgain("server is shutting down".into())),
            });
        }
        results
    }

    /// One version of the document, read as a GET reads it (never the planted stale one).
    async fn snapshot(&self) -> Result<Option<Snapshot>> {
        let keyspace = Keyspace::clone(&*self.fresh_snapshot().await?);
        Ok(Some(Snapshot { keyspace, taken_at: "one version of the s3 document".into() }))
    }

    fn describe(&self) -> ModeInfo {
        let s = &self.committer.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        ModeInfo {
            mode: "s3",
            details: vec![
                ("s3_object_store".into(), self.committer.objects.describe()),
                ("s3_object_key".into(), self.options.object_key.clone()),
                ("s3_batch".into(), if self.options.batch { "on" } else { "off" }.into()),
                ("s3_puts".into(), n(&s.puts)),
                ("s3_writes_committed".into(), n(&s.writes)),
                ("s3_gets".into(), n(&s.gets)),
                ("s3_gets_unchanged".into(), n(&s.unchanged)),
                ("s3_reads_served".into(), n(&s.reads)),
                ("s3_occ_conflicts".into(), n(&s.conflicts)),
                ("s3_snapshots_written".into(), n(&s.snapshots)),
                ("s3_put_bytes".into(), n(&s.put_bytes)),
                ("s3_snapshot_bytes".into(), n(&s.snapshot_bytes)),
                ("s3_value_objects".into(), self.committer.values.count().to_string()),
                ("used_memory_dataset".into(), self.committer.dataset_bytes().to_string()),
                ("maxmemory".into(), self.committer.maxmemory().to_string()),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::LocalDir;
    use crate::store::run_conformance_suite;

    fn node(dir: &std::path::Path, batch: bool) -> Arc<dyn Store> {
        let objects = Arc::new(LocalDir::open(dir).unwrap());
        Arc::new(S3Mode::start(objects, S3ModeOptions { batch, ..Default::default() }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_node_with_group_commit_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        run_conformance_suite(vec![node(dir.path(), true)]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_on_one_directory_pass_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = vec![node(dir.path(), true), node(dir.path(), false), node(dir.path(), true)];
        run_conformance_suite(nodes).await;
    }
}
