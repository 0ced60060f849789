//! Restore: an RDB file into the keyspace, through several connections at once.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;

use bytes::Bytes;
use indicatif::ProgressBar;
use redis_protocol::resp2::types::BytesFrame;
use tokio::sync::mpsc;

use super::conn::{Conn, describe};
use super::retry::Policy;
use super::route::{Failover, Router, Routes};
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
/// Writers in paxos mode: each sends its batch's SETs to their keys' homes, every node at
/// once, so what is in flight on each node is the number of writers (each node runs one
/// connection's SETs in order) — about as much, cluster-wide, as 128 connections of one
/// node each.
const PAXOS_WRITERS: usize = 48;
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
                connections: if mode == "paxos" { PAXOS_WRITERS } else { 128 },
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
    // The first node that takes a connection: any node serves the whole keyspace.
    let mut conn = super::conn::connect_any(&target.addrs, target.password.as_deref()).await?;
    let addr = conn.addr().to_string();
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
    // It is a read: refused, it goes to the next node.
    let addrs = Arc::new(addrs);
    if !replace {
        let mut first = Failover::with(conn, addrs.clone(), target.password.clone(), Policy::READS);
        let keys = match first.call(vec![Bytes::from_static(b"DBSIZE")]).await? {
            BytesFrame::Integer(n) => n.max(0) as u64,
            other => return Err(format!("{}: DBSIZE answered {}", first.addr(), describe(&other))),
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
    // paxos: each key's SET to its home, so that none is forwarded over the peer plane.
    let routes = Arc::new(match mode.as_str() {
        "paxos" => Routes::learn(&addrs, target.password.as_deref()).await,
        _ => Routes::default(),
    });
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..connections {
        let mut writer = Writer::new(addrs.clone(), target.password.clone(), routes.clone(), i, Policy::WRITES);
        let (batches_rx, done_tx) = (batches_rx.clone(), done_tx.clone());
        writers.spawn(async move {
            while let Some(batch) = batches_rx.recv().await {
                let span = batch.span;
                let written = writer.write(batch).await;
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
        Some(e) => Err(format!(
            "{e}: the restore stopped, {} keys restored before it (a restore of the same file with \
             --replace writes them again and the rest)",
            report.restored
        )),
        None => Ok(report),
    }
}

/// A writer's connections: one that moves on to the next node when an MSET fails, and one
/// to every node (pipelines of SETs, each to its key's route's
/// node: in paxos mode its home). Every write is sent again when it is refused with a
/// reply that says it may be ([`super::route::retryable`]: `-TRYAGAIN`, `-UNCERTAIN`,
/// `-LOADING`) or its connection breaks, as [`Policy::WRITES`] says: writing the file's
/// value to a key twice is harmless.
struct Writer {
    one: Failover,
    each: Router,
}

impl Writer {
    /// Starts at the `i`-th node (modulo their number) for keys without a home.
    fn new(addrs: Arc<Vec<String>>, password: Option<String>, routes: Arc<Routes>, i: usize, policy: Policy) -> Self {
        Writer {
            one: Failover::new(addrs.clone(), password.clone(), i, policy),
            each: Router::new(addrs, password, routes, i, policy),
        }
    }

    /// Writes `batch`: one MSET, or every pair's SET. Answers the keys written, or why the
    /// batch could not be, with the tries it took.
    async fn write(&mut self, batch: Batch) -> Result<u64, String> {
        let written = batch.pairs.len() as u64;
        if batch.mset {
            let mset = std::iter::once(Bytes::from_static(b"MSET"))
                .chain(batch.pairs.iter().flat_map(|(key, value)| [key.clone(), value.clone()]))
                .collect();
            return match self.one.call(mset).await {
                Ok(BytesFrame::SimpleString(ok)) if ok.as_ref() == b"OK" => Ok(written),
                Ok(other) => Err(format!("{}: MSET of {written} keys answered {}", self.one.addr(), describe(&other))),
                Err(e) => Err(format!("MSET of {written} keys: {e}")),
            };
        }
        let keys: Vec<Bytes> = batch.pairs.iter().map(|(key, _)| key.clone()).collect();
        let replies = self
            .each
            .each(&keys, |i| set(&batch.pairs[i].0, &batch.pairs[i].1))
            .await
            .map_err(|e| format!("SETs of {} keys: {e}", keys.len()))?;
        for (key, reply) in keys.iter().zip(replies) {
            match reply {
                BytesFrame::SimpleString(ok) if ok.as_ref() == b"OK" => {}
                other => return Err(format!("SET {} answered {}", printable(key), describe(&other))),
            }
        }
        Ok(written)
    }
}

fn set(key: &Bytes, value: &Bytes) -> Vec<Bytes> {
    vec![Bytes::from_static(b"SET"), key.clone(), value.clone()]
}

/// A key for an error message: its first 64 bytes, lossily as text.
fn printable(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(&key[..key.len().min(64)]))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use redis_protocol::codec::Resp2;
    use tokio_util::codec::Framed;

    use super::*;

    /// A server that answers its first `refusals` requests with `-UNCERTAIN` and the rest
    /// with +OK; it counts the requests.
    async fn uncertain_server(refusals: u32) -> (String, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let asked = Arc::new(AtomicU32::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let asked = asked.clone();
                tokio::spawn(async move {
                    let mut framed = Framed::new(stream, Resp2::default());
                    while let Some(Ok(_)) = framed.next().await {
                        let reply = match asked.fetch_add(1, Ordering::SeqCst) < refusals {
                            true => BytesFrame::Error("UNCERTAIN the write may have been committed".into()),
                            false => BytesFrame::SimpleString("OK".into()),
                        };
                        if framed.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, count)
    }

    /// A policy as patient in tries as a restore's, with pauses short enough for a test.
    const QUICK: Policy = Policy {
        first: Duration::from_millis(1),
        max: Duration::from_millis(20),
        patience: Duration::from_millis(300),
    };

    fn batch(mset: bool) -> Batch {
        let pairs = (0..3).map(|i| (Bytes::from(format!("k{i}")), Bytes::from(format!("v{i}")))).collect();
        Batch { mset, pairs, span: 0 }
    }

    fn writer(addr: String) -> Writer {
        Writer::new(Arc::new(vec![addr]), None, Arc::default(), 0, QUICK)
    }

    /// An MSET answered -UNCERTAIN is sent again until it is taken: a raft restore of
    /// 1,000,000 keys once failed at 440,000 when one MSET was answered -UNCERTAIN six times
    /// (five retries). Its keys get the file's values whether it applied once or more.
    #[tokio::test]
    async fn an_uncertain_mset_is_sent_again_until_it_is_taken() {
        let (addr, asked) = uncertain_server(8).await;
        assert_eq!(writer(addr).write(batch(true)).await, Ok(3));
        assert_eq!(asked.load(Ordering::SeqCst), 9);
    }

    /// So are SETs, each alone.
    #[tokio::test]
    async fn uncertain_sets_are_sent_again_until_they_are_taken() {
        let (addr, asked) = uncertain_server(8).await;
        assert_eq!(writer(addr).write(batch(false)).await, Ok(3));
        assert!(asked.load(Ordering::SeqCst) >= 11, "{asked:?}");
    }

    /// A cluster that never takes the write ends the restore with an error that says which
    /// write, what the node answered, and how long it was tried.
    #[tokio::test]
    async fn a_write_never_taken_fails_with_what_was_tried() {
        let (addr, _) = uncertain_server(u32::MAX).await;
        let e = writer(addr.clone()).write(batch(true)).await.unwrap_err();
        assert!(e.starts_with(&format!("MSET of 3 keys: {addr}: -UNCERTAIN")), "{e}");
        assert!(e.contains("gave up") && e.contains("(tried 20 times"), "{e}");
        let (addr, _) = uncertain_server(u32::MAX).await;
        let e = writer(addr).write(batch(false)).await.unwrap_err();
        assert!(e.starts_with("SETs of 3 keys: ") && e.contains("-UNCERTAIN") && e.contains("gave up"), "{e}");
    }
}
