//! Test-only network faults a node imposes on itself, set through the authenticated
//! `VALTHREE.FAULT` admin command (`valthree cluster partition` uses it).
//!
//! A node keeps a set of peers it is isolated from; every outgoing call to one of them
//! fails as a real outage would. In s3 mode the only peer is the object store, named
//! [`OBJECT_STORE`]. The switch cuts peer traffic only: clients still reach the node, which
//! is exactly the situation a partition creates (the node is up, its peers are not).

use super::{read_lock, write_lock};
use std::collections::BTreeSet;
use std::sync::RwLock;

/// The peer name of the object store.
pub const OBJECT_STORE: &str = "objectstore";

/// The peers this node is cut off from.
#[derive(Debug, Default)]
pub struct Faults {
    isolated: RwLock<BTreeSet<String>>,
}

impl Faults {
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
