//! Garbage collection of tombstones (§3.1).

use std::sync::Arc;

use bytes::Bytes;

use super::ballot::Ballot;
use super::proposer::{Command, Outcome};
use super::storage::{AcceptorMessage, Config, KeyFilter};

use super::node::Node;

/// Collects tombstones: each pass takes the next batch of tombstones this node holds and is
/// home for (a cursor walks the whole table), and every tenth pass any tombstone it holds, so
/// one whose removal message was lost on the way to this acceptor is collected again.
pub(super) async fn run_gc(node: std::sync::Weak<Node>) {
    const BATCH: usize = 256;
    let interval = match node.upgrade() {
        Some(n) => n.options.gc_interval,
        None => return,
    };
    if interval.is_zero() {
        return;
    }
    let mut cursor: Option<Bytes> = None;
    let mut pass = 0u64;
    loop {
        tokio::time::sleep(interval).await;
        let Some(node) = node.upgrade() else { return };
        let config = node.config();
        if config.previous.is_some() || !config.members.iter().any(|m| m.id == node.id) {
            continue; // no collection while a membership change runs
        }
        // A collection needs every acceptor: while one is away (down, stopping, cut off) it
        // could only time out, and hold its key's commands meanwhile.
        if config.members.iter().any(|m| m.id != node.id && (node.is_down(m.id) || node.is_leaving(m.id))) {
            continue;
        }
        pass += 1;
        let everything = pass.is_multiple_of(10);
        let scan = node.clone();
        let after = cursor.clone();
        let found = tokio::task::spawn_blocking(move || {
            let listed = scan.storage.keys(KeyFilter::Tombstones, after.as_deref(), BATCH, |k| {
                everything || scan.home(k) == Some(scan.id)
            })?;
            let next = if listed.len() < BATCH { None } else { listed.last().cloned() };
            // A slot of another node's key that only holds a promise is most likely that
            // key's first write in flight at its home: collecting it here would prepare above
            // the write's ballot between its prepare and its accept, and the write would fail
            // (`-UNCERTAIN`). Its home's own pass collects it, behind the write.
            let mut tombstones = Vec::with_capacity(listed.len());
            for key in listed {
                if scan.home(&key) == Some(scan.id) || scan.storage.accepted_anything(&key)? {
                    tombstones.push(key);
                }
            }
            Ok::<_, crate::error::Error>((tombstones, next))
        })
        .await;
        let Ok(Ok((tombstones, next))) = found else { continue };
        cursor = next;
        for key in tombstones {
            // A collection is a round on the key like a command: a stopping node starts none
            // (its peers run its keys once it has left), and finishes the one it runs before
            // it says it has left.
            let Ok(_running) = node.peer_commands.admit(format!("n{}", node.id)) else { return };
            match node.propose(key.clone(), Command::Collect).await {
                // Removing raises every acceptor's node-wide floor to the ballot, so it is done
                // only at a ballot every proposer follows now. Above the followed limit never
                // (acceptors refuse too: see `Storage::handle`); within a second of the clock's
                // ceiling (this node followed a duelled key up to there) not yet: the other
                // nodes would not pass that floor, and every fresh key of theirs would be
                // refused for the rest of the second. It stays a tombstone, for a later pass.
                Ok(Outcome::Collected(Some(ballot))) if ballot.counter <= Ballot::followable(node.ballot_ceiling()) => {
                    remove_everywhere(&node, &config, key, ballot);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("collecting a tombstone: {e}"),
            }
        }
    }
}

fn remove_everywhere(node: &Arc<Node>, config: &Config, key: Bytes, ballot: Ballot) {
    for m in &config.members {
        let message = AcceptorMessage::Remove { ballot, config_version: config.version };
        let _ = node.outbox(m.id).send(vec![(key.clone(), 0, message)]);
    }
}
