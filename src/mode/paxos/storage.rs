//! The acceptor's durable state, in redb: one slot per key, plus the garbage-collection
//! floor, the proposer's ballot high-water mark and the membership configuration.
//!
//! Every batch of acceptor messages is handled in one write transaction committed with
//! redb's default `Durability::Immediate` (fsync) *before* any reply leaves, so promises and
//! accepts survive kill -9 and power loss — and many concurrent messages share one fsync.
//!
//! A slot that garbage collection removed (§3.1) — like any absent slot — reads as "nothing
//! accepted, promised up to the acceptor's *floor*", the highest ballot it ever collected:
//! so a removed key refuses every ballot at or below the floor, exactly as its tombstone would
//! have, and a proposer that cached a promise from before the deletion can never write into
//! the empty slot. The floor is *not* reported as an accepted ballot to a prepare: it is the
//! ballot of some other key's tombstone, and letting it outrank a real value of this key
//! would erase an acknowledged write. It is reported as the accepted ballot of a refusal,
//! where it only makes the proposer more doubtful (a refused value may have been chosen and
//! then collected).

use std::path::Path;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::acceptor::{self, Landed, Request, Response, Slot};
use super::ballot::Ballot;
use crate::error::{Error, Result};
use crate::node::FileSystem;
use crate::store::{Listing, scan_hash, take_page};

pub(super) const SLOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("slots");
/// Every slot's key in scan order (see [`crate::store::scan`]): its scan hash, big-endian,
/// then the key. Kept in the transaction that creates or removes the slot, and rebuilt at
/// start-up when it does not match (a data directory of an earlier release has none), so a
/// SCAN page is one range read, whatever the number of slots.
const SCAN_ORDER: TableDefinition<&[u8], ()> = TableDefinition::new("slots_in_scan_order");

fn scan_order_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&scan_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(super) const FLOOR: &str = "floor";
pub(super) const COUNTER: &str = "counter";
pub(super) const CONFIG: &str = "config";
/// This data directory's incarnation (see [`super::identity`]).
pub(super) const INCARNATION: &str = "incarnation";
/// Present when the directory held acceptor state before it had an incarnation (a release
/// older than incarnations wrote it).
pub(super) const INCARNATION_LATE: &str = "incarnation_late";

pub use crate::node::Member;

/// A membership configuration. `previous` is set while a change runs (joint consensus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Config {
    pub version: u64,
    pub members: Vec<Member>,
    pub previous: Option<Vec<Member>>,
    /// The highest node id that was ever a member; a new member needs a higher one, because
    /// ballots carry the node id and a reused id could reuse a ballot.
    #[serde(default)]
    pub highest_id: u32,
    /// The incarnation of each node's data directory, once recorded (see
    /// [`super::identity`]); a node not listed is not recorded yet.
    #[serde(default)]
    pub incarnations: std::collections::BTreeMap<u32, u64>,
}

impl Config {
    /// The node ids of the members.
    pub fn ids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Every node the configuration names, members and previous members.
    pub fn everyone(&self) -> Vec<Member> {
        let mut all = self.members.clone();
        for m in self.previous.iter().flatten() {
            if !all.iter().any(|a| a.id == m.id) {
                all.push(m.clone());
            }
        }
        all
    }

    /// The incarnation recorded for node `id`; 0 when none is.
    pub fn incarnation_of(&self, id: u32) -> u64 {
        self.incarnations.get(&id).copied().unwrap_or(0)
    }

    pub fn quorums(&self) -> super::proposer::Quorums {
        super::proposer::Quorums {
            members: self.ids(),
            previous: self.previous.as_ref().map(|p| p.iter().map(|m| m.id).collect()),
        }
    }
}

/// One message to the acceptor.
#[derive(Debug, Clone)]
pub enum AcceptorMessage {
    Paxos(Request),
    /// Drop the slot if it still holds the tombstone GC wrote at `ballot` under configuration
    /// `config_version`.
    Remove {
        ballot: Ballot,
        config_version: u64,
    },
}

/// The acceptor's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptorReply {
    Paxos(Response),
    Removed(bool),
    /// Not handled (nothing changed): its reply would have carried more than its call's
    /// [`ReplyRoom`] has left. The caller sends it again.
    Deferred,
}

