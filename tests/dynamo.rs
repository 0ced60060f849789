//! dynamo mode end to end: in-process nodes for the conformance suite, and real node
//! processes (`valthree cluster`) for the Dynamo mechanisms — quorums with nodes down,
//! siblings from concurrent writes, read repair (checked on the stale node's own replica),
//! failure detection, hinted handoff across a coordinator restart, and durability.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    CasSupport, Down, addrs, check_compare_and_set_commands, cluster, free_port, info_field, redis, up, wait_until,
};
use valthree::mode::dynamo::dvv::{Dot, VersionVector};
use valthree::mode::dynamo::{DynamoMode, DynamoOptions};
use valthree::node::{Faults, Member, NodeOptions};
use valthree::store::{Store, run_conformance_suite_without_atomic_updates};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_three_nodes_minus_atomic_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let members: Vec<Member> =
        (1..=3).map(|id| Member { id, peer_addr: format!("127.0.0.1:{}", free_port()) }).collect();
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for m in &members {
        let node = NodeOptions::local(m.id, &m.peer_addr, members.clone(), tmp.path().join(format!("n{}", m.id)));
        nodes.push(Arc::new(DynamoMode::start(DynamoOptions::new(node), Arc::new(Faults::default())).await.unwrap()));
    }
    run_conformance_suite_without_atomic_updates(nodes).await;
}

fn members_line(addr: &str, node: &str) -> String {
    let lines: Vec<String> = redis::cmd("DYNAMO.MEMBERS").query(&mut redis(addr)).unwrap();
    lines.into_iter().find(|l| l.starts_with(&format!("{node} "))).unwrap_or_default()
}

/// Waits until every other node's failure detector has heard from `node`: SWIM never
/// suspects a member it has not yet heard from, so a node killed before that is never found
/// dead (a loaded machine can delay the first exchange past a test's kill).
fn heard_by_all(addrs: &[String], node: &str) {
    let me = node.trim_start_matches('n').parse::<usize>().unwrap() - 1;
    // A node that does not answer (killed earlier in the test) does not count.
    let heard = |addr: &str| -> bool {
        let Ok(mut con) = redis::Client::open(format!("redis://{addr}/")).and_then(|c| c.get_connection()) else {
            return true;
        };
        let lines: Vec<String> = redis::cmd("DYNAMO.MEMBERS").query(&mut con).unwrap_or_default();
        lines.iter().any(|l| l.starts_with(&format!("{node} ")) && l.contains(" life "))
    };
    wait_until(Duration::from_secs(20), &format!("every node to hear from {node}"), || {
        addrs.iter().enumerate().filter(|(i, _)| *i != me).all(|(_, a)| heard(a))
    });
}

/// `[context, values...]` of a VGET (or DYNAMO.LOCAL).
fn versioned(addr: &str, command: &str, key: &str) -> (String, Vec<Option<String>>) {
    let reply: Vec<Option<String>> = redis::cmd(command).arg(key).query(&mut redis(addr)).unwrap();
    let mut reply = reply.into_iter();
    (reply.next().flatten().unwrap_or_default(), reply.collect())
}

#[test]
fn reads_and_writes_go_on_with_one_node_down_and_stop_cleanly_with_two() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--suspect-timeout", "1s"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let _: () = redis::cmd("SET").arg("user:1").arg("ada").query(&mut redis(&addrs[0])).unwrap();
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    // R = W = 2 of N = 3: one node down costs nothing, before or after it is found dead.
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg("user:1").arg(format!("v{i}")).query(&mut redis(&addrs[i % 2])).unwrap();
        let v: String = redis::cmd("GET").arg("user:1").query(&mut redis(&addrs[(i + 1) % 2])).unwrap();
        assert_eq!(v, format!("v{i}"), "read-your-writes with R + W > N");
    }
    heard_by_all(&addrs, "n2");
    cluster(&dir, &["kill", "n2"]);
    // Until n1 finds them dead it still tries them (a write short of W is then UNCERTAIN:
    // written on n1, it may spread); once it knows, it refuses before writing anything.
    wait_until(Duration::from_secs(15), "n1 to find n2 and n3 dead", || {
        ["n2", "n3"].iter().all(|n| members_line(&addrs[0], n).contains("DEAD"))
    });
    let refused = redis::cmd("SET").arg("user:1").arg("lost?").query::<()>(&mut redis(&addrs[0])).unwrap_err();
    assert!(refused.to_string().to_uppercase().contains("TRYAGAIN"), "{refused}");
    let read = redis::cmd("GET").arg("user:1").query::<Option<String>>(&mut redis(&addrs[0])).unwrap_err();
    assert!(read.to_string().to_uppercase().contains("TRYAGAIN"), "{read}");
    cluster(&dir, &["restart", "n2"]);
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(15), "n2 and n3 to be alive again", || {
        ["n2", "n3"].iter().all(|n| members_line(&addrs[0], n).contains("ALIVE"))
    });
    let v: String = redis::cmd("GET").arg("user:1").query(&mut redis(&addrs[2])).unwrap();
    assert_eq!(v, "v19", "the refused write changed nothing");
}

#[test]
fn concurrent_writes_with_one_context_become_siblings_and_a_merged_write_resolves_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let (context, values) = versioned(&addrs[0], "VGET", "cart");
    assert!(values.is_empty());
    let a: Vec<String> = redis::cmd("VSET").arg("cart").arg("milk").arg(&context).query(&mut redis(&addrs[0])).unwrap();
    let b: Vec<String> = redis::cmd("VSET").arg("cart").arg("eggs").arg(&context).query(&mut redis(&addrs[1])).unwrap();
    assert_ne!(a[1], b[1], "every write has its own dot");
    let (merged, mut values) = versioned(&addrs[2], "VGET", "cart");
    values.sort();
    assert_eq!(values, vec![Some("eggs".to_string()), Some("milk".to_string())], "both writes survive");
    let plain: String = redis::cmd("GET").arg("cart").query(&mut redis(&addrs[2])).unwrap();
    assert!(plain == "milk" || plain == "eggs");
    let _: Vec<String> =
        redis::cmd("VSET").arg("cart").arg("milk,eggs").arg(&merged).query(&mut redis(&addrs[2])).unwrap();
    for addr in &addrs {
        let (_, values) = versioned(addr, "VGET", "cart");
        assert_eq!(values, vec![Some("milk,eggs".to_string())], "the merged context resolved both");
    }
    // A context that is not one VGET returned is refused; R and W outside 1..=N too.
    let bad = redis::cmd("VSET").arg("cart").arg("x").arg("not a context!").query::<Vec<String>>(&mut redis(&addrs[0]));
    assert!(bad.unwrap_err().to_string().contains("context"));
    let bad = redis::cmd("VGET").arg("cart").arg("R").arg(4).query::<Vec<Option<String>>>(&mut redis(&addrs[0]));
    assert!(bad.unwrap_err().to_string().contains("R 4"));
    // A context is bound to its key: the counters are node-wide, so another key's context
    // would silently supersede siblings it never saw.
    let (other, _) = versioned(&addrs[0], "VGET", "other");
    let bad = redis::cmd("VSET").arg("cart").arg("x").arg(&other).query::<Vec<String>>(&mut redis(&addrs[0]));
    assert!(bad.unwrap_err().to_string().contains("another key"));
    let bad =
        redis::cmd("VSET").arg("cart").arg("x").arg(format!("{merged}AA")).query::<Vec<String>>(&mut redis(&addrs[0]));
    assert!(bad.unwrap_err().to_string().contains("context"), "trailing junk is refused");
    // DEL of a key that holds nothing writes nothing (no tombstone to grow every replica).
    let n: i64 = redis::cmd("DEL").arg("never").query(&mut redis(&addrs[1])).unwrap();
    assert_eq!(n, 0);
    assert!(versioned(&addrs[2], "VGET", "never").1.is_empty(), "a DEL of nothing left a tombstone");
    let bad = redis::cmd("INCR").arg("n").query::<i64>(&mut redis(&addrs[0])).unwrap_err();
    assert!(bad.to_string().contains("VSET"), "{bad}");
}

