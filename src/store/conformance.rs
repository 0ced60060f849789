//! The behavioural suite every mode must pass (toydb's shared engine tests, openraft's
//! `Suite`): written once, run against one node or against several nodes of one cluster.
//!
//! The suite is public so that integration tests can run it against any deployment of a
//! mode; each case starts with FLUSHALL and spreads its requests over all the nodes given.

use std::sync::Arc;

use bytes::Bytes;

use super::{Pattern, SetCondition, SetOptions, SetReply, Store, UpdateOp, ValueCondition, digest};
use crate::error::Error;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// One case of the suite.
type Case = fn(Vec<Arc<dyn Store>>) -> futures_util::future::BoxFuture<'static, ()>;

/// What a mode makes atomic, which decides the cases it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atomicity {
    /// Nothing beyond a plain write (dynamo mode): read-modify-writes are refused.
    None,
    /// Every single-key read-modify-write, but no write to several keys (paxos mode):
    /// MSET and MSETNX are refused.
    PerKey,
    /// Single-key read-modify-writes and writes to several keys (s3 and raft modes).
    MultiKey,
}

/// Runs every case against `nodes` (one store per node of one cluster).
pub async fn run_conformance_suite(nodes: Vec<Arc<dyn Store>>) {
    run(nodes, Atomicity::MultiKey).await
}

/// The suite for a mode whose read-modify-writes are atomic per key but that refuses a write
/// to several keys (paxos mode): the MSET case is replaced by one that checks the refusal.
pub async fn run_conformance_suite_per_key(nodes: Vec<Arc<dyn Store>>) {
    run(nodes, Atomicity::PerKey).await
}

/// The suite for a mode that refuses atomic read-modify-writes (dynamo mode): the cases that
/// need SET NX/XX/GET/IFEQ, INCR, APPEND, GETDEL, DELEX or MSET are replaced by one that
/// checks each is refused with a definite `-ERR` and changes nothing.
pub async fn run_conformance_suite_without_atomic_updates(nodes: Vec<Arc<dyn Store>>) {
    run(nodes, Atomicity::None).await
}

/// The cases that need an atomic read-modify-write on one key.
const ATOMIC: &[&str] = &[
    "set_conditions_and_get_option",
    "counters_and_append",
    "concurrent_incrs_are_never_lost",
    "concurrent_set_nx_has_one_winner",
    "concurrent_appends_keep_every_piece",
    "compare_and_set_and_conditional_delete",
    "concurrent_compare_and_sets_lose_no_update",
];

/// The cases that need an atomic write to several keys.
const MULTI_KEY: &[&str] = &["multi_set_is_all_or_nothing"];

async fn run(nodes: Vec<Arc<dyn Store>>, atomicity: Atomicity) {
    assert!(!nodes.is_empty(), "the conformance suite needs at least one node");
    let cases: &[(&str, Case)] = &[
        ("read_modify_writes_are_refused_and_change_nothing", |n| {
            Box::pin(read_modify_writes_are_refused_and_change_nothing(n))
        }),
        ("written_values_are_read_back_on_every_node", |n| Box::pin(written_values_are_read_back_on_every_node(n))),
        ("set_conditions_and_get_option", |n| Box::pin(set_conditions_and_get_option(n))),
        ("del_and_exists_count_like_redis", |n| Box::pin(del_and_exists_count_like_redis(n))),
        ("counters_and_append", |n| Box::pin(counters_and_append(n))),
        ("binary_keys_and_values_survive", |n| Box::pin(binary_keys_and_values_survive(n))),
        ("flushall_empties_every_node", |n| Box::pin(flushall_empties_every_node(n))),
        ("scan_visits_every_key_once_from_any_node", |n| Box::pin(scan_visits_every_key_once_from_any_node(n))),
        ("a_snapshot_holds_every_earlier_write_and_no_later_one", |n| {
            Box::pin(a_snapshot_holds_every_earlier_write_and_no_later_one(n))
        }),
        ("concurrent_incrs_are_never_lost", |n| Box::pin(concurrent_incrs_are_never_lost(n))),
        ("concurrent_set_nx_has_one_winner", |n| Box::pin(concurrent_set_nx_has_one_winner(n))),
        ("concurrent_appends_keep_every_piece", |n| Box::pin(concurrent_appends_keep_every_piece(n))),
        ("compare_and_set_and_conditional_delete", |n| Box::pin(compare_and_set_and_conditional_delete(n))),
        ("concurrent_compare_and_sets_lose_no_update", |n| Box::pin(concurrent_compare_and_sets_lose_no_update(n))),
        ("multi_set_is_all_or_nothing", |n| Box::pin(multi_set_is_all_or_nothing(n))),
        ("multi_key_writes_are_refused_and_change_nothing", |n| {
            Box::pin(multi_key_writes_are_refused_and_change_nothing(n))
        }),
    ];
    for (name, case) in cases {
        let runs = match *name {
            "read_modify_writes_are_refused_and_change_nothing" => atomicity == Atomicity::None,
            "multi_key_writes_are_refused_and_change_nothing" => atomicity == Atomicity::PerKey,
            name if MULTI_KEY.contains(&name) => atomicity == Atomicity::MultiKey,
            name if ATOMIC.contains(&name) => atomicity != Atomicity::None,
            _ => true,
        };
        if !runs {
            continue;
        }
        flush(&nodes[0], name).await;
        tracing::info!(case = name, "conformance");
        case(nodes.clone()).await;
    }
}

