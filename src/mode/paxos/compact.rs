//! Compacting the ballots of a stopped cluster (`valthree paxos-compact-ballots`): every
//! ballot every acceptor holds is replaced by its rank, so a cluster whose ballots were pushed
//! towards the limits ([`Ballot::MAX_FOLLOWED`]) gets its room back.
//!
//! A forged ballot (a holder of the cluster secret, or a node of a version without the
//! [ceiling](Ballot::ceiling)) can leave a node following a counter near 2^61 while the other
//! nodes do not follow that high: keys that node then touches become unwritable, through
//! restarts. No rule a running node applies can undo that (any fixed limit moves the wedge to
//! the limit); rewriting every ballot of the stopped cluster can.
//!
//! **The mapping.** Let `c_1 < c_2 < … < c_n` be the distinct non-zero counters of every
//! ballot in every member's acceptor: promises, accepted ballots, each proposer's last
//! accepted ballot (`Slot::last_by`), the garbage-collection floor. The map is
//! `f(0) = 0`, `f(c_i) = i`, and a ballot `(c, node)` becomes `(f(c), node)`. Then every
//! node's durable counter is set to `n`, so its next ballot, `(n + 1, id)`, is above every
//! stored one.
//!
//! **Why order is preserved exactly.** `Ballot`'s order is lexicographic: `(c, a) < (d, b)`
//! iff `c < d`, or `c = d` and `a < b`. `f` is strictly increasing (`c_i < c_j` iff `i < j`,
//! and `0` stays below every `i ≥ 1`), so `f(c) < f(d)` iff `c < d` and `f(c) = f(d)` iff
//! `c = d`; node ids are kept. Hence `(f(c), a) < (f(d), b)` iff `(c, a) < (d, b)`, and
//! equal ballots stay equal, distinct ones distinct. `Ballot::ZERO` stays zero ("nothing
//! accepted"). CASPaxos only ever compares ballots (an acceptor against its promise and its
//! accepted ballot, a proposer picking the highest accepted value, `last_by` against a
//! refused accept, the floor against an absent slot), so every comparison any acceptor or
//! proposer can make between stored ballots answers as before, and a proposer's new ballots
//! are above all of them, as a fresh ballot always is. Ballots that lived only in memory
//! (a cached one-round-trip promise, a message in flight) died with the processes.
//!
//! **What must hold.** Every member's data directory is given (a member left out keeps its old
//! ballots, which would then compare wrongly against the new ones: refused, by the members the
//! configurations name), and no node runs (redb's lock refuses a database that is open).
//!
//! **Crash safety.** Before any database changes, the list of counters is written, fsync'd,
//! into every directory (`ballot-compaction.plan`); each database is then rewritten in one
//! transaction that also records the plan's digest. A node refuses to start while a plan file
//! is in its directory; running the command again with the same directories finishes an
//! interrupted compaction with the same plan (databases already carrying its digest are left
//! alone), then removes the plan files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable};

use super::ballot::{Ballot, NodeId};
use super::node::fnv1a;
use super::storage::{
    CONFIG, COUNTER, Config, FLOOR, META, SLOTS, db_error, decode_ballot, encode_ballot, map_slot_ballots, slot_ballots,
};
use crate::error::{Error, Result};

/// The file a compaction leaves in each data directory until it is finished.
pub const PLAN_FILE: &str = "ballot-compaction.plan";

/// The meta entry recording which plan rewrote a database.
const COMPACTED: &str = "ballot_compaction";

const PLAN_MAGIC: &[u8] = b"valthree ballot compaction v1\n";

/// Slots rewritten per read of the table (their bytes are held at once).
const CHUNK_BYTES: usize = 64 << 20;

/// What a compaction did (or, on a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// Distinct non-zero counters found, and so the counter every node resumes from.
    pub distinct: u64,
    /// The highest ballot found before.
    pub highest: Ballot,
    /// Slots rewritten, per directory in the order given.
    pub slots: Vec<u64>,
    /// Whether an interrupted compaction was finished (its plan reused).
    pub resumed: bool,
}

/// Refuses to start a node whose directory holds an unfinished compaction.
pub fn refuse_unfinished(dir: &Path) -> Result<()> {
    let plan = dir.join(PLAN_FILE);
    if plan.exists() {
        return Err(Error::Config(format!(
            "{} exists: a ballot compaction of this cluster is unfinished; run `valthree paxos-compact-ballots` \
             again with every member's data directory before starting the node",
            plan.display()
        )));
    }
    Ok(())
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what} {}: {e}", path.display()))
}

