//! The ring: a fixed number of partitions (`--vnodes`, a power of two), each with a first
//! owner; a key's partition is the top bits of its hash, and its *preference list* — the
//! nodes that hold it — is the first N distinct owners met walking the ring from there.
//!
//! A new ring assigns partitions round-robin in id order, so every member owns the same
//! share and N consecutive partitions name N distinct nodes. The ring is *versioned*: a
//! membership change makes a ring with the owners it moves to (`next`) — the joining node
//! claims an even share from the most loaded members, a leaving node's partitions go to the
//! least loaded, and no other partition moves — and, once the moved data is in place, the
//! ring that makes them the owners (one version later). Every node keeps the ring durably
//! and the highest version wins wherever two meet.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::node::{Member, NodeId};

/// The default number of partitions.
pub const DEFAULT_PARTITIONS: u32 = 256;

/// A partition number, `0..partitions`.
pub type Partition = u32;

/// The partitions and their owners, at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    version: u64,
    /// Every member, in ascending id order (during a change: the old and the new ones).
    members: Vec<Member>,
    partitions: u32,
    replicas: usize,
    /// Each partition's first owner.
    owners: Vec<NodeId>,
    /// During a membership change: each partition's first owner once it is over.
    next: Option<Vec<NodeId>>,
}

fn sorted(members: &[Member]) -> Vec<Member> {
    let mut members = members.to_vec();
    members.sort_by_key(|m| m.id);
    members.dedup_by_key(|m| m.id);
    members
}

impl Ring {
    /// A ring of `partitions` (a power of two) over `members`, keeping `replicas` copies.
    pub fn new(members: &[Member], partitions: u32, replicas: usize) -> Result<Self, String> {
        if partitions == 0 || !partitions.is_power_of_two() || partitions > 1 << 16 {
            return Err(format!("--vnodes {partitions}: must be a power of two from 1 to 65536"));
        }
        let members = sorted(members);
        if members.is_empty() {
            return Err("the ring has no members".into());
        }
        if replicas == 0 || replicas > members.len() {
            return Err(format!("--replicas {replicas}: must be from 1 to the number of nodes ({})", members.len()));
        }
        let owners = (0..partitions as usize).map(|p| members[p % members.len()].id).collect();
        Ok(Self { version: 1, members, partitions, replicas, owners, next: None })
    }

