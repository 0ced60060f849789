//! raft mode behind the [`Store`] trait.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use openraft::{LogId, ServerState};

use crate::error::{Error, Result};
use crate::node::read_lock;
use crate::store::{MembershipChange, ModeInfo, Mutation, MutationReply, Pattern, ScanPage, Snapshot, Store};

use super::machine;
use super::node::{RaftMode, encode};
use super::service::{ForwardReply, Forwarded, WireChange};
use super::types::NodeId;

/// How long `/readyz` waits for a read-index round before calling the node not ready.
const READY_WITHIN: Duration = Duration::from_secs(2);

#[async_trait]
impl Store for RaftMode {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.read_barrier().await?;
        Ok(machine::read(&self.inner.machine.state, &[Bytes::copy_from_slice(key)]).pop().flatten())
    }

    async fn mget(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>> {
        self.inner.read_barrier().await?;
        Ok(machine::read(&self.inner.machine.state, keys))
    }

    async fn dbsize(&self) -> Result<u64> {
        self.inner.read_barrier().await?;
        Ok(read_lock(&self.inner.machine.state).keyspace.len() as u64)
    }

    async fn mutate(&self, mutation: Mutation) -> Result<MutationReply> {
        self.inner.write(mutation).await
    }

    /// The state machine at one applied index, at or past a read index: every write
    /// acknowledged before the call is in it, and it is one prefix of the log.
    async fn snapshot(&self) -> Result<Option<Snapshot>> {
        self.inner.read_barrier().await?;
        let state = read_lock(&self.inner.machine.state);
        let index = state.last_applied.map_or(0, |l| l.index);
        Ok(Some(Snapshot { keyspace: state.keyspace.clone(), taken_at: format!("raft applied index {index}") }))
    }

    /// Each page is read after a read-index barrier, from the state machine at one applied
    /// index; the cursor is a hash position, so any node continues a scan another began.
    async fn scan(&self, cursor: u64, count: usize, pattern: Option<&Pattern>) -> Result<ScanPage> {
        self.inner.read_barrier().await?;
        Ok(read_lock(&self.inner.machine.state).keyspace.scan(cursor, count).matching(pattern))
    }

    fn local_dbsize(&self) -> Option<u64> {
        Some(read_lock(&self.inner.machine.state).keyspace.len() as u64)
    }

    async fn shutdown(&self, hand_over: Duration) -> Vec<String> {
        // openraft first (a leader hands its leadership over, then it stops replicating and
        // flushes), then the peer server and watchers.
        let note = self.inner.step_down(hand_over).await;
        if !self.inner.tasks.shutdown(Duration::from_secs(2)).await {
            tracing::warn!("raft: background tasks still running after 2 s");
        }
        vec![note]
    }

    /// Ready when a leader is known, this node has applied every entry it knows committed,
    /// and a read-index round confirms the leader still has its quorum.
    async fn readiness(&self) -> std::result::Result<(), String> {
        let inner = &self.inner;
        let m = inner.metrics();
        let Some(leader) = m.current_leader else {
            return Err(format!("no leader is known (term {}, role {:?})", m.current_term, m.state));
        };
        // A follower applies what it learns committed a moment later, so under writes it is
        // nearly always an entry or two behind: ready when it reaches the commit index known
        // now within the bound, not only when it has reached it already (that answered 503
        // several times a second on followers under an ordinary write load).
        let committed = inner.log.committed_index().unwrap_or(0);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let applied = inner.metrics().last_applied.map_or(0, |l| l.index);
            if applied >= committed {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "applied index {applied} is behind the commit index {committed} (still after {READY_WITHIN:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match tokio::time::timeout(READY_WITHIN, inner.read_barrier()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("leader n{leader} cannot confirm a read: {e}")),
            Err(_) => {
                Err(format!("leader n{leader} did not confirm its leadership with a quorum within {READY_WITHIN:?}"))
            }
        }
    }

    fn describe(&self) -> ModeInfo {
        let inner = &self.inner;
        let m = inner.metrics();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| format!("{id}={}{}", n.addr, if voters.contains(id) { "" } else { "(learner)" }))
            .collect::<Vec<_>>()
            .join(",");
        let idx = |l: Option<LogId<NodeId>>| l.map_or(0, |l| l.index).to_string();
        let details = vec![
            ("raft_node_id".into(), inner.id.to_string()),
            (
                "raft_data".into(),
                match inner.lost.get() {
                    None => format!("incarnation {:x}", inner.incarnation),
                    Some(known) => {
                        format!("lost: {}", super::service::lost_data_message(inner.id, inner.incarnation, *known))
                    }
                },
            ),
            ("raft_role".into(), role.into()),
            ("raft_term".into(), m.current_term.to_string()),
            ("raft_leader".into(), m.current_leader.map_or("none".into(), |l| l.to_string())),
            ("raft_last_log_index".into(), m.last_log_index.unwrap_or(0).to_string()),
            ("raft_commit_index".into(), inner.log.committed_index().unwrap_or(0).to_string()),
            ("raft_last_applied".into(), idx(m.last_applied)),
            ("raft_snapshot_index".into(), idx(m.snapshot)),
            ("raft_log_entries_kept".into(), inner.log.len().to_string()),
            ("raft_log_bytes_kept".into(), inner.log.bytes(..).to_string()),
            ("raft_snapshot_bytes".into(), inner.machine.snapshot_bytes().to_string()),
            ("raft_members".into(), members),
            ("raft_stale_reads".into(), if inner.options.stale_reads { "on" } else { "off" }.into()),
            ("raft_writes_retried".into(), inner.forwards_retried.load(Ordering::Relaxed).to_string()),
            ("raft_forwarded_writes".into(), inner.forwarded_writes.load(Ordering::Relaxed).to_string()),
            ("raft_forward_calls".into(), inner.forward_calls.load(Ordering::Relaxed).to_string()),
            ("raft_leader_changes".into(), inner.leader_changes.load(Ordering::Relaxed).to_string()),
            ("raft_snapshots_installed".into(), inner.machine.snapshots_installed().to_string()),
            ("raft_snapshots_built".into(), inner.machine.snapshots_built().to_string()),
            ("raft_proposals".into(), inner.proposed.load(Ordering::Relaxed).to_string()),
            ("raft_proposal_batches".into(), inner.proposal_batches.load(Ordering::Relaxed).to_string()),
            ("raft_read_index_rounds".into(), inner.read_index_rounds.load(Ordering::Relaxed).to_string()),
            ("raft_replies_remembered".into(), read_lock(&inner.machine.state).remembered_replies().to_string()),
        ];
        ModeInfo { mode: "raft", details }
    }

    fn membership(&self) -> Option<&dyn crate::store::Membership> {
        Some(self)
    }
}

