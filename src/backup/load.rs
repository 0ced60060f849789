//! Restore: an RDB file into the keyspace, through several connections at once.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use bytes::Bytes;
use indicatif::ProgressBar;
use redis_protocol::resp2::types::BytesFrame;
use tokio::sync::mpsc;

use super::conn::{Conn, describe};
use super::{Target, work_queue};
use crate::rdb::{RdbReader, Value};

/// The most keys one pipeline of SETs carries (paxos and dynamo mode)...
const SET_BATCH_KEYS: usize = 256;
/// ...and about the most bytes (one larger value still goes alone).
const SET_BATCH_BYTES: usize = 8 << 20;
/// The most keys one MSET carries (raft mode, and a server that is not valthree)...
const MSET_KEYS: usize = 10_000;
/// ... and in s3 mode, where what matters is the bytes: a commit that changes more than
/// 1,024 keys writes the whole keyspace as a new snapshot (`mode::s3::commit::DIFF_KEYS`),
/// so every MSET of a restore (or the several a group commit joins) costs a snapshot of all
/// the keys restored so far, and the fewer and larger the MSETs, the fewer the snapshots.
const S3_MSET_KEYS: usize = 1 << 20;
/// About the most bytes of keys and values one MSET carries in s3 mode (one document swap,
/// joined with the other connections' MSETs by the node's group commit), and from a Redis
/// server...
const MSET_BYTES: usize = 8 << 20;
/// ...and in raft mode, where an MSET is one log entry and refused over 4 MiB of keys,
/// values and 4 bytes a pair (`mode::raft::MAX_UNSPLIT`): well under it.
const RAFT_MSET_BYTES: usize = 3 << 20;
/// A pair larger than this goes as a SET of its own in raft mode: raft sends a SET's value
/// in chunks, and an MSET in one entry.
const RAFT_MSET_PAIR: usize = 512 << 10;
/// How often a write answered `-TRYAGAIN` or `-UNCERTAIN` is sent again.
const RETRIES: u32 = 5;
/// What `CONFIG GET proto-max-bulk-len` is taken to be on a server that does not answer it:
/// Redis' default, and valthree's.
const DEFAULT_PROTO_MAX_BULK_LEN: u64 = 512 << 20;

/// How restore writes in each mode.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Pairs go in MSETs (one atomic write each) rather than pipelines of SETs.
    mset: bool,
    /// The most bytes (keys, values, 4 a pair) of one batch.
    batch_bytes: usize,
    /// The most keys of one batch.
    batch_keys: usize,
    /// A pair larger than this goes alone, as a SET.
    alone_over: usize,
    /// Connections working at once unless `--connections` says.
    connections: usize,
}

impl Plan {
    /// s3: MSETs through one node (a write anywhere is a swap of the one document, so
    /// writes through several nodes only conflict; the node's group commit joins the
    /// MSETs in flight into one PUT). raft: MSETs of one log entry each. paxos and dynamo
    /// cannot write several keys as one, so pipelines of SETs through many connections: a
    /// node runs one connection's requests in order, so what is in flight is the number of
    /// connections.
    fn for_mode(mode: &str) -> Plan {
        let mset = |batch_bytes, alone_over, connections| Plan {
            mset: true,
            batch_bytes,
            batch_keys: MSET_KEYS,
            alone_over,
            connections,
        };
        match mode {
            "s3" => Plan { batch_keys: S3_MSET_KEYS, ..mset(MSET_BYTES, MSET_BYTES, 8) },
            "raft" => mset(RAFT_MSET_BYTES, RAFT_MSET_PAIR, 8),
            "paxos" | "dynamo" => Plan {
                mset: false,
                batch_bytes: SET_BATCH_BYTES,
                batch_keys: SET_BATCH_KEYS,
                alone_over: usize::MAX,
                connections: 128,
            },
            _ => mset(MSET_BYTES, MSET_BYTES, 8),
        }
    }
}

/// One batch for a writer: pairs for one MSET, or for a pipeline of SETs.
struct Batch {
    mset: bool,
    pairs: Vec<(Bytes, Bytes)>,
    /// The bytes of the file its entries take, for the progress bar: the file is read ahead
    /// of the writes by the batches queued and in flight (most of a small file at once), so
    /// the bar counts the bytes whose keys are written.
    span: u64,
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// The file's RDB version.
    pub version: u32,
    /// String keys written.
    pub restored: u64,
    /// Keys of other types, by type name, not restored.
    pub skipped_types: BTreeMap<&'static str, u64>,
    /// Keys of databases other than 0, not restored.
    pub skipped_other_db: u64,
    /// Keys whose expiry had passed, not restored.
    pub skipped_expired: u64,
    /// Keys restored without the expiry they had in the file.
    pub expiry_dropped: u64,
    /// Function libraries in the file, not restored.
    pub skipped_functions: u64,
}

