//! `valthree demo`: every demo runs against its real local cluster and checks its own claims;
//! a demo pointed at a broken configuration must fail, naming the claim that did not hold.

mod common;

use common::{free_base, text, valthree};
use serde_json::Value;

fn demo(args: &[&str]) -> (std::process::Output, Value) {
    let base = free_base().to_string();
    let mut all = vec!["demo"];
    all.extend_from_slice(args);
    all.extend(["--base-port", &base, "--json", "--pace", "0"]);
    let out = valthree(&all);
    let log = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, log)
}

#[test]
fn every_demo_runs_its_steps_and_every_claim_holds() {
    let (out, logs) = demo(&["all"]);
    assert!(out.status.success(), "{}", text(&out));
    let logs = logs.as_array().expect("demo all --json: one log per demo").clone();
    let names: Vec<&str> = logs.iter().filter_map(|l| l["demo"].as_str()).collect();
    for name in
        ["quorum", "conflict", "repair", "handoff", "membership", "failover", "occ", "availability", "linearizability"]
    {
        assert!(names.contains(&name), "no {name} demo ran: {names:?}");
    }
    for log in &logs {
        assert_eq!(log["passed"], true, "{log}");
        let steps: Vec<&Value> = log["log"].as_array().unwrap().iter().filter(|s| s.get("step").is_some()).collect();
        let checks: usize = steps.iter().map(|s| s["checks"].as_array().map_or(0, Vec::len)).sum();
        assert!(steps.len() >= 4 && checks >= 2, "{}: {} steps, {checks} checks", log["demo"], steps.len());
        // Each step says what it did in a form a user could type.
        for s in steps {
            let what = s["do"].as_str().unwrap();
            assert!(
                ["valthree ", "redis-cli ", "for "].iter().any(|p| what.starts_with(p)),
                "{}: step {what:?}",
                log["demo"]
            );
        }
    }
}

#[test]
fn a_demo_against_a_broken_configuration_fails_naming_the_claim() {
    // Last-writer-wins keeps one value where the demo promises two siblings.
    let (out, log) = demo(&["conflict", "--serve-flag=--unsafe-lww"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(log["passed"], false);
    assert_eq!(log["failure"]["claim"], "VGET shows both siblings with their dots", "{log}");
}

#[test]
fn the_list_names_every_demo_and_keep_leaves_a_cluster_to_explore() {
    let out = valthree(&["demo"]);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("repair") && list.contains("dynamo") && list.contains("read"), "{list}");
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base().to_string();
    let dir = tmp.path().join("d");
    let out =
        valthree(&["demo", "conflict", "--keep", "--dir", dir.to_str().unwrap(), "--base-port", &base, "--pace", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("The cluster is still running") && said.contains("valthree cluster down --purge"), "{said}");
    let cluster = dir.join("dynamo-1");
    let status = valthree(&["cluster", "status", "--dir", cluster.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("up"), "{}", text(&status));
    let down = valthree(&["cluster", "down", "--purge", "--dir", cluster.to_str().unwrap()]);
    assert!(down.status.success(), "{}", text(&down));
}

#[test]
fn the_linearizability_demo_writes_its_reports_under_its_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let (out, log) = demo(&["linearizability", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let observed: Vec<&str> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["observed"].as_str())
        .filter_map(|o| o.lines().find_map(|l| l.strip_prefix("report: ")))
        .collect();
    assert_eq!(observed.len(), 2, "{log}");
    for report in observed {
        let path = std::path::Path::new(report);
        assert!(path.starts_with(&dir), "{report} is not under {}", dir.display());
        assert!(path.exists(), "{report} did not outlive the demo's clusters");
    }
}

#[test]
fn the_quorum_demo_times_each_failure_detection_from_the_nodes_kill() {
    let (out, log) = demo(&["quorum"]);
    assert!(out.status.success(), "{}", text(&out));
    let checks: Vec<&Value> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["checks"].as_array())
        .flatten()
        .filter(|c| c["claim"].as_str().is_some_and(|c| c.ends_with("dead")))
        .collect();
    assert_eq!(checks.len(), 2, "{log}");
    for check in checks {
        // The demo's detector declares a node DEAD a --suspect-timeout (1s) after suspecting it:
        // no detection is quicker, however long ago the node was killed.
        let observed = check["observed"].as_str().unwrap();
        let seconds: f64 = observed.strip_suffix("s after its kill").unwrap_or(observed).parse().unwrap_or(0.0);
        assert!(seconds >= 1.0, "{}: {observed}", check["claim"]);
    }
}