/// What the promises answering one peer's call may carry together: at most `cap` bytes of
/// values beyond the first (a value of any allowed size is always answered, alone), and only
/// what `take` grants (the node's message budget). A prepare whose promise would carry more
/// is not handled, and answered [`AcceptorReply::Deferred`]: a 4 KB batch of 200 prepares of
/// a key holding 1 MiB made a 200 MB reply.
pub struct ReplyRoom {
    cap: u64,
    used: std::sync::atomic::AtomicU64,
    take: Box<dyn Fn(u64) -> bool + Send + Sync>,
}

impl std::fmt::Debug for ReplyRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyRoom({} of {})", self.used.load(std::sync::atomic::Ordering::Relaxed), self.cap)
    }
}

impl ReplyRoom {
    /// Room for `cap` bytes beyond the first value, each byte granted by `take`.
    pub fn new(cap: u64, take: impl Fn(u64) -> bool + Send + Sync + 'static) -> Self {
        Self { cap, used: std::sync::atomic::AtomicU64::new(0), take: Box::new(take) }
    }

    /// Whether a reply carrying `bytes` more fits; if so, they are counted.
    fn admit(&self, bytes: u64) -> bool {
        use std::sync::atomic::Ordering;
        let used = self.used.load(Ordering::Relaxed);
        if used > 0 && used.saturating_add(bytes) > self.cap {
            return false;
        }
        if !(self.take)(bytes) {
            return false;
        }
        self.used.store(used.saturating_add(bytes), Ordering::Relaxed);
        true
    }
}

pub(super) fn encode_ballot(out: &mut Vec<u8>, b: Ballot) {
    out.extend_from_slice(&b.counter.to_be_bytes());
    out.extend_from_slice(&b.node.to_be_bytes());
}

pub(super) fn decode_ballot(bytes: &[u8]) -> Option<Ballot> {
    let counter = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let node = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
    Some(Ballot { counter, node })
}

/// promised (12 bytes) | accepted (12) | 0 = absent, 1 = value follows | [value length (4) |
/// value] | n (4) | n × (proposer (4) | its last accepted ballot (12)).
fn encode_slot(slot: &Slot) -> Vec<u8> {
    let mut out = Vec::with_capacity(33 + slot.value.as_ref().map_or(0, |v| v.len()) + 16 * slot.last_by.len());
    encode_ballot(&mut out, slot.promised);
    encode_ballot(&mut out, slot.accepted);
    match &slot.value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        }
    }
    out.extend_from_slice(&(slot.last_by.len() as u32).to_be_bytes());
    for (node, ballot) in &slot.last_by {
        out.extend_from_slice(&node.to_be_bytes());
        encode_ballot(&mut out, *ballot);
    }
    out
}

