//! Backup: the keyspace to an RDB file, from one snapshot or key by key.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indicatif::ProgressBar;
use redis_protocol::resp2::types::BytesFrame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::conn::{Conn, describe};
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
/// reads to each node at once, in pipelines that the node runs [`MAX_WINDOW`] at a time, so
/// what is in flight is up to about this times [`MAX_WINDOW`] per node.
const READERS: usize = 32;
/// ... in paxos mode, where each read is a round that writes the value back (fsync'd on a
/// quorum): fewer readers keep a loaded machine's rounds within their timeouts.
const PAXOS_READERS: usize = 8;
/// The most requests one pipeline to one node carries; a reader starts here, halves it
/// after a refusal (down to [`MIN_WINDOW`]) and doubles it again after a page that went
/// through.
const MAX_WINDOW: usize = 128;
/// The fewest requests one pipeline carries after refusals.
const MIN_WINDOW: usize = 8;
/// How long the replies after a refused read of a pipeline are waited for.
const REFUSAL_GRACE: Duration = Duration::from_millis(200);
/// How often a failed read or SCAN is tried, each time on the next node.
const ATTEMPTS: u32 = 10;
/// The pause before the first retry; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
/// whether it had siblings; and the share of the memory budget it holds until written.
struct ReadBatch {
    entries: Vec<(Bytes, Option<Bytes>, bool)>,
    _budget: OwnedSemaphorePermit,
}

/// Requests to one of the target's nodes that move on to the next node when one fails: a
/// connection that breaks, or a reply that says the request may be tried again
/// (`-TRYAGAIN`, `-UNCERTAIN`), is retried on the next node after a pause that grows, up to
/// [`ATTEMPTS`] times. The SCAN goes through it: sending one again changes nothing, and a
/// cursor means the same on every node. (The reads of the keys go through a [`Reader`].)
struct Failover {
    addrs: Arc<Vec<String>>,
    password: Option<String>,
    next: usize,
    conn: Option<Conn>,
}

impl Failover {
    fn with(conn: Conn, addrs: Arc<Vec<String>>, password: Option<String>) -> Self {
        let next = addrs.iter().position(|a| a == conn.addr()).unwrap_or(0);
        Self { addrs, password, next, conn: Some(conn) }
    }

    async fn call(&mut self, request: Vec<Bytes>) -> Result<BytesFrame, String> {
        let mut replies = self.pipeline(vec![request]).await?;
        Ok(replies.pop().expect("one reply for one request"))
    }

    async fn pipeline(&mut self, requests: Vec<Vec<Bytes>>) -> Result<Vec<BytesFrame>, String> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let why = match self.try_pipeline(requests.clone()).await {
                Ok(replies) => match replies.iter().find(|r| retryable(r)) {
                    None => return Ok(replies),
                    Some(refusal) => format!("{}: {}", self.addrs[self.next % self.addrs.len()], describe(refusal)),
                },
                Err(e) => e,
            };
            if attempt >= ATTEMPTS {
                return Err(format!("{why} (tried {attempt} times, on every node given)"));
            }
            tracing::debug!("backup: {why}; trying the next node");
            self.conn = None;
            self.next += 1;
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn try_pipeline(&mut self, requests: Vec<Vec<Bytes>>) -> Result<Vec<BytesFrame>, String> {
        if self.conn.is_none() {
            let addr = &self.addrs[self.next % self.addrs.len()];
            self.conn = Some(Conn::connect(addr, self.password.as_deref()).await?);
        }
        self.conn.as_mut().expect("connected").pipeline(requests).await
    }

    fn addr(&self) -> &str {
        &self.addrs[self.next % self.addrs.len()]
    }
}

