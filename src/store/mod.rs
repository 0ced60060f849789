//! The `Store` trait: the only thing the RESP front knows about a consistency mode.
//!
//! A mode implements four reads and one write entry point. Every write is a [`Mutation`] — a
//! deterministic function of the current keyspace — so a mode that replicates a log (raft),
//! agrees on register values (paxos) or swaps a whole document (s3) applies writes with the
//! same code, [`Keyspace::apply`], and every mode answers SET NX, INCR or APPEND atomically by
//! construction: the mode decides *where and in which order* mutations run, never *what* they do.

mod conformance;
mod keyspace;
mod pattern;
mod scan;
mod siblings;

pub use conformance::{
    run_conformance_suite, run_conformance_suite_per_key, run_conformance_suite_without_atomic_updates,
};
pub use keyspace::{
    Keyspace, MAX_VALUE_LEN, Mutation, MutationReply, NOT_AN_INTEGER, SetCondition, SetOptions, SetReply, UpdateOp,
    ValueCondition, digest, parse_i64,
};
pub use pattern::Pattern;
pub use scan::{Listing, MAX_SCAN_COUNT, Merged, MergedKey, ScanPage, merge, next_cursor, scan_hash, take_page};
pub use siblings::{SiblingView, Siblings, Versioned, VersionedWrite};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// What a mode says about itself, for INFO and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeInfo {
    /// The `--mode` name: s3, paxos, raft, dynamo.
    pub mode: &'static str,
    /// Extra `name:value` lines for INFO's `valthree` section.
    pub details: Vec<(String, String)>,
}

/// The whole keyspace at one point in time, for a backup (`VALTHREE.SNAPSHOT`, `valthree
/// backup`): a clone of the persistent map, so taking one costs O(1) and holding one keeps
/// only the versions of entries written since alive.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The keyspace as it was.
    pub keyspace: Keyspace,
    /// Which point in time, in the mode's terms ("raft applied index 1042").
    pub taken_at: String,
}

/// A change to the cluster's membership (`VALTHREE.MEMBERS`, `valthree cluster add-node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Describe the current configuration.
    Show,
    /// Add node `id`, reachable by peers at `peer_addr`.
    Add { id: u32, peer_addr: String },
    /// Remove node `id`.
    Remove { id: u32 },
}

/// A reply of the wrong kind for its mutation: a mode (or a peer it relayed) broke the
/// contract. The write may have happened, so the client is told it is uncertain — never a
/// panic of the connection.
fn mismatched(command: &str, reply: &MutationReply) -> crate::error::Error {
    tracing::error!(command, ?reply, "a mutation was answered with a reply of the wrong kind");
    crate::error::Error::Uncertain(format!("{command} got a reply of the wrong kind ({reply:?})"))
}

/// The key readiness checks read (`VALTHREE.HEALTH`, `/readyz`): no client is expected to use
/// it, and reading it changes nothing anyone sees.
pub const PROBE_KEY: &[u8] = b"\x00valthree:health";

/// Cluster membership, an admin concern apart from the data commands (`VALTHREE.MEMBERS`,
/// `valthree cluster add-node/remove-node`): only the modes with members implement it.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Changes (or shows) the cluster's membership; one line of text per fact.
    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>>;
}

