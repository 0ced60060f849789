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

/// The most keys one pipelined batch carries...
const BATCH_KEYS: usize = 256;
/// ...and about the most bytes (one larger value still goes alone).
const BATCH_BYTES: usize = 8 << 20;
/// How often a SET answered `-TRYAGAIN` or `-UNCERTAIN` is sent again.
const RETRIES: u32 = 5;

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

/// Reads the RDB file `input` through to its end without writing anything: its structure
/// and its checksum, which is checked only at the end. A restore runs this first, so a file
/// with one flipped bit is refused whole instead of being restored and then found corrupt
/// (Redis refuses to load such a file too).
pub fn verify<R: BufRead>(input: R) -> Result<(), String> {
    let mut reader = RdbReader::new(input).map_err(|e| e.to_string())?;
    while reader.next_entry().map_err(|e| e.to_string())?.is_some() {}
    Ok(())
}

/// Loads the RDB file `input` into the target. Refuses a database that holds keys unless
/// `replace`.
pub async fn restore<R: BufRead>(
    target: &Target,
    input: R,
    replace: bool,
    progress: &ProgressBar,
) -> Result<RestoreReport, String> {
    let mut reader = RdbReader::new(input).map_err(|e| e.to_string())?;
    let mut report = RestoreReport { version: reader.version(), ..Default::default() };
    let addr = target.addrs.first().ok_or("no address given")?;
    let mut conn = Conn::connect(addr, target.password.as_deref()).await?;
    // s3 mode: every write is a compare-and-swap of one document, so writes through several
    // nodes only conflict; through one node, its group commit carries them in few PUTs.
    let addrs = match conn.server_mode().await.as_str() {
        "s3" => vec![addr.clone()],
        _ => target.addrs.clone(),
    };
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
    let (batches_tx, batches_rx) = work_queue::<Vec<(Bytes, Bytes)>>(target.connections.max(1) * 2);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<u64, String>>();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..target.connections.max(1) {
        let addr = addrs[i % addrs.len()].clone();
        let password = target.password.clone();
        let (batches_rx, done_tx) = (batches_rx.clone(), done_tx.clone());
        writers.spawn(async move {
            let mut conn = match Conn::connect(&addr, password.as_deref()).await {
                Ok(conn) => conn,
                Err(e) => return drop(done_tx.send(Err(e))),
            };
            while let Some(batch) = batches_rx.recv().await {
                let written = write_batch(&mut conn, batch).await;
                let failed = written.is_err();
                if done_tx.send(written).is_err() || failed {
                    return;
                }
            }
        });
    }
    drop((batches_rx, done_tx));
    let now_ms = crate::node::now_ms() as i64;
    let (mut batch, mut batch_bytes) = (Vec::new(), 0usize);
    let mut failure = None;
    loop {
        // A writer's failure stops the reading at once.
        while let Ok(done) = done_rx.try_recv() {
            match done {
                Ok(n) => report.restored += n,
                Err(e) => failure = Some(e),
            }
        }
        if failure.is_some() {
            break;
        }
        let Some(entry) = reader.next_entry().map_err(|e| e.to_string())? else { break };
        progress.set_position(reader.offset());
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
        batch_bytes += entry.key.len() + value.len();
        batch.push((entry.key, value));
        if batch.len() >= BATCH_KEYS || batch_bytes >= BATCH_BYTES {
            batch_bytes = 0;
            if batches_tx.send(std::mem::take(&mut batch)).await.is_err() {
                break; // every writer stopped: the reason is in `done_rx`
            }
        }
    }
    report.skipped_functions = reader.functions_skipped();
    if failure.is_none() && !batch.is_empty() {
        let _ = batches_tx.send(batch).await;
    }
    drop(batches_tx);
    while let Some(done) = done_rx.recv().await {
        match done {
            Ok(n) => report.restored += n,
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    writers.abort_all();
    progress.finish_and_clear();
    match failure {
        Some(e) => Err(format!("{e} (restored {} keys before the failure)", report.restored)),
        None => Ok(report),
    }
}

/// SETs every pair of `batch` in one pipeline; a SET answered with an error that says it
/// may be retried is sent again, alone, with a pause that grows.
async fn write_batch(conn: &mut Conn, batch: Vec<(Bytes, Bytes)>) -> Result<u64, String> {
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
