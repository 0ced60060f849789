//! Client eviction: what Redis does when the clients' memory passes `maxmemory-clients`
//! (<https://redis.io/docs/latest/develop/reference/clients/#client-eviction>), here for the
//! one budget all connections' query and output buffers share.
//!
//! Without it, clients that ask for large replies and stop reading hold the budget for as
//! long as `--client-output-buffer-limit`'s soft seconds (60 by default): forty of them each
//! holding 60 MiB of unread replies left every other client's large request or reply refused
//! for a minute. Now when a request or reply cannot get its share, the connections holding
//! the most unsent output *that are not reading it* are closed, enough of them to make room,
//! and the one asking waits (at most [`EVICTION_WAIT`]) for their memory to come back.
//!
//! * A connection counts as not reading once its client has taken less than 64 KiB of its
//!   unsent output in [`STALLED_AFTER`] while the connection waited to write (a client that
//!   never reads still lets the kernel's socket buffers take a trickle). A client that reads
//!   faster than that is never evicted (Redis evicts by memory alone, readers too).
//! * The connection asking is never its own victim, and nothing is closed when the idle
//!   writers together hold too little to make room: the request or reply is refused as before.
//! * Every eviction is counted (INFO's `evicted_clients`, as Redis names it) and logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::codec::BufferBudget;

/// How long a connection's client must have read (almost) none of its unsent output before
/// it may be evicted.
pub const STALLED_AFTER: Duration = Duration::from_millis(250);
/// The longest a request or reply waits for the memory of the connections it evicted.
pub const EVICTION_WAIT: Duration = Duration::from_secs(2);

/// Every connection's unsent output, for choosing whom to evict.
#[derive(Debug, Default)]
pub struct Evictor {
    table: Mutex<HashMap<u64, Arc<Holding>>>,
    evicted: AtomicU64,
}

/// What one connection holds, as the evictor sees it.
#[derive(Debug, Default)]
pub struct Holding {
    /// Bytes of replies queued and not yet taken by the client.
    unsent: AtomicUsize,
    /// Its client has read none of them for [`STALLED_AFTER`].
    stalled: AtomicBool,
    /// Cancelled when the connection is evicted: it closes at once.
    evict: CancellationToken,
}

impl Holding {
    pub fn set_unsent(&self, bytes: usize) {
        self.unsent.store(bytes, Ordering::Relaxed);
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// Resolves once the connection is evicted.
    pub async fn evicted(&self) {
        self.evict.cancelled().await
    }

    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
    }
}

/// A connection's entry, removed when dropped.
#[derive(Debug)]
pub struct Registration {
    evictor: Arc<Evictor>,
    id: u64,
    pub holding: Arc<Holding>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        crate::node::lock(&self.evictor.table).remove(&self.id);
    }
}

impl Evictor {
    /// Enters connection `id`.
    pub fn register(self: &Arc<Self>, id: u64) -> Registration {
        let holding = Arc::new(Holding::default());
        crate::node::lock(&self.table).insert(id, holding.clone());
        Registration { evictor: self.clone(), id, holding }
    }

    /// Connections evicted since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Evicts the stalled connections holding the most unsent output, other than `asking`,
    /// until they hold at least `needed` bytes together. Nothing when they cannot: false.
    pub fn evict(&self, needed: usize, asking: u64) -> bool {
        let mut idle: Vec<(u64, usize, Arc<Holding>)> = crate::node::lock(&self.table)
            .iter()
            .filter(|(id, h)| **id != asking && h.stalled.load(Ordering::Relaxed) && !h.is_evicted())
            .map(|(id, h)| (*id, h.unsent.load(Ordering::Relaxed), h.clone()))
            .filter(|(_, unsent, _)| *unsent > 0)
            .collect();
        idle.sort_by_key(|(_, unsent, _)| std::cmp::Reverse(*unsent));
        let mut freed = 0usize;
        let victims: Vec<_> = idle
            .into_iter()
            .take_while(|(_, unsent, _)| {
                let take = freed < needed;
                freed = freed.saturating_add(*unsent);
                take
            })
            .collect();
        if freed < needed {
            return false;
        }
        for (id, unsent, holding) in victims {
            holding.evict.cancel();
            self.evicted.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                client = id,
                unsent,
                asking,
                "client evicted: --maxmemory-clients is full and it read none of its replies"
            );
        }
        true
    }

    /// Makes room for `bytes` more in `budget` for connection `asking`: evicts what it must
    /// and waits (at most [`EVICTION_WAIT`]) until they fit. False when they do not.
    pub async fn make_room(&self, budget: &BufferBudget, bytes: usize, asking: u64) -> bool {
        let short = budget.shortfall(bytes);
        if short == 0 {
            return true;
        }
        if budget.limit() != 0 && bytes > budget.limit() {
            return false; // it would not fit in an empty budget either
        }
        if !self.evict(short, asking) {
            return false;
        }
        let deadline = Instant::now() + EVICTION_WAIT;
        while budget.shortfall(bytes) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(evictor: &Arc<Evictor>, id: u64, unsent: usize, stalled: bool) -> Registration {
        let r = evictor.register(id);
        r.holding.set_unsent(unsent);
        r.holding.set_stalled(stalled);
        r
    }

    #[test]
    fn the_largest_stalled_holders_are_evicted_just_enough_and_never_a_reader_or_the_asker() {
        let evictor = Arc::new(Evictor::default());
        let small = holding(&evictor, 1, 10, true);
        let large = holding(&evictor, 2, 100, true);
        let larger = holding(&evictor, 3, 200, true);
        let reading = holding(&evictor, 4, 1000, false);
        let asker = holding(&evictor, 5, 500, true);
        assert!(!evictor.evict(400, 5), "the idle ones besides the asker hold 310");
        assert_eq!(evictor.evicted(), 0);
        assert!(evictor.evict(250, 5));
        assert!(larger.holding.is_evicted() && large.holding.is_evicted());
        assert!(!small.holding.is_evicted() && !reading.holding.is_evicted() && !asker.holding.is_evicted());
        assert_eq!(evictor.evicted(), 2);
        assert!(evictor.evict(5, 5) && small.holding.is_evicted(), "the evicted are not counted twice");
        assert_eq!(evictor.evicted(), 3);
        drop(small);
        assert_eq!(crate::node::lock(&evictor.table).len(), 4);
    }
}
