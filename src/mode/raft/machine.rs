//! The replicated state machine: the keyspace, the last applied log id, the membership, and
//! the client sessions that make a retried command apply once — deduplication is the
//! application's job in Raft (the Raft dissertation, §6.3; openraft's guide).
//!
//! **Sessions.** Every node is a client of the log, with one session per start (its id and a
//! random 64-bit number drawn at start, so a node whose data directory was wiped never
//! reuses a session). Each request carries its sequence number in the session and the lowest
//! sequence its node still has in flight (`done_below`): everything below is answered and
//! will never be retried. The machine keeps, per session, the replies of the requests at or
//! above `done_below`; a request seen before is answered with its first reply, and one below
//! `done_below` — a straggler of a request whose client was already answered — is refused
//! without being applied. Memory follows the requests in flight, not a window of the last N
//! ids (a retry arriving after N other writes was applied twice) — and is capped: a request in
//! flight for minutes (a large value sent in chunks) holds `done_below` down meanwhile, so a
//! session keeps at most [`REPLY_BUDGET`] bytes of replies, dropping the oldest first. A retry
//! whose reply was dropped is not applied again but answered "reply forgotten", and its client
//! gets `-UNCERTAIN`; a node retries for 5 s, so that takes 64 MiB of replies in 5 s.
//!
//! **Expiry.** A session silent for [`SESSION_EXPIRY`] log entries (its node died, restarted
//! under a new session, or idled) is dropped with what it held — replies and chunks of a value
//! that will never be assembled — and its id is remembered as expired: a request of an
//! expired session is never applied, and its node (if alive) opens a new session and sends it
//! again. A node retries a request only within its 5 s deadline, so no live retry is refused
//! this way unless 100,000 entries are committed in those 5 s. An expired id is forgotten
//! [`EXPIRED_KEPT`] entries later (no retry of it can still be alive), so the set holds the
//! sessions of recent starts only, not one per start of any node ever.
//!
//! The machine lives in memory. Snapshots are written to `DATA/raft-snapshot.bin` (temporary
//! file, fsync, rename, directory fsync) when built or installed — from a copy-on-write clone,
//! as a stream, off the runtime's threads ([`super::snapshot`]) — and loaded at start-up; the
//! log after the snapshot is replayed by openraft up to the committed index it saved, and the
//! rest once the leader commits it again; reads wait for a read index that covers every write
//! acknowledged before the restart (see [`super::log`]), so they observe exactly the
//! acknowledged state.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::snapshot;
use super::{Command, NodeId, Request, Response, SessionId, TypeConfig};
use crate::node::{FileSystem, lock, read_lock, write_lock};
use crate::store::Keyspace;

/// Log entries after which a silent session expires.
pub const SESSION_EXPIRY: u64 = 100_000;
/// Entries between two sweeps for expired sessions.
const SWEEP_EVERY: u64 = 1024;
/// Log entries an expired session is remembered for (and refused) before it is forgotten.
pub const EXPIRED_KEPT: u64 = SESSION_EXPIRY;
/// The bytes of replies one session keeps at most (about: 64 bytes a reply, plus the value
/// or error text it carries).
pub const REPLY_BUDGET: usize = 64 << 20;

/// One client session: the replies of its requests that may still be retried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The log index of its last request.
    last_index: u64,
    /// Every request below this sequence was answered and is never retried.
    done_below: u64,
    /// Replies by sequence, for the requests at or above `done_below` applied so far.
    replies: BTreeMap<u64, Response>,
    /// Chunks of large values, by the sequence of the request they belong to, then part.
    staged: BTreeMap<u64, BTreeMap<u32, Bytes>>,
    /// The replies below this sequence were dropped to keep `replies` within
    /// [`REPLY_BUDGET`].
    forgotten_below: u64,
    /// The weight of `replies` ([`reply_weight`]).
    reply_bytes: usize,
}

