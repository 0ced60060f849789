//! Active anti-entropy and tombstone reaping: the background work that makes replicas
//! converge without a read or a hint.
//!
//! Every `--aae-interval`, this node compares each partition it holds with each live
//! co-owner: the roots of every shared partition in one call, then for a differing partition
//! its branches, the segments under the differing branches, and the keys (with their
//! objects' hashes) in the differing segments. Each differing key's object is pulled,
//! merged here (the DVV join), and the join pushed back, so both hold it. At most
//! `--aae-max-keys` keys are repaired per exchange; when an exchange stops at that bound the
//! next one starts at once instead of an interval later.
//!
//! Reaping: a partition's first owner deletes a tombstone older than `--tombstone-grace`
//! only when every member of the ring is up, every owner holds the very same object (same
//! hash), and every other member holds nothing for the key or that same tombstone; each
//! owner deletes it only if its object is still that one. A replica that missed the delete
//! never held it, so nothing is reaped while it is away, and it cannot bring the value back.
//! That includes a *former* owner: after a membership change it keeps its copies until it
//! hands them over (`--handoff-grace`), and a handover of a value whose tombstone is gone
//! would make the value live again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::aae::{self, differing};
use super::coordinator::{Request, Response};
use super::node::Node;
use super::ring::Partition;
use super::storage::{Write, Written};
use super::wire::{AaeReply, AaeRequest};
use crate::error::{Error, Result};
use crate::node::{NodeId, codec, now_ms};

fn blocking_error(e: tokio::task::JoinError) -> Error {
    Error::Io(format!("a storage task failed: {e}"))
}

fn unexpected(reply: &AaeReply) -> Error {
    Error::TryAgain(format!("an unexpected anti-entropy answer: {reply:?}"))
}

/// One exchange with `peer` of every partition both hold (or are about to); true when it
/// stopped at `--aae-max-keys` with work left.
pub(super) async fn exchange(node: &Node, peer: NodeId, round: usize) -> Result<bool> {
    let ring = node.ring();
    let shared: Vec<Partition> = (0..ring.partitions())
        .filter(|p| {
            let holders = ring.holders(*p);
            holders.contains(&node.id) && holders.contains(&peer)
        })
        .collect();
    exchange_partitions(node, peer, shared, round).await
}

/// Compares `shared` with `peer` and repairs what differs, both ways.
pub(super) async fn exchange_partitions(
    node: &Node,
    peer: NodeId,
    shared: Vec<Partition>,
    round: usize,
) -> Result<bool> {
    if shared.is_empty() {
        return Ok(false);
    }
    let stats = &node.stats;
    let mut bytes = 0;
    let (reply, n) = node.call_aae(peer, &AaeRequest::Roots(shared.clone())).await?;
    bytes += n;
    let AaeReply::Hashes(theirs) = reply else { return Err(unexpected(&reply)) };
    let mine: Vec<u64> = node.storage.with_trees(|t| shared.iter().map(|p| t.root(*p)).collect());
    let mut differ: Vec<Partition> =
        differing(&mine, &theirs).into_iter().filter_map(|i| shared.get(i).copied()).collect();
    stats.aae_exchanges.fetch_add(1, Ordering::Relaxed);
    stats.aae_partitions_differing.store(differ.len() as u64, Ordering::Relaxed);
    // Start somewhere else each round, so a bounded exchange does not redo the same partitions.
    if !differ.is_empty() {
        let at = round % differ.len();
        differ.rotate_left(at);
    }
    let mut budget = node.options.aae_max_keys.max(1);
    let mut stopped_early = false;
    for partition in differ {
        if budget == 0 {
            stopped_early = true;
            break;
        }
        let (reply, n) = node.call_aae(peer, &AaeRequest::Branches(partition)).await?;
        bytes += n;
        let AaeReply::Hashes(theirs) = reply else { return Err(unexpected(&reply)) };
        let mine = node.storage.with_trees(|t| t.branches(partition));
        let branches: Vec<u16> = differing(&mine, &theirs).into_iter().map(|b| b as u16).collect();
        if branches.is_empty() {
            continue;
        }
        let (reply, n) = node.call_aae(peer, &AaeRequest::Segments(partition, branches.clone())).await?;
        bytes += n;
        let AaeReply::Segments(theirs) = reply else { return Err(unexpected(&reply)) };
        let mine = node.storage.with_trees(|t| t.segments(partition, &branches));
        let segments: Vec<u16> = mine
            .iter()
            .filter(|(s, h)| theirs.iter().find(|(t, _)| t == s).map(|(_, th)| th) != Some(h))
            .map(|(s, _)| *s)
            .collect();
        if segments.is_empty() {
            continue;
        }
        let (reply, n) = node.call_aae(peer, &AaeRequest::Keys(partition, segments.clone())).await?;
        bytes += n;
        let AaeReply::Keys(theirs) = reply else { return Err(unexpected(&reply)) };
        let storage = node.storage.clone();
        let mine = tokio::task::spawn_blocking(move || storage.segment_keys(partition, &segments))
            .await
            .map_err(blocking_error)??;
        let theirs: BTreeMap<Bytes, u64> = theirs.into_iter().collect();
        let mine: BTreeMap<Bytes, u64> = mine.into_iter().collect();
        let keys: Vec<Bytes> = theirs
            .keys()
            .chain(mine.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| theirs.get(*k) != mine.get(*k))
            .cloned()
            .collect();
        if keys.len() > budget {
            stopped_early = true;
        }
        let keys: Vec<Bytes> = keys.into_iter().take(budget).collect();
        budget -= keys.len();
        bytes += repair(node, peer, keys).await?;
    }
    stats.aae_bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(stopped_early)
}