impl RestoreReport {
    /// Every key of the file that was not restored.
    pub fn skipped(&self) -> u64 {
        self.skipped_types.values().sum::<u64>() + self.skipped_other_db + self.skipped_expired
    }
}

/// What [`verify`] learnt of a file.
#[derive(Debug, Default)]
pub struct FileSummary {
    /// The longest string (key or value) a restore would send, and the key it belongs to.
    pub longest: Option<(usize, Bytes)>,
}

/// Reads the RDB file `input` through to its end without writing anything: its structure
/// and its checksum, which is checked only at the end. A restore runs this first, so a file
/// with one flipped bit is refused whole instead of being restored and then found corrupt
/// (Redis refuses to load such a file too), and a value the server would refuse is found
/// before anything is written.
pub fn verify<R: BufRead>(input: R) -> Result<FileSummary, String> {
    let mut reader = RdbReader::new(input).map_err(|e| e.to_string())?;
    let mut summary = FileSummary::default();
    while let Some(entry) = reader.next_entry().map_err(|e| e.to_string())? {
        if let (0, Value::String(value)) = (entry.db, &entry.value) {
            let len = value.len().max(entry.key.len());
            if summary.longest.as_ref().is_none_or(|(longest, _)| len > *longest) {
                summary.longest = Some((len, entry.key.clone()));
            }
        }
    }
    Ok(summary)
}

/// The longest bulk string the server takes: `CONFIG GET proto-max-bulk-len` (valthree and
/// Redis answer it), or Redis' default from a server that does not say.
async fn proto_max_bulk_len(conn: &mut Conn) -> u64 {
    let ask =
        vec![Bytes::from_static(b"CONFIG"), Bytes::from_static(b"GET"), Bytes::from_static(b"proto-max-bulk-len")];
    match conn.call(ask).await {
        Ok(BytesFrame::Array(parts)) => match parts.as_slice() {
            [_, BytesFrame::BulkString(n)] => {
                std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_PROTO_MAX_BULK_LEN)
            }
            _ => DEFAULT_PROTO_MAX_BULK_LEN,
        },
        _ => DEFAULT_PROTO_MAX_BULK_LEN,
    }
}

