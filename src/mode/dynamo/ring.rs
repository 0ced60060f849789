//! The ring: a fixed number of partitions (`--vnodes`, a power of two), each assigned to one
//! member; a key's partition is the top bits of its hash, and its *preference list* — the
//! nodes that hold it — is the first N distinct members met walking the ring from there.
//!
//! Members are assigned round-robin in id order, so every member owns the same share, N
//! consecutive partitions always name N distinct nodes (with at least N members), and every
//! node computes the same ring from the same member list.

use sha2::{Digest, Sha256};

use crate::node::{Member, NodeId};

/// The default number of partitions.
pub const DEFAULT_PARTITIONS: u32 = 256;

/// A partition number, `0..partitions`.
pub type Partition = u32;

/// The partitions and their owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// Member ids in ascending order.
    members: Vec<NodeId>,
    partitions: u32,
    replicas: usize,
}

impl Ring {
    /// A ring of `partitions` (a power of two) over `members`, keeping `replicas` copies.
    pub fn new(members: &[Member], partitions: u32, replicas: usize) -> Result<Self, String> {
        if partitions == 0 || !partitions.is_power_of_two() || partitions > 1 << 16 {
            return Err(format!("--vnodes {partitions}: must be a power of two from 1 to 65536"));
        }
        let mut ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Err("the ring has no members".into());
        }
        if replicas == 0 || replicas > ids.len() {
            return Err(format!("--replicas {replicas}: must be from 1 to the number of nodes ({})", ids.len()));
        }
        Ok(Self { members: ids, partitions, replicas })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    pub fn replicas(&self) -> usize {
        self.replicas
    }

    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// The partition `key` falls in.
    pub fn partition(&self, key: &[u8]) -> Partition {
        if self.partitions == 1 {
            return 0;
        }
        let digest = Sha256::digest(key);
        let top = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        (top >> (64 - self.partitions.trailing_zeros())) as Partition
    }

    /// The member that owns partition `p` first.
    pub fn owner(&self, p: Partition) -> NodeId {
        self.members[p as usize % self.members.len()]
    }

    /// The nodes that hold partition `p`, in preference order.
    pub fn preference_list(&self, p: Partition) -> Vec<NodeId> {
        let mut list = Vec::with_capacity(self.replicas);
        let mut at = p;
        while list.len() < self.replicas {
            let owner = self.owner(at);
            if !list.contains(&owner) {
                list.push(owner);
            }
            at = (at + 1) % self.partitions.max(self.members.len() as u32);
        }
        list
    }

    /// The members past `key`'s preference list, in ring order: a sloppy quorum's stand-ins.
    pub fn fallbacks(&self, key: &[u8]) -> Vec<NodeId> {
        let owners = self.owners(key);
        let mut list = Vec::new();
        let mut at = self.partition(key);
        let slots = self.partitions.max(self.members.len() as u32);
        for _ in 0..slots {
            let node = self.owner(at);
            if !owners.contains(&node) && !list.contains(&node) {
                list.push(node);
            }
            at = (at + 1) % slots;
        }
        list
    }

    /// The nodes that hold `key`, in preference order.
    pub fn owners(&self, key: &[u8]) -> Vec<NodeId> {
        self.preference_list(self.partition(key))
    }

    /// The partitions `node` holds a copy of.
    pub fn held_by(&self, node: NodeId) -> Vec<Partition> {
        (0..self.partitions).filter(|p| self.preference_list(*p).contains(&node)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u32) -> Vec<Member> {
        (1..=n).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", 7000 + id) }).collect()
    }

    #[test]
    fn every_key_has_n_distinct_owners_and_the_shares_are_even() {
        let ring = Ring::new(&members(5), 256, 3).unwrap();
        let mut primaries = [0usize; 5];
        for i in 0..5000 {
            let owners = ring.owners(format!("key-{i}").as_bytes());
            assert_eq!(owners.len(), 3);
            let mut unique = owners.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 3, "{owners:?}");
            primaries[owners[0] as usize - 1] += 1;
        }
        assert!(primaries.iter().all(|&n| (700..1300).contains(&n)), "{primaries:?}");
        for node in 1..=5 {
            let held = ring.held_by(node).len();
            assert!((150..=158).contains(&held), "n{node} holds {held} of 256 partitions × 3 copies");
        }
    }

    #[test]
    fn every_node_computes_the_same_ring_whatever_the_member_order() {
        let mut shuffled = members(4);
        shuffled.reverse();
        assert_eq!(Ring::new(&members(4), 64, 2).unwrap(), Ring::new(&shuffled, 64, 2).unwrap());
        let ring = Ring::new(&members(4), 64, 2).unwrap();
        assert_eq!(ring.owners(b"user:1"), Ring::new(&shuffled, 64, 2).unwrap().owners(b"user:1"));
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Ring::new(&members(3), 100, 3).unwrap_err().contains("power of two"));
        assert!(Ring::new(&members(3), 0, 3).is_err());
        assert!(Ring::new(&members(2), 256, 3).unwrap_err().contains("--replicas 3"));
        assert!(Ring::new(&members(3), 256, 0).is_err());
        assert!(Ring::new(&[], 256, 1).is_err());
        let one = Ring::new(&members(1), 1, 1).unwrap();
        assert_eq!(one.partition(b"anything"), 0);
        assert_eq!(one.owners(b"anything"), vec![1]);
    }
}