/// Pulls `keys`' objects from `peer`, merges them here, and pushes the joins back; the
/// bytes of the objects moved.
async fn repair(node: &Node, peer: NodeId, keys: Vec<Bytes>) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let batch = keys.iter().enumerate().map(|(i, k)| (i as u64 + 1, Request::Get { key: k.clone() })).collect();
    let mut bytes = 0u64;
    let mut merges = Vec::new();
    for (op, response) in node.call_replica(peer, batch).await {
        match response {
            Response::Got(object) => {
                if let Some(key) = keys.get(op as usize - 1) {
                    bytes += codec::encode(&object).map_or(0, |b| b.len() as u64);
                    merges.push(Write::Merge { key: key.clone(), object });
                }
            }
            Response::Unreachable(why) => return Err(Error::TryAgain(format!("n{peer}: {why}"))),
            // One key the peer cannot read (a corrupt object) does not stop the others.
            other => tracing::warn!(peer, "anti-entropy: n{peer} did not give an object: {other:?}"),
        }
    }
    let merged_keys: Vec<Bytes> =
        merges.iter().filter_map(|w| if let Write::Merge { key, .. } = w { Some(key.clone()) } else { None }).collect();
    if merges.is_empty() {
        return Ok(bytes);
    }
    let results = node.write(merges).await?;
    let mut push = Vec::new();
    for (i, (key, result)) in merged_keys.into_iter().zip(results).enumerate() {
        if let Ok(Written::Merged { object, .. }) = result {
            bytes += codec::encode(&object).map_or(0, |b| b.len() as u64);
            push.push((i as u64 + 1, Request::Merge { key, object }));
        }
    }
    let pushed = push.len() as u64;
    if push.is_empty() {
        return Ok(bytes);
    }
    let replies = node.call_replica(peer, push).await;
    let stored = replies.iter().filter(|(_, r)| *r == Response::Merged).count() as u64;
    node.stats.aae_keys_repaired.fetch_add(stored.min(pushed), Ordering::Relaxed);
    Ok(bytes)
}