/// The plan file's bytes: magic, the counters (big-endian), the FNV-1a digest of all before;
/// and that digest, which names the plan.
fn encode_plan(counters: &[u64]) -> (Vec<u8>, u64) {
    let mut out = PLAN_MAGIC.to_vec();
    for c in counters {
        out.extend_from_slice(&c.to_be_bytes());
    }
    let digest = fnv1a(&out);
    out.extend_from_slice(&digest.to_be_bytes());
    (out, digest)
}

fn decode_plan(bytes: &[u8], path: &Path) -> Result<(Vec<u64>, u64)> {
    let bad = || Error::Config(format!("{} is not a complete ballot compaction plan", path.display()));
    let body_len = bytes.len().checked_sub(8).ok_or_else(bad)?;
    let (body, digest) = bytes.split_at(body_len);
    let digest = u64::from_be_bytes(digest.try_into().map_err(|_| bad())?);
    let counters = body.strip_prefix(PLAN_MAGIC).ok_or_else(bad)?;
    if fnv1a(body) != digest || !counters.len().is_multiple_of(8) {
        return Err(bad());
    }
    let counters: Vec<u64> =
        counters.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect();
    if counters.windows(2).any(|w| w[0] >= w[1]) || counters.first() == Some(&0) {
        return Err(bad());
    }
    Ok((counters, digest))
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("cannot rename", &tmp, e))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot fsync", dir, e))
}

/// One member's acceptor database, open (and so locked against a node starting on it).
struct Acceptor {
    dir: PathBuf,
    db: Database,
}

impl Acceptor {
    fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("acceptor.redb");
        if !path.exists() {
            return Err(Error::Config(format!("{} does not exist: not a paxos node's data directory", path.display())));
        }
        let db = Database::open(&path)
            .map_err(|e| io("cannot open (is the node still running? stop the whole cluster first)", &path, e))?;
        Ok(Self { dir: dir.to_path_buf(), db })
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(META).map_err(db_error)?;
        Ok(table.get(name).map_err(db_error)?.map(|v| v.value().to_vec()))
    }

    fn config(&self) -> Result<Option<Config>> {
        self.meta(CONFIG)?.map(|json| serde_json::from_slice(&json).map_err(db_error)).transpose()
    }

    fn compacted_by(&self) -> Result<Option<u64>> {
        Ok(self.meta(COMPACTED)?.and_then(|b| Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))))
    }

    /// Adds every counter this acceptor holds to `counters`; returns its highest ballot.
    fn collect(&self, counters: &mut BTreeSet<u64>) -> Result<Ballot> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let slots = txn.open_table(SLOTS).map_err(db_error)?;
        let mut highest = Ballot::ZERO;
        let mut add = |b: Ballot| {
            counters.insert(b.counter);
            highest = highest.max(b);
        };
        for item in slots.iter().map_err(db_error)? {
            let (_, v) = item.map_err(db_error)?;
            slot_ballots(v.value())?.into_iter().for_each(&mut add);
        }
        let meta = txn.open_table(META).map_err(db_error)?;
        if let Some(floor) = meta.get(FLOOR).map_err(db_error)?.and_then(|v| decode_ballot(v.value())) {
            add(floor);
        }
        Ok(highest)
    }

    /// Rewrites every ballot by `map` and the counter to `top`, recording `digest`, in one
    /// transaction. Returns the slots rewritten.
    fn rewrite(&self, map: &impl Fn(Ballot) -> Result<Ballot>, top: u64, digest: u64) -> Result<u64> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut rewritten = 0u64;
        {
            let mut slots = txn.open_table(SLOTS).map_err(db_error)?;
            let mut after: Option<Vec<u8>> = None;
            loop {
                // A chunk of slots read, then written back (a table cannot change while read).
                let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                let mut bytes = 0usize;
                {
                    let range = match &after {
                        Some(a) => {
                            slots.range::<&[u8]>((std::ops::Bound::Excluded(a.as_slice()), std::ops::Bound::Unbounded))
                        }
                        None => slots.range::<&[u8]>(..),
                    };
                    for item in range.map_err(db_error)? {
                        let (k, v) = item.map_err(db_error)?;
                        let mapped = map_slot_ballots(v.value(), map)?;
                        bytes += k.value().len() + mapped.len();
                        chunk.push((k.value().to_vec(), mapped));
                        if bytes >= CHUNK_BYTES {
                            break;
                        }
                    }
                }
                let Some((last, _)) = chunk.last() else { break };
                after = Some(last.clone());
                for (k, v) in &chunk {
                    slots.insert(k.as_slice(), v.as_slice()).map_err(db_error)?;
                    rewritten += 1;
                }
            }
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let floor = meta.get(FLOOR).map_err(db_error)?.and_then(|v| decode_ballot(v.value()));
            if let Some(floor) = floor {
                let mut encoded = Vec::with_capacity(12);
                encode_ballot(&mut encoded, map(floor)?);
                meta.insert(FLOOR, encoded.as_slice()).map_err(db_error)?;
            }
            meta.insert(COUNTER, top.to_be_bytes().as_slice()).map_err(db_error)?;
            meta.insert(COMPACTED, digest.to_be_bytes().as_slice()).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(rewritten)
    }
}