#[test]
fn a_read_repairs_the_stale_replica_it_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--hinted-handoff", "off"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let _: () = redis::cmd("SET").arg("k").arg("old").query(&mut redis(&addrs[0])).unwrap();
    wait_until(Duration::from_secs(5), "n3 to hold the first write", || {
        versioned(&addrs[2], "DYNAMO.LOCAL", "k").1 == vec![Some("old".to_string())]
    });
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    let _: () = redis::cmd("SET").arg("k").arg("new").query(&mut redis(&addrs[0])).unwrap();
    cluster(&dir, &["restart", "n3"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(versioned(&addrs[2], "DYNAMO.LOCAL", "k").1, vec![Some("old".to_string())], "n3 missed the write");
    // A quorum read through n3 asks every owner, answers with the join, and repairs n3.
    let v: String = redis::cmd("GET").arg("k").query(&mut redis(&addrs[2])).unwrap();
    assert_eq!(v, "new");
    wait_until(Duration::from_secs(5), "the read to repair n3's own replica", || {
        versioned(&addrs[2], "DYNAMO.LOCAL", "k") == versioned(&addrs[0], "DYNAMO.LOCAL", "k")
    });
    assert_ne!(info_field(&addrs[2], "dynamo_read_repairs"), "0");
}

#[test]
fn the_failure_detector_sees_a_killed_node_suspect_then_dead_and_a_restarted_one_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--swim-period", "300ms", "--suspect-timeout", "3s"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    wait_until(Duration::from_secs(10), "n1 to see n2 alive", || members_line(&addrs[0], "n2").contains("ALIVE"));
    heard_by_all(&addrs, "n2");
    cluster(&dir, &["kill", "n2"]);
    wait_until(Duration::from_secs(10), "n1 to suspect n2", || members_line(&addrs[0], "n2").contains("SUSPECT"));
    wait_until(Duration::from_secs(10), "n1 to find n2 dead", || members_line(&addrs[0], "n2").contains("DEAD"));
    // The line says what its duration is: how long the member has had the health it shows.
    let line = members_line(&addrs[0], "n2");
    assert!(line.contains(" DEAD ") && line.contains(", in this state for "), "{line}");
    // n3 hears of it too (from its own probes or n1's gossip).
    wait_until(Duration::from_secs(10), "n3 to suspect n2 or find it dead", || {
        let line = members_line(&addrs[2], "n2");
        line.contains("DEAD") || line.contains("SUSPECT")
    });
    cluster(&dir, &["restart", "n2"]);
    wait_until(Duration::from_secs(10), "n1 to see n2 alive again", || members_line(&addrs[0], "n2").contains("ALIVE"));
}

#[test]
fn cluster_status_shows_what_each_nodes_failure_detector_sees_and_its_ring_version() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--swim-period", "300ms", "--suspect-timeout", "1s"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    wait_until(Duration::from_secs(15), "n1 and n2 to find n3 dead", || {
        addrs[..2].iter().all(|a| members_line(a, "n3").contains("DEAD"))
    });
    let out = common::valthree(&["cluster", "status", "--dir", dir.to_str().unwrap()]);
    let said = common::text(&out);
    let header = said.lines().nth(1).unwrap_or_default();
    assert!(header.contains("swim") && header.contains("ring"), "dynamo's columns: {said}");
    assert!(!header.contains("term") && !header.contains("leader"), "no raft columns in dynamo mode: {said}");
    let ring = format!("v{}", info_field(&addrs[0], "dynamo_ring_version"));
    for node in ["n1", "n2"] {
        let row = said.lines().find(|l| l.starts_with(&format!("{node} "))).unwrap_or_default();
        assert!(row.contains("2 alive, 1 dead") && row.contains(&ring), "{node}: {said}");
    }
    assert!(said.contains("members n1 ALIVE, n2 ALIVE, n3 DEAD"), "each node's view, member by member: {said}");
}

#[test]
fn hints_survive_a_coordinator_restart_and_are_replayed_without_a_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--suspect-timeout", "1s"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    wait_until(Duration::from_secs(10), "n1 to find n3 dead", || members_line(&addrs[0], "n3").contains("DEAD"));
    for i in 0..10 {
        let _: () = redis::cmd("SET").arg(format!("h{i}")).arg(i).query(&mut redis(&addrs[0])).unwrap();
    }
    assert_eq!(info_field(&addrs[0], "dynamo_hints_pending"), "10");
    cluster(&dir, &["restart", "n1"]);
    assert_eq!(info_field(&addrs[0], "dynamo_hints_pending"), "10", "hints are durable");
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(15), "n3 to receive every hinted write", || {
        (0..10).all(|i| versioned(&addrs[2], "DYNAMO.LOCAL", &format!("h{i}")).1 == vec![Some(i.to_string())])
    });
    wait_until(Duration::from_secs(5), "n1's hints to be gone", || {
        info_field(&addrs[0], "dynamo_hints_pending") == "0"
    });
    assert_eq!(info_field(&addrs[0], "dynamo_hints_replayed"), "10");
}

