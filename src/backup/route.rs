//! Where backup and restore send each key, and what they do when a node refuses: the
//! parts a key-by-key backup's readers and a restore's writers share.
//!
//! * [`Routes`]: in paxos mode each key has a home, the node whose proposer runs its
//!   commands (the others forward them to it over the peer plane); a key's requests go to its
//!   home, and when it refuses, to the members after it in the key's order (where paxos runs
//!   the key while its home is away). In other modes any node, each worker starting at its
//!   own.
//! * [`Router`]: a worker's connection to every node, sending each key's request to its
//!   route's node, all nodes at once, and only the refused ones again.
//! * [`Failover`]: one connection that moves on to the next node when a request fails (a
//!   SCAN page, an MSET).
//!
//! Both retry under a [`Policy`]: only requests that are harmless to send twice go through
//! them (reads, SCAN pages, and restore's writes of the file's values).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

use super::conn::{Conn, describe};
use super::retry::Policy;

/// The most requests one pipeline to one node carries; a router starts here, halves it
/// after a refusal (down to [`MIN_WINDOW`]) and doubles it again after a list that went
/// through.
pub const MAX_WINDOW: usize = 128;
/// The fewest requests one pipeline carries after refusals.
const MIN_WINDOW: usize = 8;
/// How long the replies after a refused request of a pipeline are waited for.
const REFUSAL_GRACE: Duration = Duration::from_millis(200);