/// Empties the store before a case. FLUSHALL is idempotent, so one that failed, or whose
/// outcome is unknown (a paxos round short of a quorum on a loaded machine), is sent again.
async fn flush(node: &Arc<dyn Store>, case: &str) {
    let mut attempts = 0;
    loop {
        match node.flushall().await {
            Ok(()) => return,
            Err(e @ (Error::TryAgain(_) | Error::Uncertain(_))) if attempts < 10 => {
                attempts += 1;
                tracing::warn!(case, "FLUSHALL before the case failed ({e}); again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempts)).await;
            }
            Err(e) => panic!("{case}: FLUSHALL failed: {e}"),
        }
    }
}

async fn read_modify_writes_are_refused_and_change_nothing(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    node(0).set(b("k"), b("7"), SetOptions::default()).await.unwrap();
    let refused = |r: Result<(), Error>, what: &str| match r {
        Err(Error::Input(m)) => assert!(m.contains("VSET"), "{what}: the refusal points to VSET: {m}"),
        other => panic!("{what}: expected a definite -ERR, got {other:?}"),
    };
    refused(node(1).update(b("k"), UpdateOp::IncrBy(1)).await.map(drop), "INCR");
    refused(node(2).update(b("k"), UpdateOp::Append(b("x"))).await.map(drop), "APPEND");
    let nx = SetOptions { condition: Some(SetCondition::IfAbsent), get: false };
    refused(node(0).set(b("k"), b("8"), nx).await.map(drop), "SET NX");
    let ifeq = SetOptions { condition: Some(SetCondition::IfValue(ValueCondition::Equal(b("7")))), get: false };
    refused(node(1).set(b("k"), b("8"), ifeq).await.map(drop), "SET IFEQ");
    refused(node(2).remove(b("k"), None, true).await.map(drop), "GETDEL");
    refused(node(0).remove(b("k"), Some(ValueCondition::Equal(b("7"))), false).await.map(drop), "DELEX IFEQ");
    refused(node(1).multi_set(vec![(b("k"), b("8")), (b("j"), b("8"))], false).await.map(drop), "MSET");
    let get = SetOptions { condition: None, get: true };
    refused(node(1).set(b("k"), b("9"), get).await.map(drop), "SET GET");
    for i in 0..3 {
        assert_eq!(node(i).get(b"k").await.unwrap(), Some(b("7")), "a refused command changed the key");
    }
}

async fn written_values_are_read_back_on_every_node(nodes: Vec<Arc<dyn Store>>) {
    assert_eq!(nodes[0].get(b"missing").await.unwrap(), None);
    nodes[0].set(b("k"), b("v1"), SetOptions::default()).await.unwrap();
    for node in &nodes {
        assert_eq!(node.get(b"k").await.unwrap(), Some(b("v1")));
    }
    let last = nodes.last().unwrap();
    last.set(b("k"), b("v2"), SetOptions::default()).await.unwrap();
    for node in &nodes {
        assert_eq!(node.get(b"k").await.unwrap(), Some(b("v2")));
        assert_eq!(node.mget(&[b("k"), b("missing")]).await.unwrap(), vec![Some(b("v2")), None]);
    }
}

async fn set_conditions_and_get_option(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    let nx = SetOptions { condition: Some(SetCondition::IfAbsent), get: false };
    let xx = SetOptions { condition: Some(SetCondition::IfPresent), get: false };
    let written = |w| SetReply { written: w, previous: None };
    assert_eq!(node(0).set(b("k"), b("a"), xx.clone()).await.unwrap(), written(false));
    assert_eq!(node(1).get(b"k").await.unwrap(), None);
    assert_eq!(node(1).set(b("k"), b("a"), nx.clone()).await.unwrap(), written(true));
    assert_eq!(node(2).set(b("k"), b("b"), nx).await.unwrap(), written(false));
    assert_eq!(node(0).set(b("k"), b("c"), xx).await.unwrap(), written(true));
    let get = SetOptions { condition: None, get: true };
    let reply = node(1).set(b("k"), b("d"), get).await.unwrap();
    assert_eq!(reply, SetReply { written: true, previous: Some(b("c")) });
    assert_eq!(node(2).get(b"k").await.unwrap(), Some(b("d")));
}

async fn del_and_exists_count_like_redis(nodes: Vec<Arc<dyn Store>>) {
    let last = nodes.last().unwrap();
    for k in ["a", "b", "c"] {
        nodes[0].set(b(k), b("1"), SetOptions::default()).await.unwrap();
    }
    assert_eq!(last.exists(&[b("a"), b("a"), b("zz")]).await.unwrap(), 2);
    assert_eq!(last.dbsize().await.unwrap(), 3);
    assert_eq!(last.del(vec![b("a"), b("b"), b("zz"), b("a")]).await.unwrap(), 2);
    assert_eq!(nodes[0].exists(&[b("a"), b("b"), b("c")]).await.unwrap(), 1);
    assert_eq!(nodes[0].dbsize().await.unwrap(), 1);
}

async fn counters_and_append(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    assert_eq!(node(0).update(b("n"), UpdateOp::IncrBy(1)).await.unwrap(), 1);
    assert_eq!(node(1).update(b("n"), UpdateOp::IncrBy(-11)).await.unwrap(), -10);
    assert_eq!(node(2).get(b"n").await.unwrap(), Some(b("-10")));
    node(0).set(b("s"), b("abc"), SetOptions::default()).await.unwrap();
    let err = node(1).update(b("s"), UpdateOp::IncrBy(1)).await.unwrap_err();
    assert!(matches!(err, Error::Input(_)), "INCR of a string must be a bad request, got {err:?}");
    assert_eq!(node(2).get(b"s").await.unwrap(), Some(b("abc")), "a failed INCR changes nothing");
    assert_eq!(node(0).update(b("s"), UpdateOp::Append(b("def"))).await.unwrap(), 6);
    assert_eq!(node(1).update(b("new"), UpdateOp::Append(b("xy"))).await.unwrap(), 2);
    assert_eq!(node(2).get(b"s").await.unwrap(), Some(b("abcdef")));
}

async fn binary_keys_and_values_survive(nodes: Vec<Arc<dyn Store>>) {
    let key = Bytes::from_static(b"\x00key\xff\r\n");
    let value = Bytes::from((0..=255u8).collect::<Vec<_>>());
    nodes[0].set(key.clone(), value.clone(), SetOptions::default()).await.unwrap();
    assert_eq!(nodes.last().unwrap().get(&key).await.unwrap(), Some(value));
    nodes[0].set(b("empty"), Bytes::new(), SetOptions::default()).await.unwrap();
    assert_eq!(nodes.last().unwrap().get(b"empty").await.unwrap(), Some(Bytes::new()));
}

async fn flushall_empties_every_node(nodes: Vec<Arc<dyn Store>>) {
    for i in 0..5 {
        nodes[i % nodes.len()].set(b(&format!("k{i}")), b("v"), SetOptions::default()).await.unwrap();
    }
    nodes.last().unwrap().flushall().await.unwrap();
    for node in &nodes {
        assert_eq!(node.dbsize().await.unwrap(), 0);
        assert_eq!(node.get(b"k0").await.unwrap(), None);
    }
}

/// Scans to the end, each page from the next node (a cursor means the same everywhere).
async fn scan_all(nodes: &[Arc<dyn Store>], count: usize, pattern: Option<&Pattern>) -> Vec<Bytes> {
    let (mut keys, mut cursor, mut pages) = (Vec::new(), 0, 0);
    loop {
        let page = nodes[pages % nodes.len()].scan(cursor, count, pattern).await.unwrap();
        keys.extend(page.keys);
        pages += 1;
        assert!(pages < 10_000, "the scan never ends");
        cursor = page.cursor;
        if cursor == 0 {
            return keys;
        }
    }
}

async fn scan_visits_every_key_once_from_any_node(nodes: Vec<Arc<dyn Store>>) {
    assert_eq!(scan_all(&nodes, 10, None).await, Vec::<Bytes>::new(), "an empty keyspace scans to nothing");
    let binary = Bytes::from_static(b"user:\x00\xff*");
    let mut expected: Vec<Bytes> = (0..30).map(|i| b(&format!("user:{i}"))).collect();
    expected.push(binary.clone());
    let others: Vec<Bytes> = (0..10).map(|i| b(&format!("other:{i}"))).collect();
    // One at a time: concurrent writers of one s3 document would only contend.
    for (i, k) in expected.iter().chain(&others).enumerate() {
        nodes[i % nodes.len()].set(k.clone(), b("v"), SetOptions::default()).await.unwrap();
    }
    let user = Pattern::new(b"user:*");
    let mut seen = scan_all(&nodes, 7, Some(&user)).await;
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected, "every matching key exactly once, none of the others");
    assert_eq!(scan_all(&nodes, 1, None).await.len(), expected.len() + others.len(), "COUNT 1 still ends");
    nodes[0].del(vec![expected[0].clone(), binary.clone()]).await.unwrap();
    let mut after = scan_all(&nodes, 1000, Some(&user)).await;
    after.sort();
    assert_eq!(after, expected.iter().filter(|k| **k != expected[0] && **k != binary).cloned().collect::<Vec<_>>());
    let first = nodes.last().unwrap().scan(0, 5, None).await.unwrap();
    assert!(first.cursor != 0 && !first.keys.is_empty(), "a page of 5 out of 39 keys is not the last");
}