/// A consistent key-value store, as one mode provides it.
///
/// Reads and writes return `Error::TryAgain` when they certainly did not happen and
/// `Error::Uncertain` when they may have; a mode never answers OK for a write it cannot prove.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, or `None` when it is absent.
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;

    /// The values of `keys`. What "consistent" means is the mode's promise: s3 and raft
    /// read every key from one view (one document, one read index); paxos reads each key
    /// linearizably on its own, not as one snapshot.
    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>>;

    /// Several GETs that arrived together (a client's pipeline): one result each, as each
    /// would have had alone, but they may share one read — every one of them was received
    /// before the read, so it observes every write acknowledged before any of them started.
    /// A mode whose GETs can fail one by one (dynamo: a key's siblings, its owners' quorum)
    /// answers each on its own.
    async fn get_each(&self, keys: &[Bytes]) -> Vec<Result<Option<Bytes>>> {
        match self.mget(keys).await {
            Ok(values) => values.into_iter().map(Ok).collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// How many of `keys` exist; a key named twice counts twice (as in Redis).
    async fn exists(&self, keys: &[Bytes]) -> Result<u64> {
        let values = self.mget(keys).await?;
        Ok(values.iter().filter(|v| v.is_some()).count() as u64)
    }

    /// The number of keys.
    async fn dbsize(&self) -> Result<u64>;

    /// One page of a scan of the keyspace: keys from `cursor` (0 to start) in the scan order
    /// of [`scan_hash`], about `count` of them (a hint, capped at [`MAX_SCAN_COUNT`]), those
    /// matching `pattern` when one is given, and the cursor of the next page (0: done).
    ///
    /// Redis' SCAN guarantee: a key present from the first page to the last is returned at
    /// least once; a key added or removed meanwhile may or may not be. A cursor means the same
    /// on every node and after restarts (it is a position in a fixed hash order, not a
    /// node's memory). Each mode's doc says how one page is read (one view, or a union of
    /// nodes' listings).
    async fn scan(&self, cursor: u64, count: usize, pattern: Option<&Pattern>) -> Result<ScanPage>;

    /// Applies one write atomically and returns its outcome.
    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply>;

    /// Whether [`Store::mutate_each`] commits writes that arrive together in fewer rounds than
    /// one each (s3 mode's group commit): only then does a connection hand a run of
    /// pipelined SETs over as one batch rather than running them one by one.
    fn groups_writes(&self) -> bool {
        false
    }

    /// Several writes that arrived together (a client's pipeline), in order: each takes effect
    /// after the one before it and gets the result it would have had alone. A mode may carry
    /// them in one commit ([`Store::groups_writes`]); by default they run one after another.
    async fn mutate_each(&self, mutations: Vec<Mutation>) -> Vec<Result<MutationReply>> {
        let mut results = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            results.push(self.mutate(mutation).await);
        }
        results
    }

    /// [`Store::mutate_each`] for a run of SETs (each a [`Mutation::Set`]).
    async fn set_each(&self, sets: Vec<Mutation>) -> Vec<Result<SetReply>> {
        let replies = self.mutate_each(sets).await.into_iter();
        replies
            .map(|reply| match reply? {
                MutationReply::Set(reply) => Ok(reply),
                other => Err(mismatched("SET", &other)),
            })
            .collect()
    }

    /// Describes the mode for INFO (and, through [`crate::metrics::mode`], for `/metrics`).
    fn describe(&self) -> ModeInfo;

    /// Whether this node can answer a linearizable read now (`/readyz`), or why not. By
    /// default a read of [`PROBE_KEY`] through the mode: the object store's document in s3
    /// mode, a quorum round (a majority reachable) in paxos.
    async fn readiness(&self) -> std::result::Result<(), String> {
        self.get(PROBE_KEY).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The number of keys as this node knows it locally, with no round to peers: what INFO's
    /// keyspace section shows, so a bare INFO stays cheap. `None`: the mode has no cheaper
    /// count than [`Store::dbsize`] (s3 mode, where it costs one read of the document).
    fn local_dbsize(&self) -> Option<u64> {
        None
    }

    /// The whole keyspace at one linearizable point in time, for the modes that hold it in
    /// one piece (s3: one version of the document; raft: the state machine at one applied
    /// index past a read-index barrier). `None`: the mode has no such point (paxos agrees on
    /// each key alone, dynamo keeps replicas), and a backup reads key by key instead.
    async fn snapshot(&self) -> Result<Option<Snapshot>> {
        Ok(None)
    }

    /// Hands over what the cluster needs from this node, within `hand_over` (raft: its
    /// leadership, to a caught-up follower; dynamo: the hints it keeps for other owners),
    /// then stops the mode's background work — peer server, replication, garbage
    /// collection — and waits for it. Called once, after the RESP server has drained its
    /// connections. Returns what was handed over or left behind, for the node's last log
    /// line (`leadership moved to n2`, `12 hints kept on disk`).
    async fn shutdown(&self, hand_over: std::time::Duration) -> Vec<String> {
        let _ = hand_over;
        Vec::new()
    }

    /// The mode's membership admin, for the modes that have a membership to change.
    fn membership(&self) -> Option<&dyn Membership> {
        None
    }

    /// The sibling-aware commands (VGET, VSET, ...), for the modes that keep siblings.
    fn siblings(&self) -> Option<&dyn Siblings> {
        None
    }

    /// SET with its NX/XX/IFEQ/IFNE/IFDEQ/IFDNE/GET options.
    async fn set(&self, key: Bytes, value: Bytes, options: SetOptions) -> Result<SetReply> {
        match self.mutate(Mutation::Set { key, value, options }).await? {
            MutationReply::Set(reply) => Ok(reply),
            other => Err(mismatched("SET", &other)),
        }
    }

    /// Deletes `keys`, returning how many existed.
    async fn del(&self, keys: Vec<Bytes>) -> Result<u64> {
        match self.mutate(Mutation::Del { keys }).await? {
            MutationReply::Count(n) => Ok(n),
            other => Err(mismatched("DEL", &other)),
        }
    }

    /// A read-modify-write on one key (INCRBY, APPEND); returns the resulting integer or length.
    async fn update(&self, key: Bytes, op: UpdateOp) -> Result<i64> {
        match self.mutate(Mutation::Update { key, op }).await? {
            MutationReply::Integer(n) => Ok(n),
            other => Err(mismatched("update", &other)),
        }
    }

    /// Removes `key` when `condition` (if any) holds (DELEX, DELIFEQ, GETDEL); `removed` says
    /// whether it did, `previous` is its value before when `get` was asked for.
    async fn remove(&self, key: Bytes, condition: Option<ValueCondition>, get: bool) -> Result<SetReply> {
        match self.mutate(Mutation::Remove { key, condition, get }).await? {
            MutationReply::Removed(reply) => Ok(reply),
            other => Err(mismatched("DELEX", &other)),
        }
    }

    /// Writes every pair in one atomic write (MSET), or with `if_none_exist` nothing unless
    /// every key is absent (MSETNX); `written` says which.
    async fn multi_set(&self, pairs: Vec<(Bytes, Bytes)>, if_none_exist: bool) -> Result<bool> {
        match self.mutate(Mutation::MultiSet { pairs, if_none_exist }).await? {
            MutationReply::Set(reply) => Ok(reply.written),
            other => Err(mismatched("MSET", &other)),
        }
    }

    /// Removes every key.
    async fn flushall(&self) -> Result<()> {
        match self.mutate(Mutation::FlushAll).await? {
            MutationReply::Done => Ok(()),
            other => Err(mismatched("FLUSHALL", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mode (or a peer it relays) that answers a mutation with the wrong kind of reply.
    struct Confused;

    #[async_trait]
    impl Store for Confused {
        async fn get(&self, _: &[u8]) -> Result<Option<Bytes>> {
            Ok(None)
        }
        async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
            Ok(vec![None; keys.len()])
        }
        async fn dbsize(&self) -> Result<u64> {
            Ok(0)
        }
        async fn scan(&self, _: u64, _: usize, _: Option<&Pattern>) -> Result<ScanPage> {
            Ok(ScanPage::default())
        }
        async fn mutate(&self, _: Mutation) -> Result<MutationReply> {
            Ok(MutationReply::Done)
        }
        fn describe(&self) -> ModeInfo {
            ModeInfo { mode: "confused", details: Vec::new() }
        }
    }

    #[tokio::test]
    async fn a_reply_of_the_wrong_kind_is_uncertain_not_a_panic() {
        let store = Confused;
        let set = store.set(Bytes::from_static(b"k"), Bytes::from_static(b"v"), SetOptions::default()).await;
        assert!(matches!(set, Err(crate::error::Error::Uncertain(_))), "{set:?}");
        assert!(matches!(store.del(vec![Bytes::from_static(b"k")]).await, Err(crate::error::Error::Uncertain(_))));
        let incr = store.update(Bytes::from_static(b"k"), UpdateOp::IncrBy(1)).await;
        assert!(matches!(incr, Err(crate::error::Error::Uncertain(_))));
        let remove = store.remove(Bytes::from_static(b"k"), None, true).await;
        assert!(matches!(remove, Err(crate::error::Error::Uncertain(_))));
        let mset = store.multi_set(vec![(Bytes::from_static(b"k"), Bytes::new())], false).await;
        assert!(matches!(mset, Err(crate::error::Error::Uncertain(_))));
        assert!(store.flushall().await.is_ok(), "FLUSHALL's own reply is Done");
        assert!(store.membership().is_none());
    }
}