/// About how many bytes a kept reply costs. Every variant is named, so a new reply that
/// carries a value cannot be counted as nothing by default.
fn reply_weight(reply: &Response) -> usize {
    use crate::store::MutationReply;
    64 + match &reply.result {
        // SET GET, GETSET, GETDEL and DELEX carry the value they replaced or removed (MSET's
        // reply is a `Set` with none).
        Ok(MutationReply::Set(carried) | MutationReply::Removed(carried)) => {
            carried.previous.as_ref().map_or(0, Bytes::len)
        }
        Ok(MutationReply::Count(_) | MutationReply::Integer(_) | MutationReply::Done) => 0,
        Err(message) => message.len(),
    }
}

impl Session {
    /// Drops the replies below `done_below`: their requests are answered.
    fn answered_below(&mut self, done_below: u64) {
        let kept = self.replies.split_off(&done_below);
        let dropped = std::mem::replace(&mut self.replies, kept);
        self.reply_bytes -= dropped.values().map(reply_weight).sum::<usize>();
    }

    /// Keeps `reply` for retries; then, while the replies weigh more than [`REPLY_BUDGET`],
    /// drops the oldest (the newest is always kept). A request in flight for minutes — a large
    /// value sent in chunks — holds `done_below` down for as long, and without a bound every
    /// reply given meanwhile would be kept until it ends.
    fn remember(&mut self, seq: u64, reply: Response) {
        self.reply_bytes += reply_weight(&reply);
        if let Some(old) = self.replies.insert(seq, reply) {
            self.reply_bytes -= reply_weight(&old);
        }
        while self.reply_bytes > REPLY_BUDGET && self.replies.len() > 1 {
            let Some((seq, dropped)) = self.replies.pop_first() else { break };
            self.reply_bytes -= reply_weight(&dropped);
            self.forgotten_below = self.forgotten_below.max(seq + 1);
        }
    }
}

/// What the machine holds; shared with the readers of the RESP front. Cloning it is cheap for
/// the keyspace (a persistent map shares its nodes), so a snapshot is written from a clone.
#[derive(Default, Clone)]
pub struct MachineState {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, super::types::RaftMember>,
    pub keyspace: Keyspace,
    pub(super) sessions: HashMap<SessionId, Session>,
    /// Sessions dropped for silence, with the index they expired at: their requests are
    /// refused, never applied — for [`EXPIRED_KEPT`] entries, after which no retry of theirs
    /// can be alive (a node retries for seconds), and they are forgotten: every node start
    /// opens a session, and the set would otherwise grow with each, in every snapshot.
    pub(super) expired: BTreeMap<SessionId, u64>,
    pub(super) last_sweep: u64,
}

impl MachineState {
    fn apply(&mut self, request: &Request, index: u64) -> Response {
        if self.expired.contains_key(&request.session) {
            return Response {
                result: Err("the session expired".into()),
                session_expired: true,
                reply_forgotten: false,
            };
        }
        if index >= self.last_sweep + SWEEP_EVERY {
            self.last_sweep = index;
            let silent: Vec<SessionId> = self
                .sessions
                .iter()
                .filter(|(_, s)| index.saturating_sub(s.last_index) > SESSION_EXPIRY)
                .map(|(id, _)| *id)
                .filter(|id| *id != request.session)
                .collect();
            for id in silent {
                self.sessions.remove(&id);
                self.expired.insert(id, index);
            }
            self.expired.retain(|_, at| index.saturating_sub(*at) <= EXPIRED_KEPT);
        }
        let session = self.sessions.entry(request.session).or_default();
        session.last_index = index;
        if request.done_below > session.done_below {
            session.done_below = request.done_below;
            session.answered_below(request.done_below);
            session.staged = session.staged.split_off(&request.done_below);
        }
        if request.seq < session.done_below {
            // A straggler of a request whose client has its answer (an UNCERTAIN one
            // included): applying it now would change the past.
            return Response::of(Err("duplicate of a request that was already answered".into()));
        }
        if let Some(reply) = session.replies.get(&request.seq) {
            antithesis_sdk::assert_sometimes!(true, "raft: a retried command was deduplicated");
            return reply.clone();
        }
        if request.seq < session.forgotten_below {
            // Applied long ago with its reply dropped for room, or never: either way its
            // outcome is unknown here, and applying it now could apply it twice.
            return Response {
                result: Err("the reply of this request was dropped: it may have been applied".into()),
                session_expired: false,
                reply_forgotten: true,
            };
        }
        let result = match &request.command {
            Command::Mutate(mutation) => self.keyspace.apply(mutation),
            Command::Chunk { of, part, data } => {
                session.staged.entry(*of).or_default().insert(*part, data.clone());
                Ok(crate::store::MutationReply::Done)
            }
            Command::Assemble { of, parts, mutation } => match session.staged.remove(of) {
                Some(chunks) if chunks.len() == *parts as usize && chunks.keys().copied().eq(0..*parts) => {
                    let mut value = bytes::BytesMut::with_capacity(chunks.values().map(Bytes::len).sum());
                    for chunk in chunks.values() {
                        value.extend_from_slice(chunk);
                    }
                    self.keyspace.apply(&super::types::fill_value(mutation, value.freeze()))
                }
                _ => Err(crate::error::Error::Input("a part of the value never reached the log".into())),
            },
        }
        .map_err(|e| match e {
            crate::error::Error::Input(message) => message,
            other => other.to_string(),
        });
        let reply = Response::of(result);
        session.remember(request.seq, reply.clone());
        reply
    }

