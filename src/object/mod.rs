//! Object storage with compare-and-swap: the one primitive s3 mode is built on.
//!
//! Two implementations give the same guarantee — a conditional PUT either replaces exactly
//! the version the writer read or fails without effect:
//!
//! * [`S3`]: any S3-compatible server through aws-sdk-s3, with `If-Match: <etag>` and
//!   `If-None-Match: *` (AWS S3, MinIO, moto).
//! * [`LocalDir`]: a directory on the local disk, the embedded default. A file lock
//!   serialises writers across processes, and write-to-temp + fsync + rename makes each
//!   version appear atomically, so several `valthree serve` processes sharing one directory
//!   form a valid cluster.

mod check;
mod faulty;
mod local;
mod s3;

pub use check::{CheckOptions, CheckReport, check_object_store};
pub use faulty::Partitionable;
pub use local::LocalDir;
pub use s3::{S3, S3Options};

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

/// An entity tag: a version identifier the server assigns to each object version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Etag(pub String);

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One version of an object.
#[derive(Debug, Clone)]
pub struct Object {
    pub body: Bytes,
    pub etag: Etag,
}

/// The condition a PUT is made under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Replace the object only if its current version is this one (`If-Match`).
    IfMatch(Etag),
    /// Create the object only if it does not exist (`If-None-Match: *`).
    IfAbsent,
}

/// Why an object-store call failed, classified by what the caller may conclude.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// The condition did not hold (HTTP 412, or 404 for If-Match on a missing object):
    /// nothing was written; re-read and retry.
    PreconditionFailed,
    /// A concurrent conditional write won the race (HTTP 409 ConditionalRequestConflict):
    /// nothing was written; re-read and retry.
    Conflict,
    /// The request certainly had no effect (refused connection, 4xx): the store is unusable
    /// right now.
    Unavailable(String),
    /// The request may have taken effect (timeout or 5xx after it was sent).
    Indeterminate(String),
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::PreconditionFailed => f.write_str("precondition failed"),
            ObjectError::Conflict => f.write_str("conflicting conditional write"),
            ObjectError::Unavailable(m) => write!(f, "object store unavailable: {m}"),
            ObjectError::Indeterminate(m) => write!(f, "object store outcome unknown: {m}"),
        }
    }
}

/// What a conditional read found.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The current version is still the one the reader named: nothing was transferred.
    Unchanged,
    /// The current version (`None`: the object does not exist).
    Current(Option<Object>),
}

/// Object storage with conditional writes.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// The current version of `key`, or `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Object>, ObjectError>;

    /// The current version of `key` unless it is still `known` (S3's `If-None-Match`): a
    /// reader that holds a version checks it is current without transferring it again.
    async fn get_if_changed(&self, key: &str, known: &Etag) -> Result<Fetched, ObjectError> {
        Ok(match self.get(key).await? {
            Some(object) if object.etag == *known => Fetched::Unchanged,
            current => Fetched::Current(current),
        })
    }

    /// Whether `known` is still the current version of `key`, when that can be told at once
    /// without waiting (no network round trip, no lock held by a writer); `None` otherwise.
    fn is_current_now(&self, _key: &str, _known: &Etag) -> Option<bool> {
        None
    }

    /// Writes `body` under `key` if `condition` holds; returns the new version's etag.
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<Etag, ObjectError>;

    /// Removes `key`; removing an object that does not exist succeeds.
    async fn delete(&self, key: &str) -> Result<(), ObjectError>;

    /// A one-line description for INFO and logs (`local:/path`, `s3://bucket@endpoint`).
    fn describe(&self) -> String;

    /// Where the object `key` is, for an operator: its file, or its URL.
    fn locate(&self, key: &str) -> String;
}
