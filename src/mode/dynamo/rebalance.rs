//! Membership changes: a node joins or leaves while clients keep reading and writing.
//!
//! 1. The node asked (`VALTHREE.MEMBERS ADD|REMOVE`, what `valthree cluster add-node` and
//!    `remove-node` send) makes the next ring version: the current owners plus where the
//!    moving partitions go ([`Ring::with_join`], [`Ring::with_leave`]). It stores it and
//!    sends it to every member; gossip (one random member per round, the higher version
//!    wins) spreads it to any that missed it.
//! 2. While it is in force a moving partition's new owner is a *pending* replica: every
//!    write is sent to it too and needs W plus one acknowledgement per pending replica of its
//!    key, from current and pending replicas alike (Cassandra's pending endpoints), so W of
//!    the owners-to-be hold it when the change completes; reads ask only the current owners.
//!    Anti-entropy runs at once (not at `--aae-interval`) between every pair of holders,
//!    old and new, and streams the data to the new owner in pages of `--aae-max-keys` keys;
//!    a page that is cut off is resumed by the next exchange, which compares trees again.
//! 3. The *driver* (the lowest-id member that is up) checks that every member has the ring,
//!    then compares each moving partition's root on all its holders; once each has been seen
//!    equal everywhere, it makes the following version (the new owners, a leaving member
//!    gone) and sends it to every member, old and new.
//! 4. A node left holding a partition it no longer owns keeps it `--handoff-grace`, then
//!    hands it over once more (an exchange with each owner, so a write that reached only it
//!    is not lost) and deletes its copy.
//!
//! Acknowledged writes are safe throughout: a write acknowledged during a change is on W of
//! the owners before it and W of the owners after it; one acknowledged before is streamed to
//! the new owner, which becomes current only after holding everything the old ones held; and
//! a node that leaves is deleted (`cluster remove-node`) only once it has handed everything
//! over.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::aae;
use super::anti_entropy::exchange_partitions;
use super::node::Node;
use super::ring::{Partition, Ring};
use super::storage::Write;
use super::swim::Health;
use super::wire::{AaeReply, AaeRequest};
use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::node::lock;

/// How often the rebalancing step runs (and membership changes are polled).
pub(super) const POLL: Duration = Duration::from_millis(250);

/// What the rebalancing step remembers between rounds.
#[derive(Default)]
pub(super) struct State {
    /// The changing ring version the driver is checking, and its partitions seen converged.
    checking: u64,
    converged: BTreeSet<Partition>,
    /// Since when every member has had the changing ring (`None`: not all of them yet).
    all_have_since: Option<Instant>,
    /// Partitions this node holds data of but no longer owns, and since when.
    foreign_since: HashMap<Partition, Instant>,
}

/// Sends `ring` to `to` and adopts the answer if it is newer; the answerer's version.
async fn swap(node: &Node, to: NodeId, ring: &Ring) -> Result<u64> {
    let (reply, _) = node.call_aae(to, &AaeRequest::Ring(Box::new(ring.clone()))).await?;
    let AaeReply::Ring(theirs) = reply else {
        return Err(Error::TryAgain(format!("n{to} did not answer with its ring")));
    };
    let version = theirs.version();
    node.adopt(*theirs)?;
    Ok(version)
}

