//! The replicated state machine: the keyspace, the last applied log id, the membership, and
//! a table of recent request ids with their replies, so a command retried after an unclear
//! outcome (leader lost, forward timed out) is applied once and answered with its first
//! result — deduplication is the application's job in Raft, as 6.824 teaches.
//!
//! The machine lives in memory. Snapshots are written to `DATA/raft-snapshot.json` (temporary
//! file, fsync, rename, directory fsync) when built or installed, and loaded at start-up; the
//! log after the snapshot is replayed by openraft, and the committed index is durable, so
//! a restart rebuilds exactly the acknowledged state.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{NodeId, Request, RequestId, Response, TypeConfig};
use crate::store::Keyspace;

/// How many request ids are remembered for deduplication.
pub const DEDUP_WINDOW: usize = 100_000;

/// What the machine holds; shared with the readers of the RESP front.
#[derive(Default)]
pub struct MachineState {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, openraft::BasicNode>,
    pub keyspace: Keyspace,
    replies: HashMap<RequestId, Response>,
    order: VecDeque<RequestId>,
}

impl MachineState {
    fn apply(&mut self, request: &Request) -> Response {
        if let Some(reply) = self.replies.get(&request.id) {
            antithesis_sdk::assert_sometimes!(true, "raft: a retried command was deduplicated");
            return reply.clone();
        }
        let result = self.keyspace.apply(&request.mutation).map_err(|e| match e {
            crate::error::Error::Input(message) => message,
            other => other.to_string(),
        });
        let reply = Response { result };
        self.replies.insert(request.id, reply.clone());
        self.order.push_back(request.id);
        while self.order.len() > DEDUP_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.replies.remove(&old);
            }
        }
        reply
    }
}

/// A snapshot as stored and sent: the s3 document encoding of the keyspace plus the rest.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    document: String,
    replies: Vec<(RequestId, Response)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

fn io(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write(&std::io::Error::other(e.to_string())).into()
}

/// The state machine handle openraft drives.
#[derive(Clone)]
pub struct Machine {
    pub state: Arc<RwLock<MachineState>>,
    path: PathBuf,
    snapshots_installed: Arc<std::sync::atomic::AtomicU64>,
    /// Serializes snapshot writes: openraft builds snapshots in their own task, which can
    /// race an install.
    writing: Arc<std::sync::Mutex<()>>,
    /// The last log index covered by the snapshot on disk. The log store waits for it before
    /// purging, so a crash between a purge and the snapshot's rename never leaves a gap.
    durable: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Machine {
    /// Opens the machine, loading the last snapshot in `dir` if there is one.
    pub fn open(dir: &std::path::Path) -> Result<Self, String> {
        let path = dir.join("raft-snapshot.json");
        let machine = Self {
            state: Arc::new(RwLock::new(MachineState::default())),
            path,
            snapshots_installed: Arc::default(),
            writing: Arc::default(),
            durable: Arc::new(tokio::sync::watch::channel(0).0),
        };
        if let Some(stored) = machine.read_stored().map_err(|e| e.to_string())? {
            machine.load(&stored.data).map_err(|e| e.to_string())?;
            machine.durable.send_replace(stored.meta.last_log_id.map_or(0, |l| l.index));
        }
        Ok(machine)
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn read_stored(&self) -> Result<Option<StoredSnapshot>, StorageError<NodeId>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(io)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Watches the index the durable snapshot covers.
    pub fn durable_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Writes `stored` unless the snapshot on disk is already as new.
    fn write_stored(&self, stored: &StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let index = stored.meta.last_log_id.map_or(0, |l| l.index);
        if self.path.exists() && *self.durable.borrow() >= index {
            return Ok(());
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&serde_json::to_vec(stored).map_err(io)?).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.durable.send_modify(|d| *d = (*d).max(index));
        Ok(())
    }

    fn load(&self, data: &[u8]) -> Result<(), StorageError<NodeId>> {
        let body: SnapshotBody = serde_json::from_slice(data).map_err(io)?;
        let keyspace = crate::mode::s3::decode_document(body.document.as_bytes()).map_err(io)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.last_applied = body.last_applied;
        state.membership = body.membership;
        state.keyspace = keyspace;
        state.order = body.replies.iter().map(|(id, _)| *id).collect();
        state.replies = body.replies.into_iter().collect();
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Machine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, data) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let body = SnapshotBody {
                last_applied: state.last_applied,
                membership: state.membership.clone(),
                document: String::from_utf8_lossy(&crate::mode::s3::encode_document(&state.keyspace)).into_owned(),
                replies: state.order.iter().filter_map(|id| state.replies.get(id).map(|r| (*id, r.clone()))).collect(),
            };
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id: format!(
                    "{}-{}",
                    state.last_applied.map_or(0, |l| l.index),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0)
                ),
            };
            (meta, serde_json::to_vec(&body).map_err(io)?)
        };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_stored(&stored)).await.map_err(io)??;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for Machine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, openraft::BasicNode>), StorageError<NodeId>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut replies = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Response { result: Ok(crate::store::MutationReply::Done) },
                EntryPayload::Normal(request) => state.apply(&request),
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response { result: Ok(crate::store::MutationReply::Done) }
                }
            };
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        self.load(&data)?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_stored(&stored)).await.map_err(io)??;
        self.snapshots_installed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        antithesis_sdk::assert_sometimes!(true, "raft: a snapshot was installed");
        tracing::info!(last = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let this = self.clone();
        let stored = tokio::task::spawn_blocking(move || this.read_stored()).await.map_err(io)??;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}

/// Reads values from the machine.
pub fn read(state: &RwLock<MachineState>, keys: &[Bytes]) -> Vec<Option<Bytes>> {
    let state = state.read().unwrap_or_else(|e| e.into_inner());
    keys.iter().map(|k| state.keyspace.get(k).cloned()).collect()
}
