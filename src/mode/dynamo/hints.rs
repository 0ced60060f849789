//! Hinted handoff: the writes an owner missed (it was down, or did not answer in time) are
//! recorded durably as hints (target, key) on the coordinator; this task replays them — the
//! key's current object, so a hot key makes one hint — once the target is ALIVE again, and
//! deletes each hint when the target has stored the object. Rate-limited (a page of keys per
//! target per round), bounded by `--max-hints`, and a hint older than `--hint-window` is
//! dropped unreplayed (anti-entropy is what repairs a replica gone that long).

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::coordinator::{Request, Response};
use super::node::Node;
use super::storage::Write;
use super::swim::Health;
use crate::node::now_ms;

/// How often pending hints are looked at.
const ROUND: Duration = Duration::from_millis(250);
/// Keys replayed to one target per round, at most.
const PAGE: usize = 64;

pub(super) async fn run(node: Weak<Node>) {
    let mut ticker = tokio::time::interval(ROUND);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else { return };
        if !node.options.hinted_handoff {
            return;
        }
        round(&node).await;
    }
}

/// At shutdown: replays hints to the targets that are ALIVE until none is left or `limit`
/// has passed, and says how many were replayed and how many stay on disk. The ones left are
/// not lost: they are durable, and this node replays them once it runs again (or, past
/// `--hint-window`, anti-entropy repairs what they covered).
pub(super) async fn hand_over(node: &Node, limit: Duration) -> (u64, u64) {
    let pending = || node.storage.hint_count().unwrap_or(0);
    let before = node.stats.hints_replayed.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + limit;
    if node.options.hinted_handoff {
        // Until none is left, or a round replays nothing (their targets are down).
        while pending() > 0 && tokio::time::Instant::now() < deadline {
            let replayed = node.stats.hints_replayed.load(Ordering::Relaxed);
            let _ = tokio::time::timeout_at(deadline, round(node)).await;
            if node.stats.hints_replayed.load(Ordering::Relaxed) == replayed {
                break;
            }
        }
    }
    (node.stats.hints_replayed.load(Ordering::Relaxed) - before, pending())
}

/// One round: drops the hints no one is left to take, replays a page to each ALIVE target.
async fn round(node: &Node) {
    let ring = node.ring();
    let members = ring.member_ids();
    // Hints for a node that is no longer in the ring (it left, or its join was called off)
    // have no one to go to: their writes are on W current owners (see `rebalance`), and
    // anti-entropy converges the rest. So are the hints of a node that left the ring
    // itself: replayed, its old copies could bring back a key whose tombstone the owners
    // have since reaped (except under sloppy quorums, which never reap).
    let leaving = !members.contains(&node.id) && !node.options.sloppy_quorum;
    let held = {
        let storage = node.storage.clone();
        tokio::task::spawn_blocking(move || storage.hint_targets()).await
    };
    for target in held.ok().and_then(|h| h.ok()).unwrap_or_default() {
        if (leaving || !members.contains(&target))
            && let Err(e) = forget(node, target).await
        {
            tracing::debug!(peer = target, "dropping hints: {e}");
        }
    }
    if leaving {
        return;
    }
    let targets: Vec<_> = members
        .into_iter()
        .filter(|id| *id != node.id && !node.isolated_from(*id))
        .filter(|id| node.swim.seen(*id).is_some_and(|s| s.health == Health::Alive))
        .collect();
    for target in targets {
        if let Err(e) = replay(node, target).await {
            tracing::debug!(peer = target, "hint replay: {e}");
        }
    }
}

/// Drops a page of the hints for `target` without replaying them.
async fn forget(node: &Node, target: u32) -> crate::error::Result<()> {
    let storage = node.storage.clone();
    let hints = tokio::task::spawn_blocking(move || storage.hints_for(target, PAGE * 16))
        .await
        .map_err(|e| crate::error::Error::Io(e.to_string()))??;
    if hints.is_empty() {
        return Ok(());
    }
    node.stats.hints_expired.fetch_add(hints.len() as u64, Ordering::Relaxed);
    let drop = hints.into_iter().map(|(key, at)| Write::DropHint { target, key, recorded_ms: at }).collect();
    node.write(drop).await?;
    Ok(())
}

async fn replay(node: &Node, target: u32) -> crate::error::Result<()> {
    let storage = node.storage.clone();
    let hints = tokio::task::spawn_blocking(move || storage.hints_for(target, PAGE))
        .await
        .map_err(|e| crate::error::Error::Io(e.to_string()))??;
    if hints.is_empty() {
        return Ok(());
    }
    let window = node.options.hint_window.as_millis() as u64;
    let now = now_ms();
    let (expired, due): (Vec<_>, Vec<_>) = hints.into_iter().partition(|(_, at)| now.saturating_sub(*at) > window);
    let mut done: Vec<Write> =
        expired.iter().map(|(key, at)| Write::DropHint { target, key: key.clone(), recorded_ms: *at }).collect();
    node.stats.hints_expired.fetch_add(expired.len() as u64, Ordering::Relaxed);
    let storage = node.storage.clone();
    let keys: Vec<_> = due.iter().map(|(k, _)| k.clone()).collect();
    let objects = tokio::task::spawn_blocking(move || keys.iter().map(|k| storage.get(k)).collect::<Vec<_>>())
        .await
        .map_err(|e| crate::error::Error::Io(e.to_string()))?;
    let mut batch = Vec::new();
    for (i, ((key, _), object)) in due.iter().zip(objects).enumerate() {
        batch.push((i as u64 + 1, Request::Merge { key: key.clone(), object: object? }));
    }
    if !batch.is_empty() {
        let replies = node.call_replica(target, batch).await;
        for (op, response) in replies {
            if response == Response::Merged
                && let Some((key, at)) = due.get(op as usize - 1)
            {
                done.push(Write::DropHint { target, key: key.clone(), recorded_ms: *at });
                node.stats.hints_replayed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if !done.is_empty() {
        node.write(done).await?;
    }
    Ok(())
}