    /// The ring a node starts with when it joins: version 0, so any real ring replaces it.
    pub fn joining(me: Member, partitions: u32, replicas: usize) -> Self {
        let owners = vec![me.id; partitions as usize];
        Self { version: 0, members: vec![me], partitions, replicas, owners, next: None }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Every member (during a change, those joining and leaving too).
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member_ids(&self) -> Vec<NodeId> {
        self.members.iter().map(|m| m.id).collect()
    }

    pub fn addr_of(&self, id: NodeId) -> Option<&str> {
        self.members.iter().find(|m| m.id == id).map(|m| m.peer_addr.as_str())
    }

    /// Checks a ring from a peer: the shape this node has, and owners that are members.
    pub fn validate(&self, partitions: u32, replicas: usize) -> Result<(), String> {
        if (self.partitions, self.replicas) != (partitions, replicas) {
            return Err(format!(
                "a ring of {} partitions and {} replicas, this node has {partitions} and {replicas}",
                self.partitions, self.replicas
            ));
        }
        let ids = self.member_ids();
        let known = |owners: &[NodeId]| owners.len() == partitions as usize && owners.iter().all(|o| ids.contains(o));
        if ids.is_empty() || !known(&self.owners) || !self.next.as_deref().is_none_or(known) {
            return Err("a ring whose owners are not its members".into());
        }
        Ok(())
    }

    /// True while a membership change is in progress.
    pub fn changing(&self) -> bool {
        self.next.is_some()
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

    /// The first N distinct nodes of `owners` walking from `p`, then (a ring of fewer
    /// partitions than N) the other `eligible` members in id order.
    fn list(&self, owners: &[NodeId], p: Partition, eligible: impl FnOnce() -> Vec<NodeId>) -> Vec<NodeId> {
        let mut list = Vec::with_capacity(self.replicas);
        let n = owners.len();
        for i in 0..n {
            if list.len() == self.replicas {
                return list;
            }
            let owner = owners[(p as usize + i) % n];
            if !list.contains(&owner) {
                list.push(owner);
            }
        }
        for id in eligible() {
            if list.len() == self.replicas {
                break;
            }
            if !list.contains(&id) {
                list.push(id);
            }
        }
        list
    }

    /// The members the ring has now: all but one that only joins.
    fn current_members(&self) -> Vec<NodeId> {
        let ids = self.member_ids();
        match &self.next {
            Some(_) => ids.into_iter().filter(|id| self.owners.contains(id) || !self.joins(*id)).collect(),
            None => ids,
        }
    }

    /// The members the ring will have once the change is over.
    fn future_members(&self) -> Vec<NodeId> {
        match &self.next {
            Some(next) => self.member_ids().into_iter().filter(|id| next.contains(id)).collect(),
            None => self.member_ids(),
        }
    }

    /// True when a change in progress adds `id`.
    pub fn adding(&self, id: NodeId) -> bool {
        self.changing() && self.joins(id)
    }

    /// True when a change in progress removes `id`.
    pub fn removing(&self, id: NodeId) -> bool {
        self.next.as_ref().is_some_and(|n| !n.contains(&id)) && self.members.iter().any(|m| m.id == id)
    }

    fn joins(&self, id: NodeId) -> bool {
        self.next.as_ref().is_some_and(|n| n.contains(&id)) && !self.owners.contains(&id)
    }

    /// The nodes that hold partition `p`, in preference order (reads ask these; their
    /// answers count toward W).
    pub fn preference_list(&self, p: Partition) -> Vec<NodeId> {
        self.list(&self.owners, p, || self.current_members())
    }

    /// During a change, `p`'s preference list once it is over.
    pub fn next_list(&self, p: Partition) -> Option<Vec<NodeId>> {
        self.next.as_ref().map(|next| self.list(next, p, || self.future_members()))
    }

    /// Nodes that will hold `p` but do not yet: they receive its writes, which do not wait
    /// for them, and anti-entropy fills them.
    pub fn pending(&self, p: Partition) -> Vec<NodeId> {
        // Asked on every write: no change in progress, no list to build.
        let Some(next) = self.next_list(p) else { return Vec::new() };
        let now = self.preference_list(p);
        next.into_iter().filter(|n| !now.contains(n)).collect()
    }

    /// Every node that holds `p` or is about to.
    pub fn holders(&self, p: Partition) -> Vec<NodeId> {
        let mut all = self.preference_list(p);
        all.extend(self.pending(p));
        all
    }

    /// The nodes that hold `key`, in preference order.
    pub fn owners(&self, key: &[u8]) -> Vec<NodeId> {
        self.preference_list(self.partition(key))
    }

    /// The members past `key`'s preference list, in ring order: a sloppy quorum's stand-ins.
    pub fn fallbacks(&self, key: &[u8]) -> Vec<NodeId> {
        let p = self.partition(key);
        let owners = self.preference_list(p);
        let mut list = Vec::new();
        let n = self.owners.len();
        for i in 0..n {
            let node = self.owners[(p as usize + i) % n];
            if !owners.contains(&node) && !list.contains(&node) {
                list.push(node);
            }
        }
        for id in self.current_members() {
            if !owners.contains(&id) && !list.contains(&id) {
                list.push(id);
            }
        }
        list
    }

    /// The partitions `node` holds a copy of, or is about to.
    pub fn held_by(&self, node: NodeId) -> Vec<Partition> {
        (0..self.partitions).filter(|p| self.holders(*p).contains(&node)).collect()
    }

    /// The partitions whose preference list the change in progress alters.
    pub fn moving(&self) -> Vec<Partition> {
        (0..self.partitions)
            .filter(|p| self.next_list(*p).is_some_and(|next| next != self.preference_list(*p)))
            .collect()
    }

    /// How many partitions each id of `owners` is first owner of.
    fn loads(owners: &[NodeId], ids: &[NodeId]) -> Vec<(NodeId, usize)> {
        ids.iter().map(|id| (*id, owners.iter().filter(|o| *o == id).count())).collect()
    }

    /// True when `id` owning `p` keeps it out of the N-1 partitions on either side.
    fn spaced(&self, owners: &[NodeId], p: usize, id: NodeId) -> bool {
        let n = owners.len();
        let reach = (self.replicas - 1).min(n / 2);
        (1..=reach).all(|d| owners[(p + d) % n] != id && owners[(p + n - d) % n] != id)
    }

    /// Swaps first owners until no node owns two of any N consecutive partitions (as far as
    /// swaps can fix it): every preference list is then N consecutive first owners, so a
    /// node's share of the replicas is N times its share of first-owner slots. A swap fixes
    /// the slot it is made for and breaks no other, so this ends.
    fn respace(&self, owners: &mut [NodeId]) {
        let n = owners.len();
        if self.replicas <= 1 || n < 2 * self.replicas {
            return;
        }
        for p in 0..n {
            if self.spaced(owners, p, owners[p]) {
                continue;
            }
            let a = owners[p];
            for q in 0..n {
                let b = owners[q];
                if a == b {
                    continue;
                }
                owners.swap(p, q);
                if self.spaced(owners, p, b) && self.spaced(owners, q, a) {
                    break;
                }
                owners.swap(p, q);
            }
        }
    }

    /// Slots whose owner also owns one of the N-1 slots on either side.
    fn unspaced(&self, owners: &[NodeId]) -> usize {
        (0..owners.len()).filter(|&p| !self.spaced(owners, p, owners[p])).count()
    }

    /// When the least movement would leave preference lists crowded (a node owning two slots
    /// of N consecutive ones, so the walk reaches further and shares drift apart), the ring
    /// is laid out afresh round-robin over `ids`, in the order that keeps the most slots with
    /// their current owner.
    fn settle(&self, next: Vec<NodeId>, ids: &[NodeId]) -> Vec<NodeId> {
        let loads: Vec<usize> = Self::loads(&next, ids).into_iter().map(|(_, l)| l).collect();
        let spread = loads.iter().max().unwrap_or(&0) - loads.iter().min().unwrap_or(&0);
        if (self.unspaced(&next) <= ids.len() && spread <= 2) || ids.len() > 7 {
            return next;
        }
        let n = next.len();
        let lay = |order: &[NodeId]| (0..n).map(|p| order[p % order.len()]).collect::<Vec<_>>();
        let kept = |owners: &[NodeId]| (0..n).filter(|&p| owners[p] == self.owners[p]).count();
        let mut best = lay(ids);
        let mut order = ids.to_vec();
        permutations(&mut order, 0, &mut |order| {
            let candidate = lay(order);
            if kept(&candidate) > kept(&best) {
                best = candidate;
            }
        });
        best
    }

    /// The ring that starts adding `member`: the next version, with the owners it moves to.
    pub fn with_join(&self, member: Member) -> Result<Self, String> {
        if self.changing() {
            return Err("a membership change is already in progress".into());
        }
        if self.members.iter().any(|m| m.id == member.id) {
            return Err(format!("n{} is already a member", member.id));
        }
        let mut next = self.owners.clone();
        let ids = self.member_ids();
        let share = next.len() / (ids.len() + 1);
        for _ in 0..share {
            // From the most loaded member, a partition where the new node is well spaced.
            let mut donors = Self::loads(&next, &ids);
            donors.sort_by_key(|(id, load)| (std::cmp::Reverse(*load), *id));
            let pick = donors
                .iter()
                .find_map(|(donor, _)| (0..next.len()).find(|&p| next[p] == *donor && self.spaced(&next, p, member.id)))
                .or_else(|| (0..next.len()).find(|&p| next[p] == donors[0].0));
            match pick {
                Some(p) => next[p] = member.id,
                None => break,
            }
        }
        self.respace(&mut next);
        let mut ids_after = ids.clone();
        ids_after.push(member.id);
        let next = self.settle(next, &ids_after);
        let mut members = self.members.clone();
        members.push(member);
        Ok(Self { version: self.version + 1, members: sorted(&members), next: Some(next), ..self.clone() })
    }

    /// The ring that starts removing member `id`: its partitions go to the least loaded. Of
    /// a node whose join is in progress (it died, or its data never arrived): the join is
    /// called off, and nothing moves.
    pub fn with_leave(&self, id: NodeId) -> Result<Self, String> {
        if self.changing() && self.joins(id) {
            let members = self.members.iter().filter(|m| m.id != id).cloned().collect();
            return Ok(Self { version: self.version + 1, members, next: None, ..self.clone() });
        }
        if self.changing() {
            return Err("a membership change is already in progress".into());
        }
        if !self.members.iter().any(|m| m.id == id) {
            return Err(format!("n{id} is not a member"));
        }
        let rest: Vec<NodeId> = self.member_ids().into_iter().filter(|m| *m != id).collect();
        if rest.len() < self.replicas {
            return Err(format!("{} nodes would be left for {} replicas", rest.len(), self.replicas));
        }
        let mut next = self.owners.clone();
        for p in 0..next.len() {
            if next[p] != id {
                continue;
            }
            let mut takers = Self::loads(&next, &rest);
            takers.sort_by_key(|(id, load)| (*load, *id));
            let taker = takers.iter().map(|(t, _)| *t).find(|t| self.spaced(&next, p, *t)).unwrap_or(takers[0].0);
            next[p] = taker;
        }
        self.respace(&mut next);
        let next = self.settle(next, &rest);
        Ok(Self { version: self.version + 1, next: Some(next), ..self.clone() })
    }

    /// The ring once the change is over: the next version, the moved partitions owned by
    /// their new owners, a member that left gone.
    pub fn completed(&self) -> Self {
        let Some(next) = &self.next else { return self.clone() };
        let members: Vec<Member> = self.members.iter().filter(|m| next.contains(&m.id)).cloned().collect();
        Self { version: self.version + 1, members, owners: next.clone(), next: None, ..self.clone() }
    }
}

/// Calls `each` with every ordering of `items[from..]` (Heap-style, in place).
fn permutations(items: &mut [NodeId], from: usize, each: &mut impl FnMut(&[NodeId])) {
    if from + 1 >= items.len() {
        each(items);
        return;
    }
    for i in from..items.len() {
        items.swap(from, i);
        permutations(items, from + 1, each);
        items.swap(from, i);
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

    fn member(id: u32) -> Member {
        Member { id, peer_addr: format!("127.0.0.1:{}", 7000 + id) }
    }

    fn distinct(list: &[NodeId], n: usize) -> bool {
        let mut unique = list.to_vec();
        unique.sort();
        unique.dedup();
        unique.len() == n && list.len() == n
    }

    #[test]
    fn a_join_moves_an_even_share_to_the_new_node_and_nothing_else() {
        for (nodes, partitions) in [(3, 256), (4, 256), (3, 64), (5, 1024)] {
            let ring = Ring::new(&members(nodes), partitions, 3).unwrap();
            let joining = ring.with_join(member(nodes + 1)).unwrap();
            assert_eq!(joining.version(), ring.version() + 1);
            assert!(joining.changing());
            let next = joining.next.clone().unwrap();
            let moved = (0..partitions as usize).filter(|&p| next[p] != ring.owners[p]).count();
            let share = partitions as usize / (nodes as usize + 1);
            assert_eq!(moved, share, "{nodes} nodes, {partitions} partitions: only the new node's share moves");
            assert!((0..partitions as usize).all(|p| next[p] == ring.owners[p] || next[p] == nodes + 1));
            let done = joining.completed();
            assert_eq!(done.version(), ring.version() + 2);
            assert!(!done.changing());
            for id in 1..=nodes + 1 {
                let first = done.owners.iter().filter(|o| **o == id).count();
                assert!(first.abs_diff(partitions as usize / (nodes as usize + 1)) <= 1, "n{id}: {first}");
                let held = done.held_by(id).len();
                let even = partitions as usize * 3 / (nodes as usize + 1);
                assert!(held.abs_diff(even) <= even / 8 + 2, "{nodes}+1 nodes: n{id} holds {held}, even {even}");
            }
            for p in 0..partitions {
                assert!(distinct(&done.preference_list(p), 3));
                assert!(distinct(&joining.preference_list(p), 3));
                assert_eq!(joining.preference_list(p), ring.preference_list(p), "reads use the old owners");
                let pending = joining.pending(p);
                assert!(pending.iter().all(|n| !ring.preference_list(p).contains(n)));
                assert_eq!(pending.is_empty(), done.preference_list(p) == ring.preference_list(p));
            }
            assert!(joining.with_join(member(99)).unwrap_err().contains("in progress"));
        }
    }

    #[test]
    fn a_leave_hands_the_leaving_nodes_partitions_on_and_keeps_the_shares_even() {
        let ring = Ring::new(&members(4), 256, 3).unwrap();
        let leaving = ring.with_leave(2).unwrap();
        let next = leaving.next.clone().unwrap();
        // Handing n2's slots to the least loaded alone would crowd the ring (3 nodes, N=3,
        // 256 slots): it is laid out afresh, keeping as many slots as a layout can.
        assert!((0..256).all(|p| ring.owners[p] != 2 || next[p] != 2));
        assert!(!next.contains(&2));
        let least = ring.held_by(2).len();
        assert!(leaving.moving().len() <= least * 3 / 2, "{} lists changed, {least} at least", leaving.moving().len());
        for p in 0..256 {
            assert!(leaving.holders(p).len() >= 3);
            assert!(!leaving.next_list(p).unwrap().contains(&2));
        }
        let done = leaving.completed();
        assert_eq!(done.member_ids(), vec![1, 3, 4]);
        for id in [1, 3, 4] {
            let first = done.owners.iter().filter(|o| **o == id).count();
            assert!(first.abs_diff(256 / 3) <= 1, "n{id}: {first}");
        }
        for p in 0..256 {
            assert!(distinct(&done.preference_list(p), 3));
        }
        assert!(done.with_leave(1).unwrap_err().contains("2 nodes would be left"));
        assert!(done.with_leave(2).unwrap_err().contains("not a member"));
        assert!(done.with_join(member(3)).unwrap_err().contains("already a member"));
    }

    #[test]
    fn shares_stay_even_and_movement_small_over_a_sequence_of_joins_and_leaves() {
        let mut ring = Ring::new(&members(3), 256, 3).unwrap();
        let steps: [(bool, u32); 6] = [(true, 4), (false, 2), (true, 5), (true, 6), (false, 5), (false, 1)];
        for (join, id) in steps {
            let changing = if join { ring.with_join(member(id)).unwrap() } else { ring.with_leave(id).unwrap() };
            let changed = changing.moving().len();
            let done = changing.completed();
            let ids = done.member_ids();
            let even = 256 * 3 / ids.len();
            for &node in &ids {
                let held = done.held_by(node).len();
                assert!(held.abs_diff(even) <= 6, "after {join} n{id}: n{node} holds {held}, even is {even}");
            }
            // 256 slots on 3 nodes cannot all be spaced (256 is no multiple of 3): a few not.
            let unspaced = done.unspaced(&done.owners);
            assert!(unspaced <= ids.len(), "after {join} n{id}: {unspaced} slots share a window with their owner");
            for p in 0..256 {
                assert!(distinct(&done.preference_list(p), 3));
            }
            // The least a change can alter: the replicas the joining node takes or the leaving
            // one gives, one per changed preference list; swaps to keep the spacing cost a little more.
            let least = if join { done.held_by(id).len() } else { ring.held_by(id).len() };
            if join {
                assert!(changed <= least * 3 / 2, "after {join} n{id}: {changed} lists changed, {least} at least");
            }
            eprintln!(
                "{} n{id}: {changed} preference lists changed, {least} at least",
                if join { "join" } else { "leave" }
            );
            ring = done;
        }
    }

    #[test]
    fn removing_a_node_whose_join_is_in_progress_calls_the_join_off() {
        let ring = Ring::new(&members(3), 64, 3).unwrap();
        let joining = ring.with_join(member(4)).unwrap();
        let off = joining.with_leave(4).unwrap();
        assert_eq!(off.version(), joining.version() + 1);
        assert!(!off.changing());
        assert_eq!(off.member_ids(), vec![1, 2, 3]);
        assert_eq!(off.owners, ring.owners);
        assert!(joining.with_leave(1).unwrap_err().contains("in progress"));
    }

    #[test]
    fn a_joining_nodes_placeholder_ring_loses_to_any_real_one() {
        let placeholder = Ring::joining(member(4), 256, 3);
        assert_eq!(placeholder.version(), 0);
        assert!(Ring::new(&members(3), 256, 3).unwrap().version() > placeholder.version());
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
