//! A dynamo node's one background loop: every [`rebalance::POLL`] a rebalancing step (ring
//! gossip, driving a membership change, handing over partitions no longer held), then, when
//! due, an anti-entropy exchange with each live co-owner and a round of tombstone reaping.
//! Rebalancing and anti-entropy are separate concerns ([`rebalance`], [`anti_entropy`]); this
//! file only decides when each runs.

use std::sync::Weak;
use std::time::Duration;

use super::node::Node;
use super::{anti_entropy, rebalance};

/// The pause before the next exchange when the last one stopped at `--aae-max-keys`.
const CONTINUE: Duration = Duration::from_millis(100);

/// Runs until the node is dropped.
pub(super) async fn run(node: Weak<Node>) {
    let Some(interval) = node.upgrade().map(|n| n.options.aae_interval) else { return };
    let mut round = 0usize;
    let mut pause = interval.min(rebalance::POLL);
    let mut last_exchange = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(pause).await;
        let Some(node) = node.upgrade() else { return };
        if let Err(e) = rebalance::step(&node).await {
            tracing::debug!("rebalancing: {e}");
        }
        // A membership change streams the moving partitions at once, whatever the interval
        // (0 included); otherwise exchanges run every interval, and never when it is 0.
        let changing = node.ring().changing();
        let due = !interval.is_zero() && last_exchange.elapsed() >= interval;
        pause = rebalance::POLL;
        if !changing && !due {
            continue;
        }
        last_exchange = tokio::time::Instant::now();
        round += 1;
        let mut more = false;
        for peer in node.alive() {
            match anti_entropy::exchange(&node, peer, round).await {
                Ok(stopped_early) => more |= stopped_early,
                Err(e) => tracing::debug!(peer, "anti-entropy exchange: {e}"),
            }
        }
        if !changing && let Err(e) = anti_entropy::reap(&node).await {
            tracing::debug!("tombstone reaping: {e}");
        }
        if more {
            pause = CONTINUE;
            last_exchange -= interval;
        }
    }
}