#[test]
fn a_sloppy_quorum_writes_through_a_stand_in_that_hands_the_write_to_the_owner_when_back() {
    // N = 2 on three nodes: each key has one node that is not an owner, its stand-in.
    for sloppy in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut flags = vec!["--replicas", "2", "--r", "1", "--w", "2", "--suspect-timeout", "1s"];
        if sloppy {
            flags.push("--sloppy-quorum");
        }
        let status = up(&dir, "dynamo", &flags);
        let _down = Down(&dir);
        let addrs = addrs(&status);
        let owners = |key: &str| -> String {
            let lines: Vec<String> = redis::cmd("DYNAMO.RING").arg(key).query(&mut redis(&addrs[0])).unwrap();
            lines.into_iter().find_map(|l| l.strip_prefix("preference list ").map(str::to_owned)).unwrap()
        };
        // A key n1 and n2 own, so n3 is its stand-in.
        let key = (0..).map(|i| format!("cart:{i}")).find(|k| owners(k) == "n1 n2").unwrap();
        assert_eq!(info_field(&addrs[0], "dynamo_sloppy_quorum"), if sloppy { "on" } else { "off" });
        heard_by_all(&addrs, "n2");
        cluster(&dir, &["kill", "n2"]);
        wait_until(Duration::from_secs(10), "n1 to find n2 dead", || members_line(&addrs[0], "n2").contains("DEAD"));
        let written = redis::cmd("SET").arg(&key).arg("milk").query::<()>(&mut redis(&addrs[0]));
        if !sloppy {
            // Strict: only owners count toward W = 2, and one is down.
            let refused = written.unwrap_err().to_string().to_uppercase();
            assert!(refused.contains("TRYAGAIN"), "{refused}");
            continue;
        }
        written.unwrap();
        assert_eq!(versioned(&addrs[2], "DYNAMO.LOCAL", &key).1, vec![Some("milk".to_string())], "n3 holds n2's copy");
        assert_eq!(info_field(&addrs[2], "dynamo_hints_pending"), "1", "with a hint for n2");
        cluster(&dir, &["restart", "n2"]);
        wait_until(Duration::from_secs(15), "n2 to receive the write from its stand-in", || {
            versioned(&addrs[1], "DYNAMO.LOCAL", &key).1 == vec![Some("milk".to_string())]
        });
        wait_until(Duration::from_secs(5), "n3's hint to be gone", || {
            info_field(&addrs[2], "dynamo_hints_pending") == "0"
        });
    }
}

#[test]
fn a_writes_reply_context_never_lets_its_client_supersede_a_sibling_it_never_saw() {
    // A and B write blind through one node; B writes again under the context its VSET
    // returned. A's write must survive: B never saw it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let vset = |value: &str, context: &str| -> Vec<String> {
        redis::cmd("VSET").arg("k").arg(value).arg(context).query(&mut redis(&addrs[0])).unwrap()
    };
    vset("a", "");
    let reply = vset("b", "");
    vset("b2", &reply[0]);
    let (_, values) = versioned(&addrs[1], "VGET", "k");
    assert!(values.contains(&Some("a".into())) && values.contains(&Some("b2".into())), "{values:?}");
    // A client that read both supersedes both.
    let (context, _) = versioned(&addrs[1], "VGET", "k");
    vset("merged", &context);
    assert_eq!(versioned(&addrs[2], "VGET", "k").1, vec![Some("merged".to_string())]);
}

#[test]
fn redis_cli_reads_writes_and_inspects_a_dynamo_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let cli = |addr: &str, args: &[&str]| -> String {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let out = std::process::Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .output()
            .expect("redis-cli is needed (./scripts/test installs redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&addrs[0], &["SET", "user:1", "ada"]), "OK");
    assert_eq!(cli(&addrs[1], &["GET", "user:1"]), "ada");
    // VGET's first line is the context; VSET with it supersedes what was read.
    let vget = cli(&addrs[2], &["VGET", "user:1"]);
    let context = vget.lines().next().unwrap().to_string();
    assert_eq!(vget.lines().nth(1), Some("ada"), "{vget}");
    let vset = cli(&addrs[2], &["VSET", "user:1", "grace", &context]);
    assert_eq!(vset.lines().count(), 2, "[new context, dot]: {vset}");
    assert_eq!(cli(&addrs[0], &["GET", "user:1"]), "grace");
    let with_dots = cli(&addrs[0], &["VGET", "user:1", "WITHDOTS"]);
    assert!(
        with_dots.lines().last() == Some("grace") && with_dots.contains(vset.lines().nth(1).unwrap()),
        "{with_dots}"
    );
    assert!(cli(&addrs[0], &["DYNAMO.RING", "user:1"]).contains("preference list n"));
    assert_eq!(cli(&addrs[0], &["DYNAMO.MEMBERS"]).lines().count(), 3);
    let info = cli(&addrs[0], &["INFO", "dynamo"]);
    assert!(info.starts_with("# Dynamo") && info.contains("dynamo_r:2"), "{info}");
    assert!(!cli(&addrs[0], &["INFO", "valthree"]).contains("dynamo_r:"), "INFO dynamo is its own section");
    // A refusal is a clear error, not a silent last-writer-wins.
    let (host, port) = addrs[0].rsplit_once(':').unwrap();
    let incr = std::process::Command::new("redis-cli").args(["-h", host, "-p", port, "INCR", "n"]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&incr.stdout), String::from_utf8_lossy(&incr.stderr));
    assert!(said.contains("ERR") && said.contains("VGET"), "{said}");
}

#[test]
fn a_restart_of_every_node_keeps_every_write_and_its_siblings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut redis(&addrs[i % 3])).unwrap();
    }
    let _: Vec<String> = redis::cmd("VSET").arg("s").arg("a").arg("").query(&mut redis(&addrs[0])).unwrap();
    let _: Vec<String> = redis::cmd("VSET").arg("s").arg("b").arg("").query(&mut redis(&addrs[1])).unwrap();
    for n in ["n1", "n2", "n3"] {
        cluster(&dir, &["restart", n]);
    }
    for i in 0..20 {
        let v: String = redis::cmd("GET").arg(format!("k{i}")).query(&mut redis(&addrs[(i + 1) % 3])).unwrap();
        assert_eq!(v, i.to_string());
    }
    assert_eq!(versioned(&addrs[2], "VGET", "s").1.len(), 2, "siblings are kept");
    let n: i64 = redis::cmd("DEL").arg("k1").arg("k2").arg("nope").query(&mut redis(&addrs[0])).unwrap();
    assert_eq!(n, 2);
    let v: Option<String> = redis::cmd("GET").arg("k1").query(&mut redis(&addrs[1])).unwrap();
    assert_eq!(v, None);
}

/// A dynamo workload's verdict line (after the summary's `history: …` line).
fn dynamo_verdict(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    common::verdict_line(&stdout).unwrap_or_default().to_string()
}