    /// Replies remembered for deduplication, over all sessions (INFO).
    pub fn remembered_replies(&self) -> usize {
        self.sessions.values().map(|s| s.replies.len()).sum()
    }
}

fn io(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write(&std::io::Error::other(e.to_string())).into()
}

/// The state machine handle openraft drives.
#[derive(Clone)]
pub struct Machine {
    pub state: Arc<RwLock<MachineState>>,
    path: PathBuf,
    /// The node's file layer: the snapshot file goes through it.
    fs: FileSystem,
    snapshots_installed: Arc<std::sync::atomic::AtomicU64>,
    snapshots_built: Arc<std::sync::atomic::AtomicU64>,
    /// The size of the snapshot on disk, in bytes.
    snapshot_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Serializes snapshot writes: openraft builds snapshots in their own task, which can
    /// race an install.
    writing: Arc<std::sync::Mutex<()>>,
    /// The last log index covered by the snapshot on disk. The log store waits for it before
    /// purging, so a crash between a purge and the snapshot's rename never leaves a gap.
    durable: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Machine {
    /// Opens the machine, loading the last snapshot in `dir` if there is one.
    pub fn open(fs: &FileSystem, dir: &std::path::Path) -> Result<Self, String> {
        let path = dir.join(snapshot::FILE);
        let machine = Self {
            fs: fs.clone(),
            state: Arc::new(RwLock::new(MachineState::default())),
            path,
            snapshots_installed: Arc::default(),
            snapshots_built: Arc::default(),
            snapshot_bytes: Arc::default(),
            writing: Arc::default(),
            durable: Arc::new(tokio::sync::watch::channel(0).0),
        };
        // A snapshot being written or received when the node stopped is of no use.
        for what in ["tmp", "incoming"] {
            let partial = snapshot::sibling(&machine.path, what);
            if fs.exists(&partial) {
                fs.remove_file(&partial).map_err(|e| format!("cannot remove {}: {e}", partial.display()))?;
            }
        }
        if let Some(loaded) = snapshot::read(fs, &machine.path).map_err(|e| e.to_string())? {
            machine.durable.send_replace(loaded.meta.last_log_id.map_or(0, |l| l.index));
            *write_lock(&machine.state) = loaded.state;
            machine.note_size();
        }
        Ok(machine)
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Snapshots this node built of its state machine.
    pub fn snapshots_built(&self) -> u64 {
        self.snapshots_built.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The size of the snapshot on disk, in bytes (0 without one).
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note_size(&self) {
        let size = self.fs.identity(&self.path).map_or(0, |i| i.size);
        self.snapshot_bytes.store(size, std::sync::atomic::Ordering::Relaxed);
    }

    /// Watches the index the durable snapshot covers.
    pub fn durable_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// The snapshot on disk, opened for reading: its meta and its bytes from the same file. A
    /// build or an install may rename a newer snapshot into place at any moment (without this
    /// node's lock, which a build holds for as long as it writes), so the file's identity is
    /// taken before the meta is read and again after the file is opened, and the two must
    /// agree: a follower sent one snapshot's meta with another's bytes would refuse it.
    fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let identity = |fs: &FileSystem| match fs.identity(&self.path) {
            Ok(identity) => Ok(Some(identity)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        };
        for _ in 0..100 {
            let before = identity(&self.fs)?;
            let Some(meta) = snapshot::read_meta(&self.fs, &self.path).map_err(io)? else { return Ok(None) };
            let file = snapshot::SnapshotFile::open(&self.fs, &self.path).map_err(io)?;
            if before.is_some() && identity(&self.fs)? == before {
                return Ok(Some(Snapshot { meta, snapshot: Box::new(file) }));
            }
        }
        Err(io("the snapshot kept being replaced while it was opened"))
    }

    /// Writes a snapshot of `frozen` unless the one on disk is already as new; returns the
    /// snapshot on disk. Runs on a blocking thread: the file is as large as the data.
    fn write_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, super::types::RaftMember>,
        frozen: &MachineState,
    ) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let _one_at_a_time = lock(&self.writing);
        let index = meta.last_log_id.map_or(0, |l| l.index);
        if !(self.fs.exists(&self.path) && *self.durable.borrow() >= index) {
            let started = std::time::Instant::now();
            let bytes = snapshot::write(&self.fs, &self.path, meta, frozen).map_err(io)?;
            self.durable.send_modify(|d| *d = (*d).max(index));
            self.note_size();
            tracing::info!(index, bytes, keys = frozen.keyspace.len(), took = ?started.elapsed(), "snapshot written");
        }
        self.current()?.ok_or_else(|| io("the snapshot just written is gone"))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Machine {
    /// Clones the machine under its lock — O(1) for the keyspace, a persistent map — and
    /// writes the clone to disk on a blocking thread while the machine goes on applying
    /// entries and the runtime's threads go on with heartbeats.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.snapshots_built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (meta, frozen) = {
            let state = read_lock(&self.state);
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id: format!("{}-{}", state.last_applied.map_or(0, |l| l.index), crate::node::now_ms()),
            };
            (meta, state.clone())
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_snapshot(&meta, &frozen)).await.map_err(io)?
    }
}