/// A reply that says the request may be sent again: it did not happen (`-TRYAGAIN`,
/// `-LOADING`), or may have (`-UNCERTAIN`), which only a request harmless to repeat may
/// take as a reason to send it again.
pub fn retryable(reply: &BytesFrame) -> bool {
    matches!(reply, BytesFrame::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN") || e.starts_with("LOADING"))
}

/// Requests to one of the target's nodes that move on to the next node when one fails: a
/// connection that breaks (or cannot be opened), or a reply that says the request may be
/// sent again ([`retryable`]), is sent again to the next node after a pause that grows, as
/// the [`Policy`] says. A backup's SCAN goes through it (sending one again changes nothing,
/// and a cursor means the same on every node), and a restore's MSETs.
pub struct Failover {
    addrs: Arc<Vec<String>>,
    password: Option<String>,
    next: usize,
    conn: Option<Conn>,
    policy: Policy,
}

impl Failover {
    /// Starts at `addrs[first]` (modulo their number), connecting when first needed.
    pub fn new(addrs: Arc<Vec<String>>, password: Option<String>, first: usize, policy: Policy) -> Self {
        Self { addrs, password, next: first, conn: None, policy }
    }

    /// Starts with `conn`, already open to one of `addrs`.
    pub fn with(conn: Conn, addrs: Arc<Vec<String>>, password: Option<String>, policy: Policy) -> Self {
        let next = addrs.iter().position(|a| a == conn.addr()).unwrap_or(0);
        Self { addrs, password, next, conn: Some(conn), policy }
    }

    pub async fn call(&mut self, request: Vec<Bytes>) -> Result<BytesFrame, String> {
        let mut replies = self.pipeline(vec![request]).await?;
        Ok(replies.pop().expect("one reply for one request"))
    }

    /// Sends `requests` in one pipeline until no reply is a refusal (the whole pipeline
    /// again after one), or the policy's patience is spent.
    pub async fn pipeline(&mut self, requests: Vec<Vec<Bytes>>) -> Result<Vec<BytesFrame>, String> {
        let mut backoff = self.policy.start();
        loop {
            let why = match self.try_pipeline(requests.clone()).await {
                Ok(replies) => match replies.iter().find(|r| retryable(r)) {
                    None => return Ok(replies),
                    Some(refusal) => format!("{}: {}", self.addr(), describe(refusal)),
                },
                Err(e) if super::conn::not_resp(&e) => return Err(e),
                Err(e) => e,
            };
            self.conn = None;
            self.next += 1;
            tracing::debug!("{why}; trying the next node");
            if !backoff.wait().await {
                return Err(format!("{why} ({}, on every node given; gave up)", backoff.tried()));
            }
        }
    }

    async fn try_pipeline(&mut self, requests: Vec<Vec<Bytes>>) -> Result<Vec<BytesFrame>, String> {
        if self.conn.is_none() {
            let addr = &self.addrs[self.next % self.addrs.len()];
            self.conn = Some(Conn::connect(addr, self.password.as_deref()).await?);
        }
        self.conn.as_mut().expect("connected").pipeline(requests).await
    }

    /// The node it sends to now.
    pub fn addr(&self) -> &str {
        &self.addrs[self.next % self.addrs.len()]
    }
}

/// Where a worker sends each key's requests. In paxos mode, the key's home: the node its
/// commands run at (INFO `paxos_members`, hashed as the nodes do, and each node's
/// `paxos_node_id`), so that no request is forwarded over the peer plane; a forward waits in
/// the home's queue and, on a loaded machine, runs out its time there (`-TRYAGAIN ... did
/// not answer the forwarded command in time`). Otherwise any node, each worker starting at
/// its own.
#[derive(Debug, Default)]
pub struct Routes {
    /// The members' ids in configuration order...
    ids: Vec<u32>,
    /// ... and the index of each one's address in the target's (`None`: not given).
    addrs: Vec<Option<usize>>,
}

impl Routes {
    /// Asks every node of `addrs` for its id and the members (in paxos mode; a node that
    /// does not answer is left out, and its keys go to the nodes after it in their order).
    pub async fn learn(addrs: &[String], password: Option<&str>) -> Routes {
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

    /// The node (index in the target's addresses) that takes `key` on its `attempt`-th try
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

/// A worker's connections: one to each node of the target (opened when first needed), the
/// routes, and how many requests one pipeline carries now. A key-by-key backup's readers
/// send their reads through one each, and a restore's writers (paxos and dynamo mode) their
/// SETs.
pub struct Router {
    addrs: Arc<Vec<String>>,
    password: Option<String>,
    conns: Vec<Option<Conn>>,
    routes: Arc<Routes>,
    /// Where this worker starts for keys without a known home.
    spread: usize,
    /// Requests in one pipeline: halved after a refusal, doubled after a list that went
    /// through, within [`MIN_WINDOW`]..=[`MAX_WINDOW`].
    window: usize,
    policy: Policy,
}

/// What one node did with its share of a request list: the replies (by index in the list),
/// the indexes to try again, and why.
#[derive(Default)]
struct ShareDone {
    answered: Vec<(usize, BytesFrame)>,
    again: Vec<usize>,
    why: Option<String>,
}

impl Router {
    pub fn new(
        addrs: Arc<Vec<String>>,
        password: Option<String>,
        routes: Arc<Routes>,
        spread: usize,
        policy: Policy,
    ) -> Self {
        let conns = addrs.iter().map(|_| None).collect();
        Self { addrs, password, conns, routes, spread, window: MAX_WINDOW, policy }
    }

    /// Sends `request(i)` for each `keys[i]`, each to its key's route's node (to every node
    /// at once, in pipelines of at most the window), and answers the replies in `keys`'
    /// order. Only the requests refused with a reply that says they may be sent again
    /// ([`retryable`]), or left unanswered by a broken connection, are sent again — not the
    /// whole list — to the next node in their key's order, after a pause that grows and in
    /// pipelines half as long, until the policy's patience is spent. Only requests harmless
    /// to send twice go through here.
    pub async fn each(
        &mut self,
        keys: &[Bytes],
        request: impl Fn(usize) -> Vec<Bytes>,
    ) -> Result<Vec<BytesFrame>, String> {
        let nodes = self.addrs.len();
        let mut replies: Vec<Option<BytesFrame>> = keys.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let mut backoff = self.policy.start();
        let mut attempt = 0;
        loop {
            let mut shares: Vec<Vec<(usize, Vec<Bytes>)>> = vec![Vec::new(); nodes];
            for &i in &pending {
                shares[self.routes.node(&keys[i], attempt, self.spread, nodes)].push((i, request(i)));
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
            if super::conn::not_resp(&why) {
                return Err(why);
            }
            tracing::debug!("{why}; {} keys go to the next node", pending.len());
            self.window = (self.window / 2).max(MIN_WINDOW);
            if !backoff.wait().await {
                return Err(format!(
                    "{why} ({} of {} keys of a list still not done: {}, each time on the next node in \
                     the key's order; gave up)",
                    pending.len(),
                    keys.len(),
                    backoff.tried()
                ));
            }
        }
    }
}

/// Sends one node its share of a request list (index, request), in pipelines of `window`.
/// A refused request is left to try again, and the replies after it are waited for
/// [`REFUSAL_GRACE`] at most: when they do not come (a node that refuses one request likely
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
        let mut router = Router::new(Arc::new(vec![addr]), None, Arc::default(), 0, Policy::READS);
        let replies = router.each(&keys, |i| vec![Bytes::from_static(b"GET"), keys[i].clone()]).await.unwrap();
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