#[test]
fn workloads_under_kill_pause_and_partition_keep_what_dynamo_promises_on_several_seeds() {
    // The third run repairs by anti-entropy alone: no read repair, no hints.
    let aae_only = ["--read-repair", "off", "--hinted-handoff", "off", "--aae-interval", "500ms"];
    for (seed, flags) in [("1", &[][..]), ("2", &[][..]), ("3", &aae_only[..])] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let status = up(&dir, "dynamo", flags);
        let _down = Down(&dir);
        let history = tmp.path().join("h.jsonl");
        let html = tmp.path().join("h.html");
        let extra = [
            "--duration",
            "10s",
            "--seed",
            seed,
            "--nemesis",
            "kill,pause,partition",
            "--nemesis-interval",
            "1500ms",
            "--html",
            html.to_str().unwrap(),
        ];
        let out = common::workload(&dir, &history, &extra);
        let said = common::text(&out);
        assert_eq!(out.status.code(), Some(0), "seed {seed}: {said}");
        assert!(dynamo_verdict(&out).starts_with("consistent: "), "seed {seed}: {said}");
        assert!(said.contains("read-your-writes checked: R 2 + W 2 > N 3"), "seed {seed}: {said}");
        let events = common::recorded_events(&history);
        for f in ["kill", "pause", "partition"] {
            assert!(events.iter().any(|e| e["f"] == f), "seed {seed}: no {f} fault in the history");
        }
        let acked = events.iter().filter(|e| e["type"] == "ok" && e["f"] == "vset").count();
        // Enough to make the check mean something; a loaded 2-core machine manages ~125 in 10 s.
        assert!(acked > 50, "seed {seed}: only {acked} writes acknowledged under faults");
        let siblings = events
            .iter()
            .filter(|e| e["f"] == "vget" && e["value"]["siblings"].as_array().is_some_and(|s| s.len() > 1))
            .count();
        assert!(siblings > 0, "seed {seed}: concurrent writes left no siblings to check");
        // Every key's settled replicas were read from its three owners.
        let settled = events.iter().filter(|e| e["f"] == "local" && e["type"] == "ok").count();
        assert_eq!(settled, 4 * 3, "seed {seed}: settled reads: {said}");
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains(r#""verdict":"consistent""#), "seed {seed}: the HTML report says so too");
        // The nemesis healed everything at the end: every owner's trees agree soon after.
        let addrs = addrs(&status);
        wait_until(Duration::from_secs(15), "every digest to agree after the run", || digests_agree(&addrs));
    }
}

#[test]
fn workloads_under_every_partition_shape_packet_faults_and_every_target_keep_what_dynamo_promises() {
    for (seed, nemesis) in [("4", "partition,packet"), ("5", "kill,pause")] {
        let (out, events) = common::network_fault_workload("dynamo", seed, nemesis, "20s");
        let said = common::text(&out);
        assert_eq!(out.status.code(), Some(0), "seed {seed}: {said}");
        assert!(dynamo_verdict(&out).starts_with("consistent: "), "seed {seed}: {said}");
        if nemesis.starts_with("partition") {
            common::assert_every_shape_and_packet_fault("dynamo", &events, &format!("seed {seed}"));
        } else {
            let mut targets = common::fault_targets(&events, "kill");
            targets.extend(common::fault_targets(&events, "pause"));
            for aim in ["one n", "minority n", "majority n", "all", "primary n"] {
                assert!(targets.iter().any(|t| t.starts_with(aim)), "seed {seed}: no {aim:?} among {targets:?}");
            }
        }
        let acked = events.iter().filter(|e| e["type"] == "ok" && e["f"] == "vset").count();
        assert!(acked > 50, "seed {seed}: only {acked} writes acknowledged under faults");
    }
}

