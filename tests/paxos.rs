//! paxos mode end to end: in-process nodes talking gRPC for the conformance suite, and real
//! node processes (`valthree cluster`) under the nemesis, kill -9, membership changes and a
//! deliberately broken quorum that the checker must catch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    CasSupport, Down, Verdict, addrs, assert_verdict, broken_configuration_is_caught, check_compare_and_set_commands,
    cluster, free_port, info_field, kill_9_of_every_node_loses_no_acknowledged_write,
    nemesis_workloads_are_linearizable, recorded_events, redis, up, valthree, wait_for_history,
};
use serde_json::Value;
use valthree::mode::paxos::{PaxosMode, PaxosOptions};
use valthree::node::Member;
use valthree::node::{Faults, NodeOptions};
use valthree::store::{Store, run_conformance_suite_per_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let members: Vec<Member> =
        (1..=3).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", free_port()) }).collect();
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for m in &members {
        let options = PaxosOptions {
            node: NodeOptions::local(m.id, &m.peer_addr, members.clone(), tmp.path().join(format!("n{}", m.id))),
            one_round_trip: true,
            unsafe_accept_quorum: None,
            gc_interval: Duration::from_millis(200),
            ballot_ceiling: true,
        };
        nodes.push(Arc::new(PaxosMode::start(options, Arc::new(Faults::default())).await.unwrap()));
    }
    run_conformance_suite_per_key(nodes).await;
}

#[test]
fn workloads_under_kill_pause_and_partition_are_linearizable_on_several_seeds() {
    nemesis_workloads_are_linearizable("paxos", &["1", "2"]);
}

#[test]
fn workloads_under_every_partition_shape_and_packet_faults_are_linearizable() {
    common::shaped_partitions_and_packet_faults_are_linearizable("paxos", "4");
}

#[test]
fn kills_and_pauses_of_every_target_are_linearizable() {
    common::kills_and_pauses_of_every_target_are_linearizable("paxos", "5");
}

#[test]
fn a_broken_accept_quorum_is_caught_by_the_checker() {
    // Accepting on one acceptor breaks quorum intersection: under partitions the isolated
    // side keeps acknowledging writes the majority never sees. The checker must say so.
    broken_configuration_is_caught("paxos", &["--unsafe-accept-quorum", "1"], "10s");
}

#[test]
fn kill_9_of_every_node_during_writes_loses_no_acknowledged_write() {
    kill_9_of_every_node_loses_no_acknowledged_write("paxos");
}

#[test]
fn deleted_keys_are_garbage_collected_and_never_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &["--paxos-gc-interval", "200ms"]);
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
    // A SET may meet a proposer's stale one-round-trip cache left by the restarts and answer
    // UNCERTAIN (allowed); repeating the same SET settles it.
    let mut set = Err(String::new());
    for _ in 0..5 {
        set = redis::cmd("SET").arg("k1").arg("again").query::<()>(&mut redis(&addrs[1])).map_err(|e| e.to_string());
        if set.is_ok() {
            break;
        }
        assert!(set.as_ref().unwrap_err().contains("UNCERTAIN"), "{set:?}");
    }
    set.unwrap();
    let v: String = redis::cmd("GET").arg("k1").query(&mut redis(&addrs[0])).unwrap();
    assert_eq!(v, "again");
}

#[test]
fn membership_grows_to_five_and_shrinks_back_under_load_linearizably() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    let addrs = addrs(&status).join(",");
    let history_arg = history.to_str().unwrap().to_string();
    let load = std::thread::spawn(move || {
        valthree(&[
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
        ])
    });
    // Each configuration change meets a running workload: 200 events under three members first.
    wait_for_history(&history, 200);
    let shows = |v: &Value| {
        v["configuration"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let added = cluster(&dir, &["add-node"]);
    assert!(shows(&added).iter().any(|l| l.starts_with("member 4 ")), "{added}");
    let added = cluster(&dir, &["add-node"]);
    let config = shows(&added);
    assert_eq!(config.iter().filter(|l| l.starts_with("member ")).count(), 5, "{config:?}");
    // 200 more events under five members before shrinking back.
    wait_for_history(&history, recorded_events(&history).len() + 200);
    cluster(&dir, &["remove-node", "n5"]);
    let removed = cluster(&dir, &["remove-node", "n4"]);
    let config = shows(&removed);
    assert_eq!(config.iter().filter(|l| l.starts_with("member ")).count(), 3, "{config:?}");
    assert_verdict(&load.join().unwrap(), Verdict::Linearizable, "membership 3 → 5 → 3 under load");
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

/// A dead node costs no write a definite answer: a forward to a home whose port refuses
/// connections was never sent, so the command runs on the node that got it — never
/// `-UNCERTAIN` (which it was, once every "down" mark expired, while that was told apart by
/// an error text tonic's lazy channels do not produce).
#[test]
fn writes_while_a_node_is_dead_all_get_definite_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let nodes = addrs(&status);
    cluster(&dir, &["kill", "n2"]);
    // A forward written into n2's connection in the instant the kernel closed it may have
    // been read (from where n1 stands, n2 could have crashed just after running it), so it is
    // honestly `-UNCERTAIN`; the survivors see the connection close within milliseconds, and
    // from then on every forward is refused at connect time and runs locally.
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(6);
    let (mut written, mut timeouts) = (0, 0);
    // Long enough for several "down" marks to expire and be probed again.
    while Instant::now() < deadline {
        for addr in [&nodes[0], &nodes[2]] {
            let key = format!("k{written}");
            let reply: redis::RedisResult<String> = redis::cmd("SET").arg(&key).arg(written).query(&mut redis(addr));
            match &reply {
                Ok(ok) => assert_eq!(ok, "OK"),
                // A round between the two live acceptors can still time out on a loaded
                // machine, and say so; what must never happen is a forward to the dead home
                // left in doubt.
                Err(e) if e.code() == Some("UNCERTAIN") && !e.to_string().contains("forward to") => timeouts += 1,
                Err(e) => panic!("SET {key} through {addr} with n2 dead: {e}"),
            }
            written += 1;
        }
    }
    assert!(written > 100, "only {written} writes in 6 s");
    assert!(timeouts * 20 < written, "{timeouts} of {written} writes timed out");
    let forwarded = info_field(&nodes[0], "paxos_local_fallbacks");
    assert_ne!(forwarded, "0", "keys whose home is n2 ran on n1");
}

/// A bare INFO is cheap: it never runs a cluster-wide DBSIZE (a Paxos round per key).
#[test]
fn a_bare_info_runs_no_paxos_round() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &["--paxos-gc-interval", "0s"]);
    let _down = Down(&dir);
    let node = addrs(&status)[0].clone();
    for i in 0..50 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut redis(&node)).unwrap();
    }
    let rounds = |addr: &str| -> u64 { info_field(addr, "paxos_rounds").parse().unwrap() };
    let before: Vec<u64> = addrs(&status).iter().map(|a| rounds(a)).collect();
    for _ in 0..5 {
        let info: String = redis::cmd("INFO").query(&mut redis(&node)).unwrap();
        assert!(info.contains("# Keyspace"), "{info}");
    }
    let after: Vec<u64> = addrs(&status).iter().map(|a| rounds(a)).collect();
    assert_eq!(before, after, "INFO ran Paxos rounds");
}

#[test]
fn compare_and_set_commands_through_every_node_of_a_paxos_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let ports: Vec<u16> = addrs(&status).iter().map(|a| a.rsplit(':').next().unwrap().parse().unwrap()).collect();
    check_compare_and_set_commands(&ports, CasSupport::PerKey);
}
