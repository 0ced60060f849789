//! Power loss: nodes started with `cluster up --fault-fs lazy` keep every write they have not
//! fsync'd inside the process, so `cluster power-loss` (a SIGKILL) loses exactly what a power
//! cut would. Every mode must lose no acknowledged write to it, and the planted bug
//! `--unsafe-skip-fsync` must be caught by the power-loss nemesis and the checker.
//!
//! The planted-bug tests run seeded workloads (seeds 1, 2, 3 in order; each run 6 s with a
//! power cut every 2 s, half of them to every node at once) until the checker fails one, then
//! run the same seeds without the bug and require every one to pass. In each mode the bug is
//! caught within [`SEEDS`] runs (documented in docs/verification.md).

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{
    Down, addrs, cluster, crash_of_every_node_loses_no_acknowledged_write, free_base, redis, text, valthree, wait_until,
};

/// The seeds a planted-bug test tries, in order. Which nodes each cut strikes (one, a
/// minority, a majority, all) is drawn from the seed, and a cut of one node of three can lose
/// nothing the others do not hold, so a run can pass with the bug; on a loaded machine fewer
/// cuts fit in a run. Three seeds missed it once in paxos mode (a CI rehearsal); six leave
/// room.
const SEEDS: [&str; 6] = ["1", "2", "3", "4", "5", "6"];

/// `cluster up` of three lazy nodes of `mode`, with `serve_flags` for every node.
fn up_lazy(dir: &Path, mode: &str, serve_flags: &[&str]) -> serde_json::Value {
    let base = free_base().to_string();
    let mut args = vec!["up", "--mode", mode, "--nodes", "3", "--base-port", &base, "--fault-fs", "lazy"];
    if !serve_flags.is_empty() {
        args.push("--");
        args.extend_from_slice(serve_flags);
    }
    cluster(dir, &args)
}

/// One seeded workload under the power-loss nemesis; its `workload --check` output.
fn power_loss_run(mode: &str, serve_flags: &[&str], seed: &str) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // dynamo: replicas that a power cut left behind converge by anti-entropy, soon enough for
    // the settle after a short run.
    let flags = match mode {
        "dynamo" => [serve_flags, &["--aae-interval", "500ms"]].concat(),
        _ => serve_flags.to_vec(),
    };
    let status = up_lazy(&dir, mode, &flags);
    let _down = Down(&dir);
    // paxos answers its first key listing only once its acceptors reach each other, a moment
    // after `up`; the workload's opening FLUSHALL does not wait for that.
    let first = addrs(&status)[0].clone();
    wait_until(Duration::from_secs(30), "a first FLUSHALL", || {
        redis::cmd("FLUSHALL").query::<String>(&mut redis(&first)).is_ok()
    });
    let history = tmp.path().join("h.jsonl");
    let mut extra = vec!["--duration", "6s", "--seed", seed, "--nemesis", "power-loss", "--nemesis-interval", "2s"];
    if mode == "dynamo" {
        extra.extend(["--settle-timeout", "30s"]);
    }
    let out = common::workload(&dir, &history, &extra);
    let events = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(events.contains("\"power-loss\""), "{mode} seed {seed}: no power loss in the history: {}", text(&out));
    out
}

/// The checker failed the run (exit 1); any other status than pass (0) or fail is an error.
fn violated(out: &Output, context: &str) -> bool {
    match out.status.code() {
        Some(0) => false,
        Some(1) => true,
        _ => panic!("{context}: the workload did not finish with a verdict: {}", text(out)),
    }
}

/// The planted bug is caught within [`SEEDS`], and the same runs pass without it.
fn skipped_fsyncs_are_caught(mode: &str) {
    let caught = SEEDS.iter().position(|seed| {
        violated(&power_loss_run(mode, &["--unsafe-skip-fsync"], seed), &format!("{mode} with the bug, seed {seed}"))
    });
    if let Some(i) = caught {
        eprintln!("{mode}: --unsafe-skip-fsync caught on seed {}", SEEDS[i]);
    }
    let Some(caught) = caught else {
        panic!("{mode}: {} power-loss runs with --unsafe-skip-fsync all passed the checker", SEEDS.len())
    };
    for seed in &SEEDS[..=caught] {
        let out = power_loss_run(mode, &[], seed);
        assert!(!violated(&out, &format!("{mode}, seed {seed}")), "{mode}, seed {seed}: {}", text(&out));
    }
}

#[test]
fn skipped_fsyncs_are_caught_by_power_loss_in_s3_mode() {
    skipped_fsyncs_are_caught("s3");
}

#[test]
fn skipped_fsyncs_are_caught_by_power_loss_in_paxos_mode() {
    skipped_fsyncs_are_caught("paxos");
}