#[test]
fn last_writer_wins_and_per_server_clocks_are_caught_by_the_checker() {
    // Two classic mistakes, each behind a hidden switch: under concurrent writes the checker
    // must name what each one breaks.
    for (flag, kind) in [("--unsafe-lww", "lost write"), ("--unsafe-server-clocks", "dot reused")] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        up(&dir, "dynamo", &[flag]);
        let _down = Down(&dir);
        let history = tmp.path().join("h.jsonl");
        let html = tmp.path().join("h.html");
        let out = common::workload(
            &dir,
            &history,
            &["--duration", "4s", "--settle-timeout", "2s", "--html", html.to_str().unwrap()],
        );
        let said = common::text(&out);
        assert_eq!(out.status.code(), Some(1), "{flag}: {said}");
        assert!(dynamo_verdict(&out).starts_with("NOT consistent: "), "{flag}: {said}");
        assert!(said.contains(&format!(": {kind}: ")), "{flag}: the checker names a {kind}: {said}");
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains(r#""verdict":"NOT consistent""#) && page.contains(r#""tag":"stuck""#), "{flag}");
        // check-history finds the same on the file alone, and says so in JSON.
        let out = common::valthree(&["check-history", history.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", common::text(&out));
        let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((verdict["model"].as_str(), verdict["consistent"].as_bool()), (Some("dynamo"), Some(false)));
        assert!(verdict["counts"][kind].as_u64() > Some(0), "{flag}: {verdict}");
    }
}

#[test]
fn the_workload_checks_dynamo_histories_for_what_dynamo_promises_not_linearizability() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    // Plain SET/DEL write under a context the history cannot record: no check of them.
    let out = common::workload(&dir, &history, &["--mix", "get=1,set=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(common::text(&out).contains("vget, vset, vdel and get"), "{}", common::text(&out));
    // Without --check a plain mix runs (the default mix has no INCR or APPEND).
    let cluster_dir = dir.to_str().unwrap();
    let history_arg = history.to_str().unwrap();
    let args = ["workload", "--cluster", cluster_dir, "--ops", "200", "--clients", "4", "--history", history_arg];
    let out = common::valthree(&[&args[..], &["--mix", "get=3,set=2,del=1"]].concat());
    assert!(out.status.success(), "{}", common::text(&out));
    let events = common::recorded_events(&history);
    let failed = events.iter().filter(|e| e["type"] == "fail").count();
    assert_eq!(failed, 0, "a healthy cluster refuses nothing: {}", common::text(&out));
    // The register model refuses a dynamo history with a pointer to the right one.
    let out = common::valthree(&["workload", "--cluster", cluster_dir, "--ops", "100", "--history", history_arg]);
    assert!(out.status.success(), "{}", common::text(&out));
    let out = common::valthree(&["check-history", history_arg, "--model", "register"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::text(&out).contains("--model dynamo"), "{}", common::text(&out));
    let out = common::valthree(&["check-history", history_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("consistent: "), "{}", common::text(&out));
    // A checked run on keys an earlier run wrote is refused: its siblings would be writes the
    // history does not hold.
    let shared = ["--key-prefix", "shared:", "--ops", "50"];
    assert_eq!(common::workload(&dir, &history, &shared).status.code(), Some(0));
    let again = common::workload(&dir, &history, &shared);
    assert_eq!(again.status.code(), Some(2), "{}", common::text(&again));
    assert!(common::text(&again).contains("already holds writes"), "{}", common::text(&again));
}

/// This node's anti-entropy roots, one `partition root` line per partition it holds.
fn digest(addr: &str) -> Vec<String> {
    redis::cmd("DYNAMO.DIGEST").query(&mut redis(addr)).unwrap()
}

fn digests_agree(addrs: &[String]) -> bool {
    let first = digest(&addrs[0]);
    addrs[1..].iter().all(|a| digest(a) == first)
}

/// Repair by anti-entropy alone (no read repair, no hints), every half second.
const AAE_ONLY: [&str; 8] =
    ["--read-repair", "off", "--hinted-handoff", "off", "--aae-interval", "500ms", "--swim-period", "200ms"];

/// Writes `k0`..`k{n-1}` (value: the number) in one pipeline.
fn fill(addr: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut redis(addr)).unwrap();
}

fn info_sum(addrs: &[String], field: &str) -> u64 {
    addrs.iter().map(|a| info_field(a, field).parse::<u64>().unwrap()).sum()
}

#[test]
fn anti_entropy_alone_brings_a_partitioned_replica_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &AAE_ONLY);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    for i in 0..10 {
        let _: () = redis::cmd("SET").arg(format!("before:{i}")).arg(i).query(&mut redis(&addrs[0])).unwrap();
    }
    wait_until(Duration::from_secs(10), "every owner's digest to agree", || digests_agree(&addrs));
    let one = redis::cmd("DYNAMO.DIGEST").arg(0).query::<Vec<String>>(&mut redis(&addrs[0])).unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(one[0].starts_with("0 "), "{one:?}");
    let bad = redis::cmd("DYNAMO.DIGEST").arg(100_000).query::<Vec<String>>(&mut redis(&addrs[0])).unwrap_err();
    assert!(bad.to_string().contains("partition 100000"), "{bad}");

    cluster(&dir, &["partition", "n3 | n1,n2"]);
    for i in 0..200 {
        let _: () = redis::cmd("SET").arg(format!("during:{i}")).arg(i).query(&mut redis(&addrs[i % 2])).unwrap();
    }
    for i in 0..3 {
        let _: () = redis::cmd("DEL").arg(format!("before:{i}")).query(&mut redis(&addrs[0])).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(digest(&addrs[0]), digest(&addrs[1]), "n1 and n2 exchange while n3 is cut off");
    assert_ne!(digest(&addrs[0]), digest(&addrs[2]), "n3 missed the writes");
    assert_eq!(versioned(&addrs[2], "DYNAMO.LOCAL", "during:7").1, Vec::<Option<String>>::new());

    cluster(&dir, &["heal"]);
    wait_until(Duration::from_secs(20), "anti-entropy to make every digest agree", || digests_agree(&addrs));
    for i in [0, 7, 199] {
        assert_eq!(versioned(&addrs[2], "DYNAMO.LOCAL", &format!("during:{i}")).1, vec![Some(i.to_string())]);
    }
    assert_eq!(versioned(&addrs[2], "DYNAMO.LOCAL", "before:1").1, vec![None], "the delete reached n3");
    assert_eq!(info_sum(&addrs, "dynamo_read_repairs"), 0, "no read repaired anything");
    assert_eq!(info_sum(&addrs, "dynamo_hints_replayed"), 0, "no hint was replayed");
    let repaired = info_sum(&addrs, "dynamo_aae_keys_repaired");
    assert!(repaired >= 203, "anti-entropy repaired {repaired} keys");
    assert!(info_sum(&addrs, "dynamo_aae_bytes") > 0);
    assert_ne!(info_field(&addrs[0], "dynamo_aae_exchanges"), "0");
}

#[test]
fn a_wiped_replica_comes_back_as_a_new_actor_and_loses_no_acknowledged_write() {
    // Riak's KV679: a node whose data is gone must not reuse its old dots, and anti-entropy
    // (alone: no read repair, no hints) must refill it while clients keep writing.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &AAE_ONLY);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let data = std::path::PathBuf::from(status["nodes"][2]["data_dir"].as_str().unwrap());
    let old_actor = info_field(&addrs[2], "dynamo_actor");
    let history = tmp.path().join("h.jsonl");
    let workload = {
        let (dir, history) = (dir.clone(), history.clone());
        std::thread::spawn(move || common::workload(&dir, &history, &["--duration", "9s", "--settle-timeout", "20s"]))
    };
    std::thread::sleep(Duration::from_secs(3));
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    std::fs::remove_dir_all(&data).unwrap();
    cluster(&dir, &["restart", "n3"]);
    let new_actor = info_field(&addrs[2], "dynamo_actor");
    assert_ne!(new_actor, old_actor, "a wiped node is a new actor");
    let out = workload.join().unwrap();
    let said = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(dynamo_verdict(&out).starts_with("consistent: "), "{said}");
    wait_until(Duration::from_secs(20), "the wiped node's digest to agree", || digests_agree(&addrs));
    assert!(info_sum(&addrs, "dynamo_aae_keys_repaired") > 0);
}

#[test]
fn a_tombstone_is_reaped_only_once_every_owner_holds_it_and_the_key_stays_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let flags = [
        "--read-repair",
        "off",
        "--hinted-handoff",
        "off",
        "--aae-interval",
        "300ms",
        "--tombstone-grace",
        "1s",
        "--suspect-timeout",
        "1s",
        "--swim-period",
        "200ms",
    ];
    let status = up(&dir, "dynamo", &flags);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let _: () = redis::cmd("SET").arg("gone").arg("v1").query(&mut redis(&addrs[0])).unwrap();
    wait_until(Duration::from_secs(5), "n3 to hold the write", || {
        versioned(&addrs[2], "DYNAMO.LOCAL", "gone").1 == vec![Some("v1".to_string())]
    });
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    let _: () = redis::cmd("DEL").arg("gone").query(&mut redis(&addrs[0])).unwrap();
    // Several grace periods pass with an owner away: nothing is reaped.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(versioned(&addrs[0], "DYNAMO.LOCAL", "gone").1, vec![None], "n1 keeps the tombstone");
    assert_eq!(info_field(&addrs[0], "dynamo_tombstones"), "1");
    assert_eq!(info_field(&addrs[0], "dynamo_tombstones_reaped"), "0");
    // The old replica, still holding v1, comes back: the tombstone wins, then is reaped.
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(20), "every owner to reap the tombstone", || {
        addrs
            .iter()
            .all(|a| versioned(a, "DYNAMO.LOCAL", "gone").1.is_empty() && info_field(a, "dynamo_tombstones") == "0")
    });
    // At least once on each owner: an exchange that ran while the owners were removing it
    // may copy it back to one that already had, and it is reaped again.
    assert!(info_sum(&addrs, "dynamo_tombstones_reaped") >= 3);
    std::thread::sleep(Duration::from_secs(1));
    for a in &addrs {
        let v: Option<String> = redis::cmd("GET").arg("gone").query(&mut redis(a)).unwrap();
        assert_eq!(v, None, "the deleted key stays deleted on {a}");
        assert!(versioned(a, "DYNAMO.LOCAL", "gone").1.is_empty(), "v1 did not come back on {a}");
    }
    // Re-created after reaping, it is a new write no old tombstone swallows.
    let _: () = redis::cmd("SET").arg("gone").arg("v2").query(&mut redis(&addrs[2])).unwrap();
    wait_until(Duration::from_secs(5), "every owner to hold the new value", || {
        addrs.iter().all(|a| versioned(a, "DYNAMO.LOCAL", "gone").1 == vec![Some("v2".to_string())])
    });
    for a in &addrs {
        let v: Option<String> = redis::cmd("GET").arg("gone").query(&mut redis(a)).unwrap();
        assert_eq!(v.as_deref(), Some("v2"));
    }
}

fn ring_lines(addr: &str) -> Vec<String> {
    redis::cmd("DYNAMO.RING").query(&mut redis(addr)).unwrap()
}

#[test]
fn a_node_joins_and_another_leaves_under_a_checked_workload_and_no_acknowledged_write_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--handoff-grace", "1s", "--swim-period", "200ms"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    for i in 0..300 {
        let _: () = redis::cmd("SET").arg(format!("pre:{i}")).arg(i).query(&mut redis(&addrs[i % 3])).unwrap();
    }
    assert!(ring_lines(&addrs[0]).contains(&"version 1".to_string()), "{:?}", ring_lines(&addrs[0]));
    let history = tmp.path().join("h.jsonl");
    let workload = {
        let (dir, history) = (dir.clone(), history.clone());
        std::thread::spawn(move || common::workload(&dir, &history, &["--duration", "12s", "--settle-timeout", "30s"]))
    };
    std::thread::sleep(Duration::from_secs(2));
    // n4 joins: it claims a quarter of the partitions, filled before the ring changes.
    let added = cluster(&dir, &["add-node"]);
    assert_eq!(added["node"], "n4", "{added}");
    let n4 = added["addr"].as_str().unwrap().to_string();
    let said = added["configuration"].to_string();
    // Each of the 64 partitions it takes first changes 3 preference lists by one node.
    assert!(said.contains("ring version 3: 192 of 256 preference lists changed"), "{said}");
    for a in addrs.iter().chain([&n4]) {
        assert_eq!(info_field(a, "dynamo_ring_version"), "3", "{a}");
    }
    let held: Vec<usize> =
        ring_lines(&n4).iter().filter_map(|l| l.split(" holds ").nth(1)?.split(' ').next()?.parse().ok()).collect();
    assert_eq!(held.len(), 4, "{:?}", ring_lines(&n4));
    assert!(held.iter().all(|h| h.abs_diff(192) <= 24), "N=3 of 256 on 4 nodes, about evenly: {held:?}");
    // n4 holds every key it owns now, written before it joined or while it did.
    for i in (0..300).step_by(7) {
        let key = format!("pre:{i}");
        let list: Vec<String> = redis::cmd("DYNAMO.RING").arg(&key).query(&mut redis(&n4)).unwrap();
        if list[1].contains("n4") {
            assert_eq!(versioned(&n4, "DYNAMO.LOCAL", &key).1, vec![Some(i.to_string())], "{key}: {list:?}");
        }
        let v: String = redis::cmd("GET").arg(&key).query(&mut redis(&n4)).unwrap();
        assert_eq!(v, i.to_string());
    }
    // n2 leaves: its partitions move to the others first.
    let removed = cluster(&dir, &["remove-node", "n2"]);
    assert!(removed["configuration"].to_string().contains("ring version 5"), "{removed}");
    let out = workload.join().unwrap();
    let said = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(dynamo_verdict(&out).starts_with("consistent: "), "{said}");
    assert!(!said.contains("warning: not every owner"), "every key settled on its owners now: {said}");
    let left = vec![addrs[0].clone(), addrs[2].clone(), n4.clone()];
    for a in &left {
        assert_eq!(info_field(a, "dynamo_ring_version"), "5", "{a}");
    }
    for i in 0..300 {
        let v: String = redis::cmd("GET").arg(format!("pre:{i}")).query(&mut redis(&left[i % 3])).unwrap();
        assert_eq!(v, i.to_string(), "pre:{i} survived the join and the leave");
    }
    wait_until(Duration::from_secs(20), "the three nodes' digests to agree", || digests_agree(&left));
    // A membership change needs a member to remove and leaves N nodes at least.
    let refused = common::valthree(&["cluster", "--dir", dir.to_str().unwrap(), "remove-node", "n3"]);
    assert!(!refused.status.success());
    assert!(common::text(&refused).contains("2 nodes would be left for 3 replicas"), "{}", common::text(&refused));
}

