//! An object store that a node can be partitioned from (see [`crate::node::Faults`]).
//!
//! While the node is isolated from [`OBJECT_STORE`], reads fail at once (definite: nothing
//! was read) and each write fails in one of the two ways a real partition produces, chosen
//! at random: before it is sent (definite, `Unavailable`), or after it reached the store with
//! the reply lost (`Indeterminate`) — in which case the write really is applied, so the
//! client's `-UNCERTAIN` is the truth and the history checker has real ambiguity to resolve.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Etag, Fetched, Object, ObjectError, ObjectStore, PutCondition};
use crate::node::{Faults, OBJECT_STORE};

/// Wraps an object store with a partition switch.
pub struct Partitionable {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
}

impl Partitionable {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }

    fn cut(&self) -> bool {
        self.faults.is_isolated_from(OBJECT_STORE)
    }
}

const CUT: &str = "partitioned from the object store";

#[async_trait]
impl ObjectStore for Partitionable {
    async fn get(&self, key: &str) -> Result<Option<Object>, ObjectError> {
        if self.cut() {
            return Err(ObjectError::Unavailable(CUT.into()));
        }
        self.inner.get(key).await
    }

    async fn get_if_changed(&self, key: &str, known: &Etag) -> Result<Fetched, ObjectError> {
        if self.cut() {
            return Err(ObjectError::Unavailable(CUT.into()));
        }
        self.inner.get_if_changed(key, known).await
    }

    fn is_current_now(&self, key: &str, known: &Etag) -> Option<bool> {
        if self.cut() {
            return None; // the slow path reports the cut
        }
        self.inner.is_current_now(key, known)
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<Etag, ObjectError> {
        if !self.cut() {
            return self.inner.put(key, body, condition).await;
        }
        if fastrand::bool() {
            return Err(ObjectError::Unavailable(CUT.into()));
        }
        // The request got through; the reply is lost.
        let _ = self.inner.put(key, body, condition).await;
        Err(ObjectError::Indeterminate(format!("{CUT} (reply lost)")))
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        if self.cut() {
            return Err(ObjectError::Unavailable(CUT.into()));
        }
        self.inner.delete(key).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }
}
