//! Backup: the keyspace to an RDB file, from one snapshot or key by key.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use indicatif::ProgressBar;
use redis_protocol::resp2::types::BytesFrame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::conn::{Conn, describe};
use super::retry::Policy;
use super::route::{Failover, Router, Routes};
use super::{Target, work_queue};
use crate::rdb::RdbWriter;

/// Entries one `VALTHREE.SNAPSHOT NEXT` asks for.
const SNAPSHOT_PAGE: usize = 1000;
/// Keys one SCAN asks for, and the most one batch of reads carries.
const SCAN_COUNT: usize = 500;
/// How many key batches wait for a reader, and value batches for the writer.
const QUEUE: usize = 4;
/// About the most bytes of values one read asks for: keys are read in groups this large (by
/// the lengths STRLEN gave), and a larger value is read alone.
const GROUP_BYTES: usize = 1 << 20;
/// The bytes of values read and not yet written that all readers may hold together (a
/// single larger value is read alone, once the others are written).
const MEMORY_BUDGET: usize = 64 << 20;
/// Readers of a key-by-key backup unless `--connections` says. A reader sends a page's
/// reads to each node at once, in pipelines that the node runs [`MAX_WINDOW`](super::route::MAX_WINDOW) at a time, so
/// what is in flight is up to about this times [`MAX_WINDOW`](super::route::MAX_WINDOW) per node.
const READERS: usize = 32;
/// ... in paxos mode, where each read is a round that writes the value back (fsync'd on a
/// quorum): fewer readers keep a loaded machine's rounds within their timeouts.
const PAXOS_READERS: usize = 8;

/// What a backup wrote.
#[derive(Debug, Default)]
pub struct BackupReport {
    /// The mode the cluster runs (from INFO).
    pub mode: String,
    /// How the keyspace was read: the snapshot's point in time, or "key by key".
    pub read: String,
    /// String keys written.
    pub keys: u64,
    /// Bytes of keys and values written.
    pub bytes: u64,
    /// dynamo mode: keys that had siblings (their value is the one GET picked).
    pub with_siblings: Vec<Bytes>,
    /// Keys SCAN listed that were gone when read.
    pub vanished: u64,
}

/// Writes the target's keyspace to `out` as an RDB file.
pub async fn backup<W: Write>(target: &Target, out: W, progress: &ProgressBar) -> Result<BackupReport, String> {
    let mut conn = super::conn::connect_any(&target.addrs, target.password.as_deref()).await?;
    let mode = conn.server_mode().await;
    let aux = [("valthree-ver", env!("CARGO_PKG_VERSION")), ("valthree-mode", mode.as_str()), ("redis-bits", "64")];
    let mut report = BackupReport { mode: mode.clone(), ..Default::default() };
    match mode.as_str() {
        "s3" | "raft" => from_snapshot(&mut conn, out, &aux, progress, &mut report).await?,
        _ => key_by_key(target, conn, out, &aux, progress, &mut report).await?,
    }
    progress.finish_and_clear();
    Ok(report)
}

