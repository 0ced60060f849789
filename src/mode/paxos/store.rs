//! paxos mode behind the [`Store`] trait: single-key commands at their home, multi-key ones
//! key by key.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::proposer::{Command, Outcome};
use super::storage::Member;
use crate::error::{Error, Result};
use crate::node::lock;
use crate::store::{MembershipChange, ModeInfo, Mutation, MutationReply, Pattern, ScanPage, Store};

use super::node::{PaxosMode, SCAN_PARALLELISM, SHUTDOWN_GRACE};

fn outcome_reply(outcome: Outcome) -> Result<MutationReply> {
    match outcome {
        Outcome::Write(reply) => Ok(reply),
        other => Err(Error::Io(format!("a write answered {other:?}"))),
    }
}

/// Combines per-key results of a multi-key write: any doubt makes the whole doubtful, and a
/// failure after some keys changed is doubtful too (the command was partly applied).
fn combine<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    let applied = results.iter().filter(|r| r.is_ok()).count();
    let mut values = Vec::new();
    let mut failure: Option<Error> = None;
    for r in results {
        match r {
            Ok(v) => values.push(v),
            Err(e @ Error::Uncertain(_)) => failure = Some(e),
            Err(e) => {
                if !matches!(failure, Some(Error::Uncertain(_))) {
                    failure = Some(e);
                }
            }
        }
    }
    match failure {
        None => Ok(values),
        Some(Error::Uncertain(m)) => Err(Error::Uncertain(m)),
        Some(e) if applied > 0 => Err(Error::Uncertain(format!("partly applied: {e}"))),
        Some(e) => Err(e),
    }
}

