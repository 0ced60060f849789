//! Clock faults end to end (`valthree cluster clock`, the `clock` nemesis): the linearizable
//! modes stay linearizable whatever a node's wall clock says, and dynamo mode — the one mode
//! whose behaviour reads the wall clock — pays for a skewed clock exactly what
//! docs/dynamo.md (*Clocks*) says: a plain GET picks the later-stamped sibling, a forward
//! jump shortens tombstone grace and hint window by its size and no more.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Down, Verdict, addrs, assert_verdict, cluster, info_field, redis, up, wait_until, workload};

/// `workload --check` under the clock nemesis alone (a bump or strobe every second, on a
/// random node): linearizable, and the history marks each clock fault's start and end.
fn clock_nemesis_workload_is_linearizable(mode: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    up(&dir, mode, &[]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    let extra = ["--duration", "10s", "--seed", "3", "--nemesis", "clock", "--nemesis-interval", "1s"];
    let out = workload(&dir, &history, &extra);
    assert_verdict(&out, Verdict::Linearizable, &format!("{mode} under clock faults"));
    let events = std::fs::read_to_string(&history).unwrap();
    let marks = |phase: &str| {
        events.lines().filter(|l| l.contains(&format!(r#""fault":{{"kind":"clock","phase":"{phase}"}}"#))).count()
    };
    assert!(marks("start") >= 3, "{mode}: only {} clock faults in the history", marks("start"));
    assert_eq!(marks("start"), marks("end"), "{mode}: every clock fault is reset");
    let failed = events.lines().find(|l| l.contains(r#""kind":"clock""#) && l.contains(r#""error""#));
    assert_eq!(failed, None, "{mode}: a clock fault or its reset failed");
    let oks = events.lines().filter(|l| l.contains(r#""type":"ok""#)).count();
    assert!(oks > 200, "{mode}: only {oks} operations succeeded under clock faults");
}

#[test]
fn s3_mode_stays_linearizable_under_clock_bumps_and_strobes() {
    clock_nemesis_workload_is_linearizable("s3");
}

#[test]
fn paxos_stays_linearizable_under_clock_bumps_and_strobes() {
    clock_nemesis_workload_is_linearizable("paxos");
}

#[test]
fn raft_stays_linearizable_under_clock_bumps_and_strobes() {
    clock_nemesis_workload_is_linearizable("raft");
}

/// `valthree cluster clock NODE ARGS...`; returns its message (`n1's clock: offset +60000ms`).
fn clock(dir: &Path, node: &str, args: &[&str]) -> String {
    let mut all = vec!["clock", node];
    all.extend_from_slice(args);
    cluster(dir, &all)["message"].as_str().unwrap_or_default().to_string()
}

/// The siblings of `key` as VGET WITHDOTS gives them: (timestamp in ms, value).
fn stamped_siblings(addr: &str, key: &str) -> Vec<(u64, Option<String>)> {
    let reply: Vec<redis::Value> = redis::cmd("VGET").arg(key).arg("WITHDOTS").query(&mut redis(addr)).unwrap();
    reply
        .into_iter()
        .skip(1)
        .map(|sibling| {
            let (_dot, stamp, value): (String, u64, Option<String>) = redis::from_redis_value(sibling).unwrap();
            (stamp, value)
        })
        .collect()
}

fn local(addr: &str, key: &str) -> Vec<Option<String>> {
    let reply: Vec<Option<String>> = redis::cmd("DYNAMO.LOCAL").arg(key).query(&mut redis(addr)).unwrap();
    reply.into_iter().skip(1).collect()
}

fn get(addr: &str, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut redis(addr)).unwrap()
}

#[test]
fn a_plain_get_picks_the_sibling_stamped_latest_so_a_writer_whose_clock_runs_ahead_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    assert_eq!(clock(&dir, "n1", &["bump", "+60000"]), "n1's clock: offset +60000ms");
    // Two blind writes through two nodes (no context: neither saw the other), n1's first.
    let _: Vec<String> = redis::cmd("VSET").arg("k").arg("earlier-n1").arg("").query(&mut redis(&addrs[0])).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _: Vec<String> = redis::cmd("VSET").arg("k").arg("later-n2").arg("").query(&mut redis(&addrs[1])).unwrap();
    let mut siblings = stamped_siblings(&addrs[2], "k");
    siblings.sort();
    assert_eq!(siblings.len(), 2, "VGET shows both writes: {siblings:?}");
    let (n2, n1) = (&siblings[0], &siblings[1]);
    assert_eq!((n1.1.as_deref(), n2.1.as_deref()), (Some("earlier-n1"), Some("later-n2")));
    assert!(n1.0 >= n2.0 + 59_000, "n1's write carries its clock, a minute ahead: {siblings:?}");
    // The plain GET picks by timestamp: the write made earlier, through the clock ahead.
    for addr in &addrs {
        assert_eq!(get(addr, "k").as_deref(), Some("earlier-n1"), "GET through {addr}");
    }
    // The stamps are stored: resetting the clock changes nothing already written.
    assert_eq!(clock(&dir, "n1", &["reset"]), "n1's clock: none");
    assert_eq!(get(&addrs[1], "k").as_deref(), Some("earlier-n1"));
    assert_eq!(stamped_siblings(&addrs[0], "k").len(), 2, "both siblings are still there");
}

/// Reaping and failure detection fast, the tombstone grace and hint window minutes long.
const SKEW_FLAGS: [&str; 12] = [
    "--tombstone-grace",
    "5m",
    "--hint-window",
    "5m",
    "--aae-interval",
    "300ms",
    "--swim-period",
    "200ms",
    "--suspect-timeout",
    "1s",
    "--read-repair",
    "off",
];

#[test]
fn a_clock_jump_shorter_than_the_tombstone_grace_reaps_nothing_and_a_longer_one_reaps_what_every_owner_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &SKEW_FLAGS);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let _: () = redis::cmd("SET").arg("gone").arg("v1").query(&mut redis(&addrs[0])).unwrap();
    let _: () = redis::cmd("DEL").arg("gone").query(&mut redis(&addrs[0])).unwrap();
    wait_until(Duration::from_secs(10), "every owner to hold the tombstone", || {
        addrs.iter().all(|a| local(a, "gone") == vec![None])
    });
    // Every clock a minute ahead (whichever node is the key's first owner reaps): the
    // tombstones look a minute older, still four minutes short of the grace.
    for node in ["n1", "n2", "n3"] {
        clock(&dir, node, &["bump", "+60000"]);
    }
    std::thread::sleep(Duration::from_secs(4)); // more than ten reaping rounds
    for a in &addrs {
        assert_eq!(local(a, "gone"), vec![None], "{a} keeps the tombstone");
        assert_eq!(info_field(a, "dynamo_tombstones_reaped"), "0", "nothing reaped on {a}");
    }
    // Five more minutes ahead: past the grace by the skewed clocks. Every owner holds the
    // tombstone and every member is up, so it is reaped early, and the key stays deleted.
    for node in ["n1", "n2", "n3"] {
        clock(&dir, node, &["bump", "+300000"]);
    }
    wait_until(Duration::from_secs(20), "every owner to reap the tombstone", || {
        addrs.iter().all(|a| local(a, "gone").is_empty() && info_field(a, "dynamo_tombstones") == "0")
    });
    for a in &addrs {
        assert_eq!(get(a, "gone"), None, "the deleted key stays deleted on {a}");
    }
}

fn members_line(addr: &str, node: &str) -> String {
    let lines: Vec<String> = redis::cmd("DYNAMO.MEMBERS").query(&mut redis(addr)).unwrap();
    lines.into_iter().find(|l| l.starts_with(&format!("{node} "))).unwrap_or_default()
}

/// Kills n3, waits until n1 finds it DEAD, and writes `keys` through n1: one hint each.
fn hints_for_dead_n3(dir: &Path, addrs: &[String], keys: &[&str]) {
    wait_until(Duration::from_secs(20), "n1 to hear from n3", || members_line(&addrs[0], "n3").contains(" life "));
    cluster(dir, &["kill", "n3"]);
    wait_until(Duration::from_secs(15), "n1 to find n3 dead", || members_line(&addrs[0], "n3").contains("DEAD"));
    for key in keys {
        let _: () = redis::cmd("SET").arg(*key).arg(*key).query(&mut redis(&addrs[0])).unwrap();
    }
}

#[test]
fn a_clock_jump_inside_the_hint_window_drops_no_hint_and_one_past_it_drops_the_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "dynamo", &SKEW_FLAGS);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let keys = ["h0", "h1", "h2", "h3", "h4"];
    hints_for_dead_n3(&dir, &addrs, &keys);
    assert_eq!(info_field(&addrs[0], "dynamo_hints_pending"), "5");
    // The coordinator's clock jumps a minute ahead: its hints look a minute older, well
    // inside the five-minute window. They are all replayed when n3 is back.
    clock(&dir, "n1", &["bump", "+60000"]);
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(20), "n3 to receive every hinted write", || {
        keys.iter().all(|k| local(&addrs[2], k) == vec![Some(k.to_string())])
    });
    wait_until(Duration::from_secs(5), "n1's hints to be gone", || {
        info_field(&addrs[0], "dynamo_hints_pending") == "0"
    });
    assert_eq!(info_field(&addrs[0], "dynamo_hints_replayed"), "5");
    assert_eq!(info_field(&addrs[0], "dynamo_hints_expired"), "0");
    // The cost, as documented: a jump past the window makes a fresh hint look expired, and
    // it is dropped unreplayed (anti-entropy is left to repair n3).
    hints_for_dead_n3(&dir, &addrs, &["late"]);
    clock(&dir, "n1", &["bump", "+600000"]);
    cluster(&dir, &["restart", "n3"]);
    wait_until(Duration::from_secs(20), "n1's hint to be dropped", || {
        info_field(&addrs[0], "dynamo_hints_pending") == "0"
    });
    assert_eq!(info_field(&addrs[0], "dynamo_hints_expired"), "1");
    assert_eq!(info_field(&addrs[0], "dynamo_hints_replayed"), "5");
}

#[test]
fn dynamo_keeps_its_promises_under_clock_faults_and_the_report_shades_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    up(&dir, "dynamo", &[]);
    let _down = Down(&dir);
    let (history, html) = (tmp.path().join("h.jsonl"), tmp.path().join("h.html"));
    let extra = [
        "--duration",
        "10s",
        "--seed",
        "1",
        "--nemesis",
        "clock",
        "--nemesis-interval",
        "1s",
        "--html",
        html.to_str().unwrap(),
    ];
    let out = workload(&dir, &history, &extra);
    let said = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(common::verdict_line(&stdout).unwrap_or_default().starts_with("consistent: "), "{said}");
    let events = common::recorded_events(&history);
    let clock_faults = events.iter().filter(|e| e["fault"]["kind"] == "clock" && e["fault"]["phase"] == "start");
    assert!(clock_faults.count() >= 3, "too few clock faults: {said}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("#2c3e91"), "the report shades the clock faults in their colour");
}
