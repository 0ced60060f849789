//! Garbage collection of tombstones (§3.1).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ballot::{Ballot, NodeId};
use super::proposer::{Command, Outcome};
use super::storage::{AcceptorMessage, Config, KeyFilter, Storage};

use super::node::Node;

/// Collects tombstones: each pass takes the next batch of tombstones this node holds and is
/// home for (a cursor walks the whole table), and every tenth pass any tombstone it holds, so
/// one whose removal message was lost on the way to this acceptor is collected again (another
/// node's once its slot has kept the same ballots a while: see [`Unsettled`]).
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
    let unsettled = Arc::new(Mutex::new(Unsettled::default()));
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
        let unsettled = unsettled.clone();
        let found = tokio::task::spawn_blocking(move || {
            let listed = scan.storage.keys(KeyFilter::Tombstones, after.as_deref(), BATCH, |k| {
                everything || scan.home(k) == Some(scan.id)
            })?;
            let next = if listed.len() < BATCH { None } else { listed.last().cloned() };
            let tombstones = if everything {
                let mut unsettled = unsettled.lock().unwrap_or_else(|e| e.into_inner());
                let home = |k: &[u8]| scan.home(k);
                let range = (after.as_deref(), next.as_deref());
                unsettled.choose(&scan.storage, scan.id, home, listed, range, Instant::now())?
            } else {
                listed
            };
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

/// How long another node's tombstone must keep the same ballots before a full pass collects
/// it: well past a round's longest (a prepare's 0.5 s, an accept's 2 s).
const UNSETTLED_FOR: Duration = Duration::from_secs(5);

/// Another node's tombstones (slots without a value: deleted keys, and slots that hold only a
/// promise) when a full pass listed them, with their ballots and when those were first seen.
///
/// Such a slot may be its key's write in flight at its home (a first write, or a write after a
/// DEL): collecting it here would prepare above the write's ballot between its prepare and its
/// accept, and the write would fail (`-UNCERTAIN`; the three-node conformance suite saw it with
/// no fault injected). But it may also be left for good: a tombstone whose removal message
/// was lost, a GET of an absent key or a first SET that gave up, run by a stand-in while the
/// home was away — its home's own pass lists only the home's storage. A full pass collects it
/// once its ballots have stayed the same for [`UNSETTLED_FOR`] (no round has touched it since),
/// and again at each later full pass that still finds them so.
#[derive(Default)]
struct Unsettled(BTreeMap<Bytes, ((Ballot, Ballot), Instant)>);

impl Unsettled {
    /// The tombstones of `listed` (this pass's listing, of the key range `range`: after its
    /// start, up to its end) this pass collects: every one of a key this node is home for, and
    /// another node's once settled.
    fn choose(
        &mut self,
        storage: &Storage,
        me: NodeId,
        home: impl Fn(&[u8]) -> Option<NodeId>,
        listed: Vec<Bytes>,
        range: (Option<&[u8]>, Option<&[u8]>),
        now: Instant,
    ) -> crate::error::Result<Vec<Bytes>> {
        let mut chosen = Vec::with_capacity(listed.len());
        let mut seen = BTreeMap::new();
        for key in listed {
            let ballots = if home(&key) == Some(me) { None } else { storage.slot_ballots(&key)? };
            match ballots {
                None => chosen.push(key),
                Some(promised) => {
                    let since = match self.0.get(&key) {
                        Some(&(before, since)) if before == promised => since,
                        _ => now,
                    };
                    if now.duration_since(since) >= UNSETTLED_FOR {
                        chosen.push(key.clone());
                    }
                    seen.insert(key, (promised, since));
                }
            }
        }
        // Forget the keys of this range that were not seen again (collected or written); keep
        // those of other ranges, listed by later passes.
        let (start, end) = range;
        let start = start.map_or(Bound::Unbounded, Bound::Excluded);
        let end = end.map_or(Bound::Unbounded, Bound::Included);
        let stale: Vec<Bytes> = self.0.range::<[u8], _>((start, end)).map(|(k, _)| k.clone()).collect();
        for key in stale {
            self.0.remove(&key);
        }
        self.0.extend(seen);
        Ok(chosen)
    }
}

fn remove_everywhere(node: &Arc<Node>, config: &Config, key: Bytes, ballot: Ballot) {
    for m in &config.members {
        let message = AcceptorMessage::Remove { ballot, config_version: config.version };
        let _ = node.outbox(m.id).send(vec![(key.clone(), 0, message)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::paxos::acceptor::Request;
    use crate::node::FileSystem;

    const NO_CEILING: u64 = Ballot::MAX_COUNTER;

    fn b(counter: u64, node: NodeId) -> Ballot {
        Ballot { counter, node }
    }

    fn prepare(s: &Storage, key: &'static [u8], ballot: Ballot) {
        let message = AcceptorMessage::Paxos(Request::Prepare { ballot });
        s.handle(&[(Bytes::from_static(key), message)], 1, NO_CEILING).unwrap();
    }

    /// Another node's tombstone — a promise-only slot (a stand-in's GET of an absent key while
    /// its home was away) or a deleted key's — is left alone while it may be a write in
    /// flight, and collected by a full pass once its ballots have stayed the same a while.
    #[test]
    fn another_nodes_tombstone_is_collected_once_settled() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        prepare(&s, b"theirs", b(4, 2));
        prepare(&s, b"moving", b(4, 2));
        prepare(&s, b"mine", b(4, 2));
        let tomb = AcceptorMessage::Paxos(Request::Accept { ballot: b(5, 2), value: None, promise_next: false });
        s.handle(&[(Bytes::from_static(b"deleted"), tomb)], 1, NO_CEILING).unwrap();
        let home = |k: &[u8]| Some(if k == b"mine" { 1 } else { 2 });
        let mut unsettled = Unsettled::default();
        let mut pass = |at: Instant| {
            let listed = s.keys(KeyFilter::Tombstones, None, 100, |_| true).unwrap();
            let mut chosen = unsettled.choose(&s, 1, home, listed, (None, None), at).unwrap();
            chosen.sort();
            chosen
        };
        let t0 = Instant::now();
        let k = |k: &'static [u8]| Bytes::from_static(k);
        assert_eq!(pass(t0), vec![k(b"mine")]);
        assert_eq!(pass(t0 + Duration::from_secs(1)), vec![k(b"mine")]);
        // A round moves one of them on (a write after the DEL, one to a key never written):
        // their waits start again.
        prepare(&s, b"moving", b(6, 3));
        prepare(&s, b"deleted", b(7, 3));
        let settled = t0 + UNSETTLED_FOR;
        assert_eq!(pass(settled), vec![k(b"mine"), k(b"theirs")]);
        assert_eq!(pass(settled + UNSETTLED_FOR), vec![k(b"deleted"), k(b"mine"), k(b"moving"), k(b"theirs")]);
    }

    /// Only the keys of the listed range are forgotten when they are not seen again.
    #[test]
    fn a_pass_forgets_only_its_own_range() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        prepare(&s, b"a", b(4, 2));
        prepare(&s, b"m", b(4, 2));
        let home = |_: &[u8]| Some(2);
        let mut unsettled = Unsettled::default();
        let t0 = Instant::now();
        let all = s.keys(KeyFilter::Tombstones, None, 100, |_| true).unwrap();
        assert!(unsettled.choose(&s, 1, home, all, (None, None), t0).unwrap().is_empty());
        // A pass over ("f", end] lists nothing: "m" is forgotten, "a" is kept.
        assert!(unsettled.choose(&s, 1, home, vec![], (Some(b"f"), None), t0).unwrap().is_empty());
        assert_eq!(unsettled.0.keys().cloned().collect::<Vec<_>>(), vec![Bytes::from_static(b"a")]);
    }
}
