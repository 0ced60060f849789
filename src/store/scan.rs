//! SCAN's order and cursor, the same in every mode.
//!
//! Keys are visited in the order of their *scan hash*, the first 8 bytes of their SHA-256 read
//! as a big-endian `u64` (ties, which need a 64-bit collision, broken by the key). A cursor is
//! a position in that order: "every key whose hash is at least this one is still to come".
//! So a cursor is a plain `u64` — what redis-cli (`strtoull`) and redis-py (`int`) parse —,
//! it means the same on every node of a cluster and after any restart, and it does not depend
//! on how many keys there are: a key present for the whole scan is visited exactly once by
//! the node that lists it, whatever is inserted or deleted around it (Redis' own guarantee is
//! "at least once"; modes that union several nodes' lists may still return a key twice only
//! if it is written concurrently, see each mode).
//!
//! Cursor 0 starts a scan and a returned 0 ends it, as in Redis: a page that reaches the end
//! of the order returns 0, any other page returns the hash after its last key, which is never
//! 0. A page never ends between two keys of the same hash, so it always makes progress.
//!
//! The hash is SHA-256 because dynamo mode already orders its objects and its ring by it
//! (`aae::position` is the hash's top 32 bits, a partition its top bits): one order for
//! everything, and the same on every machine and release.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::Pattern;

/// The most keys one page visits, whatever COUNT asks: COUNT is a hint, and one page must stay
/// a bounded amount of work on any keyspace.
pub const MAX_SCAN_COUNT: usize = 100_000;

/// The position of `key` in the scan order.
pub fn scan_hash(key: &[u8]) -> u64 {
    let digest = Sha256::digest(key);
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// One page of a scan: some keys and where to continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys whose scan hash lies in the range this page covered, in scan order.
    pub keys: Vec<Bytes>,
    /// Where the next page starts; 0 when the scan is complete.
    pub cursor: u64,
}

impl ScanPage {
    /// The page with only the keys that match `pattern` (all of them without one).
    pub fn matching(mut self, pattern: Option<&Pattern>) -> Self {
        if let Some(pattern) = pattern.filter(|p| !p.matches_everything()) {
            self.keys.retain(|k| pattern.matches(k));
        }
        self
    }
}

/// The cursor after a page that has seen every key up to and including hash `through`.
pub fn next_cursor(through: u64) -> u64 {
    through.checked_add(1).unwrap_or(0)
}

/// One node's listing of a range of the scan order: every key it holds whose hash lies in
/// `[from, through]`, in scan order, with whether its copy is a live value (not a tombstone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// `(hash, key, live)` in scan order.
    pub keys: Vec<(u64, Bytes, bool)>,
    /// The listing is complete up to and including this hash (`u64::MAX`: to the end).
    pub through: u64,
}

/// Takes items `(hash, key, live)` in scan order, starting at the page's cursor, until `count`
/// are taken and the next one has another hash: a page never splits a hash, so it always
/// moves past at least one.
pub fn take_page(items: impl Iterator<Item = (u64, Bytes, bool)>, count: usize) -> Listing {
    let count = count.clamp(1, MAX_SCAN_COUNT);
    let mut keys: Vec<(u64, Bytes, bool)> = Vec::new();
    for item in items {
        if keys.len() >= count && keys.last().is_some_and(|last| last.0 != item.0) {
            let through = keys.last().map_or(u64::MAX, |last| last.0);
            return Listing { keys, through };
        }
        keys.push(item);
    }
    Listing { keys, through: u64::MAX }
}

/// What several nodes' listings of the same range say about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedKey {
    pub key: Bytes,
    /// How many listings hold it live.
    pub live_in: usize,
    /// How many listings hold it only as a tombstone.
    pub dead_in: usize,
}

/// What several nodes' listings of the same range say together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Every key some listing holds live, up to the shortest listing's end, in scan order:
    /// the mode decides from the counts whether to believe it or to read it first.
    pub keys: Vec<MergedKey>,
    /// How many listings were merged.
    pub listings: usize,
    /// Where the next page starts (0: done).
    pub cursor: u64,
}