fn decode_slot(bytes: &[u8]) -> Result<Slot> {
    let corrupt = || Error::Io("corrupt acceptor slot".into());
    let promised = decode_ballot(bytes).ok_or_else(corrupt)?;
    let accepted = decode_ballot(bytes.get(12..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    let (value, mut at) = match bytes.get(24) {
        Some(0) => (None, 25),
        Some(1) => {
            let len = u32::from_be_bytes(bytes.get(25..29).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
            let end = 29 + len as usize;
            (Some(Bytes::copy_from_slice(bytes.get(29..end).ok_or_else(corrupt)?)), end)
        }
        _ => return Err(corrupt()),
    };
    let n = u32::from_be_bytes(bytes.get(at..at + 4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
    at += 4;
    let mut last_by = std::collections::BTreeMap::new();
    for _ in 0..n {
        let node = u32::from_be_bytes(bytes.get(at..at + 4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
        let ballot = decode_ballot(bytes.get(at + 4..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
        last_by.insert(node, ballot);
        at += 16;
    }
    if at != bytes.len() {
        return Err(corrupt());
    }
    Ok(Slot { promised, accepted, value, last_by })
}

/// Where the ballots of an encoded slot lie (promised, accepted, then each proposer's last
/// accepted ballot), read without copying its value: what [`decode_slot`] reads, checked the same.
fn ballot_offsets(bytes: &[u8]) -> Result<Vec<usize>> {
    let corrupt = || Error::Io("corrupt acceptor slot".into());
    let mut at = match bytes.get(24) {
        Some(0) => 25,
        Some(1) => {
            let len = u32::from_be_bytes(bytes.get(25..29).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
            29 + len as usize
        }
        _ => return Err(corrupt()),
    };
    let n = u32::from_be_bytes(bytes.get(at..at + 4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
    at += 4;
    let mut offsets = vec![0, 12];
    for _ in 0..n {
        offsets.push(at + 4);
        at += 16;
    }
    if at != bytes.len() {
        return Err(corrupt());
    }
    Ok(offsets)
}

/// Every ballot an encoded slot holds.
pub(super) fn slot_ballots(bytes: &[u8]) -> Result<Vec<Ballot>> {
    ballot_offsets(bytes)?
        .into_iter()
        .map(|at| decode_ballot(&bytes[at..]).ok_or_else(|| Error::Io("corrupt acceptor slot".into())))
        .collect()
}

/// An encoded slot with every ballot it holds replaced by `map(ballot)`, its value untouched.
pub(super) fn map_slot_ballots(bytes: &[u8], map: impl Fn(Ballot) -> Result<Ballot>) -> Result<Vec<u8>> {
    let mut out = bytes.to_vec();
    for at in ballot_offsets(bytes)? {
        let ballot = decode_ballot(&bytes[at..]).ok_or_else(|| Error::Io("corrupt acceptor slot".into()))?;
        let mut encoded = Vec::with_capacity(12);
        encode_ballot(&mut encoded, map(ballot)?);
        out[at..at + 12].copy_from_slice(&encoded);
    }
    Ok(out)
}

pub(super) fn db_error(e: impl std::fmt::Display) -> Error {
    Error::Io(format!("acceptor storage: {e}"))
}

/// One message to the acceptor: its key, the message, and the room its reply may take.
pub type Incoming = (Bytes, AcceptorMessage, Option<std::sync::Arc<ReplyRoom>>);

/// Which slots [`Storage::keys`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFilter {
    /// Slots holding a value.
    Values,
    /// Slots holding a tombstone.
    Tombstones,
    /// Every slot.
    All,
}

/// The acceptor's database. Handles are cheap to share; writes are serialized by redb.
pub struct Storage {
    db: Database,
}

/// What a node's storage knew when it opened.
pub struct Recovered {
    pub counter: u64,
    pub config: Option<Config>,
    pub floor: Ballot,
    /// The data directory's incarnation: drawn when the directory is first opened, kept after.
    pub incarnation: u64,
    /// The directory held acceptor state before it had an incarnation: it may have voted
    /// before any configuration recorded it (see [`super::identity`]).
    pub late: bool,
}

impl Storage {
    /// Opens (or creates) `dir/acceptor.redb` through the file layer `fs`.
    pub fn open(fs: &FileSystem, dir: &Path) -> Result<(Self, Recovered)> {
        fs.create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create data directory {}: {e}", dir.display())))?;
        let db = fs.open_database(&dir.join("acceptor.redb")).map_err(Error::Config)?;
        let txn = db.begin_write().map_err(db_error)?;
        {
            let slots = txn.open_table(SLOTS).map_err(db_error)?;
            let mut order = txn.open_table(SCAN_ORDER).map_err(db_error)?;
            if order.len().map_err(db_error)? != slots.len().map_err(db_error)? {
                order.retain(|_, _| false).map_err(db_error)?;
                for item in slots.iter().map_err(db_error)? {
                    let (k, _) = item.map_err(db_error)?;
                    order.insert(scan_order_key(k.value()).as_slice(), ()).map_err(db_error)?;
                }
            }
        }
        {
            let mut meta = txn.open_table(META).map_err(db_error)?;
            if meta.get(INCARNATION).map_err(db_error)?.is_none() {
                // An older release's directory holds a configuration or slots already.
                let held = meta.get(CONFIG).map_err(db_error)?.is_some()
                    || !txn.open_table(SLOTS).map_err(db_error)?.is_empty().map_err(db_error)?;
                meta.insert(INCARNATION, fastrand::u64(1..).to_be_bytes().as_slice()).map_err(db_error)?;
                if held {
                    meta.insert(INCARNATION_LATE, [1u8].as_slice()).map_err(db_error)?;
                }
            }
        }
        txn.commit().map_err(db_error)?;
        let storage = Self { db };
        let recovered = Recovered {
            counter: storage
                .meta(COUNTER)?
                .and_then(|b| Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?)))
                .unwrap_or(0),
            config: match storage.meta(CONFIG)? {
                Some(json) => Some(serde_json::from_slice(&json).map_err(db_error)?),
                None => None,
            },
            floor: storage.meta(FLOOR)?.and_then(|b| decode_ballot(&b)).unwrap_or(Ballot::ZERO),
            incarnation: storage
                .meta(INCARNATION)?
                .and_then(|b| Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?)))
                .filter(|i| *i != 0)
                .ok_or_else(|| db_error("the data directory's incarnation is unreadable"))?,
            late: storage.meta(INCARNATION_LATE)?.is_some(),
        };
        Ok((storage, recovered))
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(META).map_err(db_error)?;
        Ok(table.get(name).map_err(db_error)?.map(|v| v.value().to_vec()))
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(META).map_err(db_error)?.insert(name, value).map_err(db_error)?;
        txn.commit().map_err(db_error)
    }

    /// Makes `counter` the proposer's durable high-water mark (fsync'd).
    pub fn save_counter(&self, counter: u64) -> Result<()> {
        self.put_meta(COUNTER, &counter.to_be_bytes())
    }

    /// Stores the membership configuration (fsync'd).
    pub fn save_config(&self, config: &Config) -> Result<()> {
        self.put_meta(CONFIG, &serde_json::to_vec(config).map_err(db_error)?)
    }

    /// Handles a batch of messages, `(key, message)`, in one fsync'd transaction; replies in
    /// order. `config_version` is the node's installed configuration, which removals must match;
    /// `ceiling` is the highest ballot counter the node takes from a peer now
    /// ([`Ballot::ceiling`], read by the caller), which bounds the ballots removals may carry.
    pub fn handle(
        &self,
        batch: &[(Bytes, AcceptorMessage)],
        config_version: u64,
        ceiling: u64,
    ) -> Result<Vec<AcceptorReply>> {
        let items: Vec<Incoming> = batch.iter().map(|(k, m)| (k.clone(), m.clone(), None)).collect();
        self.handle_bounded(&items, config_version, ceiling)
    }

    /// [`Self::handle`], for messages each of which may answer within its call's [`ReplyRoom`].
    pub fn handle_bounded(&self, batch: &[Incoming], config_version: u64, ceiling: u64) -> Result<Vec<AcceptorReply>> {
        // Removing raises the node-wide floor to the removal's ballot: only a ballot every
        // proposer follows now may get there (below).
        let removable_up_to = Ballot::followable(ceiling);
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut replies = Vec::with_capacity(batch.len());
        let mut dirty = false;
        {
            let mut slots = txn.open_table(SLOTS).map_err(db_error)?;
            let mut order = txn.open_table(SCAN_ORDER).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let mut floor =
                meta.get(FLOOR).map_err(db_error)?.and_then(|v| decode_ballot(v.value())).unwrap_or(Ballot::ZERO);
            for (key, message, room) in batch {
                let stored = slots.get(key.as_ref()).map_err(db_error)?.map(|v| decode_slot(v.value())).transpose()?;
                let exists = stored.is_some();
                let mut slot = stored.unwrap_or(Slot {
                    promised: floor,
                    accepted: Ballot::ZERO,
                    value: None,
                    last_by: Default::default(),
                });
                match message {
                    AcceptorMessage::Paxos(request) => {
                        let (mut response, changed) = acceptor::handle(&mut slot, request);
                        if let (Response::Promised { value: Some(value), .. }, Some(room)) = (&response, room)
                            && !room.admit(value.len() as u64)
                        {
                            // Not handled: the slot's change is dropped, as if never asked.
                            replies.push(AcceptorReply::Deferred);
                            continue;
                        }
                        if let Response::Conflict { accepted, landed, .. } = &mut response {
                            *accepted = (*accepted).max(floor);
                            // At or below the floor, this slot's history may have been collected.
                            if let Request::Accept { ballot, .. } = request
                                && *ballot <= floor
                                && *landed != Landed::Yes
                            {
                                *landed = Landed::Unknown;
                            }
                        }
                        if changed {
                            slots.insert(key.as_ref(), encode_slot(&slot).as_slice()).map_err(db_error)?;
                            if !exists {
                                order.insert(scan_order_key(key).as_slice(), ()).map_err(db_error)?;
                            }
                            dirty = true;
                        }
                        replies.push(AcceptorReply::Paxos(response));
                    }
                    AcceptorMessage::Remove { ballot, config_version: version } => {
                        // Only the untouched tombstone GC wrote, under the configuration GC saw,
                        // and only at a ballot every proposer follows now (as GC itself removes):
                        // removing raises this node-wide floor to the ballot, and every fresh key
                        // on the node starts promised at the floor. A tombstone above that (a
                        // peer that wrote one at the clock's ceiling, or past the followed
                        // limit) would leave every fresh key promised above what any proposer
                        // follows, refused until the ceiling rose (or for good). It stays.
                        let removable = exists
                            && ballot.counter <= removable_up_to
                            && *version == config_version
                            && slot.value.is_none()
                            && slot.accepted == *ballot
                            && slot.promised == *ballot;
                        if removable {
                            slots.remove(key.as_ref()).map_err(db_error)?;
                            order.remove(scan_order_key(key).as_slice()).map_err(db_error)?;
                            if *ballot > floor {
                                floor = *ballot;
                                let mut encoded = Vec::with_capacity(12);
                                encode_ballot(&mut encoded, floor);
                                meta.insert(FLOOR, encoded.as_slice()).map_err(db_error)?;
                            }
                            dirty = true;
                        }
                        replies.push(AcceptorReply::Removed(removable));
                    }
                }
            }
        }
        if dirty {
            txn.commit().map_err(db_error)?;
        } else {
            txn.abort().map_err(db_error)?;
        }
        Ok(replies)
    }

    /// Keys of slots that pass `filter` and `wanted`, in key order after `after`, at most `limit`.
    pub fn keys(
        &self,
        filter: KeyFilter,
        after: Option<&[u8]>,
        limit: usize,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<Bytes>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(SLOTS).map_err(db_error)?;
        let mut keys = Vec::new();
        let range = match after {
            Some(a) => table.range::<&[u8]>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => table.range::<&[u8]>(..),
        };
        for item in range.map_err(db_error)? {
            let (k, v) = item.map_err(db_error)?;
            let holds_value = v.value().get(24) == Some(&1);
            let pass = match filter {
                KeyFilter::Values => holds_value,
                KeyFilter::Tombstones => !holds_value,
                KeyFilter::All => true,
            };
            if pass && wanted(k.value()) {
                keys.push(Bytes::copy_from_slice(k.value()));
                if keys.len() >= limit {
                    break;
                }
            }
        }
        Ok(keys)
    }

    /// The slots from `cursor` in scan order, about `count` of them, each with whether it holds
    /// a value: one range read of the scan-order index and a lookup per key.
    pub fn scan(&self, cursor: u64, count: usize) -> Result<Listing> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let order = txn.open_table(SCAN_ORDER).map_err(db_error)?;
        let slots = txn.open_table(SLOTS).map_err(db_error)?;
        let start = cursor.to_be_bytes();
        let mut failure = None;
        let items = order.range(&start[..]..).map_err(db_error)?.map_while(|item| {
            let read = || -> Result<(u64, Bytes, bool)> {
                let (k, _) = item.map_err(db_error)?;
                let (hash, key) =
                    k.value().split_first_chunk::<8>().ok_or_else(|| db_error("a scan-order entry without a hash"))?;
                let slot = slots.get(key).map_err(db_error)?;
                let live = slot.is_some_and(|v| v.value().get(24) == Some(&1));
                Ok((u64::from_be_bytes(*hash), Bytes::copy_from_slice(key), live))
            };
            match read() {
                Ok(item) => Some(item),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        let listing = take_page(items, count);
        match failure {
            Some(e) => Err(e),
            None => Ok(listing),
        }
    }

    /// The ballots of `key`'s slot, promised and accepted; `None` for an absent slot.
    pub fn slot_ballots(&self, key: &[u8]) -> Result<Option<(Ballot, Ballot)>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(SLOTS).map_err(db_error)?;
        let Some(slot) = table.get(key).map_err(db_error)? else { return Ok(None) };
        let bytes = slot.value();
        let corrupt = || Error::Io("corrupt acceptor slot".into());
        let promised = decode_ballot(bytes).ok_or_else(corrupt)?;
        let accepted = decode_ballot(bytes.get(12..).unwrap_or_default()).ok_or_else(corrupt)?;
        Ok(Some((promised, accepted)))
    }

    /// The number of slots (values and tombstones).
    pub fn slot_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(SLOTS).map_err(db_error)?;
        table.len().map_err(db_error)
    }

    /// The garbage-collection floor.
    pub fn floor(&self) -> Result<Ballot> {
        Ok(self.meta(FLOOR)?.and_then(|b| decode_ballot(&b)).unwrap_or(Ballot::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node without the clock's ceiling (`--unsafe-no-ballot-ceiling`): every ballot the
    /// wire allows.
    const NO_CEILING: u64 = Ballot::MAX_COUNTER;

    fn b(c: u64, n: u32) -> Ballot {
        Ballot::new(c, n)
    }

    fn key() -> Bytes {
        Bytes::from_static(b"k")
    }

    /// Every slot, page by page, as `(key, holds a value)`.
    fn scan_all(s: &Storage) -> Vec<(Bytes, bool)> {
        let (mut out, mut cursor) = (Vec::new(), 0);
        loop {
            let listing = s.scan(cursor, 7).unwrap();
            out.extend(listing.keys.into_iter().map(|(_, k, live)| (k, live)));
            cursor = crate::store::next_cursor(listing.through);
            if cursor == 0 {
                return out;
            }
        }
    }

    #[test]
    fn slots_list_in_scan_order_and_an_index_missing_from_an_older_directory_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Bytes> = (0..50).map(|i| Bytes::from(format!("k{i}"))).collect();
        let expected = {
            let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
            let batch: Vec<(Bytes, AcceptorMessage)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let value = (i > 0).then(|| Bytes::from_static(b"v"));
                    (k.clone(), AcceptorMessage::Paxos(Request::Accept { ballot: b(3, 1), value, promise_next: false }))
                })
                .collect();
            s.handle(&batch, 1, NO_CEILING).unwrap();
            let listed = scan_all(&s);
            let mut expected: Vec<(Bytes, bool)> = keys.iter().map(|k| (k.clone(), k != "k0")).collect();
            expected.sort_by_key(|(k, _)| (scan_hash(k), k.clone()));
            assert_eq!(listed, expected, "every slot once, in scan order, the tombstone marked");
            expected
        };
        {
            let db = Database::create(dir.path().join("acceptor.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(SCAN_ORDER).unwrap();
            txn.commit().unwrap();
        }
        let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        assert_eq!(scan_all(&s), expected);
    }

    /// A data directory draws its incarnation once and keeps it; one an older release wrote
    /// (slots, no incarnation) draws one too, marked as written before incarnations.
    #[test]
    fn a_data_directory_keeps_its_incarnation_and_an_older_one_is_marked_late() {
        let dir = tempfile::tempdir().unwrap();
        let first = Storage::open(&FileSystem::real(), dir.path()).unwrap().1;
        assert_ne!(first.incarnation, 0);
        assert!(!first.late, "an empty directory is not late");
        let again = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        assert_eq!((again.1.incarnation, again.1.late), (first.incarnation, false));
        let accept = AcceptorMessage::Paxos(Request::Accept { ballot: b(3, 1), value: None, promise_next: false });
        again.0.handle(&[(key(), accept)], 1, NO_CEILING).unwrap();
        drop(again);
        {
            let db = Database::create(dir.path().join("acceptor.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().remove(INCARNATION).unwrap();
            txn.commit().unwrap();
        }
        let older = Storage::open(&FileSystem::real(), dir.path()).unwrap().1;
        assert!(older.late, "a directory with slots and no incarnation was written by an older release");
        assert_ne!(older.incarnation, 0);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Storage::open(&FileSystem::real(), other.path()).unwrap().1.incarnation, first.incarnation);
    }

    #[test]
    fn slots_survive_reopening_and_removal_raises_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, rec) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
            assert_eq!((rec.counter, rec.config, rec.floor, rec.late), (0, None, Ballot::ZERO, false));
            let accept = AcceptorMessage::Paxos(Request::Accept {
                ballot: b(3, 1),
                value: Some(Bytes::from_static(b"v")),
                promise_next: false,
            });
            assert_eq!(
                s.handle(&[(key(), accept)], 1, NO_CEILING).unwrap(),
                vec![AcceptorReply::Paxos(Response::Accepted)]
            );
            s.save_counter(42).unwrap();
        }
        let (s, rec) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        assert_eq!(rec.counter, 42);
        assert_eq!(s.keys(KeyFilter::Values, None, 10, |_| true).unwrap(), vec![key()]);
        let prepare = AcceptorMessage::Paxos(Request::Prepare { ballot: b(4, 2) });
        assert_eq!(
            s.handle(&[(key(), prepare)], 1, NO_CEILING).unwrap(),
            vec![AcceptorReply::Paxos(Response::Promised { accepted: b(3, 1), value: Some(Bytes::from_static(b"v")) })]
        );
        // A tombstone at (5,2), then its removal; a wrong ballot or configuration removes nothing.
        let tomb = AcceptorMessage::Paxos(Request::Accept { ballot: b(5, 2), value: None, promise_next: false });
        s.handle(&[(key(), tomb)], 1, NO_CEILING).unwrap();
        assert_eq!(s.keys(KeyFilter::Tombstones, None, 10, |_| true).unwrap(), vec![key()]);
        assert_eq!(s.keys(KeyFilter::All, Some(b"k"), 10, |_| true).unwrap(), Vec::<Bytes>::new());
        let remove = |ballot, config_version| AcceptorMessage::Remove { ballot, config_version };
        assert_eq!(
            s.handle(&[(key(), remove(b(5, 1), 1))], 1, NO_CEILING).unwrap(),
            vec![AcceptorReply::Removed(false)]
        );
        assert_eq!(
            s.handle(&[(key(), remove(b(5, 2), 2))], 1, NO_CEILING).unwrap(),
            vec![AcceptorReply::Removed(false)]
        );
        assert_eq!(
            s.handle(&[(key(), remove(b(5, 2), 1))], 1, NO_CEILING).unwrap(),
            vec![AcceptorReply::Removed(true)]
        );
        assert_eq!(s.slot_count().unwrap(), 0);
        assert_eq!(s.floor().unwrap(), b(5, 2));
        // The removed key (and any other absent key) refuses ballots up to the floor...
        let stale = AcceptorMessage::Paxos(Request::Accept {
            ballot: b(4, 1),
            value: Some(Bytes::from_static(b"zombie")),
            promise_next: false,
        });
        assert!(matches!(
            s.handle(&[(key(), stale.clone()), (Bytes::from_static(b"other"), stale)], 1, NO_CEILING).unwrap()[..],
            [AcceptorReply::Paxos(Response::Conflict { .. }), AcceptorReply::Paxos(Response::Conflict { .. })]
        ));
        // ...reports the floor as the accepted ballot of a refusal (the refused value may have
        // been chosen, then collected)...
        let stale = AcceptorMessage::Paxos(Request::Accept { ballot: b(5, 1), value: None, promise_next: false });
        assert_eq!(
            s.handle(&[(key(), stale)], 1, NO_CEILING).unwrap(),
            vec![AcceptorReply::Paxos(Response::Conflict {
                seen: b(5, 2),
                accepted: b(5, 2),
                landed: Landed::Unknown
            })]
        );
        // ...and reads as never accepted above it: the floor belongs to no key in particular and
        // must never outrank a real value another acceptor reports for this key.
        let prepare = AcceptorMessage::Paxos(Request::Prepare { ballot: b(6, 1) });
        assert_eq!(
            s.handle(&[(key(), prepare)], 1, NO_CEILING).unwrap(),
            vec![AcceptorReply::Paxos(Response::Promised { accepted: Ballot::ZERO, value: None })]
        );
        drop(s);
        assert_eq!(Storage::open(&FileSystem::real(), dir.path()).unwrap().1.floor, b(5, 2));
    }

    /// Removing a tombstone raises the node-wide floor to its ballot. A tombstone above the
    /// ballots proposers follow (one key pushed there by a peer) must stay, or every other
    /// node's fresh keys would sit below the floor, refused for good.
    #[test]
    fn a_tombstone_above_the_followed_ballots_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        let high = b(Ballot::MAX_FOLLOWED + 3, 2);
        let tomb = AcceptorMessage::Paxos(Request::Accept { ballot: high, value: None, promise_next: false });
        s.handle(&[(key(), tomb)], 1, NO_CEILING).unwrap();
        let remove = AcceptorMessage::Remove { ballot: high, config_version: 1 };
        assert_eq!(s.handle(&[(key(), remove)], 1, NO_CEILING).unwrap(), vec![AcceptorReply::Removed(false)]);
        assert_eq!(s.floor().unwrap(), Ballot::ZERO);
        assert_eq!(s.keys(KeyFilter::Tombstones, None, 10, |_| true).unwrap(), vec![key()]);
        // At the limit itself, removal works: a proposer follows it and makes ballots above.
        let limit = b(Ballot::MAX_FOLLOWED, 2);
        let other = Bytes::from_static(b"other");
        let tomb = AcceptorMessage::Paxos(Request::Accept { ballot: limit, value: None, promise_next: false });
        s.handle(&[(other.clone(), tomb)], 1, NO_CEILING).unwrap();
        let remove = AcceptorMessage::Remove { ballot: limit, config_version: 1 };
        assert_eq!(s.handle(&[(other, remove)], 1, NO_CEILING).unwrap(), vec![AcceptorReply::Removed(true)]);
        assert_eq!(s.floor().unwrap(), limit);
    }

    /// A peer holding the secret can write a tombstone at exactly the clock's ceiling and then
    /// ask for its removal: removing it would raise the node-wide floor there, so every fresh
    /// key on the node would start promised above what any proposer follows, refused until the
    /// ceiling rose a second later (again every second). Only a tombstone at a ballot every
    /// node follows now is removed; the others stay, until the ceiling has risen past them.
    #[test]
    fn a_tombstone_above_what_every_node_follows_now_is_not_removed_yet() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        let ceiling = Ballot::CEILING_FLOOR << 2;
        let followable = Ballot::followable(ceiling);
        let tomb = |ballot| AcceptorMessage::Paxos(Request::Accept { ballot, value: None, promise_next: false });
        let remove = |ballot| AcceptorMessage::Remove { ballot, config_version: 1 };
        let (at_ceiling, above, at_limit) =
            (Bytes::from_static(b"ceiling"), Bytes::from_static(b"above"), Bytes::from_static(b"limit"));
        let tombs = [(at_ceiling.clone(), b(ceiling, 9)), (above.clone(), b(followable + 1, 9))];
        for (k, ballot) in &tombs {
            s.handle(&[(k.clone(), tomb(*ballot))], 1, ceiling).unwrap();
            assert_eq!(
                s.handle(&[(k.clone(), remove(*ballot))], 1, ceiling).unwrap(),
                vec![AcceptorReply::Removed(false)]
            );
        }
        assert_eq!(s.floor().unwrap(), Ballot::ZERO);
        // A fresh key is still promised nothing: a proposer's ballots get through.
        let prepare = AcceptorMessage::Paxos(Request::Prepare { ballot: b(7, 1) });
        assert_eq!(
            s.handle(&[(Bytes::from_static(b"fresh"), prepare)], 1, ceiling).unwrap(),
            vec![AcceptorReply::Paxos(Response::Promised { accepted: Ballot::ZERO, value: None })]
        );
        // At what every node follows now, removal works.
        s.handle(&[(at_limit.clone(), tomb(b(followable, 9)))], 1, ceiling).unwrap();
        assert_eq!(
            s.handle(&[(at_limit, remove(b(followable, 9)))], 1, ceiling).unwrap(),
            vec![AcceptorReply::Removed(true)]
        );
        assert_eq!(s.floor().unwrap(), b(followable, 9));
        // The tombstones that stayed are removed once the ceiling has risen a second past them.
        let later = ceiling + Ballot::FOLLOW_MARGIN;
        for (k, ballot) in tombs {
            assert_eq!(s.handle(&[(k, remove(ballot))], 1, later).unwrap(), vec![AcceptorReply::Removed(true)]);
        }
        assert_eq!(s.floor().unwrap(), b(ceiling, 9));
    }

    /// A slot that only holds a promise has accepted nothing; a tombstone has.
    #[test]
    fn a_slot_holding_only_a_promise_has_accepted_nothing() {
        let zero = Ballot::ZERO;
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Storage::open(&FileSystem::real(), dir.path()).unwrap();
        let prepare = AcceptorMessage::Paxos(Request::Prepare { ballot: b(4, 1) });
        s.handle(&[(key(), prepare)], 1, NO_CEILING).unwrap();
        assert_eq!(s.keys(KeyFilter::Tombstones, None, 10, |_| true).unwrap(), vec![key()]);
        assert_eq!(s.slot_ballots(b"k").unwrap(), Some((b(4, 1), zero)));
        assert_eq!(s.slot_ballots(b"absent").unwrap(), None);
        let tomb = AcceptorMessage::Paxos(Request::Accept { ballot: b(4, 1), value: None, promise_next: false });
        s.handle(&[(key(), tomb)], 1, NO_CEILING).unwrap();
        assert_eq!(s.slot_ballots(b"k").unwrap(), Some((b(4, 1), b(4, 1))));
    }
}
