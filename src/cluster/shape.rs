//! Partition shapes: who cannot reach whom. A partition is a set of directed cuts — `(a, b)`
//! means a's messages to b are lost — which [`super::partition_with`] hands to every node as
//! its own links' cuts (`VALTHREE.FAULT … ISOLATE | DROP TO | DROP FROM | REFUSE`).
//!
//! The shapes, after Jepsen's partitioners (the members of each drawn from a seed):
//! * `one` — one node cut off from all the others, both ways;
//! * `halves` — a minority and a majority, cut from each other both ways;
//! * `ring` (majorities-ring) — every node sees a majority (itself included), and no two
//!   see the same one: the nodes in a ring, each seeing the nearest ones. With a majority of
//!   odd size the windows are centred and the cuts symmetric (5 nodes: each sees its two
//!   neighbours); with an even one (3 nodes: a majority of 2) each node sees the next ones
//!   along the ring, so the cuts are one-way;
//! * `bridge` — two halves cut from each other, both joined through one node that sees all;
//! * `one-way` — one node cannot reach any other while they all reach it, or the reverse.
//!
//! A partition of explicit groups (`n1 | n2,n3`) cuts every pair of groups both ways.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A shape of partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One node cut off from the others.
    One,
    /// A minority and a majority, cut from each other.
    Halves,
    /// Each node sees a different majority.
    Ring,
    /// Two halves joined through one node.
    Bridge,
    /// One node cannot reach the others but they reach it, or the reverse.
    OneWay,
}

/// Every shape, in the order the nemesis draws from.
pub const SHAPES: [Shape; 5] = [Shape::One, Shape::Halves, Shape::Ring, Shape::Bridge, Shape::OneWay];

/// A partition: directed cuts, and the groups when it is one of groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// `(a, b)`: a's messages to b are lost.
    pub cuts: BTreeSet<(String, String)>,
    /// The groups of a partition of groups (s3 mode places the object store by them); empty
    /// for the other shapes.
    pub groups: Vec<Vec<String>>,
}

impl Shape {
    /// The shape's name, as `--shape` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::Halves => "halves",
            Shape::Ring => "ring",
            Shape::Bridge => "bridge",
            Shape::OneWay => "one-way",
        }
    }

    /// True for the shapes made of groups (the ones s3 mode can take).
    pub fn is_groups(self) -> bool {
        matches!(self, Shape::One | Shape::Halves)
    }

    /// A partition of this shape over `nodes`, its members drawn from `rng`.
    pub fn partition(self, nodes: &[String], rng: &mut fastrand::Rng) -> Result<Partition, String> {
        let n = nodes.len();
        let least = if matches!(self, Shape::One | Shape::OneWay) { 2 } else { 3 };
        if n < least {
            return Err(format!("a {} partition needs at least {least} nodes", self.name()));
        }
        let mut order = nodes.to_vec();
        rng.shuffle(&mut order);
        Ok(match self {
            Shape::One => Partition::of_groups(vec![vec![order[0].clone()], order[1..].to_vec()]),
            Shape::Halves => {
                let minority = ((n - 1) / 2).max(1);
                Partition::of_groups(vec![order[..minority].to_vec(), order[minority..].to_vec()])
            }
            Shape::Ring => {
                let majority = n / 2 + 1;
                let mut cuts = BTreeSet::new();
                for (i, node) in order.iter().enumerate() {
                    // The offsets along the ring this node sees (itself at 0).
                    let sees: Vec<usize> = if majority % 2 == 1 {
                        let k = majority / 2;
                        (0..=k).chain((n - k)..n).collect()
                    } else {
                        (0..majority).collect()
                    };
                    for offset in 1..n {
                        if !sees.contains(&offset) {
                            cuts.insert((order[(i + offset) % n].clone(), node.clone()));
                        }
                    }
                }
                Partition { cuts, groups: Vec::new() }
            }
            Shape::Bridge => {
                let (bridge, rest) = (&order[0], &order[1..]);
                let (left, right) = rest.split_at(rest.len() / 2);
                let mut partition = Partition::of_groups(vec![left.to_vec(), right.to_vec()]);
                partition.groups.clear();
                debug_assert!(!partition.cuts.iter().any(|(a, b)| a == bridge || b == bridge));
                partition
            }
            Shape::OneWay => {
                let (node, others) = (&order[0], &order[1..]);
                let mute = rng.bool();
                let cuts = others
                    .iter()
                    .map(|other| if mute { (node.clone(), other.clone()) } else { (other.clone(), node.clone()) })
                    .collect();
                Partition { cuts, groups: Vec::new() }
            }
        })
    }
}