/// Unions `listings` of the range starting at `cursor`. The page ends where the shortest
/// listing ends: past it, a key one node has not listed yet may exist. Keys a listing names
/// outside `[cursor, its end]`, or under a hash that is not theirs, are dropped (a peer's
/// listing is input).
pub fn merge(cursor: u64, listings: &[Listing]) -> Merged {
    // A listing is peer input: one claiming to end before the cursor (a bug, or a node that
    // lies) must not move the scan backwards, or a client would loop forever.
    let through = listings.iter().map(|l| l.through).min().unwrap_or(u64::MAX).max(cursor);
    let mut all: std::collections::BTreeMap<(u64, Bytes), (usize, usize)> = Default::default();
    for listing in listings {
        let mut seen = std::collections::BTreeSet::new();
        for (hash, key, live) in &listing.keys {
            if *hash < cursor || *hash > through || *hash != scan_hash(key) || !seen.insert(key) {
                continue;
            }
            let entry = all.entry((*hash, key.clone())).or_default();
            if *live {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    let keys = all
        .into_iter()
        .filter(|(_, (live, _))| *live > 0)
        .map(|((_, key), (live_in, dead_in))| MergedKey { key, live_in, dead_in })
        .collect();
    Merged { keys, listings: listings.len(), cursor: next_cursor(through) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(hashes: &[u64]) -> Vec<(u64, Bytes, bool)> {
        hashes.iter().enumerate().map(|(i, h)| (*h, Bytes::from(format!("k{i}")), true)).collect()
    }

    #[test]
    fn a_listing_that_ends_before_the_cursor_cannot_move_the_scan_backwards() {
        let behind = Listing { keys: Vec::new(), through: 5 };
        let merged = merge(100, &[behind]);
        assert!(merged.cursor > 100, "the scan moved back to {}", merged.cursor);
    }

    #[test]
    fn a_page_never_splits_a_hash_and_the_last_page_ends_the_scan() {
        let page = take_page(items(&[1, 2, 2, 2, 3]).into_iter(), 2);
        assert_eq!(page.keys.len(), 4, "the three keys of hash 2 stay together");
        assert_eq!(page.through, 2);
        assert_eq!(next_cursor(page.through), 3);
        let last = take_page(items(&[3]).into_iter(), 2);
        assert_eq!(last.through, u64::MAX);
        assert_eq!(next_cursor(last.through), 0);
    }

    #[test]
    fn merging_stops_at_the_shortest_listing_and_drops_keys_nobody_holds_live() {
        let key = |k: &str| (scan_hash(k.as_bytes()), Bytes::copy_from_slice(k.as_bytes()));
        let mut named: Vec<(u64, Bytes)> = ["a", "b", "c", "d"].iter().map(|k| key(k)).collect();
        named.sort();
        let (h, k): (Vec<u64>, Vec<Bytes>) = named.into_iter().unzip();
        let a = Listing {
            keys: vec![(h[0], k[0].clone(), true), (h[2], k[2].clone(), true), (h[3], k[3].clone(), true)],
            through: u64::MAX,
        };
        let b = Listing {
            keys: vec![(h[0], k[0].clone(), false), (h[1], k[1].clone(), false), (h[2], k[2].clone(), true)],
            through: h[2],
        };
        let merged = merge(0, &[a, b]);
        assert_eq!(
            merged.keys,
            vec![
                MergedKey { key: k[0].clone(), live_in: 1, dead_in: 1 },
                MergedKey { key: k[2].clone(), live_in: 2, dead_in: 0 },
            ],
            "the key only b names, as a tombstone, is gone; the one past b's end waits for the next page"
        );
        assert_eq!((merged.listings, merged.cursor), (2, h[2] + 1));
        let lying = Listing { keys: vec![(7, Bytes::from("x"), true)], through: u64::MAX };
        assert!(merge(0, &[lying]).keys.is_empty(), "a key under a hash not its own is dropped");
    }

    #[test]
    fn the_hash_is_stable() {
        // Cursors handed out by one release must mean the same to the next.
        assert_eq!(scan_hash(b""), 0xe3b0_c442_98fc_1c14);
    }
}