/// Compacts the ballots of the stopped cluster whose members' data directories are `dirs`
/// (`(node id, directory)`); with `dry_run`, only reports what it would do.
pub fn compact(dirs: &[(NodeId, PathBuf)], dry_run: bool) -> Result<Compaction> {
    if dirs.is_empty() {
        return Err(Error::Config("no data directory given".into()));
    }
    let mut ids = BTreeSet::new();
    for (id, _) in dirs {
        if !ids.insert(*id) {
            return Err(Error::Config(format!("node {id} is given twice")));
        }
    }
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    for (i, (_, dir)) in dirs.iter().enumerate() {
        if dirs[..i].iter().any(|(_, earlier)| canonical(earlier) == canonical(dir)) {
            return Err(Error::Config(format!("{} is given twice", dir.display())));
        }
    }
    let acceptors: Vec<Acceptor> = dirs.iter().map(|(_, dir)| Acceptor::open(dir)).collect::<Result<_>>()?;
    // Every node a configuration names must be here.
    let newest = acceptors
        .iter()
        .map(Acceptor::config)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .max_by_key(|c| c.version);
    if let Some(config) = &newest {
        let missing: Vec<String> =
            config.everyone().iter().filter(|m| !ids.contains(&m.id)).map(|m| format!("n{}", m.id)).collect();
        if !missing.is_empty() {
            return Err(Error::Config(format!(
                "configuration {} names {} but no data directory was given for {}: every member's acceptor \
                 holds ballots, and all of them must be rewritten together",
                config.version,
                config.everyone().iter().map(|m| format!("n{}", m.id)).collect::<Vec<_>>().join(", "),
                missing.join(", ")
            )));
        }
    }

    // An interrupted compaction is finished with its own plan.
    let plans: Vec<Option<(Vec<u64>, u64)>> = acceptors
        .iter()
        .map(|a| {
            let path = a.dir.join(PLAN_FILE);
            match std::fs::read(&path) {
                Ok(bytes) => decode_plan(&bytes, &path).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io("cannot read", &path, e)),
            }
        })
        .collect::<Result<_>>()?;
    let pending = plans.iter().flatten().next().cloned();
    let resumed = pending.is_some();
    let (counters, digest, highest) = match pending {
        Some((counters, digest)) => {
            if plans.iter().flatten().any(|(_, d)| *d != digest) {
                return Err(Error::Config("the data directories hold different compaction plans".into()));
            }
            for (a, plan) in acceptors.iter().zip(&plans) {
                if plan.is_none() && a.compacted_by()? != Some(digest) {
                    return Err(Error::Config(format!(
                        "{} has neither the unfinished compaction's plan nor its result: was it part of this cluster?",
                        a.dir.display()
                    )));
                }
            }
            let highest = Ballot::new(counters.last().copied().unwrap_or(0), 0);
            (counters, digest, highest)
        }
        None => {
            let mut counters = BTreeSet::new();
            let mut highest = Ballot::ZERO;
            for a in &acceptors {
                highest = highest.max(a.collect(&mut counters)?);
            }
            counters.remove(&0);
            let counters: Vec<u64> = counters.into_iter().collect();
            let (_, digest) = encode_plan(&counters);
            (counters, digest, highest)
        }
    };
    let distinct = counters.len() as u64;
    let map = |b: Ballot| -> Result<Ballot> {
        if b.counter == 0 {
            return Ok(b);
        }
        // Every counter a database holds is in the plan (collected from them all while they
        // were locked); one that is not means a node ran on a directory mid-compaction, and
        // mapping it anywhere could break the order: the rewrite stops, uncommitted.
        match counters.binary_search(&b.counter) {
            Ok(i) => Ok(Ballot::new(i as u64 + 1, b.node)),
            Err(_) => Err(Error::Config(format!(
                "ballot {}.{} is not in the compaction plan: a node ran on these directories during the \
                 compaction; restore them from a backup",
                b.counter, b.node
            ))),
        }
    };
    if dry_run {
        return Ok(Compaction { distinct, highest, slots: vec![0; acceptors.len()], resumed });
    }
    if !resumed {
        let (plan, _) = encode_plan(&counters);
        for a in &acceptors {
            write_durably(&a.dir.join(PLAN_FILE), &plan)?;
        }
    }
    let mut slots = Vec::with_capacity(acceptors.len());
    for a in &acceptors {
        if a.compacted_by()? == Some(digest) && resumed {
            slots.push(0);
            continue;
        }
        slots.push(a.rewrite(&map, distinct, digest)?);
    }
    for a in &acceptors {
        let plan = a.dir.join(PLAN_FILE);
        std::fs::remove_file(&plan).map_err(|e| io("cannot remove", &plan, e))?;
        sync_dir(&plan)?;
    }
    Ok(Compaction { distinct, highest, slots, resumed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::paxos::acceptor::Request;
    use crate::mode::paxos::storage::{AcceptorMessage, Storage};
    use bytes::Bytes;

    /// Every slot of a database as `(key, its ballots)`, its floor and its counter.
    type Snapshot = (Vec<(Vec<u8>, Vec<Ballot>)>, Ballot, u64);

    fn snapshot(dir: &Path) -> Snapshot {
        let (s, rec) = Storage::open(&crate::node::FileSystem::real(), dir).unwrap();
        drop(s);
        let db = Database::open(dir.join("acceptor.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let slots = txn.open_table(SLOTS).unwrap();
        let all = slots
            .iter()
            .unwrap()
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.value().to_vec(), slot_ballots(v.value()).unwrap())
            })
            .collect();
        (all, rec.floor, rec.counter)
    }

    #[test]
    fn compaction_preserves_every_comparison_and_leaves_room_above() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let members: Vec<crate::node::Member> =
            (1..=3).map(|id| crate::node::Member { id, peer_addr: format!("127.0.0.1:{}", 7000 + id) }).collect();
        let config = Config { version: 1, members, previous: None, highest_id: 3, incarnations: Default::default() };
        let dirs: Vec<(NodeId, PathBuf)> = (1..=3).map(|id| (id, tmp.path().join(format!("n{id}")))).collect();
        // Counters from tiny to the followed limit and past it, shared between nodes.
        let counters = [1u64, 2, 5, 1 << 20, 1 << 40, Ballot::MAX_FOLLOWED, Ballot::MAX_FOLLOWED + 3, 1 << 62];
        for (_, dir) in &dirs {
            let (s, _) = Storage::open(&crate::node::FileSystem::real(), dir).unwrap();
            s.save_config(&config).unwrap();
            s.save_counter(1 << 62).unwrap();
            for k in 0..40 {
                let key = Bytes::from(format!("k{k}"));
                for _ in 0..3 {
                    let ballot = Ballot::new(counters[rng.usize(..counters.len())], rng.u32(1..=3));
                    let m = if rng.bool() {
                        Request::Prepare { ballot }
                    } else {
                        let value = rng.bool().then(|| Bytes::from(vec![b'v'; rng.usize(0..100)]));
                        Request::Accept { ballot, value, promise_next: rng.bool() }
                    };
                    s.handle(&[(key.clone(), AcceptorMessage::Paxos(m))], 1, Ballot::MAX_COUNTER).unwrap();
                }
            }
            // A collected tombstone gives the floor.
            let t = Bytes::from_static(b"tomb");
            let ballot = Ballot::new(1 << 20, 2);
            s.handle(
                &[(t.clone(), AcceptorMessage::Paxos(Request::Accept { ballot, value: None, promise_next: false }))],
                1,
                Ballot::MAX_COUNTER,
            )
            .unwrap();
            s.handle(&[(t, AcceptorMessage::Remove { ballot, config_version: 1 })], 1, Ballot::MAX_COUNTER).unwrap();
        }
        let before: Vec<_> = dirs.iter().map(|(_, d)| snapshot(d)).collect();
        // A member missing is refused, and so is a dry run's change.
        assert!(compact(&dirs[..2], false).unwrap_err().to_string().contains("n3"));
        let dry = compact(&dirs, true).unwrap();
        assert_eq!(dry.slots, vec![0, 0, 0]);
        assert_eq!(dirs.iter().map(|(_, d)| snapshot(d)).collect::<Vec<_>>(), before);

        let done = compact(&dirs, false).unwrap();
        assert!(!done.resumed);
        let after: Vec<_> = dirs.iter().map(|(_, d)| snapshot(d)).collect();
        let every = |s: &Vec<Snapshot>| -> Vec<Ballot> {
            s.iter().flat_map(|(slots, floor, _)| slots.iter().flat_map(|(_, b)| b.clone()).chain([*floor])).collect()
        };
        let (old, new) = (every(&before), every(&after));
        assert_eq!(old.len(), new.len());
        for i in 0..old.len() {
            for j in 0..old.len() {
                assert_eq!(old[i].cmp(&old[j]), new[i].cmp(&new[j]), "{:?} vs {:?}", old[i], old[j]);
            }
            assert_eq!(old[i].node, new[i].node, "node ids are kept");
            assert_eq!(old[i] == Ballot::ZERO, new[i] == Ballot::ZERO);
        }
        let top = new.iter().map(|b| b.counter).max().unwrap();
        assert_eq!(top, done.distinct);
        // The counters used, and the successors promised with one-round-trip accepts.
        assert!(top <= 2 * counters.len() as u64, "{top}");
        for (_, _, counter) in &after {
            assert_eq!(*counter, top, "every node resumes above every stored ballot");
        }
        assert!(dirs.iter().all(|(_, d)| !d.join(PLAN_FILE).exists()));
        for ((_, d), (slots, ..)) in dirs.iter().zip(&before) {
            let (_, after_slots) = (d, &snapshot(d).0);
            assert_eq!(
                slots.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                after_slots.iter().map(|(k, _)| k).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn an_interrupted_compaction_is_finished_with_its_plan_and_a_node_will_not_start_before() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<(NodeId, PathBuf)> = (1..=2).map(|id| (id, tmp.path().join(format!("n{id}")))).collect();
        for (i, (_, dir)) in dirs.iter().enumerate() {
            let (s, _) = Storage::open(&crate::node::FileSystem::real(), dir).unwrap();
            let ballot = Ballot::new(Ballot::MAX_FOLLOWED + i as u64, 1);
            let key = Bytes::from_static(b"k");
            s.handle(&[(key, AcceptorMessage::Paxos(Request::Prepare { ballot }))], 1, Ballot::MAX_COUNTER).unwrap();
        }
        // Interrupted after the plan was written and the first database rewritten.
        let counters = vec![Ballot::MAX_FOLLOWED, Ballot::MAX_FOLLOWED + 1];
        let (plan, digest) = encode_plan(&counters);
        for (_, dir) in &dirs {
            write_durably(&dir.join(PLAN_FILE), &plan).unwrap();
        }
        let map = |b: Ballot| match b.counter {
            0 => Ok(b),
            c => Ok(Ballot::new(counters.binary_search(&c).unwrap() as u64 + 1, b.node)),
        };
        Acceptor::open(&dirs[0].1).unwrap().rewrite(&map, 2, digest).unwrap();
        assert!(refuse_unfinished(&dirs[1].1).is_err(), "a node refuses to start mid-compaction");

        let done = compact(&dirs, false).unwrap();
        assert!(done.resumed);
        assert_eq!(done.slots, vec![0, 1]);
        for (i, (_, dir)) in dirs.iter().enumerate() {
            let (slots, _, counter) = snapshot(dir);
            assert_eq!(slots[0].1[0], Ballot::new(i as u64 + 1, 1));
            assert_eq!(counter, 2);
            assert!(refuse_unfinished(dir).is_ok());
        }
    }
}
