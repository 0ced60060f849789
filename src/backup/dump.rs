//! Backup: the keyspace to an RDB file, from one snapshot or key by key.

use std::collections::HashSet;
use std::io::Write;

use bytes::Bytes;
use indicatif::ProgressBar;
use redis_protocol::resp2::types::BytesFrame;
use tokio::sync::mpsc;

use super::conn::{Conn, describe};
use super::{Target, work_queue};
use crate::rdb::RdbWriter;

/// Entries one `VALTHREE.SNAPSHOT NEXT` asks for.
const SNAPSHOT_PAGE: usize = 1000;
/// Keys one SCAN asks for, and one batch of reads carries.
const SCAN_COUNT: usize = 500;
/// How many key batches wait for a reader, and value batches for the writer.
const QUEUE: usize = 4;

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
    let mut first = None;
    let mut last_error = String::from("no address given");
    for addr in &target.addrs {
        match Conn::connect(addr, target.password.as_deref()).await {
            Ok(conn) => {
                first = Some(conn);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let mut conn = first.ok_or(last_error)?;
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
/// whether it had siblings.
type ReadBatch = Vec<(Bytes, Option<Bytes>, bool)>;

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
    let (keys_tx, keys_rx) = work_queue(QUEUE);
    let (values_tx, mut values_rx) = mpsc::channel::<Result<ReadBatch, String>>(QUEUE);
    // Readers: each its own connection, spread over the nodes.
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..target.connections.max(1) {
        let addr = target.addrs[i % target.addrs.len()].clone();
        let password = target.password.clone();
        let keys_rx = keys_rx.clone();
        let values_tx = values_tx.clone();
        readers.spawn(async move {
            let mut conn = match Conn::connect(&addr, password.as_deref()).await {
                Ok(conn) => conn,
                Err(e) => return drop(values_tx.send(Err(e)).await),
            };
            while let Some(keys) = keys_rx.recv().await {
                let read = read_batch(&mut conn, keys, dynamo).await;
                let failed = read.is_err();
                if values_tx.send(read).await.is_err() || failed {
                    return;
                }
            }
        });
    }
    drop((keys_rx, values_tx));
    // The scanner: SCAN until the cursor comes back to 0.
    let scanner = tokio::spawn(async move {
        let mut cursor = Bytes::from_static(b"0");
        loop {
            let scan = vec![
                Bytes::from_static(b"SCAN"),
                cursor.clone(),
                Bytes::from_static(b"COUNT"),
                Bytes::from(SCAN_COUNT.to_string()),
            ];
            let reply = conn.call(scan).await?;
            let BytesFrame::Array(parts) = &reply else {
                return Err(format!("{}: SCAN answered {}", conn.addr(), describe(&reply)));
            };
            let [BytesFrame::BulkString(next), BytesFrame::Array(keys)] = parts.as_slice() else {
                return Err(format!("{}: SCAN answered {}", conn.addr(), describe(&reply)));
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
        for (key, value, siblings) in batch {
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

/// Reads one batch of keys: MGET, or in dynamo mode GET and VGET of each key.
async fn read_batch(conn: &mut Conn, keys: Vec<Bytes>, dynamo: bool) -> Result<ReadBatch, String> {
    if !dynamo {
        let mut mget = vec![Bytes::from_static(b"MGET")];
        mget.extend(keys.iter().cloned());
        let reply = conn.call(mget).await?;
        let BytesFrame::Array(values) = &reply else {
            return Err(format!("{}: MGET answered {}", conn.addr(), describe(&reply)));
        };
        if values.len() != keys.len() {
            return Err(format!("{}: MGET of {} keys answered {}", conn.addr(), keys.len(), values.len()));
        }
        return keys.into_iter().zip(values).map(|(key, value)| Ok((key, bulk(conn, value)?, false))).collect();
    }
    let mut requests = Vec::with_capacity(keys.len() * 2);
    for key in &keys {
        requests.push(vec![Bytes::from_static(b"GET"), key.clone()]);
        requests.push(vec![Bytes::from_static(b"VGET"), key.clone()]);
    }
    let replies = conn.pipeline(requests).await?;
    let mut batch = Vec::with_capacity(keys.len());
    for (key, pair) in keys.into_iter().zip(replies.chunks(2)) {
        let value = match &pair[0] {
            BytesFrame::Error(e) => {
                return Err(format!("{}: GET {:?}: {e}", conn.addr(), String::from_utf8_lossy(&key)));
            }
            other => bulk(conn, other)?,
        };
        // VGET: [context, sibling, ...]; a nil sibling is a delete.
        let live = match &pair[1] {
            BytesFrame::Array(parts) => parts.iter().skip(1).filter(|s| !matches!(s, BytesFrame::Null)).count(),
            other => return Err(format!("{}: VGET answered {}", conn.addr(), describe(other))),
        };
        batch.push((key, value, live > 1));
    }
    Ok(batch)
}

/// A value reply: a bulk string or nil.
fn bulk(conn: &Conn, frame: &BytesFrame) -> Result<Option<Bytes>, String> {
    match frame {
        BytesFrame::BulkString(v) => Ok(Some(v.clone())),
        BytesFrame::Null => Ok(None),
        other => Err(format!("{}: a read answered {}", conn.addr(), describe(other))),
    }
}
