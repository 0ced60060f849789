//! `valthree workload` and `valthree check-history` end to end: they must pass a correct
//! server, catch a broken one, and record faults precisely.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{BIN, RedisServer, Valthree, Verdict, assert_verdict, recorded_events, wait_for_history, wait_until};
use serde_json::Value;

fn valthree(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run valthree")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn workload(addrs: &str, history: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["workload", "--addrs", addrs, "--history", history.to_str().unwrap()];
    args.extend_from_slice(extra);
    valthree(&args)
}

fn events(history: &Path) -> Vec<Value> {
    std::fs::read_to_string(history).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn three_s3_nodes_on_one_directory_are_linearizable() {
    three_s3_nodes_are_linearizable(&[]);
}

/// The documents start over from a new snapshot after every two keys written: snapshots,
/// documents over them and the deletion of replaced ones, all under the checker.
#[test]
fn three_s3_nodes_writing_over_snapshots_are_linearizable() {
    three_s3_nodes_are_linearizable(&["--s3-snapshot-keys", "2"]);
}

fn three_s3_nodes_are_linearizable(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let mut flags = vec!["--data-dir", data.to_str().unwrap()];
    flags.extend_from_slice(extra);
    let nodes: Vec<Valthree> = (0..3).map(|_| Valthree::start(dir.path(), &flags)).collect();
    let addrs = nodes.iter().map(|n| n.addr()).collect::<Vec<_>>().join(",");
    let history = dir.path().join("h.jsonl");
    let mix = "get=6,set=4,del=2,incr=2,append=2,flushall=1";
    let out =
        workload(&addrs, &history, &["--clients", "9", "--duration", "4s", "--seed", "7", "--mix", mix, "--check"]);
    assert_verdict(&out, Verdict::Linearizable, "three s3 nodes on one directory");
    let ok_reads = events(&history).iter().filter(|e| e["type"] == "ok" && e["f"] == "get").count();
    assert!(ok_reads > 100, "the run must actually read: {ok_reads} reads");
    let flushes = events(&history).iter().filter(|e| e["type"] == "ok" && e["f"] == "flushall").count();
    assert!(flushes > 0, "FLUSHALL is part of the checked history");
}

#[test]
fn redis_server_is_linearizable() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.jsonl");
    let addr = format!("127.0.0.1:{}", redis.port);
    let out = workload(&addr, &history, &["--clients", "8", "--ops", "20000", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(Verdict::Linearizable.exit_code()), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["check"]["verdict"], "linearizable");
    assert_eq!(report["summary"]["info"], 0);
}

#[test]
fn the_planted_stale_read_bug_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let data = data.to_str().unwrap();
    let honest = Valthree::start(dir.path(), &["--data-dir", data]);
    let broken = Valthree::start(dir.path(), &["--data-dir", data, "--unsafe-stale-reads"]);
    let history = dir.path().join("h.jsonl");
    let html = dir.path().join("report.html");
    let addrs = format!("{},{}", honest.addr(), broken.addr());
    let out = workload(
        &addrs,
        &history,
        &["--clients", "8", "--duration", "3s", "--check", "--html", html.to_str().unwrap()],
    );
    assert_verdict(&out, Verdict::NotLinearizable, "the planted stale-read bug");
    assert!(text(&out).contains("cannot be placed"), "{}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(r#""verdict":"NOT linearizable""#) && page.contains("\"tag\":\"stuck\""));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "the report must be self-contained");
}

/// A compare-and-set that swaps without comparing (`--unsafe-blind-cas`) answers "swapped"
/// while the key holds another value: the checker must say so. The mix is mostly cas, on one
/// key, so the clients' expected values go stale quickly.
#[test]
fn the_planted_blind_cas_bug_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broken = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap(), "--unsafe-blind-cas"]);
    let history = dir.path().join("h.jsonl");
    let args = ["--clients", "8", "--keys", "1", "--ops", "2000", "--mix", "get=2,set=1,cas=3", "--check"];
    let out = workload(&broken.addr(), &history, &args);
    assert_verdict(&out, Verdict::NotLinearizable, "the planted blind-cas bug");
    assert!(text(&out).contains("cas "), "the violation names a cas:\n{}", text(&out));
}