#[test]
fn a_checked_workload_with_nodes_joining_and_leaving_among_other_faults_keeps_every_promise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &["--handoff-grace", "1s"]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    let extra = [
        "--duration",
        "12s",
        "--seed",
        "5",
        "--nemesis",
        "membership,kill,partition",
        "--nemesis-interval",
        "3s",
        "--settle-timeout",
        "30s",
    ];
    let out = common::workload(&dir, &history, &extra);
    let said = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(dynamo_verdict(&out).starts_with("consistent: "), "{said}");
    let events = common::recorded_events(&history);
    for f in ["add-node", "remove-node", "kill", "partition"] {
        assert!(events.iter().any(|e| e["f"] == f && e["error"].is_null()), "no successful {f} in the history: {said}");
    }
    let acked = events.iter().filter(|e| e["type"] == "ok" && e["f"] == "vset").count();
    // Enough to make the check mean something, low enough for a loaded 2-core machine.
    assert!(acked > 40, "only {acked} writes acknowledged: {said}");
    let addrs = addrs(&status);
    for a in &addrs {
        assert_eq!(info_field(a, "dynamo_ring_changing"), "0");
    }
    wait_until(Duration::from_secs(20), "every digest to agree after the run", || digests_agree(&addrs));
}

#[test]
fn a_join_streams_its_data_in_pages_waits_out_a_paused_member_and_survives_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // Pages of 25 keys: 1,500 keys (about 1,100 for the new node) take many exchanges.
    let status = up(&dir, "dynamo", &["--aae-max-keys", "25", "--swim-period", "200ms", "--suspect-timeout", "10s"]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    fill(&addrs[0], 1500);
    let n3_pid = status["nodes"][2]["pid"].as_u64().unwrap().to_string();
    let adding = {
        let dir = dir.clone();
        std::thread::spawn(move || common::valthree(&["cluster", "--dir", dir.to_str().unwrap(), "--json", "add-node"]))
    };
    // A holder stops answering mid-change: the change waits for it rather than finish without it.
    std::thread::sleep(Duration::from_millis(700));
    let signal =
        |sig: &str| assert!(std::process::Command::new("kill").args([sig, &n3_pid]).status().unwrap().success());
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(info_field(&addrs[0], "dynamo_ring_changing"), "1", "no change completes while a holder is away");
    signal("-CONT");
    let out = adding.join().unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n4 = added["addr"].as_str().unwrap().to_string();
    let repaired: u64 = [&addrs[..], std::slice::from_ref(&n4)]
        .concat()
        .iter()
        .map(|a| info_field(a, "dynamo_aae_keys_repaired").parse::<u64>().unwrap())
        .sum();
    assert!(repaired >= 1000, "the new node's share came by anti-entropy: {repaired} keys");
    let owned_by_n4 = |i: usize| {
        let list: Vec<String> = redis::cmd("DYNAMO.RING").arg(format!("k{i}")).query(&mut redis(&n4)).unwrap();
        list[1].contains("n4")
    };
    let mine: Vec<usize> = (0..1500).filter(|i| owned_by_n4(*i)).collect();
    assert!(mine.len() > 900, "n4 owns {} of 1500 keys", mine.len());
    for &i in &mine {
        assert_eq!(versioned(&n4, "DYNAMO.LOCAL", &format!("k{i}")).1, vec![Some(i.to_string())], "k{i} on n4");
    }
    // The ring is durable: after a restart of every node it is the same version, and every
    // key still reads back.
    for n in ["n1", "n2", "n3", "n4"] {
        cluster(&dir, &["restart", n]);
    }
    for a in addrs.iter().chain([&n4]) {
        assert_eq!(info_field(a, "dynamo_ring_version"), "3", "{a}");
    }
    for i in (0..1500).step_by(11) {
        let v: String = redis::cmd("GET").arg(format!("k{i}")).query(&mut redis(&n4)).unwrap();
        assert_eq!(v, i.to_string());
    }
}

