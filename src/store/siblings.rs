//! The sibling-aware surface of a mode that keeps concurrent writes apart instead of ordering
//! them (dynamo mode): `VGET`, `VSET`, `VDEL`, `DYNAMO.MEMBERS`, `DYNAMO.RING`. Contexts and
//! dots cross it as opaque text, so the RESP front needs no type of the mode's.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// One sibling of a key: a write nothing known supersedes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiblingView {
    /// The write's unique id (`actor:counter`).
    pub dot: String,
    /// When it was written (milliseconds since the Unix epoch, the coordinator's clock).
    pub timestamp_ms: u64,
    /// The value; `None` for a delete.
    pub value: Option<Bytes>,
}

/// What `VGET` answers: the key's causal context and its siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The opaque context to hand back with the next `VSET`/`VDEL` of the key.
    pub context: String,
    pub siblings: Vec<SiblingView>,
}

/// What `VSET`/`VDEL` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedWrite {
    /// The key's context after the write.
    pub context: String,
    /// The write's dot.
    pub dot: String,
}

/// The sibling-aware commands of a mode.
#[async_trait]
pub trait Siblings: Send + Sync {
    /// The key's siblings from `r` replicas (the mode's default when `None`).
    async fn vget(&self, key: Bytes, r: Option<usize>) -> Result<Versioned>;

    /// Writes `value` (`None`: a delete) under `context` (the text a VGET or VSET returned;
    /// empty: supersede nothing), acknowledged by `w` replicas (the default when `None`).
    async fn vset(&self, key: Bytes, value: Option<Bytes>, context: Bytes, w: Option<usize>) -> Result<VersionedWrite>;

    /// `DYNAMO.LOCAL key`: this node's own replica of the key, read without a quorum (to see
    /// a stale replica, or that a repair reached it).
    async fn local(&self, key: Bytes) -> Result<Versioned>;

    /// `DYNAMO.MEMBERS`: one line per member (id, address, ALIVE/SUSPECT/DEAD, incarnation, and
    /// how long it has had that health).
    fn members(&self) -> Vec<String>;

    /// `DYNAMO.RING [key]`: the ring's shape, or `key`'s partition and preference list.
    fn ring(&self, key: Option<&[u8]>) -> Vec<String>;
    /// `DYNAMO.DIGEST [partition]`: `partition root` (the anti-entropy tree's root, hex) for
    /// every partition this node holds a copy of, or for one; owners in sync agree.
    fn digest(&self, partition: Option<u32>) -> crate::error::Result<Vec<String>>;
}