impl RaftStateMachine<TypeConfig> for Machine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, super::types::RaftMember>), StorageError<NodeId>> {
        let state = read_lock(&self.state);
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = write_lock(&self.state);
        let mut replies = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(requests) => {
                    requests.iter().map(|request| state.apply(request, entry.log_id.index)).collect()
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Vec::new()
                }
            };
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    /// A snapshot from the leader is written to a file beside the snapshot, chunk by chunk.
    async fn begin_receiving_snapshot(&mut self) -> Result<Box<snapshot::SnapshotFile>, StorageError<NodeId>> {
        let incoming = snapshot::sibling(&self.path, "incoming");
        Ok(Box::new(snapshot::SnapshotFile::create(&self.fs, &incoming).map_err(io)?))
    }

    /// Puts in place what the receiver checked and loaded before handing the file to openraft
    /// ([`snapshot::SnapshotFile::check`]; a file that was not checked is checked here): renames
    /// it into place (on a blocking thread), and only then swaps the machine's state (the old
    /// one is dropped outside the lock). Nothing here depends on what arrived: openraft has
    /// already taken the snapshot as installed, and a failure now stops it; only a failing
    /// disk can fail it, and a failing disk stops the node (see [`crate::node::FileSystem`]).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, super::types::RaftMember>,
        mut snapshot: Box<snapshot::SnapshotFile>,
    ) -> Result<(), StorageError<NodeId>> {
        let this = self.clone();
        let meta = meta.clone();
        let last = meta.last_log_id;
        tokio::task::spawn_blocking(move || {
            let checked = match snapshot.take_checked() {
                Some(checked) => checked,
                None => {
                    snapshot.check(&meta).map_err(io)?;
                    snapshot.take_checked().ok_or_else(|| io("the snapshot checked is gone"))?
                }
            };
            let incoming = snapshot.path().to_path_buf();
            drop(snapshot);
            let snapshot::Checked { state: loaded, earlier } = checked;
            let index = meta.last_log_id.map_or(0, |l| l.index);
            {
                let _one_at_a_time = lock(&this.writing);
                if this.fs.exists(&this.path) && *this.durable.borrow() >= index {
                    this.fs.remove_file(&incoming).map_err(io)?;
                } else if earlier {
                    snapshot::write(&this.fs, &this.path, &meta, &loaded).map_err(io)?;
                    this.fs.remove_file(&incoming).map_err(io)?;
                    this.durable.send_modify(|d| *d = (*d).max(index));
                    this.note_size();
                } else {
                    this.fs.rename(&incoming, &this.path).map_err(io)?;
                    this.fs.sync_dir(this.path.parent().unwrap_or(std::path::Path::new("."))).map_err(io)?;
                    this.durable.send_modify(|d| *d = (*d).max(index));
                    this.note_size();
                }
            }
            let old = std::mem::replace(&mut *write_lock(&this.state), loaded);
            drop(old);
            Ok::<(), StorageError<NodeId>>(())
        })
        .await
        .map_err(io)??;
        self.snapshots_installed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        antithesis_sdk::assert_sometimes!(true, "raft: a snapshot was installed");
        tracing::info!(?last, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.current()).await.map_err(io)?
    }
}