#[test]
fn the_same_seed_gives_the_same_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let invocations = |name: &str| {
        let data = dir.path().join(name);
        let node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap()]);
        let history = dir.path().join(format!("{name}.jsonl"));
        let out = workload(&node.addr(), &history, &["--clients", "3", "--ops", "300", "--seed", "42"]);
        assert!(out.status.success(), "{}", text(&out));
        let mut per_client: Vec<Vec<(String, String, String)>> = vec![Vec::new(); 3];
        for e in events(&history).iter().filter(|e| e["type"] == "invoke") {
            let p = e["process"].as_u64().unwrap() as usize;
            // A cas's expected value is what its client read, which the run decides; its new
            // value is the seed's.
            let value = if e["f"] == "cas" { &e["value"][1] } else { &e["value"] };
            per_client[p].push((e["f"].to_string(), e["key"].to_string(), value.to_string()));
        }
        per_client
    };
    let (a, b) = (invocations("a"), invocations("b"));
    for (x, y) in a.iter().zip(&b) {
        let n = x.len().min(y.len());
        assert!(n > 50);
        assert_eq!(x[..n], y[..n]);
    }
}

#[test]
fn pauses_and_restarts_are_recorded_as_info_and_fail_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let history = dir.path().join("h.jsonl");
    let addr = node.addr();
    let run = {
        let history = history.clone();
        std::thread::spawn(move || {
            workload(&addr, &history, &["--clients", "4", "--duration", "5s", "--timeout", "300ms", "--check"])
        })
    };
    let limit = Duration::from_secs(20);
    let count = |pred: &dyn Fn(&Value) -> bool| recorded_events(&history).iter().filter(|e| pred(e)).count();
    let is_ok = |e: &Value| e["type"] == "ok";
    let is_timeout = |e: &Value| e["type"] == "info" && e["error"] == "timeout";
    let is_refused = |e: &Value| e["type"] == "fail" && e["error"].as_str().is_some_and(|s| s.contains("connect"));
    // Each fault starts once the run has got somewhere and lasts until its effect is recorded.
    wait_for_history(&history, 100);
    let timeouts_before = count(&is_timeout);
    node.signal("STOP");
    wait_until(limit, "an operation timing out on the paused server", || count(&is_timeout) > timeouts_before);
    let oks_before = count(&is_ok);
    node.signal("CONT");
    wait_until(limit, "an operation succeeding after the resume", || count(&is_ok) > oks_before);
    let refused_before = count(&is_refused);
    node.kill9();
    wait_until(limit, "an operation refused by the dead server", || count(&is_refused) > refused_before);
    node.restart();
    let out = run.join().unwrap();
    assert_verdict(&out, Verdict::Linearizable, "faults are no violations");
    let events = events(&history);
    assert!(events.iter().any(is_timeout), "a paused server makes operations time out");
    assert!(events.iter().any(is_refused), "a dead server makes operations fail before they are sent");
    let last_ok = events.iter().rev().find(|e| is_ok(e)).unwrap()["time"].as_u64().unwrap();
    let restart_fail = events.iter().rev().find(|e| is_refused(e)).unwrap()["time"].as_u64().unwrap();
    assert!(last_ok > restart_fail, "clients reconnect and go on after the restart");
}

