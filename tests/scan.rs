//! SCAN and KEYS end to end: the real redis-cli's `--scan` against every mode (a cluster of
//! three nodes, keys written through all of them), KEYS against redis-server's on the same
//! keys, and a cursor that outlives the node that handed it out.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Down, RedisServer, Valthree, addrs, find_program, redis, up};

/// What redis-cli's `--scan --pattern P` prints against `addr`, one key per line (redis-cli 7.0
/// asks for pages of its default COUNT, 10).
fn redis_cli_scan(addr: &str, pattern: &str) -> BTreeSet<String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new(find_program("redis-cli"))
        .args(["-h", host, "-p", port, "--scan", "--pattern", pattern])
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli --scan: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<String> = text.lines().map(str::to_string).collect();
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(unique.len(), keys.len(), "a key that stayed put was listed twice");
    unique
}

/// Writes users and orders through every node of a 3-node `mode` cluster, then lists the
/// users with redis-cli --scan through every node.
fn redis_cli_scans_a_cluster(mode: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, mode, &[]);
    let _down = Down(&dir);
    let nodes = addrs(&status);
    let users: BTreeSet<String> = (0..250).map(|i| format!("user:{i}")).collect();
    let others: Vec<String> = (0..80).map(|i| format!("order:{i}")).collect();
    let mut connections: Vec<redis::Connection> = nodes.iter().map(|a| redis(a)).collect();
    for (i, key) in users.iter().chain(&others).enumerate() {
        let con = &mut connections[i % nodes.len()];
        // A cluster just up on a loaded machine may still answer TRYAGAIN (no leader yet).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while let Err(e) = redis::cmd("SET").arg(key).arg("v").query::<()>(con) {
            assert!(std::time::Instant::now() < deadline, "{mode}: SET {key}: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    for addr in &nodes {
        assert_eq!(redis_cli_scan(addr, "user:*"), users, "{mode} via {addr}");
    }
    let mut all = redis_cli_scan(&nodes[0], "*");
    all.retain(|k| !users.contains(k));
    assert_eq!(all.len(), others.len(), "{mode}: every other key, once");
    let keys: Vec<String> = redis::cmd("KEYS").arg("order:?").query(&mut connections[1]).unwrap();
    assert_eq!(keys.len(), 10, "{mode}: KEYS order:? is order:0..order:9: {keys:?}");
}

#[test]
fn redis_cli_scan_works_on_an_s3_cluster() {
    redis_cli_scans_a_cluster("s3");
}

#[test]
fn redis_cli_scan_works_on_a_raft_cluster() {
    redis_cli_scans_a_cluster("raft");
}

#[test]
fn redis_cli_scan_works_on_a_paxos_cluster() {
    redis_cli_scans_a_cluster("paxos");
}

#[test]
fn redis_cli_scan_works_on_a_dynamo_cluster() {
    redis_cli_scans_a_cluster("dynamo");
}

/// Keys that exercise every rule of Redis' globs, binary ones included.
fn tricky_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = [
        "", "a", "b", "ab", "abc", "a*c", "a?c", "a[b]c", "a\\c", "hello", "hallo", "hxllo", "hllo", "heeello", "-",
        "]", "^", "[", "user:1", "user:12", "User:1", "x-y", "a]b", "*", "?",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    keys.extend([b"h\xffllo".to_vec(), b"\x00".to_vec(), b"a\x00c".to_vec(), b"\x80".to_vec(), b"z\xfe".to_vec()]);
    keys
}

