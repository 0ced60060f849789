//! The behavioural suite every mode must pass (toydb's shared engine tests, openraft's
//! `Suite`): written once, run against one node or against several nodes of one cluster.
//!
//! The suite is public so that integration tests can run it against any deployment of a
//! mode; each case starts with FLUSHALL and spreads its requests over all the nodes given.

use std::sync::Arc;

use bytes::Bytes;

use super::{Pattern, SetCondition, SetOptions, SetReply, Store, UpdateOp};
use crate::error::Error;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// One case of the suite.
type Case = fn(Vec<Arc<dyn Store>>) -> futures_util::future::BoxFuture<'static, ()>;

/// Runs every case against `nodes` (one store per node of one cluster).
pub async fn run_conformance_suite(nodes: Vec<Arc<dyn Store>>) {
    run(nodes, true).await
}

/// The suite for a mode that refuses atomic read-modify-writes (dynamo mode): the cases that
/// need SET NX/XX/GET, INCR or APPEND are replaced by one that checks each is refused with a
/// definite `-ERR` and changes nothing.
pub async fn run_conformance_suite_without_atomic_updates(nodes: Vec<Arc<dyn Store>>) {
    run(nodes, false).await
}

/// The cases that need an atomic read-modify-write.
const ATOMIC: &[&str] = &[
    "set_conditions_and_get_option",
    "counters_and_append",
    "concurrent_incrs_are_never_lost",
    "concurrent_set_nx_has_one_winner",
    "concurrent_appends_keep_every_piece",
];

async fn run(nodes: Vec<Arc<dyn Store>>, atomic: bool) {
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
    ];
    for (name, case) in cases {
        let refusal = *name == "read_modify_writes_are_refused_and_change_nothing";
        if (ATOMIC.contains(name) && !atomic) || (refusal && atomic) {
            continue;
        }
        nodes[0].flushall().await.unwrap_or_else(|e| panic!("{name}: FLUSHALL failed: {e}"));
        tracing::info!(case = name, "conformance");
        case(nodes.clone()).await;
    }
}

async fn read_modify_writes_are_refused_and_change_nothing(nodes: Vec<Arc<dyn Store>>) {
    let node = |i: usize| nodes[i % nodes.len()].clone();
    node(0).set(b("k"), b("7"), SetOptions::default()).await.unwrap();
    let refused = |r: Result<(), Error>, what: &str| match r {
        Err(Error::Input(m)) => assert!(m.contains("VGET"), "{what}: the refusal points to VGET/VSET: {m}"),
        other => panic!("{what}: expected a definite -ERR, got {other:?}"),
    };
    refused(node(1).update(b("k"), UpdateOp::IncrBy(1)).await.map(drop), "INCR");
    refused(node(2).update(b("k"), UpdateOp::Append(b("x"))).await.map(drop), "APPEND");
    let nx = SetOptions { condition: Some(SetCondition::IfAbsent), get: false };
    refused(node(0).set(b("k"), b("8"), nx).await.map(drop), "SET NX");
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
    assert_eq!(node(0).set(b("k"), b("a"), xx).await.unwrap(), written(false));
    assert_eq!(node(1).get(b"k").await.unwrap(), None);
    assert_eq!(node(1).set(b("k"), b("a"), nx).await.unwrap(), written(true));
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
    let mut expected: Vec<Bytes> = (0..60).map(|i| b(&format!("user:{i}"))).collect();
    expected.push(binary.clone());
    let others: Vec<Bytes> = (0..20).map(|i| b(&format!("other:{i}"))).collect();
    let writes = expected.iter().chain(&others).enumerate().map(|(i, k)| {
        let node = nodes[i % nodes.len()].clone();
        let k = k.clone();
        async move { node.set(k, b("v"), SetOptions::default()).await.unwrap() }
    });
    futures_util::future::join_all(writes).await;
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
    assert!(first.cursor != 0 && !first.keys.is_empty(), "a page of 5 out of 78 keys is not the last");
}

/// Runs `per_task` operations in each of `tasks` concurrent tasks spread over the nodes and
/// returns how many were acknowledged. An indeterminate outcome fails the case: these run
/// without faults.
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