async fn from_snapshot<W: Write>(
    conn: &mut Conn,
    out: W,
    aux: &[(&str, &str)],
    progress: &ProgressBar,
    report: &mut BackupReport,
) -> Result<(), String> {
    let begin = conn.call(vec![Bytes::from_static(b"VALTHREE.SNAPSHOT"), Bytes::from_static(b"BEGIN")]).await?;
    let (keys, taken_at) = match &begin {
        BytesFrame::Array(parts) => match parts.as_slice() {
            [BytesFrame::Integer(keys), BytesFrame::BulkString(at)] => {
                (*keys as u64, String::from_utf8_lossy(at).into())
            }
            _ => return Err(format!("{}: VALTHREE.SNAPSHOT BEGIN answered {}", conn.addr(), describe(&begin))),
        },
        other => return Err(format!("{}: VALTHREE.SNAPSHOT BEGIN answered {}", conn.addr(), describe(other))),
    };
    report.read = taken_at;
    progress.set_length(keys);
    let mut writer = RdbWriter::new(out, aux, Some(keys)).map_err(|e| e.to_string())?;
    let next = vec![
        Bytes::from_static(b"VALTHREE.SNAPSHOT"),
        Bytes::from_static(b"NEXT"),
        Bytes::from(SNAPSHOT_PAGE.to_string()),
    ];
    loop {
        let page = match conn.call(next.clone()).await? {
            BytesFrame::Array(page) => page,
            other => return Err(format!("{}: VALTHREE.SNAPSHOT NEXT answered {}", conn.addr(), describe(&other))),
        };
        if page.is_empty() {
            break;
        }
        for pair in page.chunks(2) {
            let [BytesFrame::BulkString(key), BytesFrame::BulkString(value)] = pair else {
                return Err(format!("{}: a snapshot page holds something other than key, value", conn.addr()));
            };
            writer.write_string(key, value).map_err(|e| e.to_string())?;
            report.bytes += (key.len() + value.len()) as u64;
        }
        progress.set_position(writer.keys());
    }
    report.keys = writer.keys();
    if report.keys != keys {
        return Err(format!("the snapshot announced {keys} keys and gave {}", report.keys));
    }
    writer.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// A batch of keys read: each key with its value (`None`: gone) and, in dynamo mode,
/// whether it had siblings; and the share of the memory budget it holds until written.
struct ReadBatch {
    entries: Vec<(Bytes, Option<Bytes>, bool)>,
    _budget: OwnedSemaphorePermit,
}

async fn key_by_key<W: Write>(
    target: &Target,
    mut conn: Conn,
    out: W,
    aux: &[(&str, &str)],
    progress: &ProgressBar,
    report: &mut BackupReport,
) -> Result<(), String> {
    report.read = "key by key".into();
    let dynamo = report.mode == "dynamo";
    // The bar's length from INFO's local count: DBSIZE would read every key through a quorum
    // in these modes, doubling the work for an estimate.
    if let Ok(BytesFrame::BulkString(info)) =
        conn.call(vec![Bytes::from_static(b"INFO"), Bytes::from_static(b"keyspace")]).await
    {
        let keys = String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix("db0:keys=").and_then(|rest| rest.split(',').next()?.parse::<u64>().ok()));
        if let Some(keys) = keys {
            progress.set_length(keys);
        }
    }
    let addrs = Arc::new(target.addrs.clone());
    let budget = Arc::new(Semaphore::new(MEMORY_BUDGET >> 10));
    let (keys_tx, keys_rx) = work_queue(QUEUE);
    let (values_tx, mut values_rx) = mpsc::channel::<Result<ReadBatch, String>>(QUEUE);
    // Readers: each with a connection to each node, sending each key to its route's node
    // (paxos: its home) and a refused one to the next.
    let (routes, default_readers) = match report.mode.as_str() {
        "paxos" => (Routes::learn(&target.addrs, target.password.as_deref()).await, PAXOS_READERS),
        _ => (Routes::default(), READERS),
    };
    let routes = Arc::new(routes);
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..target.connections.unwrap_or(default_readers).max(1) {
        let mut reader = Router::new(addrs.clone(), target.password.clone(), routes.clone(), i, Policy::READS);
        let (keys_rx, values_tx, budget) = (keys_rx.clone(), values_tx.clone(), budget.clone());
        readers.spawn(async move {
            while let Some(keys) = keys_rx.recv().await {
                if let Err(e) = read_keys(&mut reader, keys, dynamo, &budget, &values_tx).await {
                    let _ = values_tx.send(Err(e)).await;
                    return;
                }
            }
        });
    }
    drop((keys_rx, values_tx));
    // The scanner: SCAN until the cursor comes back to 0 (from any node: a cursor means the
    // same on each).
    let mut scan_node = Failover::with(conn, addrs.clone(), target.password.clone(), Policy::READS);
    let scanner = tokio::spawn(async move {
        let mut cursor = Bytes::from_static(b"0");
        loop {
            let scan = vec![
                Bytes::from_static(b"SCAN"),
                cursor.clone(),
                Bytes::from_static(b"COUNT"),
                Bytes::from(SCAN_COUNT.to_string()),
            ];
            let reply = scan_node.call(scan).await?;
            let BytesFrame::Array(parts) = &reply else {
                return Err(format!("{}: SCAN answered {}", scan_node.addr(), describe(&reply)));
            };
            let [BytesFrame::BulkString(next), BytesFrame::Array(keys)] = parts.as_slice() else {
                return Err(format!("{}: SCAN answered {}", scan_node.addr(), describe(&reply)));
            };
            let keys: Vec<Bytes> = keys
                .iter()
                .filter_map(|k| match k {
                    BytesFrame::BulkString(k) => Some(k.clone()),
                    _ => None,
                })
                .collect();
            if !keys.is_empty() && keys_tx.send(keys).await.is_err() {
                return Ok(()); // the readers stopped: their error tells why
            }
            if next.as_ref() == b"0" {
                return Ok(());
            }
            cursor = next.clone();
        }
    });
    let mut writer = RdbWriter::new(out, aux, None).map_err(|e| e.to_string())?;
    let mut seen: HashSet<Bytes> = HashSet::new();
    let mut failure = None;
    while let Some(batch) = values_rx.recv().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for (key, value, siblings) in batch.entries {
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some(value) = value else {
                report.vanished += 1;
                continue;
            };
            if siblings {
                report.with_siblings.push(key.clone());
            }
            writer.write_string(&key, &value).map_err(|e| e.to_string())?;
            report.bytes += (key.len() + value.len()) as u64;
        }
        progress.set_position(writer.keys());
    }
    drop(values_rx);
    readers.abort_all();
    let scanned = scanner.await.map_err(|e| format!("the SCAN task failed: {e}"))?;
    if let Some(e) = failure {
        return Err(e);
    }
    scanned?;
    report.keys = writer.keys();
    writer.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads one SCAN page of keys: their lengths first (STRLEN), then the values in groups of
