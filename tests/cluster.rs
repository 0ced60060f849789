//! `valthree cluster` and the workload's nemesis, against real node processes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Down, Verdict, assert_verdict, cluster, free_base, text, valthree};
use serde_json::Value;

fn states(status: &Value) -> Vec<String> {
    status["nodes"].as_array().unwrap().iter().map(|n| n["state"].as_str().unwrap().to_string()).collect()
}

fn pids(status: &Value) -> Vec<u32> {
    status["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect()
}

fn redis(addr: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().unwrap()
}

fn addr(status: &Value, i: usize) -> String {
    status["nodes"][i]["addr"].as_str().unwrap().to_string()
}

#[test]
fn a_cluster_lives_through_every_command_and_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_base().to_string();
    let up = cluster(&dir, &["up", "--nodes", "3", "--base-port", &base]);
    let _down = Down(&dir);
    assert_eq!(states(&up), ["up", "up", "up"]);
    let again = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "up", "--base-port", &base]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("already runs"), "{}", text(&again));

    let _: () = redis::cmd("SET").arg("k").arg("before").query(&mut redis(&addr(&up, 0))).unwrap();
    cluster(&dir, &["kill", "n2"]);
    cluster(&dir, &["pause", "3"]);
    assert_eq!(states(&cluster(&dir, &["status"])), ["up", "down", "paused"]);
    cluster(&dir, &["resume", "n3"]);
    cluster(&dir, &["restart", "n2"]);
    let status = cluster(&dir, &["status"]);
    assert_eq!(states(&status), ["up", "up", "up"]);
    assert_ne!(pids(&status)[1], pids(&up)[1], "a restart is a new process");
    let value: String = redis::cmd("GET").arg("k").query(&mut redis(&addr(&status, 1))).unwrap();
    assert_eq!(value, "before", "the restarted node serves the data written before");

    // s3 mode: the partitioned minority loses the object store; the majority goes on.
    cluster(&dir, &["partition", "n1 | n2,n3"]);
    let status = cluster(&dir, &["status"]);
    assert_eq!(status["nodes"][0]["isolated_from"], serde_json::json!(["objectstore"]));
    assert_eq!(status["nodes"][1]["isolated_from"], serde_json::json!([]));
    let err = redis::cmd("GET").arg("k").query::<String>(&mut redis(&addr(&status, 0))).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    let _: () = redis::cmd("SET").arg("k").arg("during").query(&mut redis(&addr(&status, 2))).unwrap();
    cluster(&dir, &["restart", "n1"]);
    let status = cluster(&dir, &["status"]);
    assert_eq!(
        status["nodes"][0]["isolated_from"],
        serde_json::json!(["objectstore"]),
        "a restart keeps the partition"
    );
    cluster(&dir, &["pause", "n3"]);
    let refused = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "partition", "n1,n2|n3"]);
    assert_eq!(refused.status.code(), Some(2), "no partition while a node is paused: {}", text(&refused));
    cluster(&dir, &["resume", "n3"]);
    cluster(&dir, &["heal"]);
    let value: String = redis::cmd("GET").arg("k").query(&mut redis(&addr(&status, 0))).unwrap();
    assert_eq!(value, "during");

    let last = cluster(&dir, &["status"]);
    cluster(&dir, &["down", "--purge"]);
    for pid in pids(&last) {
        assert!(!Path::new(&format!("/proc/{pid}/cmdline")).exists() || is_zombie(pid), "pid {pid} survived down");
    }
    assert!(!dir.exists(), "--purge deletes the directory");
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

#[test]
fn a_stale_state_file_is_detected_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_base().to_string();
    let up = cluster(&dir, &["up", "--nodes", "2", "--base-port", &base]);
    let _down = Down(&dir);
    // A reboot: every node process is gone, and one pid now belongs to an unrelated program.
    for pid in pids(&up) {
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    }
    let mut stranger = Command::new("sleep").arg("30").spawn().unwrap();
    let state_file = dir.join("cluster.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["nodes"][0]["pid"] = Value::from(stranger.id());
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();

    let status = cluster(&dir, &["status"]);
    assert_eq!(states(&status), ["down", "down"]);
    assert_eq!(status["stale"], true);
    cluster(&dir, &["down"]);
    assert!(stranger.try_wait().unwrap().is_none(), "down must not signal a process that is not a node");
    stranger.kill().unwrap();
    let _ = stranger.wait();

    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let up = cluster(&dir, &["up", "--nodes", "2", "--base-port", &base]);
    assert_eq!(states(&up), ["up", "up"], "up replaces a stale state file");
}