#[async_trait]
impl crate::store::Membership for RaftMode {
    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        let inner = &self.inner;
        let change = match change {
            MembershipChange::Show => return Ok(inner.show()),
            MembershipChange::Add { id, peer_addr } => WireChange::Add { id: u64::from(id), peer_addr },
            MembershipChange::Remove { id } => WireChange::Remove { id: u64::from(id) },
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::from("no leader is known");
        while Instant::now() < deadline {
            let Some(leader) = inner.leader() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let reply = if leader == inner.id {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, inner.change_here(change.clone())).await {
                    Ok(Ok(lines)) => return Ok(lines),
                    Ok(Err(reply)) => reply,
                    Err(_) => {
                        ForwardReply::Failed { message: "the new node did not catch up in time".into(), maybe: true }
                    }
                }
            } else {
                let payload = encode(inner.id, &Forwarded::Membership(change.clone()))
                    .map_err(|s| Error::Io(s.message().to_string()))?;
                match inner
                    .call_peer::<ForwardReply>(
                        leader,
                        super::network::LeaderCall::Forward,
                        payload,
                        Duration::from_secs(60),
                    )
                    .await
                {
                    Ok(reply) => reply,
                    Err(e) => ForwardReply::Failed { message: e.to_string(), maybe: true },
                }
            };
            match reply {
                ForwardReply::Membership(lines) => return Ok(lines),
                ForwardReply::Failed { message, .. } => last = message,
                ForwardReply::NotLeader(_) | ForwardReply::Write(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Uncertain(format!("membership change not confirmed: {last}")))
    }
}
