//! Test-only faults a node imposes on itself, set through the authenticated `VALTHREE.FAULT`
//! admin command: network faults (`valthree cluster partition` uses them) and disk faults,
//! which its file layer ([`FileSystem`]) injects.
//!
//! A node keeps a set of peers it is isolated from; every outgoing call to one of them
//! fails as a real outage would. In s3 mode the only peer is the object store, named
//! [`OBJECT_STORE`]. The switch cuts peer traffic only: clients still reach the node, which
//! is exactly the situation a partition creates (the node is up, its peers are not).

use super::{FileSystem, read_lock, write_lock};
use std::collections::BTreeSet;
use std::sync::RwLock;

/// The peer name of the object store.
pub const OBJECT_STORE: &str = "objectstore";

/// The peers this node is cut off from.
#[derive(Debug, Default)]
pub struct Faults {
    isolated: RwLock<BTreeSet<String>>,
    /// The node's file layer, which injects disk faults and knows whether storage failed.
    fs: FileSystem,
}

impl Faults {
    /// The switches of a node whose durable bytes go through `fs`.
    pub fn with_fs(fs: FileSystem) -> Self {
        Self { isolated: RwLock::default(), fs }
    }

    /// The node's file layer.
    pub fn fs(&self) -> &FileSystem {
        &self.fs
    }

    /// True when calls to `peer` must fail.
    pub fn is_isolated_from(&self, peer: &str) -> bool {
        let set = read_lock(&self.isolated);
        !set.is_empty() && set.contains(peer)
    }

    /// Cuts this node off from `peers`.
    pub fn isolate(&self, peers: impl IntoIterator<Item = String>) {
        write_lock(&self.isolated).extend(peers);
    }

    /// Restores every connection.
    pub fn heal(&self) {
        write_lock(&self.isolated).clear();
    }

    /// The peers currently cut off.
    pub fn isolated(&self) -> Vec<String> {
        read_lock(&self.isolated).iter().cloned().collect()
    }
}