/// Reads values from the machine.
pub fn read(state: &RwLock<MachineState>, keys: &[Bytes]) -> Vec<Option<Bytes>> {
    let state = read_lock(state);
    keys.iter().map(|k| state.keyspace.get(k).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mutation, MutationReply, UpdateOp};
    use bytes::Bytes;

    fn incr(session: SessionId, seq: u64, done_below: u64) -> Request {
        Request {
            session,
            seq,
            done_below,
            command: Command::Mutate(Mutation::Update { key: Bytes::from_static(b"n"), op: UpdateOp::IncrBy(1) }),
        }
    }

    #[test]
    fn a_large_value_is_applied_whole_by_its_final_entry_only() {
        let mut state = MachineState::default();
        let s = (1, 1);
        let value = Bytes::from((0..(5 * super::super::types::CHUNK / 2)).map(|i| i as u8).collect::<Vec<u8>>());
        let set = Mutation::Set { key: Bytes::from_static(b"big"), value: value.clone(), options: Default::default() };
        let (chunks, hollow) = super::super::types::split_value(&set).expect("split");
        assert_eq!(chunks.len(), 3);
        // Chunks arrive in any order, one of them twice; nothing is visible until the end.
        for (i, part) in [2u32, 0, 2, 1].into_iter().enumerate() {
            let data = chunks[part as usize].clone();
            let request = Request {
                session: s,
                seq: 1 + u64::from(part),
                done_below: 0,
                command: Command::Chunk { of: 0, part, data },
            };
            assert!(state.apply(&request, 1).result.is_ok(), "chunk {i}");
            assert_eq!(state.keyspace.get(b"big"), None);
        }
        let assemble = Request {
            session: s,
            seq: 4,
            done_below: 0,
            command: Command::Assemble { of: 0, parts: 3, mutation: hollow },
        };
        assert!(state.apply(&assemble, 2).result.is_ok());
        assert_eq!(state.keyspace.get(b"big"), Some(&value));
        assert!(state.sessions[&s].staged.is_empty());
        // An assemble whose chunks never arrived is refused, and writes nothing.
        let lonely = Request {
            session: s,
            seq: 9,
            done_below: 0,
            command: Command::Assemble { of: 8, parts: 2, mutation: set },
        };
        assert!(state.apply(&lonely, 3).result.is_err());
    }

    #[test]
    fn a_retry_is_applied_once_however_many_writes_came_between() {
        let mut state = MachineState::default();
        let (a, b) = ((1, 1), (2, 1));
        assert_eq!(state.apply(&incr(a, 0, 0), 1).result, Ok(MutationReply::Integer(1)));
        // 90,000 writes from another session: more than any small window of recent ids.
        for seq in 0..90_000 {
            state.apply(&incr(b, seq, seq), 2 + seq);
        }
        let retry = state.apply(&incr(a, 0, 0), 90_002);
        assert_eq!(retry.result, Ok(MutationReply::Integer(1)), "the first reply, not applied again");
        assert_eq!(state.keyspace.get(b"n").map(|v| v.as_ref()), Some(&b"90001"[..]));
        assert!(state.remembered_replies() <= 2, "only requests still in flight are remembered");
    }

    #[test]
    fn a_silent_session_expires_with_its_chunks_and_is_never_applied_again() {
        let mut state = MachineState::default();
        let (dead, live) = ((1, 7), (2, 8));
        let chunk = Command::Chunk { of: 9, part: 0, data: Bytes::from(vec![1; 1000]) };
        state.apply(&Request { session: dead, seq: 0, done_below: 0, command: chunk }, 1);
        state.apply(&incr(dead, 1, 0), 2);
        for seq in 0..(SESSION_EXPIRY + 2 * SWEEP_EVERY) {
            state.apply(&incr(live, seq, seq), 3 + seq);
        }
        assert!(!state.sessions.contains_key(&dead), "the silent session and its staged chunk are gone");
        let late = state.apply(&incr(dead, 1, 0), SESSION_EXPIRY + 3 * SWEEP_EVERY);
        assert!(late.session_expired && late.result.is_err(), "refused, not applied twice");
        let n: i64 = std::str::from_utf8(state.keyspace.get(b"n").unwrap()).unwrap().parse().unwrap();
        assert_eq!(n as u64, 1 + SESSION_EXPIRY + 2 * SWEEP_EVERY);
    }

    #[test]
    fn sessions_of_restarts_long_ago_are_forgotten() {
        let mut state = MachineState::default();
        let live = (2, 1);
        let mut index = 1;
        // Node 1 restarts 20 times, each time with a new session that writes once and goes
        // silent; node 2 keeps writing.
        for restart in 0..20 {
            state.apply(&incr((1, 100 + restart), 0, 0), index);
            let until = index + 2 * SESSION_EXPIRY;
            while index < until {
                index += SWEEP_EVERY;
                state.apply(&incr(live, index, index), index);
            }
        }
        assert!(state.expired.len() <= 2, "{} expired sessions are remembered", state.expired.len());
        // One more start, silent long enough to expire but not to be forgotten.
        state.apply(&incr((1, 200), 0, 0), index);
        let until = index + SESSION_EXPIRY + 2 * SWEEP_EVERY;
        while index < until {
            index += SWEEP_EVERY;
            state.apply(&incr(live, index, index), index);
        }
        let late = state.apply(&incr((1, 200), 1, 0), index);
        assert!(late.session_expired, "a session expired lately is still refused");
    }

    #[test]
    fn a_request_in_flight_long_does_not_pin_every_later_reply() {
        let mut state = MachineState::default();
        let s = (1, 7);
        // Sequence 0 stays in flight (a large value being sent in chunks): every later request
        // says done_below 0. Each SET ... GET answers with the 1 MiB value it replaced.
        let value = Bytes::from(vec![7; 1 << 20]);
        let set_get = |seq| Request {
            session: s,
            seq,
            done_below: 0,
            command: Command::Mutate(Mutation::Set {
                key: Bytes::from_static(b"k"),
                value: value.clone(),
                options: crate::store::SetOptions { get: true, ..Default::default() },
            }),
        };
        let writes = 2 * (REPLY_BUDGET >> 20) as u64;
        for seq in 1..=writes {
            state.apply(&set_get(seq), seq);
        }
        let kept = state.remembered_replies() as u64;
        assert!(kept < writes, "all {kept} replies are kept");
        // A retry whose reply was dropped is not applied again: its outcome is unknown.
        let old = state.apply(&set_get(1), writes + 1);
        assert!(old.reply_forgotten && old.result.is_err(), "{old:?}");
        // A recent one is answered as before.
        let recent = state.apply(&set_get(writes), writes + 1);
        assert!(recent.result.is_ok() && !recent.reply_forgotten);
        assert_eq!(state.remembered_replies() as u64, kept);
    }

    #[test]
    fn a_removed_value_counts_in_the_reply_budget_like_a_replaced_one() {
        let mut session = Session::default();
        let value = Bytes::from(vec![7; 1 << 20]);
        let getdel = Response {
            result: Ok(MutationReply::Removed(crate::store::SetReply { written: true, previous: Some(value.clone()) })),
            session_expired: false,
            reply_forgotten: false,
        };
        session.remember(1, getdel.clone());
        assert_eq!(session.reply_bytes, 64 + value.len(), "GETDEL's value is weighed");
        // A session of GETDELs in flight drops its oldest replies past the budget, as SET GET's.
        let writes = 2 * (REPLY_BUDGET >> 20) as u64;
        for seq in 2..=writes {
            session.remember(seq, getdel.clone());
        }
        assert!(session.reply_bytes <= REPLY_BUDGET, "{} bytes kept", session.reply_bytes);
        assert!(session.forgotten_below > 1 && (session.replies.len() as u64) < writes);
        // Replacing a kept reply takes its old weight off; dropping them all leaves nothing.
        session.remember(writes, getdel);
        assert!(session.reply_bytes <= REPLY_BUDGET);
        session.answered_below(writes + 1);
        assert_eq!(session.reply_bytes, 0);
    }

    #[test]
    fn a_straggler_below_done_below_is_never_applied() {
        let mut state = MachineState::default();
        let s = (1, 7);
        state.apply(&incr(s, 1, 0), 1);
        // The node answered seq 0 (say UNCERTAIN) and moved on: seq 0 must never apply now.
        state.apply(&incr(s, 2, 1), 1);
        assert!(state.apply(&incr(s, 0, 0), 1).result.is_err());
        assert_eq!(state.keyspace.get(b"n").map(|v| v.as_ref()), Some(&b"2"[..]));
    }

    fn at(index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index))
    }

    #[tokio::test]
    async fn sessions_survive_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = Machine::open(&FileSystem::real(), dir.path()).unwrap();
        {
            let mut state = machine.state.write().unwrap();
            state.apply(&incr((3, 1), 5, 5), 1);
            state.last_applied = at(1);
        }
        machine.build_snapshot().await.unwrap();
        let restored = Machine::open(&FileSystem::real(), dir.path()).unwrap();
        let mut state = restored.state.write().unwrap();
        assert_eq!(state.last_applied, at(1));
        assert_eq!(state.apply(&incr((3, 1), 5, 5), 2).result, Ok(MutationReply::Integer(1)), "deduplicated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_is_the_machine_at_one_index_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = Machine::open(&FileSystem::real(), dir.path()).unwrap();
        {
            let mut state = machine.state.write().unwrap();
            for i in 0..100_000u32 {
                state.keyspace.insert(Bytes::from(format!("k{i}")), Bytes::from(vec![1; 200]));
            }
            state.last_applied = at(1);
        }
        // Writes go on while the snapshot is written: each sets `n` to its own index.
        let writer = machine.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let writes = std::thread::spawn(move || {
            let mut index = 1;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                index += 1;
                let mut state = writer.state.write().unwrap();
                let set = Mutation::Set {
                    key: Bytes::from_static(b"n"),
                    value: Bytes::from(index.to_string()),
                    options: Default::default(),
                };
                state.keyspace.apply(&set).unwrap();
                state.keyspace.remove(format!("k{index}").as_bytes());
                state.last_applied = at(index);
            }
            index
        });
        let built = machine.build_snapshot().await.unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let last = writes.join().unwrap();
        let index = built.meta.last_log_id.unwrap().index;
        let loaded = snapshot::read(&FileSystem::real(), &dir.path().join(snapshot::FILE)).unwrap().unwrap();
        // The file holds the machine exactly as it was at its index, not a mix.
        assert_eq!(loaded.state.last_applied, at(index));
        let n = loaded.state.keyspace.get(b"n").map(|v| std::str::from_utf8(v).unwrap().parse::<u64>().unwrap());
        assert_eq!(n, (index > 1).then_some(index));
        assert_eq!(loaded.state.keyspace.len() as u64, 100_000 - (index - 1) + u64::from(index > 1));
        assert!(last >= index);
    }
}
