//! paxos mode end to end: in-process nodes talking gRPC for the conformance suite, and real
//! node processes (`valthree cluster`) under the nemesis, kill -9, membership changes and a
//! deliberately broken quorum that the checker must catch.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Down, cluster, free_base, free_port, text, valthree};
use serde_json::Value;
use valthree::mode::paxos::storage::Member;
use valthree::mode::paxos::{PaxosMode, PaxosOptions};
use valthree::node::Faults;
use valthree::store::{Store, run_conformance_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let members: Vec<Member> =
        (1..=3).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", free_port()) }).collect();
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for m in &members {
        let options = PaxosOptions {
            node_id: m.id,
            peer_addr: m.peer_addr.clone(),
            peers: members.clone(),
            join: false,
            data_dir: tmp.path().join(format!("n{}", m.id)),
            one_round_trip: true,
            unsafe_accept_quorum: None,
            gc_interval: Duration::from_millis(200),
        };
        nodes.push(Arc::new(PaxosMode::start(options, Arc::new(Faults::default())).await.unwrap()));
    }
    run_conformance_suite(nodes).await;
}

fn redis(addr: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con
}

fn addrs(status: &Value) -> Vec<String> {
    status["nodes"].as_array().unwrap().iter().map(|n| n["addr"].as_str().unwrap().to_string()).collect()
}

fn info_field(addr: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("valthree").query(&mut redis(addr)).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in INFO: {info}"))
}

fn up(dir: &Path, extra: &[&str]) -> Value {
    let base = free_base().to_string();
    let mut args = vec!["up", "--mode", "paxos", "--nodes", "3", "--base-port", &base];
    if !extra.is_empty() {
        args.push("--");
        args.extend_from_slice(extra);
    }
    cluster(dir, &args)
}

/// Runs `valthree workload --check` against the cluster in `dir`; returns (passed, output).
fn workload(dir: &Path, history: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "workload",
        "--cluster",
        dir.to_str().unwrap(),
        "--clients",
        "6",
        "--keys",
        "4",
        "--timeout",
        "2s",
        "--history",
        history.to_str().unwrap(),
        "--check",
    ];
    args.extend_from_slice(extra);
    let out = valthree(&args);
    (out.status.success(), text(&out))
}

#[test]
fn workloads_under_kill_pause_and_partition_are_linearizable_on_several_seeds() {
    for seed in ["1", "2"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        up(&dir, &[]);
        let _down = Down(&dir);
        let history = tmp.path().join("h.jsonl");
        let nemesis = ["--nemesis", "kill,pause,partition", "--nemesis-interval", "1500ms"];
        let mut extra = vec!["--duration", "10s", "--seed", seed];
        extra.extend(nemesis);
        let (ok, out) = workload(&dir, &history, &extra);
        assert!(ok && out.contains("linearizable:"), "seed {seed}: {out}");
        let events = std::fs::read_to_string(&history).unwrap();
        for f in ["\"kill\"", "\"pause\"", "\"partition\""] {
            assert!(events.contains(f), "seed {seed}: no {f} fault in the history");
        }
        let oks = events.lines().filter(|l| l.contains("\"type\":\"ok\"")).count();
        assert!(oks > 200, "seed {seed}: only {oks} operations succeeded under faults");
    }
}

#[test]
fn a_broken_accept_quorum_is_caught_by_the_checker() {
    // Accepting on one acceptor breaks quorum intersection: under partitions the isolated
    // side keeps acknowledging writes the majority never sees. The checker must say so.
    let mut caught = None;
    for seed in ["1", "2", "3"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        up(&dir, &["--unsafe-accept-quorum", "1"]);
        let _down = Down(&dir);
        let history = tmp.path().join("h.jsonl");
        let extra = ["--duration", "10s", "--seed", seed, "--nemesis", "partition", "--nemesis-interval", "2s"];
        let (ok, out) = workload(&dir, &history, &extra);
        if !ok {
            assert!(out.contains("NOT linearizable"), "seed {seed} failed for another reason: {out}");
            caught = Some(seed);
            break;
        }
    }
    assert!(caught.is_some(), "three runs with an accept quorum of 1 under partitions all passed the checker");
}