/// about [`GROUP_BYTES`] (a larger value alone), each group once the memory budget has room
/// for it, so what is held at once is bounded by bytes, not by keys.
async fn read_keys(
    reader: &mut Router,
    keys: Vec<Bytes>,
    dynamo: bool,
    budget: &Arc<Semaphore>,
    values_tx: &mpsc::Sender<Result<ReadBatch, String>>,
) -> Result<(), String> {
    let lengths = reader.each(&keys, |i| vec![Bytes::from_static(b"STRLEN"), keys[i].clone()]).await?;
    let mut group: Vec<Bytes> = Vec::new();
    let mut group_bytes = 0usize;
    let mut groups = Vec::new();
    for (key, length) in keys.into_iter().zip(lengths) {
        let length = match length {
            BytesFrame::Integer(n) => usize::try_from(n).unwrap_or(0),
            other => return Err(format!("STRLEN {} answered {}", printable(&key), describe(&other))),
        };
        if !group.is_empty() && group_bytes + length > GROUP_BYTES {
            groups.push((std::mem::take(&mut group), group_bytes));
            group_bytes = 0;
        }
        group_bytes += key.len() + length;
        group.push(key);
    }
    if !group.is_empty() {
        groups.push((group, group_bytes));
    }
    for (keys, bytes) in groups {
        // Budget in KiB; a value larger than the whole budget waits until it is all free.
        let kib = u32::try_from(bytes.div_ceil(1024).clamp(1, MEMORY_BUDGET >> 10)).unwrap_or(u32::MAX);
        let permit = budget.clone().acquire_many_owned(kib).await.map_err(|e| e.to_string())?;
        let entries = read_group(reader, keys, dynamo).await?;
        if values_tx.send(Ok(ReadBatch { entries, _budget: permit })).await.is_err() {
            return Ok(()); // the writer stopped: its error tells why
        }
    }
    Ok(())
}

/// Reads a group of keys: a GET of each (each key linearizable on its own, answered on its
/// own: one refused is read again alone), or in dynamo mode `VGET key WITHDOTS` of each,
/// which gives every sibling with its timestamp and dot, so one read yields both the value
/// GET picks and whether there were siblings.
async fn read_group(
    reader: &mut Router,
    keys: Vec<Bytes>,
    dynamo: bool,
) -> Result<Vec<(Bytes, Option<Bytes>, bool)>, String> {
    if !dynamo {
        let replies = reader.each(&keys, |i| vec![Bytes::from_static(b"GET"), keys[i].clone()]).await?;
        return keys
            .into_iter()
            .zip(replies)
            .map(|(key, reply)| match reply {
                BytesFrame::BulkString(v) => Ok((key, Some(v), false)),
                BytesFrame::Null => Ok((key, None, false)),
                other => Err(format!("GET {} answered {}", printable(&key), describe(&other))),
            })
            .collect();
    }
    let vget = |i: usize| vec![Bytes::from_static(b"VGET"), keys[i].clone(), Bytes::from_static(b"WITHDOTS")];
    let replies = reader.each(&keys, vget).await?;
    let mut batch = Vec::with_capacity(keys.len());
    for (key, reply) in keys.into_iter().zip(replies) {
        let (value, live) =
            picked(&reply).ok_or_else(|| format!("VGET {} answered {}", printable(&key), describe(&reply)))?;
        batch.push((key, value, live > 1));
    }
    Ok(batch)
}

/// A key for an error message: its first 64 bytes, lossily as text.
fn printable(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(&key[..key.len().min(64)]))
}

/// From `VGET key WITHDOTS`'s `[context, [dot, timestamp-ms, value-or-nil], ...]` (siblings
/// in dot order): the value a plain GET answers — the live sibling with the latest
/// timestamp, the later dot on a tie (dynamo's `Object::pick`) — and how many are live.
fn picked(reply: &BytesFrame) -> Option<(Option<Bytes>, usize)> {
    let BytesFrame::Array(parts) = reply else { return None };
    let mut live = Vec::new();
    for sibling in parts.get(1..)? {
        let BytesFrame::Array(fields) = sibling else { return None };
        match fields.as_slice() {
            [_, BytesFrame::Integer(ts), BytesFrame::BulkString(value)] => live.push((*ts, value.clone())),
            [_, BytesFrame::Integer(_), BytesFrame::Null] => {}
            _ => return None,
        }
    }
    let count = live.len();
    let pick = live.into_iter().enumerate().max_by_key(|(i, (ts, _))| (*ts, *i)).map(|(_, (_, value))| value);
    Some((pick, count))
}