#[test]
fn skipped_fsyncs_are_caught_by_power_loss_in_raft_mode() {
    skipped_fsyncs_are_caught("raft");
}

#[test]
fn skipped_fsyncs_are_caught_by_power_loss_in_dynamo_mode() {
    skipped_fsyncs_are_caught("dynamo");
}

#[test]
fn power_loss_of_every_node_loses_no_acknowledged_write_in_every_mode() {
    for mode in ["s3", "paxos", "raft", "dynamo"] {
        // Writers on every node, each writing its own keys; the power of every node is cut in
        // the middle of the burst; after a restart every acknowledged write is there.
        crash_of_every_node_loses_no_acknowledged_write(mode, &|dir| up_lazy(dir, mode, &[]), "power-loss");
    }
}

#[test]
fn power_loss_needs_the_lazy_layer_and_restart_brings_the_node_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_base().to_string();
    let status = cluster(&dir, &["up", "--mode", "raft", "--nodes", "3", "--base-port", &base]);
    let _down = Down(&dir);
    // Without the lazy layer a SIGKILL keeps the page cache: no power cut, and it says so.
    let out = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "power-loss", "n2"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--fault-fs lazy"), "the refusal says what is missing: {}", text(&out));
    cluster(&dir, &["down", "--purge"]);

    let status_lazy = up_lazy(&dir, "raft", &[]);
    assert_ne!(status, status_lazy);
    let addrs = addrs(&status_lazy);
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut redis(&addrs[0])).unwrap();
    cluster(&dir, &["power-loss", "n2"]);
    let listed = cluster(&dir, &["status"]);
    assert_eq!(listed["nodes"][1]["state"], "down", "{listed}");
    cluster(&dir, &["restart", "n2"]);
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut redis(&addrs[1])).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

/// SET `key` to `v` through `addr`; false for any failure, a node gone included.
fn try_set(addr: &str, key: &str) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://{addr}/")) else { return false };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(5)) else { return false };
    redis::cmd("SET").arg(key).arg("v").query::<String>(&mut con).is_ok()
}

/// The admin token `cluster up` generated (in the state file), for VALTHREE.FAULT.
fn admin_token(dir: &Path) -> String {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).unwrap()).unwrap();
    state["admin_token"].as_str().unwrap().to_string()
}

#[test]
fn a_node_whose_fsync_fails_exits_and_loses_no_acknowledged_write_in_every_mode() {
    for mode in ["s3", "paxos", "raft", "dynamo"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let base = free_base().to_string();
        let status = cluster(&dir, &["up", "--mode", mode, "--nodes", "3", "--base-port", &base]);
        let _down = Down(&dir);
        let addrs = addrs(&status);
        let mut con = redis(&addrs[0]);
        wait_until(Duration::from_secs(30), "a first write", || {
            redis::cmd("SET").arg("before").arg("1").query::<String>(&mut con).is_ok()
        });
        let token = admin_token(&dir);
        let injected: Vec<String> =
            redis::cmd("VALTHREE.FAULT").arg(&token).arg("DISK").arg("FSYNC").arg("EIO").query(&mut con).unwrap();
        assert_eq!(injected, ["fsync eio"], "{mode}");
        // Every write goes to n1's disk (s3: n1 writes the shared document itself; paxos, raft
        // and dynamo with N=3: n1 is one of the acceptors, followers, replicas). A write may
        // still be acknowledged where a quorum made it durable without n1; never in s3 mode,
        // whose one copy is the one n1 failed to fsync.
        let mut acked = Vec::new();
        for i in 0..4 {
            let key = format!("k{i}");
            if try_set(&addrs[0], &key) {
                acked.push(key);
            }
        }
        if mode == "s3" {
            assert!(acked.is_empty(), "s3: writes whose fsync failed were acknowledged: {acked:?}");
        }
        // The node says so, then exits so that a supervisor restarts it from what is durable.
        let n1 = &status["nodes"][0];
        wait_until(Duration::from_secs(15), "n1 to exit after its storage failed", || {
            cluster(&dir, &["status"])["nodes"][0]["state"] == "down"
        });
        let log = std::fs::read_to_string(n1["log"].as_str().unwrap()).unwrap();
        assert!(log.contains("storage failed (fsync failed"), "{mode}: {log}");
        cluster(&dir, &["restart", "n1"]);
        let v: Option<String> = redis::cmd("GET").arg("before").query(&mut redis(&addrs[0])).unwrap();
        assert_eq!(v.as_deref(), Some("1"), "{mode}: the restarted node serves what was durable");
        for key in &acked {
            let v: Option<String> = redis::cmd("GET").arg(key).query(&mut redis(&addrs[0])).unwrap();
            assert_eq!(v.as_deref(), Some("v"), "{mode}: acknowledged {key} was lost");
        }
    }
}
