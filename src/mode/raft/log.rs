//! The Raft log, vote and committed index in redb. Every write transaction is committed with
//! redb's default `Durability::Immediate`, so `save_vote` and `append` have reached the disk
//! (fsync) before they return or report completion — a vote or an entry acknowledged to a
//! peer survives kill -9 and power loss.
//!
//! The committed index is saved without an fsync (`Durability::None`: it reaches the disk
//! with the next append). Raft's safety does not need it — an entry is committed because a
//! quorum holds it — but openraft 0.9 restores a node whose saved vote made it the leader as
//! the leader at once, in the same term and without a new entry, and its read index is then
//! the committed index it loaded, which may lag the writes acknowledged before a crash of
//! every node. So a leader still in the term it started in — as seen before its leadership
//! is confirmed, so a vote granted meanwhile does not lift it — never hands out a read index
//! below the last entry its log held at start-up ([`LogStore::recovered`], see `read_floor`):
//! every write it acknowledged before the crash is at or below it. (A leader of a later term
//! has committed an entry of its own, which covers them.) openraft saves the index on every commit, and an
//! fsync there was half of the leader's disk flushes.

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use crate::node::codec;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{NodeId, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The encoded size of each entry in `logs`, by index: what the log holds in bytes, read
/// without reading the entries (a log written before this table existed counts as 0).
const SIZES: TableDefinition<u64, u64> = TableDefinition::new("sizes");

/// redb's page cache for the log: entries are read back soon after they are written (to
/// replicate and apply them), and a cache as large as redb's default (1 GiB) held that much of
/// old 1 MiB chunks in memory besides the state machine.
const CACHE: usize = 64 << 20;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";
const INCARNATION: &str = "incarnation";

fn io_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write(&std::io::Error::other(e.to_string())).into()
}

fn read_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::read(&std::io::Error::other(e.to_string())).into()
}

/// The log store. Cloning shares the database (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The index the durable snapshot covers: entries are purged only up to it.
    snapshot: Option<tokio::sync::watch::Receiver<u64>>,
}

impl LogStore {
    /// Opens (or creates) the log at `path` through the file layer `fs`.
    pub fn open(fs: &crate::node::FileSystem, path: &std::path::Path) -> Result<Self, String> {
        let db = fs.open_database_cached(path, CACHE)?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(LOGS).map_err(|e| e.to_string())?;
        txn.open_table(META).map_err(|e| e.to_string())?;
        txn.open_table(SIZES).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(Self { db: Arc::new(db), snapshot: None })
    }

    /// Makes `purge` wait until the snapshot on disk covers what it removes.
    pub fn guard_purges(&mut self, snapshot: tokio::sync::watch::Receiver<u64>) {
        self.snapshot = Some(snapshot);
    }