#[test]
fn a_join_that_waits_for_a_killed_holder_says_so_and_completes_once_it_is_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let flags = ["--aae-max-keys", "25", "--swim-period", "200ms", "--suspect-timeout", "1s"];
    let status = up(&dir, "dynamo", &flags);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    fill(&addrs[0], 1500);
    let adding = {
        let dir = dir.clone();
        std::thread::spawn(move || common::valthree(&["cluster", "--dir", dir.to_str().unwrap(), "add-node"]))
    };
    std::thread::sleep(Duration::from_millis(700));
    // The cluster's commands stay usable while the change runs.
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    let out = adding.join().unwrap();
    let said = common::text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("n4 is still joining") && said.contains("waits for n3"), "{said}");
    let listed: Vec<String> =
        cluster(&dir, &["status"])["nodes"].as_array().unwrap().iter().map(|n| n["node"].to_string()).collect();
    assert!(listed.iter().any(|n| n.contains("n4")), "the joining node stays in the cluster: {listed:?}");
    assert_eq!(info_field(&addrs[0], "dynamo_ring_changing"), "1");
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(60), "the join to complete once n3 is back", || {
        info_field(&addrs[0], "dynamo_ring_version") == "3" && info_field(&addrs[0], "dynamo_ring_changing") == "0"
    });
    for i in (0..1500).step_by(13) {
        let v: String = redis::cmd("GET").arg(format!("k{i}")).query(&mut redis(&addrs[1])).unwrap();
        assert_eq!(v, i.to_string());
    }
}

/// Flags for the tests of reaping and handover: graces of seconds, anti-entropy and failure
/// detection fast.
fn short_graces(handoff: &'static str) -> [&'static str; 10] {
    [
        "--tombstone-grace",
        "1s",
        "--handoff-grace",
        handoff,
        "--aae-interval",
        "300ms",
        "--swim-period",
        "200ms",
        "--suspect-timeout",
        "1s",
    ]
}

/// Deletes `k0`..`k{n-1}` (what [`fill`] wrote) in one pipeline.
fn delete(addr: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("DEL").arg(format!("k{i}")).ignore();
    }
    let _: () = pipe.query(&mut redis(addr)).unwrap();
}

#[test]
fn a_former_owner_back_after_its_partitions_tombstones_were_reaped_brings_no_deleted_key_back() {
    // A join moves some partitions off n3. n3 is then killed while still holding its old
    // copies, every key is deleted, and the tombstones age past `--tombstone-grace` (the
    // current owners all hold them). When n3 comes back it hands its old copies over: the
    // deleted values must not come back.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &short_graces("4s"));
    let _down = Down(&dir);
    let addrs = addrs(&status);
    fill(&addrs[0], 200);
    let added = cluster(&dir, &["add-node"]);
    assert_eq!(added["node"], "n4", "{added}");
    heard_by_all(&addrs, "n3");
    cluster(&dir, &["kill", "n3"]);
    delete(&addrs[0], 200);
    // The partitions n3 left are reaped by their current owners while n3 is away.
    let n4 = added["addr"].as_str().unwrap().to_string();
    let members = [addrs[0].clone(), addrs[1].clone(), n4];
    std::thread::sleep(Duration::from_secs(3));
    let log = dir.join("n3.log");
    let handovers = || std::fs::read_to_string(&log).unwrap_or_default().matches("handed over a partition").count();
    let before = handovers();
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(40), "n3 to hand over the partitions it no longer holds", || handovers() > before);
    // A few anti-entropy rounds after the handover: every key is still deleted everywhere.
    std::thread::sleep(Duration::from_secs(2));
    let all = [&members[..], &addrs[2..3]].concat();
    let mut back = Vec::new();
    for i in 0..200 {
        let key = format!("k{i}");
        for a in &all {
            let v: Option<String> = redis::cmd("GET").arg(&key).query(&mut redis(a)).unwrap();
            if let Some(v) = v {
                back.push(format!("{key}={v} on {a}"));
            }
        }
    }
    assert!(back.is_empty(), "{} deleted keys came back: {:?}", back.len(), &back[..back.len().min(10)]);
}

