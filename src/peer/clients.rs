//! A node's channels to its peers: one lazily connected [`PeerChannel`] per peer, made again
//! when the peer's address changes (a membership change). Channels reconnect on their own
//! after a peer restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{PeerChannel, channel};
use crate::node::lock;
use crate::node::{Faults, NodeId};

/// The channels of node `from` to its peers.
pub struct Clients {
    from: NodeId,
    faults: Arc<Faults>,
    secret: Option<super::ClusterSecret>,
    tls: Option<super::PeerTls>,
    metrics: Arc<crate::metrics::Metrics>,
    cache: Mutex<HashMap<NodeId, (String, PeerChannel)>>,
}

impl Clients {
    /// No channels yet.
    pub fn new(
        from: NodeId,
        faults: Arc<Faults>,
        secret: Option<super::ClusterSecret>,
        tls: Option<super::PeerTls>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self { from, faults, secret, tls, metrics, cache: Mutex::new(HashMap::new()) }
    }

    /// The channel to peer `id` at `addr`.
    pub fn channel(&self, id: NodeId, addr: &str) -> Result<PeerChannel, String> {
        let mut cache = lock(&self.cache);
        if let Some((known, channel)) = cache.get(&id)
            && known == addr
        {
            return Ok(channel.clone());
        }
        let peer = PeerChannel::new(
            channel(addr, self.tls.as_ref(), self.secret.as_ref())?,
            self.from,
            id,
            self.faults.clone(),
            self.metrics.clone(),
        );
        cache.insert(id, (addr.to_string(), peer.clone()));
        Ok(peer)
    }
}
