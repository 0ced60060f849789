//! raft mode end to end: in-process nodes over gRPC for the conformance suite, and real node
//! processes (`valthree cluster`) for leader loss, partitions, kill -9, snapshots, membership
//! and workloads under the nemesis.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    CasSupport, Down, Raw, addrs, broken_configuration_is_caught, check_compare_and_set_commands, cluster, free_port,
    info_field, kill_9_of_every_node_loses_no_acknowledged_write, nemesis_workloads_are_linearizable, redis, request,
    up,
};
use serde_json::Value;
use valthree::mode::raft::{RaftMode, RaftOptions};
use valthree::node::Member;
use valthree::node::{Faults, NodeOptions};
use valthree::store::{Store, run_conformance_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let members: Vec<Member> =
        (1..=3).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", free_port()) }).collect();
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for m in &members {
        let options = RaftOptions {
            node: NodeOptions::local(m.id, &m.peer_addr, members.clone(), tmp.path().join(format!("n{}", m.id))),
            stale_reads: false,
            snapshot_every: 2000,
            forward_batch: true,
        };
        nodes.push(Arc::new(RaftMode::start(options, Arc::new(Faults::default())).await.unwrap()));
    }
    // The first node initialises the cluster by itself; wait for a leader.
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes[0].describe().details.iter().any(|(k, v)| k == "raft_leader" && v == "none") {
        assert!(Instant::now() < deadline, "no leader was elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run_conformance_suite(nodes).await;
}

/// (index of the leader in the status, its name), waiting for one to be known by node 0's peers.
fn leader(status: &Value) -> (usize, String) {
    let addrs = addrs(status);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for a in &addrs {
            if let Ok(mut con) = redis::Client::open(format!("redis://{a}/")).and_then(|c| c.get_connection()) {
                let info: String = redis::cmd("INFO").arg("valthree").query(&mut con).unwrap_or_default();
                if let Some(id) = info.lines().find_map(|l| l.strip_prefix("raft_leader:"))
                    && let Ok(id) = id.trim().parse::<usize>()
                {
                    return (id - 1, format!("n{id}"));
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set(addr: &str, key: &str, value: &str) -> redis::RedisResult<String> {
    redis::cmd("SET").arg(key).arg(value).query(&mut redis(addr))
}

#[test]
fn a_killed_leader_is_replaced_and_writes_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let (li, name) = leader(&status);
    let other = &addrs[(li + 1) % 3];
    set(other, "before", "1").unwrap();
    cluster(&dir, &["kill", &name]);
    let killed = Instant::now();
    let mut gap = None;
    while killed.elapsed() < Duration::from_secs(20) {
        if set(other, "after", "2").is_ok() {
            gap = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gap = gap.expect("no write succeeded within 20 s of killing the leader");
    println!("failover gap: {:.2}s", gap.as_secs_f64());
    let (new, _) = leader(&cluster(&dir, &["status"]));
    assert_ne!(new, li, "a new leader");
    cluster(&dir, &["restart", &name]);
    let v: String = redis::cmd("GET").arg("after").query(&mut redis(&addrs[li])).unwrap();
    assert_eq!(v, "2", "the old leader caught up after its restart");
}

/// Writes sent at once to a follower go to the leader together, in shared peer calls (INFO's
/// `raft_forward_calls` against `raft_forwarded_writes`; with `--raft-forward-batch off`, one
/// call each), and each is applied once: the counters they increment add up to the increments
/// acknowledged.
#[test]
fn concurrent_writes_through_a_follower_share_forward_calls() {
    for batch in ["on", "off"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let status = up(&dir, "raft", &["--raft-forward-batch", batch]);
        let _down = Down(&dir);
        let addrs = addrs(&status);
        let (li, _) = leader(&status);
        let follower = addrs[(li + 1) % 3].clone();
        let (clients, each, counters) = (32, 25, 4);
        std::thread::scope(|s| {
            for c in 0..clients {
                let follower = &follower;
                s.spawn(move || {
                    let mut con = redis(follower);
                    for _ in 0..each {
                        let _: i64 =
                            redis::cmd("INCR").arg(format!("counter-{}", c % counters)).query(&mut con).unwrap();
                    }
                });
            }
        });
        let total: i64 = (0..counters)
            .map(|i| redis::cmd("GET").arg(format!("counter-{i}")).query::<i64>(&mut redis(&addrs[li])).unwrap())
            .sum();
        assert_eq!(total, clients * each, "batch {batch}: every acknowledged INCR applied once");
        let forwarded: u64 = info_field(&follower, "raft_forwarded_writes").parse().unwrap();
        let calls: u64 = info_field(&follower, "raft_forward_calls").parse().unwrap();
        assert!(forwarded >= (clients * each) as u64, "batch {batch}: {forwarded} writes forwarded");
        if batch == "on" {
            assert!(calls * 2 <= forwarded, "{forwarded} writes forwarded in {calls} calls: they should share calls");
        } else {
            assert_eq!(calls, forwarded, "without batching, each write is its own call");
        }
    }
}

#[test]
fn a_partitioned_leader_stalls_the_majority_goes_on_and_it_steps_down_on_heal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let (li, name) = leader(&status);
    let rest: Vec<String> = (1..=3).map(|i| format!("n{i}")).filter(|n| *n != name).collect();
    cluster(&dir, &["partition", &format!("{name} | {}", rest.join(","))]);
    // The minority makes no progress and says so: -TRYAGAIN or -UNCERTAIN, never OK.
    let err = set(&addrs[li], "cut", "x").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("TRYAGAIN") || text.contains("UNCERTAIN"), "{text}");
    // The majority elects a leader and goes on.
    let majority = &addrs[(li + 1) % 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    while set(majority, "majority", "yes").is_err() {
        assert!(Instant::now() < deadline, "the majority made no progress");
    }
    cluster(&dir, &["heal"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let role = info_field(&addrs[li], "raft_role");
        let v: redis::RedisResult<Option<String>> = redis::cmd("GET").arg("majority").query(&mut redis(&addrs[li]));
        if role == "follower" && matches!(v, Ok(Some(ref s)) if s == "yes") {
            break;
        }
        assert!(Instant::now() < deadline, "the old leader did not step down and catch up (role {role}, {v:?})");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The write refused during the partition was never applied... or, if it was UNCERTAIN,
    // may have been; either way every node agrees on it.
    let seen: Vec<Option<String>> =
        addrs.iter().map(|a| redis::cmd("GET").arg("cut").query(&mut redis(a)).unwrap()).collect();
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[test]
fn kill_9_of_every_node_during_writes_loses_no_acknowledged_write() {
    kill_9_of_every_node_loses_no_acknowledged_write("raft");
}

#[test]
fn a_node_that_was_down_catches_up_by_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &["--raft-snapshot-every", "100"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let (li, _) = leader(&status);
    let down = (li + 1) % 3;
    let down_name = format!("n{}", down + 1);
    cluster(&dir, &["kill", &down_name]);
    // More entries than a snapshot interval, so the log the node missed is purged.
    let mut con = redis(&addrs[li]);
    for batch in 0..8 {
        let mut pipe = redis::pipe();
        for i in batch * 50..(batch + 1) * 50 {
            pipe.cmd("SET").arg(format!("k{}", i % 50)).arg(i).ignore();
        }
        let _: () = pipe.query(&mut con).unwrap();
    }
    cluster(&dir, &["restart", &down_name]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&addrs[down], "raft_snapshots_installed") == "0" {
        assert!(Instant::now() < deadline, "no snapshot was installed on the restarted node");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v: String = redis::cmd("GET").arg("k49").query(&mut redis(&addrs[down])).unwrap();
    assert_eq!(v, "399");
    assert!(info_field(&addrs[li], "raft_log_entries_kept").parse::<u64>().unwrap() < 400, "the log was compacted");
}

/// A log of large entries is snapshotted and purged by its bytes, long before
/// `--raft-snapshot-every` entries: 200 values of 1 MB are 200 entries (of the 2,000 between
/// snapshots by count) and 200 MB of log. Building those snapshots does not cost the leader
/// its leadership.
#[test]
fn a_log_of_large_values_is_snapshotted_and_purged_by_its_bytes() {
    const VALUES: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let (li, _) = leader(&status);
    set(&addrs[li], "first", "1").unwrap();
    let terms: Vec<String> = addrs.iter().map(|a| info_field(a, "raft_term")).collect();
    let value = vec![7u8; 1_000_000];
    let mut con = redis(&addrs[li]);
    for i in 0..VALUES {
        let _: () = redis::cmd("SET").arg(format!("big{i}")).arg(&value).query(&mut con).unwrap();
    }
    let written = (VALUES * value.len()) as u64;
    common::wait_until(Duration::from_secs(60), "a snapshot and a purge on every node", || {
        addrs.iter().all(|a| {
            info_field(a, "raft_snapshot_index").parse::<u64>().unwrap_or(0) > 0
                && info_field(a, "raft_log_entries_kept").parse::<usize>().unwrap_or(usize::MAX) < VALUES * 3 / 4
        })
    });
    // The snapshots are taken at 64 MiB of log past the last one, and 64 MiB of what they
    // cover is kept: the log holds less than the 200 MB written (a snapshot by count alone
    // would have kept every entry).
    for a in &addrs {
        let kept: u64 = info_field(a, "raft_log_bytes_kept").parse().unwrap();
        assert!(kept < written * 3 / 4, "{a}'s log holds {kept} bytes of the {written} written");
    }
    let now: Vec<String> = addrs.iter().map(|a| info_field(a, "raft_term")).collect();
    assert_eq!(now, terms, "no election while the snapshots were built");
    for a in &addrs {
        let got: Vec<u8> = redis::cmd("GET").arg(format!("big{}", VALUES - 1)).query(&mut redis(a)).unwrap();
        assert!(got == value, "the last value on {a}");
    }
}

#[test]
fn membership_grows_and_shrinks_at_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    set(&addrs[0], "k", "v").unwrap();
    let added = cluster(&dir, &["add-node"]);
    let n4 = added["addr"].as_str().unwrap().to_string();
    let v: String = redis::cmd("GET").arg("k").query(&mut redis(&n4)).unwrap();
    assert_eq!(v, "v", "the new node has the data");
    assert_eq!(info_field(&n4, "raft_members").split(',').filter(|m| !m.contains("learner")).count(), 4);
    cluster(&dir, &["remove-node", "n4"]);
    assert_eq!(info_field(&addrs[1], "raft_members").split(',').count(), 3);
    set(&addrs[2], "k", "w").unwrap();
}

#[test]
fn workloads_under_kill_pause_and_partition_are_linearizable_on_several_seeds() {
    nemesis_workloads_are_linearizable("raft", &["1", "2"]);
}

#[test]
fn workloads_under_every_partition_shape_and_packet_faults_are_linearizable() {
    common::shaped_partitions_and_packet_faults_are_linearizable("raft", "4");
}

#[test]
fn kills_and_pauses_of_every_target_are_linearizable() {
    common::kills_and_pauses_of_every_target_are_linearizable("raft", "5");
}

#[test]
fn stale_reads_are_caught_by_the_checker_under_partitions() {
    // --stale-reads answers from the local state machine: a node cut off from the leader keeps
    // serving old values. It is documented as not linearizable; the checker must see it.
    broken_configuration_is_caught("raft", &["--stale-reads"], "8s");
}

/// A node whose data directory was lost is restored by removing it and adding a new node
/// (`cluster remove-node`, then `cluster add-node`); restarted in place with an empty directory
/// it takes no part and says why (see `a_wiped_voter_does_not_elect_a_lagging_node`). Writes
/// through the new node apply once each, after the old node's writes.
#[test]
fn a_node_whose_data_was_lost_is_restored_by_remove_and_add() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let n3 = addrs(&status)[2].clone();
    let incr = |addr: &str| -> i64 { redis::cmd("INCR").arg("c").query(&mut redis(addr)).unwrap() };
    for i in 1..=50 {
        assert_eq!(incr(&n3), i);
    }
    cluster(&dir, &["kill", "n3"]);
    let data = std::path::PathBuf::from(status["nodes"][2]["data_dir"].as_str().unwrap());
    std::fs::remove_dir_all(&data).unwrap();
    cluster(&dir, &["restart", "n3"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !info_field(&n3, "raft_data").starts_with("lost") {
        assert!(Instant::now() < deadline, "the wiped node did not notice: {}", info_field(&n3, "raft_data"));
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster(&dir, &["remove-node", "n3"]);
    let added = cluster(&dir, &["add-node"]);
    let n4 = added["addr"].as_str().unwrap().to_string();
    for i in 51..=100 {
        assert_eq!(incr(&n4), i, "INCR through the node added in its place");
    }
}

/// kill -9 of every node right after an acknowledged write, then the old leader and one
/// follower restarted: the first reads see the write. (openraft restores a leader in its old
/// term with the committed index it saved; saved without an fsync, that index once lagged.)
#[test]
fn reads_right_after_every_node_is_killed_see_the_last_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    up(&dir, "raft", &[]);
    let _down = Down(&dir);
    for trial in 0..3 {
        let status = cluster(&dir, &["status"]);
        let (li, leader_name) = leader(&status);
        let addrs = addrs(&status);
        let value = format!("v{trial}");
        assert_eq!(set(&addrs[li], "k", &value).unwrap(), "OK");
        let pids: Vec<String> =
            status["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap().to_string()).collect();
        let killed = std::process::Command::new("kill").arg("-9").args(&pids).status().unwrap();
        assert!(killed.success());
        std::thread::sleep(Duration::from_millis(300));
        let follower = (li + 1) % 3;
        cluster(&dir, &["restart", &leader_name]);
        cluster(&dir, &["restart", &format!("n{}", follower + 1)]);
        // Two of three nodes are up, so each must answer a read before long; a read that fails
        // (no leader yet) is tried again, and every read that succeeds must see the write.
        for at in [li, follower] {
            let deadline = Instant::now() + Duration::from_secs(30);
            let got = loop {
                let got: redis::RedisResult<Option<String>> = redis::cmd("GET").arg("k").query(&mut redis(&addrs[at]));
                match got {
                    Ok(got) => break got,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "trial {trial}: no read succeeded on n{}: {e}", at + 1)
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(got, Some(value.clone()), "trial {trial}: a read on n{} missed an acknowledged write", at + 1);
        }
        cluster(&dir, &["restart", &format!("n{}", (li + 2) % 3 + 1)]);
    }
}

/// A voter whose data directory was wiped and that was restarted in place must not vote: with
/// an empty log it would elect any candidate, one missing committed writes included. Here the
/// write is acknowledged by the leader and one follower while the third node is cut off; then
/// both are killed, the follower's data is wiped, it restarts next to the lagging node, and the
/// write must never be read as missing — and once the old leader is back, it is read.
#[test]
fn a_wiped_voter_does_not_elect_a_lagging_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    set(&addrs[0], "k", "old").unwrap();
    // n2 is cut off: it keeps "old" and falls behind.
    cluster(&dir, &["partition", "n2 | n1,n3"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while set(&addrs[0], "k", "new").is_err() {
        assert!(Instant::now() < deadline, "the majority made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (li, leader_name) = leader(&cluster(&dir, &["status"]));
    assert_ne!(li, 1, "the leader is in the majority");
    let wiped = if li == 0 { 2 } else { 0 };
    let wiped_name = format!("n{}", wiped + 1);
    cluster(&dir, &["kill", &leader_name]);
    cluster(&dir, &["kill", &wiped_name]);
    let data = std::path::PathBuf::from(status["nodes"][wiped]["data_dir"].as_str().unwrap());
    std::fs::remove_dir_all(&data).unwrap();
    cluster(&dir, &["heal"]);
    cluster(&dir, &["restart", &wiped_name]);
    // The lagging node and the wiped one are two of three: for a while, every read that
    // succeeds must see the acknowledged write (none should succeed at all).
    let watch = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch {
        for at in [1, wiped] {
            let got: redis::RedisResult<Option<String>> = redis::cmd("GET").arg("k").query(&mut redis(&addrs[at]));
            if let Ok(got) = got {
                assert_eq!(got.as_deref(), Some("new"), "n{} read a lost write back", at + 1);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        info_field(&addrs[wiped], "raft_data").starts_with("lost"),
        "the wiped node says its data was lost: {}",
        info_field(&addrs[wiped], "raft_data")
    );
    // With the old leader back, the write is read on the lagging node.
    cluster(&dir, &["restart", &leader_name]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: redis::RedisResult<Option<String>> = redis::cmd("GET").arg("k").query(&mut redis(&addrs[1]));
        match got {
            Ok(got) => {
                assert_eq!(got.as_deref(), Some("new"));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no read succeeded on n2: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn compare_and_set_commands_through_every_node_of_a_raft_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let ports: Vec<u16> = addrs(&status).iter().map(|a| a.rsplit(':').next().unwrap().parse().unwrap()).collect();
    check_compare_and_set_commands(&ports, CasSupport::MultiKey);
    // MSET is one log entry: up to 4 MiB of pairs it is atomic, beyond it is refused before
    // anything is written (a single large SET travels in chunks instead).
    let mut conn = Raw::connect(ports[1]);
    let mib = |n: usize| vec![b'x'; n << 20];
    conn.send(&request(&[b"MSET", b"big1", &mib(1), b"big2", &mib(2)]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
    conn.send(&request(&[b"MSET", b"big3", &mib(3), b"big4", &mib(2)]));
    let refused = String::from_utf8_lossy(&conn.read_reply()).into_owned();
    assert!(refused.starts_with("-ERR this MSET carries") && refused.contains("raft log entry"), "{refused}");
    conn.send(&request(&[b"SET", b"big1", b"v", b"IFEQ", &mib(5)]));
    let refused = String::from_utf8_lossy(&conn.read_reply()).into_owned();
    assert!(refused.contains("IFDEQ/IFDNE"), "a huge IFEQ points to the digest: {refused}");
    conn.send(&request(&[b"EXISTS", b"big1", b"big2", b"big3", b"big4"]));
    assert_eq!(conn.read_reply(), b":2\r\n");
    // Only MSET's pairs and a compared value are capped: a key over 4 MiB, and a DEL of more
    // than 4 MiB of key names, still go in one entry as they always did.
    let long_key = [&mib(4)[..], b"-key"].concat();
    conn.send(&request(&[b"SET", &long_key, b"v"]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
    conn.send(&request(&[b"INCR", &long_key]));
    assert!(conn.read_reply().starts_with(b"-ERR value is not an integer"));
    conn.send(&request(&[b"DEL", &long_key, &mib(1), b"big1", b"big2"]));
    assert_eq!(conn.read_reply(), b":3\r\n");
    // A value larger than one entry travels in chunks; its condition stays with the entry
    // that applies it.
    let (a, b) = (vec![b'a'; 3 << 20], vec![b'b'; 3 << 20]);
    conn.send(&request(&[b"SET", b"huge", &a, b"IFNE", b"x"]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
    conn.send(&request(&[b"SET", b"huge", &b, b"IFEQ", &b]));
    assert_eq!(conn.read_reply(), b"$-1\r\n");
    conn.send(&request(&[b"SET", b"huge", &b, b"IFEQ", &a]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
    conn.send(&request(&[b"GET", b"huge"]));
    let expected = [format!("${}\r\n", b.len()).as_bytes(), &b, b"\r\n"].concat();
    assert!(conn.read_reply() == expected, "the assembled value is the one sent");
}