#[async_trait]
impl Store for PaxosMode {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        match self.node.run(Bytes::copy_from_slice(key), Command::Read).await? {
            Outcome::Read(v) => Ok(v),
            other => Err(Error::Io(format!("a read answered {other:?}"))),
        }
    }

    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        self.get_each(keys).await.into_iter().collect()
    }

    /// Each key read on its own (at its home): a pipeline's GETs are answered each with its
    /// own outcome, so one refused read (`-TRYAGAIN` under load) does not fail the others,
    /// and a client sends only that one again (`valthree backup` does).
    async fn get_each(&self, keys: &[Bytes]) -> Vec<Result<Option<Bytes>>> {
        futures_util::future::join_all(keys.iter().map(|k| self.get(k))).await
    }

    async fn dbsize(&self) -> Result<u64> {
        // Tombstones included, and each key read through a quorum (see FLUSHALL).
        let keys = self.node.keys_from_quorum(true).await?;
        let node = self.node.clone();
        let results: Vec<Result<Outcome>> = futures_util::stream::iter(keys)
            .map(|k| {
                let node = node.clone();
                async move { node.run(k, Command::Read).await }
            })
            .buffer_unordered(SCAN_PARALLELISM)
            .collect()
            .await;
        let mut n = 0;
        for r in results {
            if let Outcome::Read(Some(_)) = r? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn scan(&self, cursor: u64, count: usize, pattern: Option<&Pattern>) -> Result<ScanPage> {
        self.node.scan(cursor, count, pattern).await
    }

    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply> {
        match mutation {
            Mutation::Set { ref key, .. } | Mutation::Update { ref key, .. } | Mutation::Remove { ref key, .. } => {
                let key = key.clone();
                outcome_reply(self.node.run(key, Command::Write(mutation)).await?)
            }
            Mutation::MultiSet { if_none_exist, .. } => Err(Error::Input(format!(
                "{} is not supported in paxos mode: each key is its own CASPaxos register, so a write \
                 to several keys could not be atomic; SET each key, or use raft or s3 mode",
                if if_none_exist { "MSETNX" } else { "MSET" }
            ))),
            Mutation::Del { keys } => {
                let mut unique = keys.clone();
                unique.sort();
                unique.dedup();
                let dels = unique.into_iter().map(|k| {
                    let node = self.node.clone();
                    async move { node.run(k.clone(), Command::Write(Mutation::Del { keys: vec![k] })).await }
                });
                let results = combine(futures_util::future::join_all(dels).await)?;
                let mut n = 0;
                for r in results {
                    if let MutationReply::Count(c) = outcome_reply(r)? {
                        n += c;
                    }
                }
                Ok(MutationReply::Count(n))
            }
            Mutation::FlushAll => {
                // Every slot, tombstones included: a key whose value is chosen on {A,B} while an
                // in-doubt DEL's tombstone landed only on B lists from {B,C} only as B's
                // tombstone. Deleting through it (a write on a quorum) settles the key.
                let keys = self.node.keys_from_quorum(true).await?;
                let node = self.node.clone();
                let results: Vec<Result<Outcome>> = futures_util::stream::iter(keys)
                    .map(|k| {
                        let node = node.clone();
                        async move { node.run(k.clone(), Command::Write(Mutation::Del { keys: vec![k] })).await }
                    })
                    .buffer_unordered(SCAN_PARALLELISM)
                    .collect()
                    .await;
                combine(results)?;
                Ok(MutationReply::Done)
            }
        }
    }

    /// This node's acceptor slots: keys with a value here, plus tombstones not yet collected
    /// (an approximation; DBSIZE gives the exact, linearizable count).
    fn local_dbsize(&self) -> Option<u64> {
        self.node.storage.slot_count().ok()
    }

    /// Nothing to hand over: every acceptor's promise and value are on disk before it
    /// answers, and any proposer (on any node) can finish a round this node began. The peers
    /// are told this node is leaving (they send its keys to the next member from now on, once
    /// it has left), commands they forwarded here before are finished, and then they are told
    /// it has left ([`super::presence`]), so a stop costs no client anything.
    async fn shutdown(&self, hand_over: std::time::Duration) -> Vec<String> {
        use crate::peer::proto::PresenceChange;
        let started = std::time::Instant::now();
        self.node.announce(PresenceChange::Leaving).await;
        // While commands still run here, the peers are told again that this node is leaving,
        // so that their wait for it (`LEAVE_WAIT` from the last note) lasts as long as they do.
        let drain = self.node.peer_commands.drain(hand_over.saturating_sub(started.elapsed()));
        tokio::pin!(drain);
        let cut = loop {
            tokio::select! {
                cut = &mut drain => break cut,
                () = tokio::time::sleep(super::presence::LEAVING_AGAIN) => {
                    self.node.announce(PresenceChange::Leaving).await;
                }
            }
        };
        self.node.announce(PresenceChange::Left).await;
        let note = match cut {
            0 => "no forwarded command cut off".to_string(),
            n => format!("{n} commands forwarded here were cut off (their clients got -UNCERTAIN)"),
        };
        if !self.node.tasks.shutdown(SHUTDOWN_GRACE).await {
            tracing::warn!("paxos: background tasks still running after {SHUTDOWN_GRACE:?}");
        }
        vec![note]
    }

    fn describe(&self) -> ModeInfo {
        let node = &self.node;
        let config = node.config();
        let p = *lock(&node.stats.proposer);
        let list = |ms: &[Member]| ms.iter().map(|m| format!("{}={}", m.id, m.peer_addr)).collect::<Vec<_>>().join(",");
        let mut details = vec![
            ("paxos_node_id".into(), node.id.to_string()),
            ("paxos_peer_addr".into(), node.options.node.peer_addr.clone()),
            ("paxos_data".into(), node.data_state()),
            ("paxos_config_version".into(), config.version.to_string()),
            ("paxos_members".into(), list(&config.members)),
            ("paxos_joint".into(), if config.previous.is_some() { "1" } else { "0" }.into()),
            ("paxos_one_round_trip".into(), if node.options.one_round_trip { "on" } else { "off" }.into()),
            ("paxos_slots".into(), node.storage.slot_count().map(|n| n.to_string()).unwrap_or_else(|e| e.to_string())),
            (
                "paxos_gc_floor".into(),
                node.storage.floor().map(|b| format!("{}.{}", b.counter, b.node)).unwrap_or_default(),
            ),
            ("paxos_tombstones_collected".into(), node.stats.collected.load(Ordering::Relaxed).to_string()),
            ("paxos_rounds".into(), p.rounds.to_string()),
            ("paxos_commands".into(), p.commands.to_string()),
            ("paxos_one_round_trip_rounds".into(), p.one_round_trip.to_string()),
            ("paxos_retries".into(), p.retries.to_string()),
            ("paxos_out_of_reach_rounds".into(), p.out_of_reach.to_string()),
            ("paxos_forwarded".into(), node.stats.forwarded.load(Ordering::Relaxed).to_string()),
            ("paxos_served_for_peers".into(), node.stats.served_for_peers.load(Ordering::Relaxed).to_string()),
            ("paxos_local_fallbacks".into(), node.stats.local_fallbacks.load(Ordering::Relaxed).to_string()),
            ("paxos_forwards_hedged".into(), node.stats.hedged.load(Ordering::Relaxed).to_string()),
        ];
        if let Some(previous) = &config.previous {
            details.push(("paxos_previous_members".into(), list(previous)));
        }
        ModeInfo { mode: "paxos", details }
    }

    fn membership(&self) -> Option<&dyn crate::store::Membership> {
        Some(self)
    }
}

#[async_trait]
impl crate::store::Membership for PaxosMode {
    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        PaxosMode::change_membership(self, change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::paxos::node::fnv1a;
    use crate::mode::paxos::storage::{AcceptorMessage, Member};
    use crate::mode::paxos::{Ballot, PaxosOptions};
    use crate::node::Faults;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn homes_hash_with_fnv1a() {
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a test vector");
    }

    /// The sequence from a review: a value chosen on {A,B}; an in-doubt DEL whose tombstone
    /// landed on B alone; a FLUSHALL whose key listing comes from {B,C}. Listing only slots
    /// that hold values skipped the key, FLUSHALL answered OK, and a GET served by {A,C}
    /// returned the value. Every slot is listed now, tombstones too, and read through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flushall_removes_a_key_whose_listing_quorum_holds_only_a_tombstone() {
        use super::super::acceptor::Request as AcceptorRequest;
        use crate::store::SetOptions;
        let tmp = tempfile::tempdir().unwrap();
        let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let members: Vec<Member> =
            (1..=3).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", port()) }).collect();
        let mut nodes = Vec::new();
        for m in &members {
            let options = PaxosOptions {
                node: crate::node::NodeOptions::local(
                    m.id,
                    &m.peer_addr,
                    members.clone(),
                    tmp.path().join(format!("n{}", m.id)),
                ),
                one_round_trip: false,
                unsafe_accept_quorum: None,
                gc_interval: Duration::ZERO,
                ballot_ceiling: true,
            };
            nodes.push(PaxosMode::start(options, Arc::new(Faults::default())).await.unwrap());
        }
        // A new cluster's acceptors vote once every member is up and recorded (`identity`).
        super::super::local::until_recorded(&nodes).await;
        let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
        let key = Bytes::from_static(b"k");
        // The value is chosen on {A,B}: C is cut off from both while it is written through A.
        c.node.faults.refuse(["n1".to_string(), "n2".to_string()]);
        a.node.faults.refuse(["n3".to_string()]);
        b.node.faults.refuse(["n3".to_string()]);
        let written = a.node.propose(
            key.clone(),
            Command::Write(Mutation::Set {
                key: key.clone(),
                value: Bytes::from_static(b"v"),
                options: SetOptions::default(),
            }),
        );
        assert!(written.await.is_ok());
        // An in-doubt DEL: its accept (a tombstone at a higher ballot) reached B alone.
        let ballot = Ballot { counter: 1 << 40, node: 2 };
        let tombstone = AcceptorMessage::Paxos(AcceptorRequest::Accept { ballot, value: None, promise_next: false });
        let version = b.node.config_version.load(Ordering::SeqCst);
        b.node.storage.handle(&[(key.clone(), tombstone)], version, Ballot::MAX_COUNTER).unwrap();
        // FLUSHALL through C, which reaches B but not A: its listing quorum is {B,C}.
        for n in [a, b, c] {
            n.node.faults.heal();
        }
        c.node.faults.refuse(["n1".to_string()]);
        a.node.faults.refuse(["n3".to_string()]);
        c.flushall().await.unwrap();
        // A GET served by {A,C} must not bring the value back.
        for n in [a, b, c] {
            n.node.faults.heal();
        }
        a.node.faults.refuse(["n2".to_string()]);
        c.node.faults.refuse(["n2".to_string()]);
        assert_eq!(c.node.propose(key.clone(), Command::Read).await.unwrap(), Outcome::Read(None));
        assert_eq!(c.dbsize().await.unwrap(), 0);
    }

    #[test]
    fn multi_key_results_combine_conservatively() {
        let ok = |n: u64| Ok::<u64, Error>(n);
        assert_eq!(combine(vec![ok(1), ok(0)]).unwrap(), vec![1, 0]);
        assert!(matches!(combine(vec![ok(1), Err(Error::TryAgain("x".into()))]), Err(Error::Uncertain(_))));
        assert!(matches!(combine::<u64>(vec![Err(Error::TryAgain("x".into()))]), Err(Error::TryAgain(_))));
        assert!(matches!(
            combine::<u64>(vec![Err(Error::Uncertain("u".into())), Err(Error::TryAgain("x".into()))]),
            Err(Error::Uncertain(_))
        ));
    }
}