/// A reply that says the request did not happen and may be sent again.
fn retryable(reply: &BytesFrame) -> bool {
    matches!(reply, BytesFrame::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN") || e.starts_with("LOADING"))
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
        let mut reader = Reader::new(addrs.clone(), target.password.clone(), routes.clone(), i);
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
    let mut scan_node = Failover::with(conn, addrs.clone(), target.password.clone());
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

/// Where a reader sends each key's reads. In paxos mode, the key's home: the node its
/// commands run at (INFO `paxos_members`, hashed as the nodes do, and each node's
/// `paxos_node_id`), so that no read is forwarded over the peer plane; a forward waits in
/// the home's queue and, on a loaded machine, runs out its time there (`-TRYAGAIN ... did
/// not answer the forwarded command in time`). Otherwise any node, each reader starting at
/// its own.
#[derive(Debug, Default)]
struct Routes {
    /// The members' ids in configuration order...
    ids: Vec<u32>,
    /// ... and the index of each one's address in the target's (`None`: not given).
    addrs: Vec<Option<usize>>,
}

impl Routes {
    /// Asks every node of `addrs` for its id and the members (in paxos mode; a node that
    /// does not answer is left out, and its keys go to the nodes after it in their order).
    async fn learn(addrs: &[String], password: Option<&str>) -> Routes {
        let infos = futures_util::future::join_all(addrs.iter().map(|addr| async move {
            let mut conn = Conn::connect(addr, password).await.ok()?;
            let reply = conn.call(vec![Bytes::from_static(b"INFO"), Bytes::from_static(b"valthree")]).await.ok()?;
            let BytesFrame::BulkString(text) = reply else { return None };
            let field = |name: &str| {
                String::from_utf8_lossy(&text)
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
            };
            Some((field("paxos_node_id")?.parse::<u32>().ok()?, field("paxos_members")?))
        }))
        .await;
        let Some((_, members)) = infos.iter().flatten().next() else { return Routes::default() };
        let ids: Vec<u32> = members.split(',').filter_map(|m| m.split_once('=')?.0.parse().ok()).collect();
        let addrs = ids
            .iter()
            .map(|id| infos.iter().position(|info| info.as_ref().is_some_and(|(node, _)| node == id)))
            .collect();
        Routes { ids, addrs }
    }

    /// The node (index in the target's addresses) that reads `key` on its `attempt`-th try
    /// (0 first): its home, then the members after it in its order (where paxos runs the key
    /// while its home is away), wrapping around; with no home known, the nodes in turn from
    /// `spread`.
    fn node(&self, key: &[u8], attempt: u32, spread: usize, nodes: usize) -> usize {
        let given = self.addrs.iter().flatten().count();
        if let Some(home) = crate::mode::paxos::home_of(&self.ids, key)
            && given > 0
        {
            let first = self.ids.iter().position(|id| *id == home).unwrap_or(0);
            let n = self.ids.len();
            let order = (0..n).filter_map(|i| self.addrs[(first + i) % n]);
            if let Some(node) = order.cycle().nth(attempt as usize % given) {
                return node;
            }
        }
        (spread + attempt as usize) % nodes
    }
}

/// A reader of a key-by-key backup: a connection to each node of the target (opened when
/// first needed), the routes, and how many requests one pipeline carries now.
struct Reader {
    addrs: Arc<Vec<String>>,
    password: Option<String>,
    conns: Vec<Option<Conn>>,
    routes: Arc<Routes>,
    /// Where this reader starts for keys without a known home.
    spread: usize,
    /// Requests in one pipeline: halved after a refusal, doubled after a page that went
    /// through, within [`MIN_WINDOW`]..=[`MAX_WINDOW`].
    window: usize,
}

/// What one node did with its share of a request list: the replies (by index in the list),
/// the indexes to try again, and why.
#[derive(Default)]
struct ShareDone {
    answered: Vec<(usize, BytesFrame)>,
    again: Vec<usize>,
    why: Option<String>,
}

impl Reader {
    fn new(addrs: Arc<Vec<String>>, password: Option<String>, routes: Arc<Routes>, spread: usize) -> Self {
        let conns = addrs.iter().map(|_| None).collect();
        Self { addrs, password, conns, routes, spread, window: MAX_WINDOW }
    }

    /// Sends `request(key)` for each of `keys`, each to its route's node (to every node at
    /// once, in pipelines of at most the window), and answers the replies in `keys`' order.
    /// Only the keys refused with a reply that says they may be sent again (`-TRYAGAIN`,
    /// `-UNCERTAIN`, `-LOADING`), or left unanswered by a broken connection, are sent again —
    /// not the whole page — to the next node in their order, after a pause that grows and
    /// in pipelines half as long, up to [`ATTEMPTS`] times. Only reads go through here:
    /// sending one again changes nothing.
    async fn each(
        &mut self,
        keys: &[Bytes],
        request: impl Fn(&Bytes) -> Vec<Bytes>,
    ) -> Result<Vec<BytesFrame>, String> {
        let nodes = self.addrs.len();
        let mut replies: Vec<Option<BytesFrame>> = keys.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let mut shares: Vec<Vec<(usize, Vec<Bytes>)>> = vec![Vec::new(); nodes];
            for &i in &pending {
                shares[self.routes.node(&keys[i], attempt, self.spread, nodes)].push((i, request(&keys[i])));
            }
            let (window, password, addrs) = (self.window, self.password.as_deref(), &self.addrs);
            let sends = self
                .conns
                .iter_mut()
                .zip(shares)
                .enumerate()
                .filter(|(_, (_, share))| !share.is_empty())
                .map(|(node, (conn, share))| send_share(conn, &addrs[node], password, share, window));
            pending.clear();
            let mut why = None;
            for done in futures_util::future::join_all(sends).await {
                for (i, reply) in done.answered {
                    replies[i] = Some(reply);
                }
                pending.extend(done.again);
                why = done.why.or(why);
            }
            if pending.is_empty() {
                self.window = (self.window * 2).min(MAX_WINDOW);
                return Ok(replies.into_iter().map(|r| r.expect("every key answered")).collect());
            }
            attempt += 1;
            let why = why.unwrap_or_default();
            if attempt >= ATTEMPTS {
                return Err(format!(
                    "{why} ({} of {} keys of a page still unread after {attempt} tries, each on the next \
                     node in the key's order)",
                    pending.len(),
                    keys.len()
                ));
            }
            tracing::debug!("backup: {why}; {} keys go to the next node", pending.len());
            self.window = (self.window / 2).max(MIN_WINDOW);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Sends one node its share of a request list (index, request), in pipelines of `window`.
/// A refused request is left to try again, and the replies after it are waited for
/// [`REFUSAL_GRACE`] at most: when they do not come (a node that refuses one read likely
/// refuses the next, each after its own wait), or the connection breaks, the connection is
/// dropped and the requests not answered, with the rest of the share, are left to try
/// again.
async fn send_share(
    conn: &mut Option<Conn>,
    addr: &str,
    password: Option<&str>,
    mut share: Vec<(usize, Vec<Bytes>)>,
    window: usize,
) -> ShareDone {
    let mut done = ShareDone::default();
    while !share.is_empty() {
        let rest = share.split_off(share.len().min(window));
        let (ids, requests): (Vec<usize>, Vec<Vec<Bytes>>) = std::mem::replace(&mut share, rest).into_iter().unzip();
        let sent = match conn {
            Some(conn) => conn.pipeline_until(requests, retryable, REFUSAL_GRACE).await,
            None => match Conn::connect(addr, password).await {
                Ok(new) => conn.insert(new).pipeline_until(requests, retryable, REFUSAL_GRACE).await,
                Err(e) => Err(e),
            },
        };
        let replies = match sent {
            Ok(replies) => replies,
            Err(e) => {
                done.why = Some(e);
                Vec::new()
            }
        };
        let answered = replies.len();
        for (i, reply) in ids.iter().copied().zip(replies) {
            if retryable(&reply) {
                done.why = Some(format!("{addr}: {}", describe(&reply)));
                done.again.push(i);
            } else {
                done.answered.push((i, reply));
            }
        }
        if answered < ids.len() {
            *conn = None;
            done.why.get_or_insert_with(|| format!("{addr}: no reply"));
            done.again.extend(&ids[answered..]);
            done.again.extend(share.iter().map(|(i, _)| *i));
            return done;
        }
    }
    done
}

/// Reads one SCAN page of keys: their lengths first (STRLEN), then the values in groups of
/// about [`GROUP_BYTES`] (a larger value alone), each group once the memory budget has room
/// for it, so what is held at once is bounded by bytes, not by keys.
async fn read_keys(
    reader: &mut Reader,
    keys: Vec<Bytes>,
    dynamo: bool,
    budget: &Arc<Semaphore>,
    values_tx: &mpsc::Sender<Result<ReadBatch, String>>,
) -> Result<(), String> {
    let lengths = reader.each(&keys, |k| vec![Bytes::from_static(b"STRLEN"), k.clone()]).await?;
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
    reader: &mut Reader,
    keys: Vec<Bytes>,
    dynamo: bool,
) -> Result<Vec<(Bytes, Option<Bytes>, bool)>, String> {
    if !dynamo {
        let replies = reader.each(&keys, |k| vec![Bytes::from_static(b"GET"), k.clone()]).await?;
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
    let vget = |k: &Bytes| vec![Bytes::from_static(b"VGET"), k.clone(), Bytes::from_static(b"WITHDOTS")];
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use futures_util::{SinkExt, StreamExt};
    use redis_protocol::codec::Resp2;
    use tokio_util::codec::Framed;

    use super::*;

    fn value_of(key: &Bytes) -> Bytes {
        Bytes::from(format!("value of {}", String::from_utf8_lossy(key)))
    }

    type Asked = Arc<Mutex<HashMap<Bytes, u32>>>;

    /// A server that answers `GET key` with [`value_of`] it, but refuses each key of `refuse`
    /// with -TRYAGAIN the first time it is asked; it counts the requests of each key.
    async fn flaky_server(refuse: Vec<Bytes>) -> (String, Asked) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let asked: Asked = Arc::default();
        let counts = asked.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (asked, refuse) = (asked.clone(), refuse.clone());
                tokio::spawn(async move {
                    let mut framed = Framed::new(stream, Resp2::default());
                    while let Some(Ok(BytesFrame::Array(parts))) = framed.next().await {
                        let [_, BytesFrame::BulkString(key)] = parts.as_slice() else { break };
                        let times = {
                            let mut asked = asked.lock().unwrap();
                            let times = asked.entry(key.clone()).or_insert(0);
                            *times += 1;
                            *times
                        };
                        let reply = match times == 1 && refuse.contains(key) {
                            true => BytesFrame::Error("TRYAGAIN busy".into()),
                            false => BytesFrame::BulkString(value_of(key)),
                        };
                        if framed.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, counts)
    }

    /// Under load a node refuses a few reads of a page: only those are sent again, not the
    /// page. Before, one refusal sent the whole page (500 STRLENs, or an MGET of them) again,
    /// to a node just as loaded, up to ten times, and the backup failed.
    #[tokio::test]
    async fn only_the_refused_reads_of_a_page_are_sent_again() {
        let keys: Vec<Bytes> = (0..300).map(|i| Bytes::from(format!("k{i}"))).collect();
        let refuse = vec![keys[5].clone(), keys[150].clone(), keys[299].clone()];
        let (addr, asked) = flaky_server(refuse.clone()).await;
        let mut reader = Reader::new(Arc::new(vec![addr]), None, Arc::default(), 0);
        let replies = reader.each(&keys, |k| vec![Bytes::from_static(b"GET"), k.clone()]).await.unwrap();
        for (key, reply) in keys.iter().zip(&replies) {
            assert_eq!(reply, &BytesFrame::BulkString(value_of(key)), "{key:?}");
        }
        let asked = asked.lock().unwrap();
        for key in &keys {
            assert_eq!(asked[key], if refuse.contains(key) { 2 } else { 1 }, "requests of {key:?}");
        }
    }

    /// paxos mode: a key is read at its home (as the nodes hash it over the members, in the
    /// configuration's order), then at the members after it, whatever order the addresses
    /// were given in; a member whose address was not given is skipped.
    #[test]
    fn a_key_is_read_at_its_home_then_at_the_members_after_it() {
        // Members 7, 8, 9; the addresses given: 9's, 7's, 8's.
        let routes = Routes { ids: vec![7, 8, 9], addrs: vec![Some(1), Some(2), Some(0)] };
        let index_of = |id: u32| [9, 7, 8].iter().position(|i| *i == id).unwrap();
        for i in 0..100 {
            let key = format!("key:{i}");
            let home = crate::mode::paxos::home_of(&[7, 8, 9], key.as_bytes()).unwrap();
            let next = [7, 8, 9][((home - 7 + 1) % 3) as usize];
            assert_eq!(routes.node(key.as_bytes(), 0, 0, 3), index_of(home), "{key}");
            assert_eq!(routes.node(key.as_bytes(), 1, 0, 3), index_of(next), "{key}");
            assert_eq!(routes.node(key.as_bytes(), 3, 0, 3), index_of(home), "{key}");
        }
        // 8's address not given: its keys go to 9 (the member after it), then 7.
        let routes = Routes { ids: vec![7, 8, 9], addrs: vec![Some(0), None, Some(1)] };
        let key = (0..)
            .map(|i| format!("key:{i}"))
            .find(|k| crate::mode::paxos::home_of(&[7, 8, 9], k.as_bytes()) == Some(8))
            .unwrap();
        assert_eq!(routes.node(key.as_bytes(), 0, 0, 2), 1);
        assert_eq!(routes.node(key.as_bytes(), 1, 0, 2), 0);
        // No members known (not paxos): the nodes in turn from the reader's own.
        let routes = Routes::default();
        assert_eq!((0..4).map(|a| routes.node(b"k", a, 2, 3)).collect::<Vec<_>>(), [2, 0, 1, 2]);
    }
}