#[test]
fn a_taken_port_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", base + 2)).unwrap();
    let dir = tmp.path().join("c");
    let out = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "up", "--base-port", &base.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains(&format!("port {} is taken", base + 2)), "{}", text(&out));
}

/// `cluster up --nodes 7` serves in every mode whose nodes are peers: each node takes a write
/// and another node reads it back.
#[test]
fn seven_node_clusters_of_every_replicated_mode_serve_through_every_node() {
    for mode in ["paxos", "raft", "dynamo"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        // A claimed base holds ten client, peer and metrics ports each: room for seven nodes.
        let base = free_base().to_string();
        let up = cluster(&dir, &["up", "--mode", mode, "--nodes", "7", "--base-port", &base]);
        let _down = Down(&dir);
        assert_eq!(states(&up), ["up"; 7], "{mode}");
        for i in 0..7 {
            let key = format!("key-{i}");
            let _: () = redis::cmd("SET").arg(&key).arg(i).query(&mut redis(&addr(&up, i))).unwrap();
            let read: i64 = redis::cmd("GET").arg(&key).query(&mut redis(&addr(&up, (i + 3) % 7))).unwrap();
            assert_eq!(read, i as i64, "{mode}: a write through n{} read through n{}", i + 1, (i + 3) % 7 + 1);
        }
    }
}

/// `--port-offset` places the peer and metrics ports nearer the client ports, so a cluster
/// fits in a narrow range of ports; an offset that would make them overlap is refused.
#[test]
fn a_port_offset_keeps_a_cluster_in_a_narrow_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let refused = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "up", "--nodes", "3", "--port-offset", "2"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused).contains("--port-offset 2 is below --nodes 3"), "{}", text(&refused));
    assert!(!dir.exists(), "a refused up leaves nothing behind");
    // Clients on base+1..3, peers on base+4..6, metrics on base+7..9: the claimed block.
    let base = free_base();
    let up = cluster(
        &dir,
        &["up", "--mode", "raft", "--nodes", "3", "--base-port", &base.to_string(), "--port-offset", "3"],
    );
    let _down = Down(&dir);
    let ports = |field: &str| -> Vec<String> {
        (0..3).map(|i| up["nodes"][i][field].as_str().unwrap().rsplit(':').next().unwrap().to_string()).collect()
    };
    let want = |first: u16| -> Vec<String> { (first..first + 3).map(|p| p.to_string()).collect() };
    assert_eq!(ports("addr"), want(base + 1));
    assert_eq!(ports("peer_addr"), want(base + 4));
    assert_eq!(ports("metrics_addr"), want(base + 7));
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut redis(&addr(&up, 0))).unwrap();
    let read: String = redis::cmd("GET").arg("k").query(&mut redis(&addr(&up, 2))).unwrap();
    assert_eq!(read, "v");
}