/// Sends `ring` to every member of it and of `also`; the members that now have it.
pub(super) async fn announce(node: &Node, ring: &Ring, also: &Ring) -> BTreeSet<NodeId> {
    let mut to: BTreeSet<NodeId> = ring.member_ids().into_iter().collect();
    to.extend(also.member_ids());
    to.remove(&node.id);
    let mut have = BTreeSet::from([node.id]);
    for id in to {
        match swap(node, id, ring).await {
            Ok(v) if v >= ring.version() => {
                have.insert(id);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(peer = id, "ring not delivered: {e}"),
        }
    }
    have
}

/// One round: gossip the ring, drive a change to its end, hand over partitions no longer owned.
pub(super) async fn step(node: &Node) -> Result<()> {
    let ring = node.ring();
    let alive = node.alive();
    if !alive.is_empty() {
        let peer = alive[fastrand::usize(..alive.len())];
        if let Err(e) = swap(node, peer, &ring).await {
            tracing::debug!(peer, "ring gossip: {e}");
        }
    }
    let ring = node.ring();
    if ring.version() == 0 {
        return Ok(());
    }
    if ring.changing() {
        let driver = ring.member_ids().into_iter().find(|id| *id == node.id || alive.contains(id));
        if driver == Some(node.id) {
            drive(node, &ring).await?;
        }
        return Ok(());
    }
    hand_over(node, &ring).await
}

/// The driver's round of a change in progress: complete it once every moving partition has
/// been seen identical on all its holders.
async fn drive(node: &Node, ring: &Ring) -> Result<()> {
    let have = announce(node, ring, ring).await;
    let all_have = have.len() >= ring.members().len();
    let moving = ring.moving();
    {
        let mut state = lock(&node.rebalance);
        if state.checking != ring.version() {
            state.checking = ring.version();
            state.converged.clear();
            state.all_have_since = None;
        }
        if !all_have {
            // A member without the ring would not send writes to pending replicas.
            state.all_have_since = None;
            return Ok(());
        }
        // A write its coordinator began under the ring before this one neither went to the
        // pending replicas nor needed them: convergence is judged only once every such write
        // is over (answered or timed out), so a partition seen converged stays so for every
        // acknowledged write (each later one counts a pending replica, see the coordinator).
        let since = *state.all_have_since.get_or_insert_with(Instant::now);
        if since.elapsed() < RING_SETTLE {
            return Ok(());
        }
    }
    let mut asks: BTreeMap<NodeId, Vec<Partition>> = BTreeMap::new();
    for &p in &moving {
        for h in ring.holders(p) {
            asks.entry(h).or_default().push(p);
        }
    }
    let mut roots: HashMap<(NodeId, Partition), u64> = HashMap::new();
    for (holder, partitions) in asks {
        let got = if holder == node.id {
            node.storage.with_trees(|t| partitions.iter().map(|p| t.root(*p)).collect())
        } else {
            let (reply, _) = node.call_aae(holder, &AaeRequest::Roots(partitions.clone())).await?;
            let AaeReply::Hashes(h) = reply else { return Err(Error::TryAgain(format!("n{holder}: no roots"))) };
            h
        };
        for (p, root) in partitions.into_iter().zip(got) {
            roots.insert((holder, p), root);
        }
    }
    let done = {
        let mut state = lock(&node.rebalance);
        for &p in &moving {
            let mut seen = ring.holders(p).into_iter().map(|h| roots.get(&(h, p)).copied());
            let first = seen.next().flatten();
            if first.is_some() && seen.all(|r| r == first) {
                state.converged.insert(p);
            }
        }
        moving.iter().all(|p| state.converged.contains(p))
    };
    if done {
        let next = ring.completed();
        tracing::info!(version = next.version(), moved = moving.len(), "dynamo: membership change complete");
        node.adopt(next.clone())?;
        announce(node, &next, ring).await;
    }
    Ok(())
}

/// Hands over and deletes, after `--handoff-grace`, the partitions this node still has data
/// of but no longer holds.
async fn hand_over(node: &Node, ring: &Ring) -> Result<()> {
    let foreign: Vec<Partition> = node.storage.with_trees(|t| {
        (0..ring.partitions()).filter(|p| t.root(*p) != 0 && !ring.holders(*p).contains(&node.id)).collect()
    });
    // A node that has left the ring forgets its copies without handing them over: every
    // write acknowledged during the change is on W owners-to-be (a pending replica counts and
    // adds to W), everything before it was streamed to them before the change completed, and
    // reaping does not ask a node outside the ring, so a handover could bring back a key
    // whose tombstone the owners have since reaped. Under sloppy quorums (which never reap) a
    // stand-in's copy may be the only one, so it is handed over as a member's is.
    let leaving = !ring.member_ids().contains(&node.id) && !node.options.sloppy_quorum;
    let due: Vec<Partition> = {
        let mut state = lock(&node.rebalance);
        state.foreign_since.retain(|p, _| foreign.contains(p));
        let now = Instant::now();
        foreign
            .iter()
            .filter(|p| {
                leaving
                    || now.duration_since(*state.foreign_since.entry(**p).or_insert(now)) >= node.options.handoff_grace
            })
            .copied()
            .collect()
    };
    let alive = node.alive();
    for p in due {
        if !leaving {
            let owners = ring.preference_list(p);
            if owners.iter().any(|o| !alive.contains(o)) {
                continue; // every owner must take its copy first
            }
            let mut complete = true;
            for &owner in &owners {
                // Each exchange repairs a page; the partition is dropped only when no page was
                // cut off. An owner that cannot be reached leaves this partition to a later
                // round, not the others.
                match exchange_partitions(node, owner, vec![p], 0).await {
                    Ok(cut_off) => complete &= !cut_off,
                    Err(e) => {
                        tracing::debug!(partition = p, peer = owner, "handover: {e}");
                        complete = false;
                    }
                }
            }
            if !complete {
                continue;
            }
        }
        let storage = node.storage.clone();
        let segments: Vec<u16> = (0..aae::SEGMENTS as u16).collect();
        let keys = tokio::task::spawn_blocking(move || storage.segment_keys(p, &segments))
            .await
            .map_err(|e| Error::Io(e.to_string()))??;
        let n = keys.len();
        let writes = keys.into_iter().map(|(key, hash)| Write::Forget { key, hash }).collect();
        node.write(writes).await?;
        if leaving {
            tracing::info!(partition = p, keys = n, "dynamo: forgot a partition of a ring this node has left");
        } else {
            tracing::info!(partition = p, keys = n, "dynamo: handed over a partition this node no longer holds");
        }
    }
    Ok(())
}

/// How long after every member has a changing ring the driver starts judging convergence:
/// longer than any write begun under the ring before lives (its request timeout).
const RING_SETTLE: Duration =
    Duration::from_millis(super::node::TICK.as_millis() as u64 * super::node::REQUEST_TIMEOUT_TICKS + 500);

/// How long a member of a changing ring may be DEAD before the change's caller is told.
const DOWN_NOTICE: Duration = Duration::from_secs(10);

/// Waits until the change `ring` started is over (the next version is in force). If it is
/// not over within `limit`, or a member the change needs has been down for a while, the
/// answer is UNCERTAIN: the change stays in force and goes on when the member is back (the
/// same command, repeated, waits for it again; removing a joining node calls its join off).
pub(super) async fn wait_done(node: &Node, ring: &Ring, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let version = ring.version();
    loop {
        let now = node.ring();
        if now.version() > version {
            return Ok(());
        }
        let down: Vec<NodeId> = ring
            .member_ids()
            .into_iter()
            .filter(|id| *id != node.id)
            .filter(|id| {
                node.swim.seen(*id).is_some_and(|s| s.health == Health::Dead && s.since.elapsed() > DOWN_NOTICE)
            })
            .collect();
        if !down.is_empty() {
            let names: Vec<String> = down.iter().map(|id| format!("n{id}")).collect();
            return Err(Error::Uncertain(format!(
                "the membership change (ring version {version}) waits for {}, which is down: it goes on when that \
                 node is back (or remove a joining node to call its join off)",
                names.join(", ")
            )));
        }
        if start.elapsed() > limit {
            return Err(Error::Uncertain(format!(
                "the membership change (ring version {version}) is still moving data; it goes on in the background \
                 (ask again to wait for it)"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(super) type Shared = Mutex<State>;