#[test]
fn a_forged_context_cannot_make_later_writes_to_its_key_vanish_nor_grow_its_context() {
    // An attacker with a plain client (no secret) sends a context naming every node's actor
    // at the largest counter, and actors that do not exist. Later ordinary writes to the key
    // must still be read back on every node, and the key's context names real actors only.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let _: () = redis::cmd("SET").arg("victim").arg("v0").query(&mut redis(&addrs[0])).unwrap();
    let mut forged = VersionVector::new();
    for a in &addrs {
        let actor = u64::from_str_radix(&info_field(a, "dynamo_actor"), 16).unwrap();
        forged.add(Dot { actor, counter: u64::MAX });
    }
    for fake in 1..=50u64 {
        forged.add(Dot { actor: fake, counter: 7 });
    }
    let context = forged.encode_for(b"victim", None);
    // `cluster up` gives the cluster a secret, so contexts are signed: an unsigned one is
    // refused before anything is written.
    let refused =
        redis::cmd("VSET").arg("victim").arg("forged").arg(&context).query::<redis::Value>(&mut redis(&addrs[0]));
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("not one VGET or VSET returned"), "{refused}");
    for (i, a) in addrs.iter().enumerate() {
        let value = format!("legit-{i}");
        let _: () = redis::cmd("SET").arg("victim").arg(&value).query(&mut redis(a)).unwrap();
        for b in &addrs {
            let got: Option<String> = redis::cmd("GET").arg("victim").query(&mut redis(b)).unwrap();
            assert_eq!(got.as_deref(), Some(value.as_str()), "a SET through {a} read back through {b}");
        }
    }
    let (context, _) = versioned(&addrs[1], "VGET", "victim");
    let known = valthree::check::dynamo::context::decode(b"victim", context.as_bytes()).unwrap();
    let entries: Vec<(u64, u64)> = known.entries().collect();
    assert!(entries.len() <= 3, "the key's context names only the three nodes' actors: {entries:?}");
    assert!(entries.iter().all(|(_, c)| *c < 1_000_000), "no counter a node never reached: {entries:?}");
}

#[test]
fn a_node_that_left_the_ring_brings_no_deleted_key_back() {
    // n4 joins, takes its share, and leaves again. Once the leave is complete every key is
    // deleted and the tombstones are reaped by the owners, which no longer include n4; n4,
    // killed or not meanwhile, must not bring its old copies back, and remove-node ends.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &short_graces("5s"));
    let _down = Down(&dir);
    let addrs = addrs(&status);
    fill(&addrs[0], 200);
    let added = cluster(&dir, &["add-node"]);
    fill(added["addr"].as_str().unwrap(), 200);
    let removing = {
        let dir = dir.clone();
        std::thread::spawn(move || common::valthree(&["cluster", "--dir", dir.to_str().unwrap(), "remove-node", "n4"]))
    };
    wait_until(Duration::from_secs(90), "the leave to complete", || {
        info_field(&addrs[0], "dynamo_ring_version") == "5"
    });
    // Killed at once, or already gone: either way it holds old copies no owner asks about.
    let _ = common::valthree(&["cluster", "--dir", dir.to_str().unwrap(), "kill", "n4"]);
    delete(&addrs[0], 200);
    wait_until(Duration::from_secs(30), "the owners to reap every tombstone", || {
        addrs.iter().all(|a| info_field(a, "dynamo_tombstones") == "0")
    });
    let first = removing.join().unwrap();
    if !first.status.success() {
        // It was killed before it forgot its copies: back, it forgets them, and the removal ends.
        assert!(common::text(&first).contains("not running"), "{}", common::text(&first));
        cluster(&dir, &["restart", "n4"]);
        cluster(&dir, &["remove-node", "n4"]);
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut back = Vec::new();
    for i in 0..200 {
        for a in &addrs {
            let v: Option<String> = redis::cmd("GET").arg(format!("k{i}")).query(&mut redis(a)).unwrap();
            if let Some(v) = v {
                back.push(format!("k{i}={v} on {a}"));
            }
        }
    }
    assert!(back.is_empty(), "{} deleted keys came back: {:?}", back.len(), &back[..back.len().min(10)]);
}

/// Starts three dynamo nodes by hand, with no cluster secret (so contexts are unsigned).
fn unsigned_cluster(dir: &std::path::Path) -> Vec<common::Valthree> {
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let list = peers.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    (0..3)
        .map(|i| {
            let data = dir.join(format!("n{}", i + 1));
            let (id, peer) = ((i + 1).to_string(), format!("127.0.0.1:{}", peers[i]));
            let args = ["--mode", "dynamo", "--node-id", &id, "--peer-addr", &peer, "--peers", &list];
            let data_dir = ["--data-dir", data.to_str().unwrap(), "--swim-period", "200ms"];
            common::Valthree::start(dir, &[&args[..], &data_dir[..]].concat())
        })
        .collect()
}

#[test]
fn without_a_secret_a_context_naming_writes_no_replica_holds_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = unsigned_cluster(tmp.path());
    let addrs: Vec<String> = nodes.iter().map(common::Valthree::addr).collect();
    let _: () = redis::cmd("SET").arg("victim").arg("v0").query(&mut redis(&addrs[0])).unwrap();
    // A context naming the other two nodes' actors at counters they never reached.
    let mut forged = VersionVector::new();
    for a in &addrs[1..] {
        let actor = u64::from_str_radix(&info_field(a, "dynamo_actor"), 16).unwrap();
        forged.add(Dot { actor, counter: u64::MAX / 2 });
    }
    let context = forged.encode_for(b"victim", None);
    let refused =
        redis::cmd("VSET").arg("victim").arg("evil").arg(&context).query::<redis::Value>(&mut redis(&addrs[0]));
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Some("TRYAGAIN"), "{refused}");
    // A context a node handed out passes, and later writes through every node are read back.
    let (context, _) = versioned(&addrs[1], "VGET", "victim");
    let _: redis::Value =
        redis::cmd("VSET").arg("victim").arg("v1").arg(&context).query(&mut redis(&addrs[2])).unwrap();
    for (i, a) in addrs.iter().enumerate() {
        let value = format!("legit-{i}");
        let _: () = redis::cmd("SET").arg("victim").arg(&value).query(&mut redis(a)).unwrap();
        for b in &addrs {
            let got: Option<String> = redis::cmd("GET").arg("victim").query(&mut redis(b)).unwrap();
            assert_eq!(got.as_deref(), Some(value.as_str()), "a SET through {a} read back through {b}");
        }
    }
}

#[test]
fn compare_and_set_commands_through_every_node_of_a_dynamo_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let ports: Vec<u16> = addrs(&status).iter().map(|a| a.rsplit(':').next().unwrap().parse().unwrap()).collect();
    check_compare_and_set_commands(&ports, CasSupport::Refused);
}
