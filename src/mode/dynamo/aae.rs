//! Active anti-entropy's hash trees (Riak's TicTac AAE), a core that does no I/O.
//!
//! Every stored key has a *position*: the first 32 bits of SHA-256(key). Its partition is the
//! top `log2(partitions)` bits (as [`super::ring::Ring::partition`] computes it) and its
//! segment the next [`SEGMENT_BITS`], so objects stored under `position ++ key` put one
//! segment's keys in one range scan. A segment's hash is the XOR of hash(key, object) over
//! its keys, so a write updates it with `seg ^= old ^ new`; a branch is the XOR of
//! [`SEGMENTS_PER_BRANCH`] segments, the root the XOR of every segment. Two replicas with the
//! same keys and objects have the same trees, whatever order the writes came in.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::ring::Partition;

pub const SEGMENT_BITS: u32 = 10;
/// Segments per partition.
pub const SEGMENTS: usize = 1 << SEGMENT_BITS;
pub const BRANCHES: usize = 32;
pub const SEGMENTS_PER_BRANCH: usize = SEGMENTS / BRANCHES;

/// A key's position: the first 32 bits of its SHA-256.
pub fn position(key: &[u8]) -> u32 {
    let digest = Sha256::digest(key);
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"))
}

/// Where an object is stored: its position, then the key.
pub fn storage_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&position(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The hash of one stored object (its canonical encoding: siblings sorted by dot, the context
/// a sorted map), never 0 — 0 is "no object".
pub fn object_hash(key: &[u8], encoded: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(encoded);
    let digest = h.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")).max(1)
}

/// The shape of the trees: how many bits of a position name the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    partition_bits: u32,
}

impl Shape {
    pub fn new(partitions: u32) -> Self {
        Self { partition_bits: partitions.trailing_zeros() }
    }

    pub fn partition(&self, position: u32) -> Partition {
        if self.partition_bits == 0 { 0 } else { position >> (32 - self.partition_bits) }
    }

    pub fn segment(&self, position: u32) -> usize {
        ((u64::from(position) << self.partition_bits) as u32 >> (32 - SEGMENT_BITS)) as usize
    }

    /// The positions of one segment of a partition: `first..=last`.
    pub fn segment_range(&self, partition: Partition, segment: usize) -> (u32, u32) {
        let low_bits = 32 - self.partition_bits - SEGMENT_BITS;
        let high = if self.partition_bits == 0 { 0 } else { u64::from(partition) << (32 - self.partition_bits) };
        let first = high | ((segment as u64) << low_bits);
        let last = first + (1u64 << low_bits) - 1;
        (first as u32, last as u32)
    }

    /// The positions of a whole partition.
    pub fn partition_range(&self, partition: Partition) -> (u32, u32) {
        (self.segment_range(partition, 0).0, self.segment_range(partition, SEGMENTS - 1).1)
    }
}

/// One partition's tree.
#[derive(Clone)]
struct Tree {
    segments: Box<[u64]>,
    branches: [u64; BRANCHES],
    root: u64,
}

impl Tree {
    fn new() -> Self {
        Self { segments: vec![0; SEGMENTS].into_boxed_slice(), branches: [0; BRANCHES], root: 0 }
    }
}

/// Every partition's tree on this replica (a partition with no key has none: all zero).
pub struct Trees {
    shape: Shape,
    trees: HashMap<Partition, Tree>,
}

impl Trees {
    pub fn new(shape: Shape) -> Self {
        Self { shape, trees: HashMap::new() }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// An object at `position` changed from hash `old` to `new` (0: none).
    pub fn update(&mut self, position: u32, old: u64, new: u64) {
        let change = old ^ new;
        if change == 0 {
            return;
        }
        let tree = self.trees.entry(self.shape.partition(position)).or_insert_with(Tree::new);
        let segment = self.shape.segment(position);
        tree.segments[segment] ^= change;
        tree.branches[segment / SEGMENTS_PER_BRANCH] ^= change;
        tree.root ^= change;
    }

    pub fn root(&self, partition: Partition) -> u64 {
        self.trees.get(&partition).map_or(0, |t| t.root)
    }

    pub fn branches(&self, partition: Partition) -> Vec<u64> {
        self.trees.get(&partition).map_or(vec![0; BRANCHES], |t| t.branches.to_vec())
    }

    /// The hashes of every segment in `branches`, as (segment, hash).
    pub fn segments(&self, partition: Partition, branches: &[u16]) -> Vec<(u16, u64)> {
        let tree = self.trees.get(&partition);
        let mut out = Vec::new();
        for &b in branches {
            let b = usize::from(b).min(BRANCHES - 1);
            for s in b * SEGMENTS_PER_BRANCH..(b + 1) * SEGMENTS_PER_BRANCH {
                out.push((s as u16, tree.map_or(0, |t| t.segments[s])));
            }
        }
        out
    }
}

/// The indexes where two equally long lists of hashes differ.
pub fn differing<T: PartialEq + Copy>(mine: &[T], theirs: &[T]) -> Vec<usize> {
    (0..mine.len().max(theirs.len())).filter(|&i| mine.get(i) != theirs.get(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_does_not_depend_on_the_order_of_writes_and_an_undo_restores_it() {
        let shape = Shape::new(256);
        let (mut a, mut b) = (Trees::new(shape), Trees::new(shape));
        let keys: Vec<(u32, u64)> =
            (0..500u32).map(|i| (position(&i.to_be_bytes()), object_hash(&i.to_be_bytes(), b"v"))).collect();
        for &(p, h) in &keys {
            a.update(p, 0, h);
        }
        for &(p, h) in keys.iter().rev() {
            b.update(p, 0, h);
        }
        for p in 0..256 {
            assert_eq!(a.root(p), b.root(p));
            assert_eq!(a.branches(p), b.branches(p));
        }
        let (p, h) = keys[7];
        let part = shape.partition(p);
        let before = a.root(part);
        a.update(p, h, 42);
        assert_ne!(a.root(part), before);
        let changed = differing(&a.branches(part), &b.branches(part));
        assert_eq!(changed, vec![shape.segment(p) / SEGMENTS_PER_BRANCH]);
        let segs = differing(&a.segments(part, &[changed[0] as u16]), &b.segments(part, &[changed[0] as u16]));
        assert_eq!(segs.len(), 1);
        a.update(p, 42, h);
        assert_eq!(a.root(part), before);
    }

    #[test]
    fn a_segments_range_holds_exactly_its_positions() {
        for partitions in [1, 2, 256, 65536] {
            let shape = Shape::new(partitions);
            for i in 0..2000u32 {
                let pos = position(&i.to_le_bytes());
                let (part, seg) = (shape.partition(pos), shape.segment(pos));
                assert!(part < partitions && seg < SEGMENTS);
                let (first, last) = shape.segment_range(part, seg);
                assert!(first <= pos && pos <= last, "{partitions}: {pos} in {first}..={last}");
                let (pf, pl) = shape.partition_range(part);
                assert!(pf <= first && last <= pl);
            }
        }
        let ring =
            super::super::ring::Ring::new(&[crate::node::Member { id: 1, peer_addr: "a:1".into() }], 256, 1).unwrap();
        for i in 0..500u32 {
            let key = format!("key-{i}");
            assert_eq!(Shape::new(256).partition(position(key.as_bytes())), ring.partition(key.as_bytes()));
        }
    }
}
