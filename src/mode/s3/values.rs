//! Large values as objects of their own.
//!
//! A value of at least `--s3-value-objects-from` bytes is written once, before the
//! compare-and-swap that first references it, as an immutable object named
//! `<document key>.value.<SHA-256 of the value>-<random 64-bit id>`; the document holds only
//! `object:<that name>`. Every later write of the document carries the short reference, not
//! the value, so one 100 MB value no longer costs every write to any key a 100 MB PUT.
//!
//! * **Content-addressed, verified:** a reader checks the value's digest against its name.
//! * **Unique per write:** the random id makes the object belong to the one write that
//!   introduced it. No other writer ever starts referencing it; one that carries it over
//!   does so from the current document, and its compare-and-swap fails if that document is
//!   no longer current. So the writer whose compare-and-swap dropped the last reference
//!   (the key was overwritten, deleted or flushed) deletes the object right after it.
//! * **Readers:** a reader that parsed a document just replaced may find an object already
//!   gone; it reads the document again (its read then takes effect at that later version).
//! * **Memory:** a node holds each value once, shared by the keyspace and the name table.
//!
//! An object written for a write whose compare-and-swap then failed is deleted by that
//! writer; one whose writer crashed in between, or whose compare-and-swap's outcome was
//! unknown, stays behind unreferenced (it is never read).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::document::Value;
use crate::node::lock;
use crate::object::{ObjectError, ObjectStore, PutCondition};

/// The default `--s3-value-objects-from`: values this large or larger get objects of their own.
pub const DEFAULT_MIN: u64 = 64 * 1024;

/// A value's identity in memory: its bytes' address and length (a `Bytes` never moves, and
/// the table holds a clone, so the address is not reused while it is listed).
type Identity = (usize, usize);

fn identity(value: &Bytes) -> Identity {
    (value.as_ptr() as usize, value.len())
}

/// Why a document's values could not all be read.
pub enum Unresolved {
    /// An object is gone: the document was replaced meanwhile; read it again.
    Gone(String),
    Failed(ObjectError),
    /// An object's bytes do not match its name: the object, and what is wrong.
    Corrupt(String, String),
}

#[derive(Default)]
struct Table {
    by_value: HashMap<Identity, (String, Bytes)>,
    by_name: HashMap<String, Bytes>,
    /// Written for a commit still in progress: kept whatever documents are read meanwhile.
    pinned: HashSet<String>,
}

impl Table {
    fn insert(&mut self, name: String, value: Bytes, shortest: &AtomicUsize) {
        shortest.fetch_min(value.len(), Ordering::Relaxed);
        self.by_name.insert(name.clone(), value.clone());
        self.by_value.insert(identity(&value), (name, value));
    }
}

/// The names of the large values of one node's documents.
pub struct Values {
    /// Values of at least this many bytes get objects (0: none do).
    min: usize,
    prefix: String,
    table: Mutex<Table>,
    /// The length of the shortest value in the table (at most).
    shortest: AtomicUsize,
}

impl Values {
    pub fn new(document_key: &str, min: u64) -> Self {
        let min = usize::try_from(min).unwrap_or(usize::MAX);
        Self {
            min,
            prefix: format!("{document_key}.value."),
            table: Default::default(),
            shortest: AtomicUsize::new(usize::MAX),
        }
    }

    fn is_large(&self, value: &Bytes) -> bool {
        self.min > 0 && value.len() >= self.min
    }

    /// The object `value` is stored in, if it has one (for the encoder).
    pub fn name_of(&self, value: &Bytes) -> Option<String> {
        // Whatever the threshold now, a value that has an object keeps it (a value shorter
        // than every value with an object has none: no lock to take for it).
        if value.len() < self.shortest.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        lock(&self.table).by_value.get(&identity(value)).map(|(name, _)| name.clone())
    }

    /// Writes every large value among `candidates` that has no object yet; returns the names
    /// written. Runs before the compare-and-swap that references them.
    pub async fn store_new<'a>(
        &self,
        objects: &dyn ObjectStore,
        candidates: impl Iterator<Item = &'a Bytes>,
    ) -> Result<Vec<String>, ObjectError> {
        let new: Vec<Bytes> = {
            let table = lock(&self.table);
            let mut new: Vec<Bytes> = candidates
                .filter(|v| self.is_large(v) && !table.by_value.contains_key(&identity(v)))
                .cloned()
                .collect();
            new.dedup_by_key(|v| identity(v));
            new
        };
        let mut written = Vec::new();
        for value in new {
            let digest = digest_of(value.clone()).await?;
            let name = format!("{}{digest}-{:016x}", self.prefix, fastrand::u64(..));
            lock(&self.table).pinned.insert(name.clone());
            written.push(name.clone());
            if let Err(e) = objects.put(&name, value.clone(), PutCondition::IfAbsent).await {
                self.unpin(&written);
                return Err(e);
            }
            lock(&self.table).insert(name, value, &self.shortest);
        }
        Ok(written)
    }

    /// A value of a parsed document: stored values are read (each object once: values this
    /// node already holds are shared, not read again).
    pub async fn resolve(&self, objects: &dyn ObjectStore, value: Value) -> Result<Bytes, Unresolved> {
        match value {
            Value::Inline(value) => Ok(value),
            Value::Object(name) => {
                let held = lock(&self.table).by_name.get(&name).cloned();
                match held {
                    Some(value) => Ok(value),
                    None => self.read(objects, &name).await,
                }
            }
        }
    }

    async fn read(&self, objects: &dyn ObjectStore, name: &str) -> Result<Bytes, Unresolved> {
        let want = name
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.split_once('-'))
            .map(|(digest, _)| digest.to_owned())
            .ok_or_else(|| Unresolved::Corrupt(name.to_owned(), "not a value object of this document".into()))?;
        let object =
            objects.get(name).await.map_err(Unresolved::Failed)?.ok_or_else(|| Unresolved::Gone(name.to_owned()))?;
        let body = object.body;
        let digest = digest_of(body.clone()).await.map_err(Unresolved::Failed)?;
        if digest != want {
            return Err(Unresolved::Corrupt(name.to_owned(), "the value does not match the digest in its name".into()));
        }
        lock(&self.table).insert(name.to_owned(), body.clone(), &self.shortest);
        Ok(body)
    }

    /// Forgets every name neither in `keep` nor pinned (their values are no longer this
    /// node's to share).
    pub fn retain(&self, keep: &HashSet<String>) {
        let mut table = lock(&self.table);
        let Table { by_value, by_name, pinned } = &mut *table;
        by_name.retain(|name, _| keep.contains(name) || pinned.contains(name));
        by_value.retain(|_, (name, _)| keep.contains(name) || pinned.contains(name));
        let shortest = by_value.values().map(|(_, v)| v.len()).min().unwrap_or(usize::MAX);
        self.shortest.store(shortest, Ordering::Relaxed);
    }

    /// Ends the pin [`Values::store_new`] put on `names`.
    pub fn unpin(&self, names: &[String]) {
        let mut table = lock(&self.table);
        for name in names {
            table.pinned.remove(name);
        }
    }

    /// The number of values with objects of their own this node knows (INFO).
    pub fn count(&self) -> usize {
        lock(&self.table).by_name.len()
    }
}

/// The SHA-256 of `body` in hex, the digest in value and snapshot names (hashed on a
/// blocking thread: a value may be hundreds of megabytes).
pub async fn digest_of(body: Bytes) -> Result<String, ObjectError> {
    tokio::task::spawn_blocking(move || Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect())
        .await
        .map_err(|e| ObjectError::Unavailable(e.to_string()))
}