impl Partition {
    /// The groups cut from each other both ways.
    pub fn of_groups(groups: Vec<Vec<String>>) -> Self {
        let mut cuts = BTreeSet::new();
        for (i, group) in groups.iter().enumerate() {
            for (j, other) in groups.iter().enumerate() {
                if i != j {
                    for a in group {
                        for b in other {
                            cuts.insert((a.clone(), b.clone()));
                        }
                    }
                }
            }
        }
        Self { cuts, groups }
    }

    /// True when no cut is in force.
    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty()
    }

    /// True when every cut goes both ways.
    pub fn is_symmetric(&self) -> bool {
        self.cuts.iter().all(|(a, b)| self.cuts.contains(&(b.clone(), a.clone())))
    }

    /// Whether `a`'s messages reach `b`.
    pub fn reaches(&self, a: &str, b: &str) -> bool {
        a == b || !self.cuts.contains(&(a.to_string(), b.to_string()))
    }

    /// The peers `node` cannot send to, and those that cannot send to it.
    pub fn links_of(&self, node: &str) -> (Vec<String>, Vec<String>) {
        let to = self.cuts.iter().filter(|(a, _)| a == node).map(|(_, b)| b.clone()).collect();
        let from = self.cuts.iter().filter(|(_, b)| b == node).map(|(a, _)| a.clone()).collect();
        (to, from)
    }

    /// One line: the groups (`n1 | n2,n3`), or who cannot reach whom (`n1 -/-> n2,n3; …`).
    pub fn describe(&self) -> String {
        if !self.groups.is_empty() {
            return self.groups.iter().map(|g| g.join(",")).collect::<Vec<_>>().join(" | ");
        }
        let mut lines: Vec<String> = Vec::new();
        let senders: BTreeSet<&String> = self.cuts.iter().map(|(a, _)| a).collect();
        for sender in senders {
            let lost: Vec<&str> = self.cuts.iter().filter(|(a, _)| a == sender).map(|(_, b)| b.as_str()).collect();
            lines.push(format!("{sender} -/-> {}", lost.join(",")));
        }
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Who `node` sees: itself and every node whose messages reach it.
    fn sees(p: &Partition, all: &[String], node: &str) -> BTreeSet<String> {
        all.iter().filter(|o| p.reaches(o, node)).cloned().collect()
    }

    #[test]
    fn one_cuts_a_single_node_both_ways_from_all_the_others() {
        for seed in 0..20 {
            let all = nodes(5);
            let p = Shape::One.partition(&all, &mut fastrand::Rng::with_seed(seed)).unwrap();
            let alone = &p.groups[0][0];
            assert_eq!(p.groups[1].len(), 4);
            assert!(p.is_symmetric());
            for other in all.iter().filter(|o| *o != alone) {
                assert!(!p.reaches(alone, other) && !p.reaches(other, alone));
                assert_eq!(sees(&p, &all, other).len(), 4);
            }
        }
    }

    #[test]
    fn halves_are_a_minority_and_a_majority_cut_from_each_other() {
        for (n, minority) in [(3, 1), (4, 1), (5, 2), (6, 2), (7, 3)] {
            let all = nodes(n);
            let p = Shape::Halves.partition(&all, &mut fastrand::Rng::with_seed(n as u64)).unwrap();
            assert_eq!(p.groups[0].len(), minority, "{n} nodes");
            assert!(p.groups[1].len() > n / 2, "{n} nodes: the other half is a majority");
            assert!(p.is_symmetric());
            for a in &p.groups[0] {
                for b in &p.groups[1] {
                    assert!(!p.reaches(a, b) && !p.reaches(b, a));
                }
            }
        }
    }

    #[test]
    fn in_a_majorities_ring_each_node_sees_a_different_majority() {
        for n in [3, 4, 5, 7] {
            for seed in 0..5 {
                let all = nodes(n);
                let p = Shape::Ring.partition(&all, &mut fastrand::Rng::with_seed(seed)).unwrap();
                let views: Vec<BTreeSet<String>> = all.iter().map(|node| sees(&p, &all, node)).collect();
                for view in &views {
                    assert_eq!(view.len(), n / 2 + 1, "{n} nodes: {}", p.describe());
                }
                let distinct: BTreeSet<_> = views.iter().collect();
                assert_eq!(distinct.len(), n, "{n} nodes: every view differs: {}", p.describe());
            }
        }
        // Five nodes see their two neighbours: every cut goes both ways.
        assert!(Shape::Ring.partition(&nodes(5), &mut fastrand::Rng::with_seed(1)).unwrap().is_symmetric());
        // Three nodes cannot share majorities of two symmetrically.
        assert!(!Shape::Ring.partition(&nodes(3), &mut fastrand::Rng::with_seed(1)).unwrap().is_symmetric());
    }

    #[test]
    fn a_bridge_joins_two_halves_through_one_node() {
        for n in [3, 5, 6] {
            let all = nodes(n);
            let p = Shape::Bridge.partition(&all, &mut fastrand::Rng::with_seed(9)).unwrap();
            assert!(p.is_symmetric());
            let bridges: Vec<&String> = all.iter().filter(|node| sees(&p, &all, node).len() == n).collect();
            assert_eq!(bridges.len(), 1, "{n} nodes: one node sees everyone: {}", p.describe());
            let bridge = bridges[0];
            for a in all.iter().filter(|a| *a != bridge) {
                assert!(p.reaches(a, bridge) && p.reaches(bridge, a));
                // Everyone else is cut from the other half.
                assert!(sees(&p, &all, a).len() < n);
            }
        }
    }

    #[test]
    fn a_one_way_cut_loses_messages_in_one_direction_only() {
        let all = nodes(3);
        let mut directions = BTreeSet::new();
        for seed in 0..20 {
            let p = Shape::OneWay.partition(&all, &mut fastrand::Rng::with_seed(seed)).unwrap();
            assert_eq!(p.cuts.len(), 2);
            for (a, b) in &p.cuts {
                assert!(p.reaches(b, a), "{b} still reaches {a}");
            }
            let senders: BTreeSet<&String> = p.cuts.iter().map(|(a, _)| a).collect();
            directions.insert(senders.len() == 1);
        }
        assert_eq!(directions.len(), 2, "both a mute node and a deaf one come up");
    }

    #[test]
    fn a_node_is_told_its_own_links() {
        let p = Partition::of_groups(vec![vec!["n1".into()], vec!["n2".into(), "n3".into()]]);
        assert_eq!(p.links_of("n1"), (vec!["n2".to_string(), "n3".into()], vec!["n2".to_string(), "n3".into()]));
        assert_eq!(p.links_of("n2"), (vec!["n1".to_string()], vec!["n1".to_string()]));
        assert_eq!(p.describe(), "n1 | n2,n3");
    }

    #[test]
    fn shapes_need_enough_nodes() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(Shape::Ring.partition(&nodes(2), &mut rng).is_err());
        assert!(Shape::Bridge.partition(&nodes(2), &mut rng).is_err());
        assert!(Shape::One.partition(&nodes(1), &mut rng).is_err());
    }
}