#[test]
fn a_workload_under_every_nemesis_stays_linearizable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_base().to_string();
    cluster(&dir, &["up", "--nodes", "3", "--base-port", &base]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    let html = tmp.path().join("h.html");
    let out = valthree(&[
        "workload",
        "--cluster",
        dir.to_str().unwrap(),
        "--nemesis",
        "kill,pause,partition",
        "--nemesis-interval",
        "1s",
        "--duration",
        "9s",
        "--clients",
        "6",
        "--timeout",
        "500ms",
        "--seed",
        "3",
        "--history",
        history.to_str().unwrap(),
        "--check",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_verdict(&out, Verdict::Linearizable, "every nemesis");
    let said = text(&out);
    assert!(said.contains("faults injected ("), "the summary lists the faults: {said}");
    for f in ["s  kill ", "s  pause ", "s  partition "] {
        assert!(said.contains(f), "no {f:?} among the faults shown: {said}");
    }
    assert!(said.contains(&format!("report: {}", html.display())), "{said}");
    assert!(html.exists());
    let events: Vec<Value> =
        std::fs::read_to_string(&history).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let faults: Vec<&str> =
        events.iter().filter(|e| e["process"] == "nemesis").map(|e| e["f"].as_str().unwrap()).collect();
    for f in ["kill", "restart", "pause", "resume", "partition", "heal"] {
        assert!(faults.contains(&f), "no {f} in {faults:?}");
    }
    // Each event marks the fault it starts or ends, and the report shades each interval.
    for e in events.iter().filter(|e| e["process"] == "nemesis") {
        let want = match e["f"].as_str().unwrap() {
            "kill" => ("kill", "start"),
            "restart" => ("kill", "end"),
            "pause" => ("pause", "start"),
            "resume" => ("pause", "end"),
            "partition" => ("partition", "start"),
            "heal" => ("partition", "end"),
            other => panic!("unexpected nemesis event {other}: {e}"),
        };
        assert_eq!((e["fault"]["kind"].as_str(), e["fault"]["phase"].as_str()), (Some(want.0), Some(want.1)), "{e}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    for kind in ["kill", "pause", "partition"] {
        assert!(page.contains(&format!(r#"<rect class="fault" data-kind="{kind}""#)), "no {kind} band in the report");
    }
    assert_eq!(states(&cluster(&dir, &["status"])), ["up", "up", "up"], "all faults healed at the end");
}

#[test]
fn s3_under_partitions_of_every_group_shape_is_linearizable() {
    common::shaped_partitions_and_packet_faults_are_linearizable("s3", "4");
}

#[test]
fn partition_shapes_and_packet_faults_reach_every_node_survive_a_restart_and_heal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = common::up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let addrs = common::addrs(&status);
    let links = |status: &Value| -> Vec<Vec<String>> {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["links"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect())
            .collect()
    };
    // A one-way cut: one node is mute (or deaf) towards the two others; each end knows its side.
    let said = cluster(&dir, &["partition", "--shape", "one-way", "--seed", "1"]);
    assert!(said["message"].as_str().unwrap().contains(" -/-> "), "{said}");
    let cut = links(&cluster(&dir, &["status"]));
    assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 4, "two cuts, each known at both ends: {cut:?}");
    assert!(cut.iter().flatten().all(|l| l.ends_with("to:drop") || l.ends_with("from:drop")), "{cut:?}");
    // A restarted node is given its side again.
    cluster(&dir, &["restart", "n1"]);
    assert_eq!(links(&cluster(&dir, &["status"])), cut, "a restart keeps the partition");
    // The fail-fast shape cuts both ways only.
    let refused = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "partition", "--shape", "one-way", "--refuse"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    // Packet faults on n2's links: n2 knows both peers, each peer knows n2.
    cluster(&dir, &["heal"]);
    cluster(&dir, &["packet", "--delay", "5", "--jitter", "5", "--loss", "0.05", "--duplicate", "0.1", "n2"]);
    let faulty = links(&cluster(&dir, &["status"]));
    assert_eq!(faulty.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 1], "{faulty:?}");
    assert!(faulty[1][0].contains("packets delay 5ms jitter 5ms loss 5% duplicate 10%"), "{faulty:?}");
    cluster(&dir, &["heal"]);
    assert!(links(&cluster(&dir, &["status"])).iter().all(Vec::is_empty), "heal ends every link fault");
    // A dropping partition is learned by waiting: n1, cut off, answers an error only once its
    // calls have given up, never at once; healed, it serves again.
    cluster(&dir, &["partition", "n1 | n2,n3"]);
    let started = Instant::now();
    let cut_off = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut redis(&addrs[0]));
    assert!(cut_off.is_err(), "a node cut off from a majority cannot write");
    // (A refusal comes within milliseconds; a dropped call takes its deadline, or, for a
    // paxos forward, the hedge's wait and its unanswered ping: at least 40 + 300 ms.)
    assert!(started.elapsed() >= Duration::from_millis(250), "the error came at once: {:?}", started.elapsed());
    cluster(&dir, &["heal"]);
    common::wait_until(Duration::from_secs(20), "n1 to write again after heal", || {
        redis::cmd("SET").arg("k").arg("v").query::<()>(&mut redis(&addrs[0])).is_ok()
    });
}
