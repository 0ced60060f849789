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
/// connections was never sent, so the command runs at the home's stand-in — never
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
    // Keys whose home is n2 ran at its stand-in, n3 (the next member), also those sent to n1.
    let stood_in = info_field(&nodes[2], "paxos_local_fallbacks");
    assert_ne!(stood_in, "0", "keys whose home is n2 ran on n3");
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

/// FNV-1a, the hash that picks a key's home among the members (in id order).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A key whose home proposer is n1 (the first of three members).
fn homed_on_n1(prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}-{i}")).find(|k| fnv1a(k.as_bytes()).is_multiple_of(3)).unwrap()
}

/// What one client through n2 or n3 saw while n1 was paused.
#[derive(Debug, Default)]
struct PausedHomeClient {
    /// When each command succeeded.
    successes: Vec<Instant>,
    incr_ok: i64,
    incr_uncertain: i64,
    other_errors: Vec<String>,
}

/// Alternates `INCR counter` and `SET <own key> i` through `addr` until `stop`, both keys
/// homed on n1.
fn write_through(
    addr: String,
    counter: String,
    own: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> PausedHomeClient {
    let mut con = redis(&addr);
    let mut seen = PausedHomeClient::default();
    for i in 0u64.. {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let result = if i % 2 == 0 {
            redis::cmd("INCR").arg(&counter).query::<i64>(&mut con).map(drop)
        } else {
            redis::cmd("SET").arg(&own).arg(i).query::<()>(&mut con)
        };
        match result {
            Ok(()) => {
                seen.successes.push(Instant::now());
                seen.incr_ok += i64::from(i % 2 == 0);
            }
            Err(e) if e.to_string().contains("UNCERTAIN") => seen.incr_uncertain += i64::from(i % 2 == 0),
            Err(e) => {
                seen.other_errors.push(e.to_string());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    seen
}

/// A hung home (SIGSTOP) is noticed by a ping within a fraction of a second instead of the
/// peer plane's keepalive (1–2 s): its keys' commands through the other nodes run there, the
/// writes in flight answer -UNCERTAIN and are never run twice (an INCR counts once or, if
/// uncertain, at most once), and a checked workload with pauses stays linearizable.
#[test]
fn a_paused_home_costs_its_keys_well_under_a_second_and_no_write_twice() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let counter = homed_on_n1("counter");
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = [1, 2]
        .into_iter()
        .map(|n| {
            let (addr, counter, own, stop) =
                (addrs[n].clone(), counter.clone(), homed_on_n1(&format!("own{n}")), stop.clone());
            std::thread::spawn(move || write_through(addr, counter, own, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let mut gaps = Vec::new();
    let mut windows = Vec::new();
    for _ in 0..2 {
        let paused = Instant::now();
        cluster(&dir, &["pause", "n1"]);
        std::thread::sleep(Duration::from_secs(3));
        cluster(&dir, &["resume", "n1"]);
        windows.push((paused, Instant::now()));
        std::thread::sleep(Duration::from_secs(2));
    }
    stop.store(true, Ordering::SeqCst);
    let seen: Vec<PausedHomeClient> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for (paused, resumed) in &windows {
        for client in &seen {
            let mut times = vec![*paused];
            times.extend(client.successes.iter().filter(|t| *t > paused && *t < resumed));
            times.push(*resumed);
            gaps.push(times.windows(2).map(|w| w[1] - w[0]).max().unwrap());
        }
    }
    eprintln!(
        "longest gaps while n1 was paused: {gaps:?}; clients: {:?}",
        seen.iter().map(|c| (c.incr_ok, c.incr_uncertain, c.other_errors.len())).collect::<Vec<_>>()
    );
    for gap in &gaps {
        // The hedge's wait, two unanswered pings of 300 ms and the client's retry: about 0.7 s;
        // the keepalive alone took 1–2 s.
        assert!(
            *gap < Duration::from_millis(1500),
            "a paused home stopped its keys' writes for {gap:?} (all: {gaps:?})"
        );
    }
    // Every acknowledged INCR counts once; an uncertain one at most once (the home may run
    // it when it wakes), and never twice.
    let (ok, uncertain): (i64, i64) = seen.iter().fold((0, 0), |(o, u), c| (o + c.incr_ok, u + c.incr_uncertain));
    let value: i64 = redis::cmd("GET").arg(&counter).query(&mut redis(&addrs[1])).unwrap();
    assert!(ok <= value && value <= ok + uncertain, "INCR: {ok} acknowledged, {uncertain} uncertain, value {value}");
    // And under a checked workload whose nemesis pauses nodes (homes among them).
    let history = tmp.path().join("h.jsonl");
    let extra = ["--duration", "8s", "--seed", "3", "--nemesis", "pause", "--nemesis-interval", "1500ms"];
    let out = common::workload(&dir, &history, &extra);
    assert_verdict(&out, Verdict::Linearizable, "paxos, pauses");
    assert!(std::fs::read_to_string(&history).unwrap().contains("\"pause\""), "no pause in the history");
}

/// An acceptor whose data directory was emptied and that was restarted under its old name has
/// forgotten its promises and accepted values: counted in a quorum, it would let a second value
/// be chosen. Here 11 writes are acknowledged by n2 and n3 while n1 is cut off; n3's directory is
/// emptied and n3 restarted; then n2 is cut off, leaving n1 (which missed the writes) and the
/// emptied n3. No read may return a value from before the writes — reads may only fail — and
/// n3 says that its data was lost. Removed and replaced by a new node, the writes are all read.
#[test]
fn an_emptied_acceptor_restarted_in_place_does_not_vote() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let nodes = addrs(&status);
    let keys: Vec<String> = (0..11).map(|i| format!("key{i}")).collect();
    let set = |addr: &str, key: &str, value: &str| -> redis::RedisResult<String> {
        redis::cmd("SET").arg(key).arg(value).query(&mut redis(addr))
    };
    let get = |addr: &str, key: &str| -> redis::RedisResult<Option<String>> {
        redis::cmd("GET").arg(key).query(&mut redis(addr))
    };
    let until_ok = |addr: &str, key: &str, value: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = set(addr, key, value) {
            assert!(Instant::now() < deadline, "SET {key} {value} through {addr} never succeeded: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for key in &keys {
        until_ok(&nodes[1], key, "old");
    }
    cluster(&dir, &["partition", "n1 | n2,n3"]);
    for key in &keys {
        until_ok(&nodes[1], key, "new");
    }
    cluster(&dir, &["kill", "n3"]);
    let data = std::path::PathBuf::from(status["nodes"][2]["data_dir"].as_str().unwrap());
    std::fs::remove_dir_all(&data).unwrap();
    cluster(&dir, &["restart", "n3"]);
    cluster(&dir, &["partition", "n2 | n1,n3"]);
    // n1 and the emptied n3 are two of three: every read that succeeds must see the writes
    // (none should succeed at all). Each key is read through both, all at once (a read that
    // finds no quorum takes seconds to give up).
    let reads: Vec<(String, usize, redis::RedisResult<Option<String>>)> = std::thread::scope(|s| {
        let reading: Vec<_> = [0, 2]
            .iter()
            .flat_map(|at| keys.iter().map(move |key| (*at, key)))
            .map(|(at, key)| {
                let (nodes, get) = (&nodes, &get);
                (key.clone(), at, s.spawn(move || get(&nodes[at], key)))
            })
            .collect();
        reading.into_iter().map(|(key, at, read)| (key, at, read.join().unwrap())).collect()
    });
    for (key, at, read) in &reads {
        if let Ok(got) = read {
            assert_eq!(got.as_deref(), Some("new"), "{key} through n{}: an acknowledged write lost", at + 1);
        }
    }
    let succeeded = reads.iter().filter(|(_, _, read)| read.is_ok()).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !info_field(&nodes[2], "paxos_data").starts_with("lost") {
        assert!(Instant::now() < deadline, "the emptied node did not notice: {}", info_field(&nodes[2], "paxos_data"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(succeeded, 0, "no quorum of intact acceptors, so no read");
    // Replaced by a new node (remove, then add with an empty directory), the writes are read.
    cluster(&dir, &["heal"]);
    cluster(&dir, &["remove-node", "n3"]);
    let added = cluster(&dir, &["add-node"]);
    let n4 = added["addr"].as_str().unwrap().to_string();
    cluster(&dir, &["partition", "n2 | n1,n4"]);
    for key in &keys {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match get(&n4, key) {
                Ok(got) => {
                    assert_eq!(got.as_deref(), Some("new"), "{key} through n4");
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "GET {key} through n4 never succeeded: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