/// Reaps the old tombstones of the partitions this node is the first owner of. Never with
/// sloppy quorums on: a stand-in holds copies no owner knows of, and its hint could bring a
/// reaped key's old value back.
pub(super) async fn reap(node: &Node) -> Result<()> {
    if node.options.sloppy_quorum {
        return Ok(());
    }
    let ring = node.ring();
    let grace = node.options.tombstone_grace.as_millis() as u64;
    let before = now_ms().saturating_sub(grace);
    let storage = node.storage.clone();
    let limit = node.options.aae_max_keys.max(1);
    let (me, first) = (node.id, ring.clone());
    let old = tokio::task::spawn_blocking(move || {
        storage.old_tombstones(before, limit, |key| first.owners(key).first() == Some(&me))
    })
    .await
    .map_err(blocking_error)??;
    let mut by_partition: BTreeMap<Partition, Vec<(Bytes, u64)>> = BTreeMap::new();
    for (key, hash) in old {
        by_partition.entry(ring.partition(&key)).or_default().push((key, hash));
    }
    let alive = node.alive();
    // A former owner keeps its copies of a partition it lost until it hands them over
    // (`--handoff-grace`), and a member that is away may be such a holder: while any member
    // is away nothing is reaped, and a member that is not an owner must hold either nothing
    // for the key or that very tombstone. Otherwise its handover would bring the value back.
    let members = ring.member_ids();
    if members.iter().any(|m| *m != node.id && !alive.contains(m)) {
        return Ok(());
    }
    for (partition, mut candidates) in by_partition {
        let owners = ring.preference_list(partition);
        let others: Vec<NodeId> = owners.iter().copied().filter(|o| *o != node.id).collect();
        if others.iter().any(|o| !alive.contains(o)) {
            continue;
        }
        for &member in members.iter().filter(|m| **m != node.id) {
            if candidates.is_empty() {
                break;
            }
            let owner = owners.contains(&member);
            let keys = candidates.iter().map(|(k, _)| k.clone()).collect();
            let (reply, _) = node.call_aae(member, &AaeRequest::Hashes(keys)).await?;
            let AaeReply::Hashes(theirs) = reply else { return Err(unexpected(&reply)) };
            if theirs.len() != candidates.len() {
                return Err(unexpected(&AaeReply::Hashes(theirs)));
            }
            candidates = candidates
                .into_iter()
                .zip(theirs)
                .filter(|((_, h), t)| h == t || (!owner && *t == 0))
                .map(|(c, _)| c)
                .collect();
        }
        if candidates.is_empty() {
            continue;
        }
        for &owner in &others {
            node.call_aae(owner, &AaeRequest::Reap(candidates.clone())).await?;
        }
        let writes = candidates.into_iter().map(|(key, hash)| Write::Reap { key, hash }).collect();
        let reaped = node.write(writes).await?.into_iter().filter(|r| matches!(r, Ok(Written::Reaped(true)))).count();
        node.stats.tombstones_reaped.fetch_add(reaped as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// This node's answer to a peer's anti-entropy question: about the partitions this node
/// holds (a peer that held one before a membership change asks too, to hand its copy over).
pub(super) async fn answer(node: &Node, from: NodeId, question: AaeRequest) -> AaeReply {
    let ring = node.ring();
    let holds = |p: Partition| p < ring.partitions() && ring.holders(p).contains(&node.id);
    let max_keys = node.options.aae_max_keys.max(aae::SEGMENTS);
    let storage = node.storage.clone();
    match question {
        AaeRequest::Roots(partitions) if partitions.len() <= ring.partitions() as usize => AaeReply::Hashes(
            storage.with_trees(|t| partitions.iter().map(|p| if holds(*p) { t.root(*p) } else { 0 }).collect()),
        ),
        AaeRequest::Branches(p) if holds(p) => AaeReply::Hashes(storage.with_trees(|t| t.branches(p))),
        AaeRequest::Segments(p, mut branches) if holds(p) && branches.len() <= aae::BRANCHES => {
            branches.sort_unstable();
            branches.dedup();
            AaeReply::Segments(storage.with_trees(|t| t.segments(p, &branches)))
        }
        AaeRequest::Keys(p, mut segments) if holds(p) && segments.len() <= aae::SEGMENTS => {
            segments.sort_unstable();
            segments.dedup();
            match tokio::task::spawn_blocking(move || storage.segment_keys(p, &segments)).await {
                Ok(Ok(keys)) => AaeReply::Keys(keys),
                Ok(Err(e)) => AaeReply::Refused(e.to_string()),
                Err(e) => AaeReply::Refused(e.to_string()),
            }
        }
        AaeRequest::Hashes(keys) if keys.len() <= max_keys => {
            match tokio::task::spawn_blocking(move || storage.hashes(&keys)).await {
                Ok(Ok(hashes)) => AaeReply::Hashes(hashes),
                Ok(Err(e)) => AaeReply::Refused(e.to_string()),
                Err(e) => AaeReply::Refused(e.to_string()),
            }
        }
        AaeRequest::Reap(keys) if keys.len() <= max_keys && !ring.changing() && !node.options.sloppy_quorum => {
            // Only a partition's first owner reaps, only keys this node holds a copy of, and
            // (storage checks) only an object that is still that very tombstone.
            let writes: Vec<Write> = keys
                .into_iter()
                .filter(|(k, _)| {
                    let owners = ring.owners(k);
                    owners.first() == Some(&from) && owners.contains(&node.id)
                })
                .map(|(key, hash)| Write::Reap { key, hash })
                .collect();
            match node.write(writes).await {
                Ok(results) => {
                    let n = results.iter().filter(|r| matches!(r, Ok(Written::Reaped(true)))).count() as u64;
                    node.stats.tombstones_reaped.fetch_add(n, Ordering::Relaxed);
                    AaeReply::Reaped(n)
                }
                Err(e) => AaeReply::Refused(e.to_string()),
            }
        }
        AaeRequest::Ring(theirs) => {
            if let Err(e) = node.adopt(*theirs) {
                tracing::warn!(peer = from, "a ring from n{from} refused: {e}");
            }
            AaeReply::Ring(Box::new((*node.ring()).clone()))
        }
        other => {
            AaeReply::Refused(format!("n{} does not hold that partition, or it asks too much: {other:?}", node.id))
        }
    }
}