/// A mode that offers [`Store::snapshot`] gives, from any node, a keyspace that holds every
/// write acknowledged before it was taken, and none made after: the backup's point in time.
async fn a_snapshot_holds_every_earlier_write_and_no_later_one(nodes: Vec<Arc<dyn Store>>) {
    for (i, node) in nodes.iter().enumerate() {
        let key = b(&format!("snap:{i}"));
        node.set(key.clone(), b("before"), SetOptions::default()).await.unwrap();
        let Some(snapshot) = nodes[(i + 1) % nodes.len()].snapshot().await.unwrap() else {
            return; // key by key in this mode: nothing to check
        };
        assert!(!snapshot.taken_at.is_empty());
        assert_eq!(snapshot.keyspace.get(&key).map(|v| &v[..]), Some(&b"before"[..]), "node {i}");
        assert_eq!(snapshot.keyspace.len(), i + 1, "node {i}");
        node.set(key.clone(), b("after"), SetOptions::default()).await.unwrap();
        node.set(b("snap:later"), b("x"), SetOptions::default()).await.unwrap();
        assert_eq!(snapshot.keyspace.get(&key).map(|v| &v[..]), Some(&b"before"[..]), "node {i}");
        assert!(snapshot.keyspace.get(b"snap:later").is_none(), "node {i}");
        node.del(vec![b("snap:later")]).await.unwrap();
    }
}