/// Loads the RDB file `input`, which [`verify`] summed up as `summary`, into the target.
/// Refuses a database that holds keys unless `replace`, and a file with a string longer than
/// the server takes, before writing anything.
pub async fn restore<R: BufRead>(
    target: &Target,
    input: R,
    summary: &FileSummary,
    replace: bool,
    progress: &ProgressBar,
) -> Result<RestoreReport, String> {
    let mut reader = RdbReader::new(input).map_err(|e| e.to_string())?;
    let mut report = RestoreReport { version: reader.version(), ..Default::default() };
    let addr = target.addrs.first().ok_or("no address given")?;
    let mut conn = Conn::connect(addr, target.password.as_deref()).await?;
    let mode = conn.server_mode().await;
    let plan = Plan::for_mode(&mode);
    let addrs = match mode.as_str() {
        "s3" => vec![addr.clone()],
        _ => target.addrs.clone(),
    };
    let connections = target.connections.unwrap_or(plan.connections).max(1);
    let limit = proto_max_bulk_len(&mut conn).await;
    if let Some((longest, key)) = &summary.longest
        && *longest as u64 > limit
    {
        return Err(format!(
            "the file holds a string of {longest} bytes (key {:?}), longer than the server's \
             proto-max-bulk-len of {limit}: nothing was restored (start the nodes with a larger \
             --proto-max-bulk-len)",
            String::from_utf8_lossy(&key[..key.len().min(64)])
        ));
    }
    // Only an empty database is restored into without `replace` (DBSIZE is a full read in
    // paxos and dynamo mode, cheap when there is nothing to read, and not needed otherwise).
    if !replace {
        let keys = match conn.call(vec![Bytes::from_static(b"DBSIZE")]).await? {
            BytesFrame::Integer(n) => n.max(0) as u64,
            other => return Err(format!("{addr}: DBSIZE answered {}", describe(&other))),
        };
        if keys > 0 {
            return Err(format!(
                "the database holds {keys} keys: restore into an empty one, or pass --replace to \
                 overwrite the keys the file holds (other keys stay)"
            ));
        }
    }
    let (batches_tx, batches_rx) = work_queue::<Batch>(connections * 2);
    // Each batch's span of the file, and the keys its writer wrote (or why it failed).
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, Result<u64, String>)>();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..connections {
        let addr = addrs[i % addrs.len()].clone();
        let password = target.password.clone();
        let (batches_rx, done_tx) = (batches_rx.clone(), done_tx.clone());
        writers.spawn(async move {
            let mut conn = match Conn::connect(&addr, password.as_deref()).await {
                Ok(conn) => conn,
                Err(e) => return drop(done_tx.send((0, Err(e)))),
            };
            while let Some(batch) = batches_rx.recv().await {
                let span = batch.span;
                let written = write_batch(&mut conn, batch).await;
                let failed = written.is_err();
                if done_tx.send((span, written)).is_err() || failed {
                    return;
                }
            }
        });
    }
    drop((batches_rx, done_tx));
    let now_ms = crate::node::now_ms() as i64;
    let (mut batch, mut batch_bytes, mut batch_start) = (Vec::new(), 0usize, 0u64);
    let mut failure = None;
    loop {
        // A writer's failure stops the reading at once.
        while let Ok((span, done)) = done_rx.try_recv() {
            match done {
                Ok(n) => report.restored += n,
                Err(e) => failure = Some(e),
            }
            progress.inc(span);
        }
        if failure.is_some() {
            break;
        }
        let before = reader.offset();
        let Some(entry) = reader.next_entry().map_err(|e| e.to_string())? else { break };
        if entry.db != 0 {
            report.skipped_other_db += 1;
            continue;
        }
        let value = match entry.value {
            Value::String(value) => value,
            Value::Skipped(kind) => {
                *report.skipped_types.entry(kind.name()).or_default() += 1;
                continue;
            }
        };
        match entry.expires_at_ms {
            Some(at) if at <= now_ms => {
                report.skipped_expired += 1;
                continue;
            }
            Some(_) => report.expiry_dropped += 1,
            None => {}
        }
        let weight = entry.key.len() + value.len() + 4;
        if weight > plan.alone_over {
            let span = reader.offset() - before;
            if batches_tx.send(Batch { mset: false, pairs: vec![(entry.key, value)], span }).await.is_err() {
                break; // every writer stopped: the reason is in `done_rx`
            }
            continue;
        }
        if !batch.is_empty() && batch_bytes + weight > plan.batch_bytes {
            let full = Batch { mset: plan.mset, pairs: std::mem::take(&mut batch), span: before - batch_start };
            batch_bytes = 0;
            if batches_tx.send(full).await.is_err() {
                break;
            }
        }
        if batch.is_empty() {
            batch_start = before;
        }
        batch_bytes += weight;
        batch.push((entry.key, value));
        if batch.len() >= plan.batch_keys {
            batch_bytes = 0;
            let span = reader.offset() - batch_start;
            let full = Batch { mset: plan.mset, pairs: std::mem::take(&mut batch), span };
            if batches_tx.send(full).await.is_err() {
                break;
            }
        }
    }
    report.skipped_functions = reader.functions_skipped();
    if failure.is_none() && !batch.is_empty() {
        let span = reader.offset() - batch_start;
        let _ = batches_tx.send(Batch { mset: plan.mset, pairs: batch, span }).await;
    }
    drop(batches_tx);
    while let Some((span, done)) = done_rx.recv().await {
        match done {
            Ok(n) => report.restored += n,
            Err(e) => failure = failure.or(Some(e)),
        }
        progress.inc(span);
    }
    writers.abort_all();
    progress.finish_and_clear();
    match failure {
        Some(e) => Err(format!("{e} (restored {} keys before the failure)", report.restored)),
        None => Ok(report),
    }
}

/// Writes `batch`: one MSET, or every pair's SET in one pipeline. A write answered with an
/// error that says it may be retried is sent again (writing the same values twice is
/// harmless), with a pause that grows.
async fn write_batch(conn: &mut Conn, batch: Batch) -> Result<u64, String> {
    if batch.mset {
        let mut mset = Vec::with_capacity(1 + batch.pairs.len() * 2);
        mset.push(Bytes::from_static(b"MSET"));
        for (key, value) in &batch.pairs {
            mset.push(key.clone());
            mset.push(value.clone());
        }
        let mut attempt = 0;
        loop {
            match conn.call(mset.clone()).await? {
                BytesFrame::SimpleString(ok) if ok.as_ref() == b"OK" => return Ok(batch.pairs.len() as u64),
                BytesFrame::Error(e)
                    if attempt < RETRIES && (e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN")) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => {
                    return Err(format!(
                        "{}: MSET of {} keys answered {}",
                        conn.addr(),
                        batch.pairs.len(),
                        describe(&other)
                    ));
                }
            }
        }
    }
    let batch = batch.pairs;
    let set = |key: &Bytes, value: &Bytes| vec![Bytes::from_static(b"SET"), key.clone(), value.clone()];
    let requests = batch.iter().map(|(k, v)| set(k, v)).collect();
    let replies = conn.pipeline(requests).await?;
    for ((key, value), mut reply) in batch.iter().zip(replies) {
        let mut attempt = 0;
        loop {
            match &reply {
                BytesFrame::SimpleString(ok) if ok.as_ref() == b"OK" => break,
                BytesFrame::Error(e)
                    if attempt < RETRIES && (e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN")) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    reply = conn.call(set(key, value)).await?;
                }
                other => {
                    return Err(format!(
                        "{}: SET {:?} answered {}",
                        conn.addr(),
                        String::from_utf8_lossy(&key[..key.len().min(64)]),
                        describe(other)
                    ));
                }
            }
        }
    }
    Ok(batch.len() as u64)
}
