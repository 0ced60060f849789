//! Test-only faults a node imposes on itself, set through the authenticated `VALTHREE.FAULT`
//! admin command: network faults (`valthree cluster partition` and `packet` use them) and disk
//! faults, which its file layer ([`FileSystem`]) injects.
//!
//! A node keeps, per peer, the state of its link to that peer ([`Link`]): whether its own
//! messages to the peer are lost (`to`), whether the peer's messages to it are lost (`from`),
//! and the packet faults on the link. A partition is a set of such directed cuts, which the
//! cluster tool computes from a shape and hands to every node; the peer plane
//! ([`crate::peer`]) applies them to every call, and nothing else in a mode reads them —
//! except for the [`Cut::Refuse`] shape, whose whole point is that a node learns at once that
//! it is cut off. In s3 mode the only peer is the object store, named [`OBJECT_STORE`]. The
//! switches cut peer traffic only: clients still reach the node, which is exactly the
//! situation a partition creates (the node is up, its peers are not).

use super::{FileSystem, lock, read_lock, write_lock};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The peer name of the object store.
pub const OBJECT_STORE: &str = "objectstore";

/// How a cut link treats a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Lost on the way, as a real network loses it: the sender learns nothing until its
    /// deadline or its connection's keepalive gives up (the default).
    Drop,
    /// Refused at once on both sides: the caller's channel fails before sending, the callee
    /// answers `FAILED_PRECONDITION` before any handler runs. Fast and definite, for tests.
    Refuse,
}

/// Call-level packet faults on a link: what a lossy, jittery network does to the RPCs that
/// cross it. They act on whole calls (a request or a reply), not on IP packets: TCP would
/// hide a lost packet behind a retransmission, while the protocols above care about a
/// message that never arrives, arrives twice, or arrives after a later one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Packets {
    /// Added to each request and each reply.
    pub delay: Duration,
    /// Up to this much more (uniform), drawn for each message.
    pub jitter: Duration,
    /// The chance that a request, or its reply, is lost (the caller waits for its deadline).
    pub loss: f64,
    /// The chance that a request is delivered twice (the copy's reply is discarded).
    pub duplicate: f64,
    /// The chance that a request is held back until the next call on the link has left.
    pub reorder: f64,
}

impl Packets {
    /// One line, as `VALTHREE.FAULT … LINKS` and the nemesis' log show it.
    pub fn describe(&self) -> String {
        format!(
            "delay {}ms jitter {}ms loss {:.0}% duplicate {:.0}% reorder {:.0}%",
            self.delay.as_millis(),
            self.jitter.as_millis(),
            self.loss * 100.0,
            self.duplicate * 100.0,
            self.reorder * 100.0
        )
    }
}

/// A node's link to one peer, as the peer plane reads it for one call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Link {
    /// This node's messages to the peer are lost (or refused).
    pub to: Option<Cut>,
    /// The peer's messages to this node are lost (or refused).
    pub from: Option<Cut>,
    /// When the first cut in force on the link began.
    pub since: Option<Instant>,
    /// Packet faults on the link (both directions alike).
    pub packets: Option<Packets>,
}

impl Link {
    /// True when either direction is refused.
    pub fn refused(&self) -> bool {
        self.to == Some(Cut::Refuse) || self.from == Some(Cut::Refuse)
    }

    /// True when nothing is wrong with the link.
    pub fn is_clear(&self) -> bool {
        self.to.is_none() && self.from.is_none() && self.packets.is_none()
    }
}

/// Which way a one-way cut goes, seen from the node it is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This node's messages to the peers are lost.
    To,
    /// The peers' messages to this node are lost.
    From,
}

/// The fault switches of one node.
#[derive(Debug)]
pub struct Faults {
    links: RwLock<BTreeMap<String, Link>>,
    /// Draws for packet faults.
    rng: Mutex<fastrand::Rng>,
    /// Per peer, woken whenever a call to it leaves: a call held back for reordering waits
    /// for the next one.
    departures: Mutex<BTreeMap<String, Arc<tokio::sync::Notify>>>,
    /// The node's file layer, which injects disk faults and knows whether storage failed.
    fs: FileSystem,
}

impl Default for Faults {
    fn default() -> Self {
        Self::with_fs(FileSystem::default())
    }
}

impl Faults {
    /// The switches of a node whose durable bytes go through `fs`.
    pub fn with_fs(fs: FileSystem) -> Self {
        Self { links: RwLock::default(), rng: Mutex::new(fastrand::Rng::new()), departures: Mutex::default(), fs }
    }

    /// The node's file layer.
    pub fn fs(&self) -> &FileSystem {
        &self.fs
    }

    /// The link to `peer` now.
    pub fn link(&self, peer: &str) -> Link {
        let links = read_lock(&self.links);
        if links.is_empty() {
            return Link::default();
        }
        links.get(peer).copied().unwrap_or_default()
    }

    /// True when any cut, either way, is in force between this node and `peer`.
    pub fn is_isolated_from(&self, peer: &str) -> bool {
        let link = self.link(peer);
        link.to.is_some() || link.from.is_some()
    }

    /// True when this node knows at once that it is cut off from `peer`: only the
    /// [`Cut::Refuse`] shape tells it. A dropping partition is learned the way a real one
    /// is, by calls that do not come back.
    pub fn refuses(&self, peer: &str) -> bool {
        self.link(peer).refused()
    }