/// Runs `per_task` operations in each of `tasks` concurrent tasks spread over the nodes and
/// returns how many were acknowledged. An indeterminate outcome fails the case: these run
/// without faults.
async fn run_concurrently<F, Fut>(nodes: &[Arc<dyn Store>], tasks: usize, per_task: usize, op: F) -> Vec<usize>
where
    F: Fn(Arc<dyn Store>, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, Error>> + Send,
{
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (node, op) = (nodes[t % nodes.len()].clone(), op.clone());
        handles.push(tokio::spawn(async move {
            let mut acked = 0;
            for i in 0..per_task {
                match op(node.clone(), t, i).await {
                    Ok(true) => acked += 1,
                    Ok(false) | Err(Error::TryAgain(_)) => {}
                    Err(e) => panic!("unexpected failure without faults: {e}"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for h in handles {
        acked.push(h.await.expect("task panicked"));
    }
    acked
}

async fn concurrent_incrs_are_never_lost(nodes: Vec<Arc<dyn Store>>) {
    let acked = run_concurrently(&nodes, 8, 25, |node, _, _| async move {
        node.update(b("counter"), UpdateOp::IncrBy(1)).await.map(|_| true)
    })
    .await;
    let total: usize = acked.iter().sum();
    assert!(total > 0, "no INCR succeeded");
    let value = nodes[0].get(b"counter").await.unwrap().unwrap();
    assert_eq!(value, b(&total.to_string()), "final counter must equal the acknowledged INCRs");
}

async fn concurrent_set_nx_has_one_winner(nodes: Vec<Arc<dyn Store>>) {
    let acked = run_concurrently(&nodes, 8, 1, |node, t, _| async move {
        let nx = SetOptions { condition: Some(SetCondition::IfAbsent), get: false };
        node.set(b("lock"), b(&format!("owner-{t}")), nx).await.map(|r| r.written)
    })
    .await;
    let winners: Vec<_> = acked.iter().enumerate().filter(|(_, n)| **n == 1).map(|(t, _)| t).collect();
    assert_eq!(winners.len(), 1, "exactly one SET NX may win: {acked:?}");
    let value = nodes.last().unwrap().get(b"lock").await.unwrap();
    assert_eq!(value, Some(b(&format!("owner-{}", winners[0]))));
}

async fn concurrent_appends_keep_every_piece(nodes: Vec<Arc<dyn Store>>) {
    let acked = run_concurrently(&nodes, 6, 10, |node, t, _| async move {
        node.update(b("log"), UpdateOp::Append(b(&t.to_string()))).await.map(|_| true)
    })
    .await;
    let value = nodes[0].get(b"log").await.unwrap().unwrap_or_default();
    assert_eq!(value.len(), acked.iter().sum::<usize>());
    for (t, n) in acked.iter().enumerate() {
        let digit = t.to_string().as_bytes()[0];
        assert_eq!(value.iter().filter(|c| **c == digit).count(), *n, "task {t}'s appends");
    }
}

async fn compare_and_set_and_conditional_delete(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    let set_if = |test, get| SetOptions { condition: Some(SetCondition::IfValue(test)), get };
    let reply = |written, previous: Option<&str>| SetReply { written, previous: previous.map(b) };
    // IFEQ and IFDEQ never create a key; IFNE and IFDNE write over an absent one.
    let ifeq = set_if(ValueCondition::Equal(b("a")), false);
    assert_eq!(node(0).set(b("k"), b("x"), ifeq).await.unwrap(), reply(false, None));
    let ifdeq = set_if(ValueCondition::DigestEqual(digest(b"a")), false);
    assert_eq!(node(1).set(b("k"), b("x"), ifdeq).await.unwrap(), reply(false, None));
    assert_eq!(node(2).get(b"k").await.unwrap(), None);
    let ifne = set_if(ValueCondition::NotEqual(b("a")), true);
    assert_eq!(node(0).set(b("k"), b("a"), ifne.clone()).await.unwrap(), reply(true, None));
    assert_eq!(node(1).set(b("k"), b("b"), ifne).await.unwrap(), reply(false, Some("a")));
    // The swap happens exactly when the value read matches.
    let ifeq = set_if(ValueCondition::Equal(b("a")), true);
    assert_eq!(node(2).set(b("k"), b("b"), ifeq.clone()).await.unwrap(), reply(true, Some("a")));
    assert_eq!(node(0).set(b("k"), b("c"), ifeq).await.unwrap(), reply(false, Some("b")));
    let ifdne = set_if(ValueCondition::DigestNotEqual(digest(b"b")), false);
    assert_eq!(node(1).set(b("k"), b("c"), ifdne).await.unwrap(), reply(false, None));
    let ifdeq = set_if(ValueCondition::DigestEqual(digest(b"b")), false);
    assert_eq!(node(2).set(b("k"), b("c"), ifdeq).await.unwrap(), reply(true, None));
    assert_eq!(node(0).get(b"k").await.unwrap(), Some(b("c")));
    // DELEX / DELIFEQ / GETDEL.
    let eq = |v: &str| Some(ValueCondition::Equal(b(v)));
    assert_eq!(node(1).remove(b("k"), eq("x"), false).await.unwrap(), reply(false, None));
    assert_eq!(
        node(2).remove(b("k"), Some(ValueCondition::NotEqual(b("c"))), false).await.unwrap(),
        reply(false, None)
    );
    assert_eq!(node(0).get(b"k").await.unwrap(), Some(b("c")), "a failed DELEX keeps the key");
    assert_eq!(node(1).remove(b("k"), eq("c"), false).await.unwrap(), reply(true, None));
    assert_eq!(node(2).remove(b("k"), eq("c"), false).await.unwrap(), reply(false, None));
    node(0).set(b("g"), b("v"), SetOptions::default()).await.unwrap();
    assert_eq!(node(1).remove(b("g"), None, true).await.unwrap(), reply(true, Some("v")));
    assert_eq!(node(2).remove(b("g"), None, true).await.unwrap(), reply(false, None));
    assert_eq!(node(0).exists(&[b("k"), b("g")]).await.unwrap(), 0);
}

/// Optimistic concurrency with SET IFEQ: each task reads the counter and writes it plus one
/// only if it is still what it read. A lost update would leave the counter below the number
/// of swaps acknowledged.
async fn concurrent_compare_and_sets_lose_no_update(nodes: Vec<Arc<dyn Store>>) {
    nodes[0].set(b("cas"), b("0"), SetOptions::default()).await.unwrap();
    let acked = run_concurrently(&nodes, 6, 15, |node, _, _| async move {
        let read = node.get(b"cas").await?.expect("the counter exists");
        let next: u64 = std::str::from_utf8(&read).unwrap().parse::<u64>().unwrap() + 1;
        let options = SetOptions { condition: Some(SetCondition::IfValue(ValueCondition::Equal(read))), get: false };
        node.set(b("cas"), b(&next.to_string()), options).await.map(|r| r.written)
    })
    .await;
    let swaps: usize = acked.iter().sum();
    assert!(swaps > 0, "no compare-and-set succeeded");
    let value = nodes.last().unwrap().get(b"cas").await.unwrap().unwrap();
    assert_eq!(value, b(&swaps.to_string()), "every acknowledged swap, and only those, counted");
}

async fn multi_set_is_all_or_nothing(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    let pairs = |ps: &[(&str, &str)]| ps.iter().map(|(k, v)| (b(k), b(v))).collect::<Vec<_>>();
    assert!(node(0).multi_set(pairs(&[("a", "1"), ("b", "2"), ("a", "3")]), false).await.unwrap());
    assert_eq!(node(1).mget(&[b("a"), b("b")]).await.unwrap(), vec![Some(b("3")), Some(b("2"))]);
    assert!(!node(2).multi_set(pairs(&[("c", "1"), ("b", "9")]), true).await.unwrap());
    assert_eq!(node(0).mget(&[b("b"), b("c")]).await.unwrap(), vec![Some(b("2")), None], "MSETNX wrote nothing");
    assert!(node(1).multi_set(pairs(&[("c", "1"), ("d", "2")]), true).await.unwrap());
    assert_eq!(node(2).dbsize().await.unwrap(), 4);
    // Concurrent MSETs of the same keys: whatever the order, every key ends with one MSET's
    // values, never a mix.
    let keys: Vec<Bytes> = (0..5).map(|i| b(&format!("m{i}"))).collect();
    let writers = (0..6).map(|t| {
        let (node, keys) = (node(t), keys.clone());
        tokio::spawn(async move {
            let pairs = keys.iter().map(|k| (k.clone(), b(&t.to_string()))).collect();
            node.multi_set(pairs, false).await.unwrap();
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let values = node(0).mget(&keys).await.unwrap();
    assert!(values.iter().all(|v| *v == values[0] && v.is_some()), "MSET was not atomic: {values:?}");
}

async fn multi_key_writes_are_refused_and_change_nothing(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    for (i, nx) in [(0, false), (1, true)] {
        match node(i).multi_set(vec![(b("a"), b("1")), (b("b"), b("2"))], nx).await {
            Err(Error::Input(m)) => assert!(m.contains("atomic"), "the refusal says why: {m}"),
            other => panic!("MSET (nx: {nx}): expected a definite -ERR, got {other:?}"),
        }
    }
    assert_eq!(node(2).exists(&[b("a"), b("b")]).await.unwrap(), 0);
}