/// Patterns whose corners differ between glob libraries: classes, negation, reversed and
/// signed ranges, escapes, unclosed brackets, trailing backslashes, stars.
const TRICKY_PATTERNS: &[&[u8]] = &[
    b"*",
    b"**",
    b"?",
    b"??",
    b"a*",
    b"*c",
    b"a*c",
    b"a?c",
    b"h[ae]llo",
    b"h[^e]llo",
    b"h[a-b]llo",
    b"h[b-a]llo",
    b"a\\*c",
    b"a\\?c",
    b"a\\\\c",
    b"a[\\]]b",
    b"[]]",
    b"[^]",
    b"[",
    b"a[b",
    b"a[bc",
    b"a[",
    b"\\",
    b"a\\",
    b"[-]",
    b"[a-]",
    b"[\\-]",
    b"[^a-z]",
    b"*[",
    b"h*llo",
    b"h?*llo",
    b"user:[0-9]",
    b"user:[0-9]*",
    b"[uU]ser:*",
    b"h[a-\xff]llo",
    b"h[\xff-a]llo",
    b"[\x80-\xff]",
    b"*\x00*",
    b"a[\x00]c",
    b"z[^a]",
    b"[!a]",
    b"*?*",
    b"",
];

/// KEYS lists exactly what redis-server's does for the same keys (both sorted: the orders
/// differ by design), and SCAN MATCH agrees with KEYS.
#[test]
fn keys_and_scan_match_like_redis_server() {
    let server = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let valthree = Valthree::start(tmp.path(), &["--data-dir", data.to_str().unwrap()]);
    let mut theirs = redis(&format!("127.0.0.1:{}", server.port));
    let mut ours = redis(&valthree.addr());
    for key in tricky_keys() {
        for con in [&mut theirs, &mut ours] {
            let _: () = redis::cmd("SET").arg(&key).arg("v").query(con).unwrap();
        }
    }
    let mut differences = Vec::new();
    for pattern in TRICKY_PATTERNS {
        let listed = |con: &mut redis::Connection| {
            let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(*pattern).query(con).unwrap();
            keys.sort();
            keys
        };
        let (expected, actual) = (listed(&mut theirs), listed(&mut ours));
        if expected != actual {
            differences.push(format!(
                "KEYS {:?}: redis-server {:?}, valthree {:?}",
                String::from_utf8_lossy(pattern),
                expected.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect::<Vec<_>>(),
                actual.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect::<Vec<_>>()
            ));
        }
        let mut scanned: Vec<Vec<u8>> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(*pattern).arg("COUNT").arg(3).query(&mut ours).unwrap();
            scanned.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        scanned.sort();
        assert_eq!(scanned, actual, "SCAN MATCH {:?} and KEYS agree", String::from_utf8_lossy(pattern));
    }
    assert!(differences.is_empty(), "{} patterns differ:\n{}", differences.len(), differences.join("\n"));
    let none: (u64, Vec<Vec<u8>>) =
        redis::cmd("SCAN").arg(0).arg("TYPE").arg("hash").arg("COUNT").arg(1000).query(&mut ours).unwrap();
    assert_eq!(none, (0, vec![]), "no key is a hash");
    let (_, strings): (u64, Vec<Vec<u8>>) =
        redis::cmd("SCAN").arg(0).arg("TYPE").arg("STRING").arg("COUNT").arg(1000).query(&mut ours).unwrap();
    assert_eq!(strings.len(), tricky_keys().len(), "every key is a string");
}

/// A cursor is a position in a hash order, not the node's memory: a scan begun before the
/// node restarts ends after it, and lists every key.
#[test]
fn a_scan_continues_across_a_restart_of_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut valthree = Valthree::start(tmp.path(), &["--data-dir", data.to_str().unwrap()]);
    let expected: BTreeSet<String> = (0..100).map(|i| format!("k{i}")).collect();
    let mut con = redis(&valthree.addr());
    for key in &expected {
        let _: () = redis::cmd("SET").arg(key).arg("v").query(&mut con).unwrap();
    }
    let (cursor, first): (u64, Vec<String>) = redis::cmd("SCAN").arg(0).arg("COUNT").arg(10).query(&mut con).unwrap();
    assert_ne!(cursor, 0);
    valthree.restart();
    let mut con = redis(&valthree.addr());
    let mut seen: BTreeSet<String> = first.into_iter().collect();
    let mut cursor = cursor;
    while cursor != 0 {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(10).query(&mut con).unwrap();
        seen.extend(keys);
        cursor = next;
    }
    assert_eq!(seen, expected);
}
