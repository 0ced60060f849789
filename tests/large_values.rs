//! Values of many megabytes, as Redis accepts them (up to `--proto-max-bulk-len`), stored and
//! replicated by every replicated mode: through each node (leader and followers in raft, a
//! key's home or not in paxos), read back through every node, and in raft carried by a
//! snapshot to a node that was down while the log was compacted.

mod common;

use std::time::{Duration, Instant};

use common::{Down, addrs, cluster, up};

/// A connection that waits long enough for a large value (debug builds move ~10 MB/s).
fn redis(addr: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    con.set_write_timeout(Some(Duration::from_secs(90))).unwrap();
    con
}

/// A value of `mb` MiB whose bytes tell where they came from.
fn value(mb: usize, seed: u8) -> Vec<u8> {
    (0..mb << 20).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// SETs `value`; an answer that says "not applied" or "may have been applied" (allowed
/// under load: a slow phase retried by its own proposer) is retried, at most twice, with
/// the same value. What must hold is that the value is stored and then read back whole.
fn set(addr: &str, key: &str, value: &[u8]) {
    let mut last = None;
    for attempt in 0..3 {
        let reply: redis::RedisResult<String> = redis::cmd("SET").arg(key).arg(value).query(&mut redis(addr));
        match reply {
            Ok(ok) if ok == "OK" => return,
            Err(e) if matches!(e.code(), Some("TRYAGAIN" | "UNCERTAIN")) => {
                eprintln!("SET {key} attempt {attempt}: {e}");
                last = Some(e.to_string());
            }
            other => panic!("SET {key} ({} bytes) through {addr}: {other:?}", value.len()),
        }
    }
    panic!("SET {key} ({} bytes) through {addr} never succeeded: {last:?}", value.len());
}

/// GETs `key`; a definite "not done" (TRYAGAIN: e.g. the key's home was slow to answer a
/// forward on a loaded machine) is retried, at most twice. Anything else must be the value.
fn get(addr: &str, key: &str) -> Vec<u8> {
    let mut last = None;
    for attempt in 0..3 {
        match redis::cmd("GET").arg(key).query::<Vec<u8>>(&mut redis(addr)) {
            Ok(value) => return value,
            Err(e) if e.code() == Some("TRYAGAIN") => {
                eprintln!("GET {key} attempt {attempt}: {e}");
                last = Some(e.to_string());
            }
            Err(e) => panic!("GET {key} through {addr}: {e}"),
        }
    }
    panic!("GET {key} through {addr} never succeeded: {last:?}");
}

fn through_every_node(mode: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, mode, extra);
    let _down = Down(&dir);
    let nodes = addrs(&status);
    let mut written = Vec::new();
    for (i, addr) in nodes.iter().enumerate() {
        for mb in [1, 8, 64] {
            let key = format!("big-{mb}-via-n{}", i + 1);
            let v = value(mb, i as u8);
            set(addr, &key, &v);
            written.push((key, v));
        }
    }
    for addr in &nodes {
        for (key, v) in &written {
            assert!(get(addr, key) == *v, "{key} read through {addr} differs from what was written");
        }
    }
}

#[test]
fn raft_stores_and_replicates_values_of_1_8_and_64_mb() {
    through_every_node("raft", &[]);
}

#[test]
fn paxos_stores_and_replicates_values_of_1_8_and_64_mb() {
    through_every_node("paxos", &[]);
}

#[test]
fn a_raft_node_catches_up_on_large_values_by_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &["--raft-snapshot-every", "16"]);
    let _down = Down(&dir);
    let nodes = addrs(&status);
    set(&nodes[0], "first", b"1"); // the cluster is initialised (it waits for every node once)
    // n3 is down while more than a snapshot interval of large writes is made and compacted.
    cluster(&dir, &["kill", "n3"]);
    let mut written = Vec::new();
    for i in 0..10u8 {
        let key = format!("snap-{i}");
        let v = value(2 + usize::from(i % 3), i);
        set(&nodes[usize::from(i % 2)], &key, &v);
        written.push((key, v));
    }
    // A snapshot is taken (and the log purged behind it) in the background: n3 comes back only
    // once both live nodes have one well past what n3 holds, so the log cannot catch it up.
    common::wait_until(Duration::from_secs(60), "a snapshot past n3's log on both live nodes", || {
        nodes[..2].iter().all(|a| common::info_field(a, "raft_snapshot_index").parse::<u64>().unwrap_or(0) >= 12)
    });
    cluster(&dir, &["restart", "n3"]);
    // Catching up means receiving the whole snapshot: retry the reads while it streams.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (key, v) in &written {
        loop {
            let read: redis::RedisResult<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut redis(&nodes[2]));
            match read {
                Ok(got) => {
                    assert!(got == *v, "{key} on the restarted node differs");
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "n3 did not catch up: {e}"),
            }
        }
    }
    let installed = common::info_field(&nodes[2], "raft_snapshots_installed");
    assert_ne!(installed, "0", "n3 caught up by installing a snapshot");
}