    fn edit(&self, peers: impl IntoIterator<Item = String>, change: impl Fn(&mut Link)) {
        let mut links = write_lock(&self.links);
        for peer in peers {
            let link = links.entry(peer).or_default();
            change(link);
            if link.since.is_none() && (link.to.is_some() || link.from.is_some()) {
                link.since = Some(Instant::now());
            }
        }
    }

    /// Cuts this node off from `peers` both ways; their messages are dropped.
    pub fn isolate(&self, peers: impl IntoIterator<Item = String>) {
        self.cut(peers, &[Direction::To, Direction::From], Cut::Drop);
    }

    /// Cuts this node off from `peers` both ways, refusing every call at once.
    pub fn refuse(&self, peers: impl IntoIterator<Item = String>) {
        self.cut(peers, &[Direction::To, Direction::From], Cut::Refuse);
    }

    /// Cuts the link to each of `peers` in the given directions.
    pub fn cut(&self, peers: impl IntoIterator<Item = String>, directions: &[Direction], how: Cut) {
        self.edit(peers, |link| {
            for direction in directions {
                match direction {
                    Direction::To => link.to = Some(how),
                    Direction::From => link.from = Some(how),
                }
            }
        });
    }

    /// Sets packet faults on the links to `peers`.
    pub fn set_packets(&self, peers: impl IntoIterator<Item = String>, packets: Packets, seed: Option<u64>) {
        if let Some(seed) = seed {
            *lock(&self.rng) = fastrand::Rng::with_seed(seed);
        }
        self.edit(peers, |link| link.packets = Some(packets));
    }

    /// Restores every link: no cut, no packet fault.
    pub fn heal(&self) {
        write_lock(&self.links).clear();
    }

    /// The peers currently cut off, either way.
    pub fn isolated(&self) -> Vec<String> {
        read_lock(&self.links)
            .iter()
            .filter(|(_, l)| l.to.is_some() || l.from.is_some())
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    /// Every faulty link, one line each: `n2 to:drop from:drop`, `n3 packets delay 20ms …`.
    pub fn describe(&self) -> Vec<String> {
        let name = |cut: Cut| match cut {
            Cut::Drop => "drop",
            Cut::Refuse => "refuse",
        };
        read_lock(&self.links)
            .iter()
            .filter(|(_, l)| !l.is_clear())
            .map(|(peer, l)| {
                let mut line = peer.clone();
                if let Some(cut) = l.to {
                    line.push_str(&format!(" to:{}", name(cut)));
                }
                if let Some(cut) = l.from {
                    line.push_str(&format!(" from:{}", name(cut)));
                }
                if let Some(p) = l.packets {
                    line.push_str(&format!(" packets {}", p.describe()));
                }
                line
            })
            .collect()
    }

    /// True with probability `p` (a packet fault's draw).
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && lock(&self.rng).f64() < p
    }

    /// A message's delay on a link: `delay` plus up to `jitter`.
    pub fn delay(&self, packets: &Packets) -> Duration {
        let jitter = packets.jitter.as_micros() as u64;
        let extra = if jitter == 0 { 0 } else { lock(&self.rng).u64(0..=jitter) };
        packets.delay + Duration::from_micros(extra)
    }

    /// What wakes when a call to `peer` leaves.
    pub fn departures(&self, peer: &str) -> Arc<tokio::sync::Notify> {
        lock(&self.departures).entry(peer.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_cut_is_seen_only_in_its_direction_and_heal_clears_everything() {
        let faults = Faults::default();
        faults.cut(["n2".to_string()], &[Direction::To], Cut::Drop);
        faults.set_packets(["n3".to_string()], Packets { loss: 0.5, ..Packets::default() }, Some(1));
        let (n2, n3) = (faults.link("n2"), faults.link("n3"));
        assert_eq!((n2.to, n2.from), (Some(Cut::Drop), None));
        assert!(n2.since.is_some() && !n2.refused());
        assert!(n3.to.is_none() && n3.packets.is_some() && n3.since.is_none());
        assert!(faults.is_isolated_from("n2") && !faults.is_isolated_from("n3"));
        // A dropping cut is not something the node knows about.
        assert!(!faults.refuses("n2"));
        assert_eq!(faults.isolated(), ["n2"]);
        assert_eq!(faults.describe().len(), 2);
        faults.heal();
        assert!(faults.link("n2").is_clear() && faults.link("n3").is_clear() && faults.describe().is_empty());
    }

    #[test]
    fn a_refusing_cut_is_known_both_ways() {
        let faults = Faults::default();
        faults.refuse(["n2".to_string()]);
        assert!(faults.refuses("n2") && faults.is_isolated_from("n2"));
        assert_eq!(faults.describe(), ["n2 to:refuse from:refuse"]);
    }

    #[test]
    fn packet_draws_follow_their_probability() {
        let faults = Faults::default();
        faults.set_packets(["n2".to_string()], Packets::default(), Some(7));
        let hits = (0..10_000).filter(|_| faults.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| faults.chance(0.0)));
        let p = Packets { delay: Duration::from_millis(10), jitter: Duration::from_millis(5), ..Packets::default() };
        for _ in 0..1000 {
            let d = faults.delay(&p);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(15), "{d:?}");
        }
    }
}