#[test]
fn check_history_reports_bad_input_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"time\":1}\n\
         {\"index\":1,\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"time\":2}\n\
         {\"index\":2,\"process\":1,\"type\":\"invoke\",\"f\":\"frobnicate\",\"key\":\"k\",\"time\":3}\n",
    )
    .unwrap();
    let out = valthree(&["check-history", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("line 3: unknown op \"frobnicate\""), "{}", text(&out));
    std::fs::write(&file, "not json\n").unwrap();
    let out = valthree(&["check-history", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("line 1"), "{}", text(&out));
}

#[test]
fn check_history_json_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.jsonl");
    let lines = [
        r#"{"index":0,"process":1,"type":"invoke","f":"incr","key":"n","time":1}"#,
        r#"{"index":1,"process":1,"type":"ok","f":"incr","key":"n","value":1,"time":2}"#,
        r#"{"index":2,"process":2,"type":"invoke","f":"incr","key":"n","time":3}"#,
        r#"{"index":3,"process":2,"type":"ok","f":"incr","key":"n","value":1,"time":4}"#,
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = valthree(&["check-history", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["verdict"], "NOT linearizable");
    assert_eq!(verdict["violations"][0]["key"], "n");
    std::fs::write(&file, lines[..2].join("\n") + "\n").unwrap();
    let out = valthree(&["check-history", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let out = valthree(&["check-history", file.to_str().unwrap(), "--json", "--timeout", "0s"]);
    assert_eq!(out.status.code(), Some(2), "out of time is unknown, not a verdict");
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["verdict"], "unknown");
    assert_eq!(verdict["timed_out_keys"], serde_json::json!(["n"]));
}

#[test]
fn a_dynamo_history_whose_settled_replicas_could_not_be_read_is_not_checked_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.jsonl");
    let mut lines = vec![
        r#"{"index":0,"process":"nemesis","type":"info","f":"config","value":{"mode":"dynamo","replicas":3,"r":2,"w":2},"time":0}"#.to_string(),
        r#"{"index":1,"process":1,"type":"invoke","f":"vset","key":"k","value":{"value":"1-1","context":{}},"time":1}"#.into(),
        r#"{"index":2,"process":1,"type":"ok","f":"vset","key":"k","value":{"dot":"00000000000000aa:1","context":{"00000000000000aa":1}},"time":2}"#.into(),
    ];
    // The settle's replica reads after the run, every one refused.
    for node in 1..=3 {
        let t = 2 * node + 1;
        lines.push(format!(
            r#"{{"index":{t},"process":0,"type":"invoke","f":"local","key":"k","value":{{"node":{node}}},"time":{t}}}"#
        ));
        lines.push(format!(
            r#"{{"index":{},"process":0,"type":"fail","f":"local","key":"k","error":"connection refused","time":{}}}"#,
            t + 1,
            t + 1
        ));
    }
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = valthree(&["check-history", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("not checked: "), "{}", text(&out));
    let out = valthree(&["check-history", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((verdict["verdict"].as_str(), verdict["consistent"].as_bool()), (Some("not checked"), Some(false)));
    assert_eq!(verdict["unsettled_keys"], serde_json::json!(["k"]));
    let help = text(&valthree(&["check-history", "--help"]));
    assert!(help.contains("3 not checked"), "the exit codes are documented: {help}");
}

#[test]
fn a_second_run_on_the_same_data_is_judged_from_a_clean_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    for run in 0..2 {
        let history = dir.path().join(format!("h{run}.jsonl"));
        let out = workload(&node.addr(), &history, &["--clients", "4", "--ops", "400", "--seed", "5", "--check"]);
        assert_verdict(&out, Verdict::Linearizable, &format!("run {run}"));
        let first = &events(&history)[0];
        assert_eq!((first["f"].as_str(), first["type"].as_str()), (Some("flushall"), Some("invoke")));
    }
}

/// A dynamo workload's verdict line (after the summary's `history: …` line).
fn dynamo_verdict(out: &Output) -> String {
    common::verdict_line(&String::from_utf8_lossy(&out.stdout)).unwrap_or_default().to_string()
}

#[test]
fn the_settle_leaves_convergence_to_anti_entropy_and_hints_so_their_absence_is_caught() {
    // Anti-entropy never runs and no hint is kept: a replica partitioned away while the last
    // writes land stays behind after the heal, unless something else repairs it. Read repair
    // is on, so a settle that read the keys through a quorum would mend the replicas itself
    // and hide that nothing else would have.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    common::up(&dir, "dynamo", &["--hinted-handoff", "off", "--aae-interval", "0s", "--swim-period", "200ms"]);
    let _down = common::Down(&dir);
    let history = tmp.path().join("h.jsonl");
    // The partition starts 4 s in and lasts until the run ends at 6 s; the nemesis heals it
    // before the settle.
    let extra = ["--duration", "6s", "--nemesis", "partition", "--nemesis-interval", "8s", "--settle-timeout", "3s"];
    let out = common::workload(&dir, &history, &extra);
    let said = text(&out);
    let events = recorded_events(&history);
    assert!(events.iter().any(|e| e["f"] == "partition" && e["error"].is_null()), "no partition: {said}");
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(dynamo_verdict(&out).starts_with("NOT consistent: "), "{said}");
    assert!(said.contains("not converged"), "{said}");
    // Every owner's own replica was read and recorded, none through a quorum read.
    let settled = events.iter().filter(|e| e["f"] == "local" && e["type"] == "ok").count();
    assert_eq!(settled, 4 * 3, "{said}");
}

/// A server that answers PING, FLUSHALL and GET as Redis does, but every SET with nil: a
/// reply SET without NX, XX or GET never gives.
fn server_answering_set_with_nil() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut input = BufReader::new(stream);
                let mut line = String::new();
                let mut next_line = |line: &mut String| {
                    line.clear();
                    input.read_line(line).ok().filter(|n| *n > 0).map(|_| line.trim_end().to_string())
                };
                // Requests are arrays of bulk strings: `*n`, then `$len` and the bytes, n times.
                while let Some(header) = next_line(&mut line) {
                    let n: usize = header.trim_start_matches('*').parse().unwrap_or(0);
                    let mut args = Vec::new();
                    for _ in 0..n {
                        let _length = next_line(&mut line);
                        args.push(next_line(&mut line).unwrap_or_default().to_ascii_uppercase());
                    }
                    let reply: &[u8] = match args.first().map(String::as_str) {
                        Some("PING") => b"+PONG\r\n",
                        Some("FLUSHALL") => b"+OK\r\n",
                        Some("SET" | "GET") => b"$-1\r\n",
                        _ => b"-ERR unknown command\r\n",
                    };
                    if out.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_reply_the_command_never_gives_fails_the_run_even_when_the_history_checks() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.jsonl");
    let addr = server_answering_set_with_nil();
    let args = ["--mix", "set=1,get=1", "--ops", "20", "--clients", "2", "--timeout", "2s"];
    for check in [&[][..], &["--check"][..]] {
        let out = workload(&addr, &history, &[&args[..], check].concat());
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{check:?}: {said}");
        assert!(said.contains("replies the protocol does not allow"), "{check:?}: {said}");
        // Recorded as what they are: the SETs may or may not have happened.
        let sets = events(&history).into_iter().filter(|e| e["f"] == "set" && e["type"] != "invoke").count();
        let unknown = events(&history).into_iter().filter(|e| e["f"] == "set" && e["type"] == "info").count();
        assert!(sets > 0 && unknown == sets, "{check:?}: {said}");
    }
}

/// The default mix against valthree's linearizable modes runs every command the checker
/// models — cas, getdel and getset among them — and the history they make is checked.
#[test]
fn the_default_mix_runs_getdel_and_getset_and_the_checker_judges_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let history = dir.path().join("h.jsonl");
    let out = workload(&node.addr(), &history, &["--clients", "6", "--keys", "3", "--ops", "2000", "--check"]);
    assert_verdict(&out, Verdict::Linearizable, "the default mix on one s3 node");
    let events = events(&history);
    for f in ["get", "set", "del", "incr", "append", "cas", "getdel", "getset"] {
        let ok = events.iter().filter(|e| e["f"] == f && e["type"] == "ok").count();
        assert!(ok > 20, "the default mix runs {f}: {ok} completed");
    }
    // GETDEL and GETSET answer the value they found: some of them found one.
    for f in ["getdel", "getset"] {
        let found = events.iter().filter(|e| e["f"] == f && e["type"] == "ok" && e["value"].is_string()).count();
        assert!(found > 0, "{f} found a value");
    }
}

/// `cas` is recorded in the format the checkers read: invoke `[expected, new]` (strings), `ok`
/// true when it swapped and false when the value differed; and it compares with what the
/// client last read, so some swaps happen.
#[test]
fn cas_is_recorded_with_its_expected_and_new_values_and_swaps_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let history = dir.path().join("h.jsonl");
    let out = workload(
        &node.addr(),
        &history,
        &["--clients", "4", "--keys", "2", "--ops", "600", "--mix", "get=2,cas=2,set=1"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let events = events(&history);
    let cas: Vec<&Value> = events.iter().filter(|e| e["f"] == "cas").collect();
    let invokes: Vec<&Value> = cas.iter().copied().filter(|e| e["type"] == "invoke").collect();
    assert!(invokes.len() > 100, "the mix runs cas: {} invokes", invokes.len());
    for e in &invokes {
        let pair = e["value"].as_array().unwrap_or_else(|| panic!("cas invoke value: {e}"));
        assert!(pair.len() == 2 && pair.iter().all(Value::is_string), "{e}");
    }
    let swapped = |b: bool| cas.iter().filter(|e| e["type"] == "ok" && e["value"] == b).count();
    let (yes, no) = (swapped(true), swapped(false));
    assert_eq!(yes + no, invokes.len(), "without faults every cas completes ok, true or false");
    assert!(yes > 0 && no > 0, "some cas swap and some see another value: {yes} swapped, {no} did not");
    // A swap installs its new value: the next read of the key by anyone may see it.
    let read: std::collections::HashSet<&str> =
        events.iter().filter(|e| e["type"] == "ok" && e["f"] == "get").filter_map(|e| e["value"].as_str()).collect();
    let installed: Vec<&str> = cas
        .iter()
        .filter(|e| e["type"] == "ok" && e["value"] == true)
        .filter_map(|done| {
            invokes
                .iter()
                .rev()
                .find(|i| i["process"] == done["process"] && i["index"].as_u64() < done["index"].as_u64())
        })
        .filter_map(|i| i["value"][1].as_str())
        .collect();
    assert!(installed.iter().any(|v| read.contains(v)), "some swapped-in value was read back");
}