    fn get_meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError<NodeId>> {
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = txn.open_table(META).map_err(read_error)?;
        match table.get(name).map_err(read_error)? {
            Some(v) => Ok(Some(codec::decode(v.value()).map_err(read_error)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, name: &str, value: &T, durable: bool) -> Result<(), StorageError<NodeId>> {
        let bytes = codec::encode(value).map_err(io_error)?;
        let mut txn = self.db.begin_write().map_err(io_error)?;
        if !durable {
            txn.set_durability(redb::Durability::None).map_err(io_error)?;
        }
        txn.open_table(META).map_err(io_error)?.insert(name, bytes.as_slice()).map_err(io_error)?;
        txn.commit().map_err(io_error)
    }

    /// The incarnation of this data directory (see [`super::types::RaftMember`]): drawn and
    /// saved, fsync'd, the first time the directory is used.
    pub fn incarnation(&self) -> Result<u64, String> {
        if let Some(incarnation) = self.get_meta::<u64>(INCARNATION).map_err(|e| e.to_string())? {
            return Ok(incarnation);
        }
        let incarnation = fastrand::u64(1..);
        self.put_meta(INCARNATION, &incarnation, true).map_err(|e| e.to_string())?;
        Ok(incarnation)
    }

    /// True when this node has never voted nor logged anything.
    pub fn is_pristine(&self) -> Result<bool, StorageError<NodeId>> {
        let vote: Option<Vote<NodeId>> = self.get_meta(VOTE)?;
        let txn = self.db.begin_read().map_err(read_error)?;
        let logs = txn.open_table(LOGS).map_err(read_error)?;
        let empty = logs.last().map_err(read_error)?.is_none();
        let purged: Option<LogId<NodeId>> = self.get_meta(PURGED)?;
        Ok(vote.is_none() && empty && purged.is_none())
    }

    /// The durable committed index (for INFO).
    pub fn committed_index(&self) -> Option<u64> {
        self.get_meta::<Option<LogId<NodeId>>>(COMMITTED).ok().flatten().flatten().map(|l| l.index)
    }

    /// The term of the saved vote and the index of the last entry in the log, when both exist
    /// (the floor of a restored leader's read index, see `read_round`).
    pub fn recovered(&self) -> Option<(u64, u64)> {
        let vote: Vote<NodeId> = self.get_meta(VOTE).ok().flatten()?;
        let txn = self.db.begin_read().ok()?;
        let table = txn.open_table(LOGS).ok()?;
        let last = table.last().ok().flatten().map(|(k, _)| k.value())?;
        Some((vote.leader_id.term, last))
    }

    /// The bytes of the entries kept with an index in `range`.
    pub fn bytes(&self, range: impl RangeBounds<u64>) -> u64 {
        let Ok(txn) = self.db.begin_read() else { return 0 };
        let Ok(table) = txn.open_table(SIZES) else { return 0 };
        let Ok(rows) = table.range::<u64>((range.start_bound().cloned(), range.end_bound().cloned())) else { return 0 };
        rows.filter_map(|row| row.ok()).map(|(_, size)| size.value()).sum()
    }

    /// The highest index at or below `upto` whose purge leaves at most `keep` bytes of the
    /// entries up to `upto` in the log; `None` when they hold no more than that.
    pub fn purge_point(&self, upto: u64, keep: u64) -> Option<u64> {
        let txn = self.db.begin_read().ok()?;
        let table = txn.open_table(SIZES).ok()?;
        let mut kept = 0;
        for row in table.range(..=upto).ok()?.rev() {
            let (index, size) = row.ok()?;
            kept += size.value();
            if kept > keep {
                return Some(index.value());
            }
        }
        None
    }

    /// The number of entries kept (for INFO).
    pub fn len(&self) -> u64 {
        use redb::ReadableTableMetadata;
        self.db.begin_read().ok().and_then(|t| t.open_table(LOGS).ok()).and_then(|t| t.len().ok()).unwrap_or(0)
    }

    /// Writes `entries` and their sizes in one durable transaction (the body of `append`).
    fn write_entries(&self, entries: impl IntoIterator<Item = Entry<TypeConfig>>) -> Result<(), StorageError<NodeId>> {
        let txn = self.db.begin_write().map_err(io_error)?;
        {
            let mut table = txn.open_table(LOGS).map_err(io_error)?;
            let mut sizes = txn.open_table(SIZES).map_err(io_error)?;
            for entry in entries {
                let bytes = codec::encode(&entry).map_err(io_error)?;
                table.insert(entry.log_id.index, bytes.as_slice()).map_err(io_error)?;
                sizes.insert(entry.log_id.index, bytes.len() as u64).map_err(io_error)?;
            }
        }
        txn.commit().map_err(io_error)
    }

    /// Removes the entries up to `log_id` and records it as the last purged, in one durable
    /// transaction (the body of `purge`, once the snapshot covers them).
    fn remove_through(&self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = codec::encode(&log_id).map_err(io_error)?;
        let txn = self.db.begin_write().map_err(io_error)?;
        {
            txn.open_table(META).map_err(io_error)?.insert(PURGED, bytes.as_slice()).map_err(io_error)?;
            remove_through(&mut txn.open_table(LOGS).map_err(io_error)?, log_id.index).map_err(io_error)?;
            remove_through(&mut txn.open_table(SIZES).map_err(io_error)?, log_id.index).map_err(io_error)?;
        }
        txn.commit().map_err(io_error)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = txn.open_table(LOGS).map_err(read_error)?;
        let mut entries = Vec::new();
        for item in table.range::<u64>((start, end)).map_err(read_error)? {
            let (_, v) = item.map_err(read_error)?;
            entries.push(codec::decode(v.value()).map_err(read_error)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(PURGED)?;
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = txn.open_table(LOGS).map_err(read_error)?;
        let last = match table.last().map_err(read_error)? {
            Some((_, v)) => {
                let entry: Entry<TypeConfig> = codec::decode(v.value()).map_err(read_error)?;
                Some(entry.log_id)
            }
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        match self.write_entries(entries) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let txn = self.db.begin_write().map_err(io_error)?;
        {
            remove_from(&mut txn.open_table(LOGS).map_err(io_error)?, log_id.index).map_err(io_error)?;
            remove_from(&mut txn.open_table(SIZES).map_err(io_error)?, log_id.index).map_err(io_error)?;
        }
        txn.commit().map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // openraft may purge right after queueing a snapshot install; never remove entries the
        // snapshot on disk does not cover yet.
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.wait_for(|durable| *durable >= log_id.index).await.map_err(io_error)?;
        }
        self.remove_through(log_id)
    }
}

/// Removes the rows of `table` with a key at most `upto`, one at a time from the first.
///
/// Not with `retain_in` (nor `extract_from_if`): redb keeps every page those rewrite while
/// they run and frees them only at the end, so removing N MB of small entries allocated
/// about as many pages again, more than the file had free, and redb grew the file: by
/// doubling it (below 4 GiB), and it gives back only free space at the end of the file. With
/// purges by `retain_in`, a load of 1 MiB values and 1 KB keys left `raft-log.redb` at 5.6
/// times the most bytes of entries it held (11 times with more small entries, see the test);
/// one at a time, 2.8–2.9 times (redb's page for an entry just over 1 MiB is 2 MiB, small
/// entries appended in order fill their pages about half, and the file grows by doubling). A
/// `remove` frees at once the pages it rewrote in this transaction, and only the entries
/// removed are visited.
fn remove_through<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, u64, V>,
    upto: u64,
) -> Result<(), redb::StorageError> {
    loop {
        let first = table.first()?.map(|(key, _)| key.value());
        match first {
            Some(first) if first <= upto => drop(table.remove(first)?),
            _ => return Ok(()),
        }
    }
}

/// Removes the rows of `table` with a key at least `from`, one at a time from the last (see
/// [`remove_through`]).
fn remove_from<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, u64, V>,
    from: u64,
) -> Result<(), redb::StorageError> {
    loop {
        let last = table.last()?.map(|(key, _)| key.value());
        match last {
            Some(last) if last >= from => drop(table.remove(last)?),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::raft::types::{CHUNK, Command, Request};
    use crate::store::Mutation;
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, EntryPayload};

    const MB: u64 = 1 << 20;

    fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
        let request = Request { session: (1, 1), seq: index, done_below: 0, command };
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(vec![request]) }
    }

    #[test]
    fn purging_large_and_small_entries_keeps_the_file_near_what_the_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log.redb");
        let store = LogStore::open(&crate::node::FileSystem::real(), &path).unwrap();
        let chunk = Bytes::from(vec![7u8; CHUNK]);
        let small = Bytes::from(vec![1u8; 1000]);
        let (mut index, mut purged_at, mut max_kept, mut max_file) = (0u64, 0u64, 0u64, 0u64);
        // 32 chunks of 1 MiB and 32,000 writes of 1,000 bytes, interleaved as a load of large
        // values and small keys; the log purged down to 4 MiB after each 8 MiB (the keeper does
        // so by the same rule, with larger bounds).
        for round in 0..32u64 {
            let mut batches = vec![vec![Command::Chunk { of: round, part: 0, data: chunk.clone() }]];
            for _ in 0..10 {
                let key = |i: u64| Bytes::from(format!("small:{i:09}"));
                let batch = (0..100)
                    .map(|i| {
                        Command::Mutate(Mutation::Set {
                            key: key(round * 1000 + i),
                            value: small.clone(),
                            options: Default::default(),
                        })
                    })
                    .collect();
                batches.push(batch);
            }
            for batch in batches {
                let entries: Vec<_> = batch
                    .into_iter()
                    .map(|command| {
                        index += 1;
                        entry(index, command)
                    })
                    .collect();
                store.write_entries(entries).unwrap();
                // As openraft does after each commit: the committed index, without an fsync.
                let committed = Some(LogId::new(CommittedLeaderId::new(1, 1), index));
                store.put_meta(COMMITTED, &committed, false).unwrap();
                max_file = max_file.max(std::fs::metadata(&path).unwrap().len());
            }
            if store.bytes(purged_at + 1..) >= 8 * MB {
                max_kept = max_kept.max(store.bytes(..));
                let upto = store.purge_point(index, 4 * MB).expect("more than 4 MiB kept");
                store.remove_through(LogId::new(CommittedLeaderId::new(1, 1), upto)).unwrap();
                purged_at = index;
            }
        }
        max_kept = max_kept.max(store.bytes(..));
        eprintln!("file at most {max_file} bytes, entries kept at most {max_kept} bytes");
        assert!(store.bytes(..) <= 13 * MB, "{} bytes kept", store.bytes(..));
        // redb's page for an entry just over 1 MiB is 2 MiB, small entries appended in order fill
        // their pages about half, and redb doubles a small file when it is full: up to 4x what
        // the log holds. Purged with `retain_in`, the same log took 160 MB.
        assert!(
            max_file <= 4 * max_kept,
            "the log file reached {:.0} MB for at most {:.0} MB of entries kept",
            max_file as f64 / MB as f64,
            max_kept as f64 / MB as f64
        );
    }
}