#[test]
fn kill_9_of_every_node_during_writes_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|c| {
            let addr = addrs[c % 3].clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut con = redis(&addr);
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("w{c}-{i}");
                    match redis::cmd("SET").arg(&key).arg(i).query::<String>(&mut con) {
                        Ok(_) => acked.push(key),
                        Err(_) => break, // the node died under us
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    for n in ["n1", "n2", "n3"] {
        cluster(&dir, &["kill", n]);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acked.len() > 50, "only {} writes were acknowledged before the crash", acked.len());
    for n in ["n1", "n2", "n3"] {
        cluster(&dir, &["restart", n]);
    }
    let mut con = redis(&addrs[1]);
    for key in &acked {
        let v: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert!(v.is_some(), "acknowledged {key} is gone after kill -9 of every node");
    }
}

#[test]
fn deleted_keys_are_garbage_collected_and_never_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, &["--paxos-gc-interval", "200ms"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let mut con = redis(&addrs[0]);
    for i in 0..40 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut con).unwrap();
    }
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut redis(&addrs[2])).unwrap(), 40);
    for i in 0..40 {
        let n: i64 = redis::cmd("DEL").arg(format!("k{i}")).query(&mut redis(&addrs[i % 3])).unwrap();
        assert_eq!(n, 1);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while addrs.iter().any(|a| info_field(a, "paxos_slots") != "0") {
        assert!(
            Instant::now() < deadline,
            "tombstones were not collected: {:?}",
            addrs.iter().map(|a| info_field(a, "paxos_slots")).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The slots are gone everywhere; every node still reads the keys as absent, also after
    // restarts (the floor is durable), and a new write works.
    for n in ["n1", "n2", "n3"] {
        cluster(&dir, &["restart", n]);
    }
    for (i, a) in addrs.iter().enumerate() {
        let mut con = redis(a);
        for k in 0..40 {
            let v: Option<String> = redis::cmd("GET").arg(format!("k{k}")).query(&mut con).unwrap();
            assert_eq!(v, None, "k{k} came back on node {i}");
        }
        assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 0);
    }
    assert!(info_field(&addrs[0], "paxos_gc_floor") != "0.0");
    let _: () = redis::cmd("SET").arg("k1").arg("again").query(&mut redis(&addrs[1])).unwrap();
    let v: String = redis::cmd("GET").arg("k1").query(&mut redis(&addrs[0])).unwrap();
    assert_eq!(v, "again");
}

#[test]
fn membership_grows_to_five_and_shrinks_back_under_load_linearizably() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, &[]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    let addrs = addrs(&status).join(",");
    let history_arg = history.to_str().unwrap().to_string();
    let load = std::thread::spawn(move || {
        let out = valthree(&[
            "workload",
            "--addrs",
            &addrs,
            "--clients",
            "6",
            "--keys",
            "12",
            "--duration",
            "14s",
            "--mix",
            "get=4,set=3,incr=2,append=1",
            "--history",
            &history_arg,
            "--check",
        ]);
        (out.status.success(), text(&out))
    });
    std::thread::sleep(Duration::from_secs(2));
    let shows = |v: &Value| {
        v["configuration"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let added = cluster(&dir, &["add-node"]);
    assert!(shows(&added).iter().any(|l| l.starts_with("member 4 ")), "{added}");
    let added = cluster(&dir, &["add-node"]);
    let config = shows(&added);
    assert_eq!(config.iter().filter(|l| l.starts_with("member ")).count(), 5, "{config:?}");
    std::thread::sleep(Duration::from_secs(2));
    cluster(&dir, &["remove-node", "n5"]);
    let removed = cluster(&dir, &["remove-node", "n4"]);
    let config = shows(&removed);
    assert_eq!(config.iter().filter(|l| l.starts_with("member ")).count(), 3, "{config:?}");
    let (ok, out) = load.join().unwrap();
    assert!(ok && out.contains("linearizable:"), "{out}");
    // Ids are never reused: ballots carry them.
    let again = cluster(&dir, &["add-node"]);
    assert_eq!(again["node"], "n6", "{again}");
    cluster(&dir, &["remove-node", "n6"]);
    let status = cluster(&dir, &["status"]);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
    // Every node agrees on the final configuration.
    for a in self::addrs(&status) {
        assert_eq!(info_field(&a, "paxos_joint"), "0");
        assert_eq!(info_field(&a, "paxos_members").split(',').count(), 3);
    }
}
