//! The HTTP admin endpoint (`--metrics-addr`) of real nodes started by `valthree cluster up`:
//! `/metrics` valid by Prometheus' own `promtool` and scraped by a real Prometheus, `/readyz`
//! following a raft quorum, and the log of a node whose peers are down staying short.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Down, cluster, free_port, redis, up, wait_until};
use serde_json::Value;

/// An HTTP/1.0 GET (no chunked bodies, the server closes): the status and the body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn metrics_addrs(status: &Value) -> Vec<String> {
    status["nodes"].as_array().unwrap().iter().map(|n| n["metrics_addr"].as_str().unwrap().to_string()).collect()
}

/// Debian's Prometheus programs, or `None` (and a message saying so) where they are missing.
fn prometheus_program(name: &str) -> Option<PathBuf> {
    let path = Path::new("/usr/bin").join(name);
    if path.exists() {
        return Some(path);
    }
    let found =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(name)).find(|p| p.exists());
    if found.is_none() {
        eprintln!(
            "SKIPPED: {name} is not installed (Debian's `prometheus` package has it; ./scripts/test installs it)"
        );
    }
    found
}

fn promtool_accepts(promtool: &Path, text: &str, context: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{context}: promtool check metrics refused the output:\n{}{}\n--- the output:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of one sample line `name{labels} value` of a /metrics text.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

/// SETs `key` until it succeeds and returns the attempts: a cluster just up on a loaded
/// machine may answer a first write TRYAGAIN or UNCERTAIN (a forward that missed its
/// deadline while peer connections were being made), and each attempt counts as a call.
fn set(con: &mut redis::Connection, key: &str) -> u32 {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let set: redis::RedisResult<()> = redis::cmd("SET").arg(key).arg("v").query(con);
        match set {
            Ok(()) => return attempts,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("SET {key}: {e}; again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("SET {key}: {e}"),
        }
    }
}

#[test]
fn every_mode_serves_metrics_that_promtool_accepts_and_info_agrees() {
    let Some(promtool) = prometheus_program("promtool") else { return };
    for mode in ["s3", "paxos", "raft", "dynamo"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let status = up(&dir, mode, &[]);
        let _down = Down(&dir);
        let addrs = metrics_addrs(&status);
        assert_eq!(addrs.len(), 3, "{status}");
        let client = status["nodes"][0]["addr"].as_str().unwrap().to_string();
        let mut con = redis(&client);
        let attempts: u32 = (0..20).map(|i| set(&mut con, &format!("k{i}"))).sum();
        let _: Option<String> = redis::cmd("GET").arg("k1").query(&mut con).unwrap();
        let refused: redis::RedisResult<()> = redis::cmd("NOSUCHCOMMAND").query(&mut con);
        assert!(refused.is_err());
        for addr in &addrs {
            assert_eq!(get(addr, "/livez").map(|r| r.0), Some(200), "{mode} {addr} /livez");
            let (code, text) = get(addr, "/metrics").unwrap();
            assert_eq!(code, 200, "{mode} {addr}: {text}");
            promtool_accepts(&promtool, &text, &format!("{mode} {addr}"));
            assert!(
                text.contains(&format!(
                    "valthree_build_info{{version=\"{}\",mode=\"{mode}\"}} 1",
                    env!("CARGO_PKG_VERSION")
                )),
                "{text}"
            );
        }
        // The first node ran the commands: its counters say so, and INFO reads the same ones.
        let (_, text) = get(&addrs[0], "/metrics").unwrap();
        assert_eq!(
            sample(&text, "valthree_commands_total{command=\"set\"} "),
            Some(f64::from(attempts)),
            "{mode}: {text}"
        );
        assert_eq!(
            sample(&text, "valthree_command_errors_total{command=\"unknown\",kind=\"ERR\"} "),
            Some(1.0),
            "{mode}: {text}"
        );
        assert!(sample(&text, "valthree_net_input_bytes_total ").unwrap() > 0.0);
        let info: String = redis::cmd("INFO").arg("commandstats").arg("errorstats").query(&mut con).unwrap();
        assert!(info.contains(&format!("cmdstat_set:calls={attempts},")), "{mode}: {info}");
        assert!(info.contains("errorstat_ERR:count=1"), "{mode}: {info}");
        let own = match mode {
            "s3" => "valthree_s3_puts_total ",
            "paxos" => "valthree_paxos_rounds_total ",
            "raft" => "valthree_raft_term ",
            _ => "valthree_dynamo_members{state=\"alive\"} ",
        };
        assert!(sample(&text, own).is_some(), "{mode}: no {own} in\n{text}");
        if mode != "s3" {
            assert!(text.contains("valthree_peer_calls_total{peer=\""), "{mode}: no peer calls in\n{text}");
        }
    }
}

/// A Prometheus server on a scrape configuration of its own, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(program: &Path, targets: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: valthree\n    \
                 static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, addr, _dir: dir }
    }

    fn api(&self, path: &str) -> Option<Value> {
        let (code, body) = get(&self.addr, path)?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// The value of an instant query summed over its series (0 when it has none).
    fn query(&self, expr: &str) -> Option<f64> {
        let encoded: String = expr
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let reply = self.api(&format!("/api/v1/query?query={encoded}"))?;
        let series = reply["data"]["result"].as_array()?;
        Some(series.iter().filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok()).sum())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_every_node_and_sees_commands_counted() {
    let Some(program) = prometheus_program("prometheus") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "paxos", &[]);
    let _down = Down(&dir);
    let targets = metrics_addrs(&status);
    let prometheus = Prometheus::start(&program, &targets);
    wait_until(Duration::from_secs(90), "Prometheus to see every target up", || {
        prometheus.api("/api/v1/targets").is_some_and(|reply| {
            let active = reply["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
            active.len() == 3 && active.iter().all(|t| t["health"] == "up")
        })
    });
    assert_eq!(prometheus.query("sum(up{job=\"valthree\"})"), Some(3.0), "{}", prometheus.log());
    let before = prometheus.query("sum(valthree_commands_total{command=\"set\"})").unwrap_or(0.0);
    for (i, node) in status["nodes"].as_array().unwrap().iter().enumerate() {
        let mut con = redis(node["addr"].as_str().unwrap());
        for k in 0..10 {
            set(&mut con, &format!("n{i}-{k}"));
        }
    }
    wait_until(Duration::from_secs(60), "Prometheus to see the 30 SETs counted", || {
        prometheus.query("sum(valthree_commands_total{command=\"set\"})").is_some_and(|now| now >= before + 30.0)
    });
    // The peer plane is scraped too: the SETs took paxos rounds to the other nodes.
    assert!(prometheus.query("sum(valthree_peer_calls_total)").unwrap_or(0.0) > 0.0);
}

#[test]
fn readyz_says_why_a_raft_node_without_its_quorum_is_not_ready_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = metrics_addrs(&status);
    wait_until(Duration::from_secs(60), "every node ready", || {
        addrs.iter().all(|a| get(a, "/readyz").is_some_and(|(code, _)| code == 200))
    });
    cluster(&dir, &["kill", "n2"]);
    cluster(&dir, &["kill", "n3"]);
    let mut last = None;
    wait_until(Duration::from_secs(60), "n1 not ready once its quorum is gone", || {
        last = get(&addrs[0], "/readyz");
        last.as_ref().is_some_and(|(code, _)| *code == 503)
    });
    let (_, body) = last.unwrap();
    let reason = body.trim().strip_prefix("not ready: ").unwrap_or_else(|| panic!("no reason: {body:?}"));
    assert!(reason.contains("leader") || reason.contains("quorum"), "the reason names what is missing: {reason:?}");
    assert_eq!(get(&addrs[0], "/livez").map(|r| r.0), Some(200), "alive, though not ready");
    cluster(&dir, &["restart", "n2"]);
    wait_until(Duration::from_secs(90), "n1 ready again once n2 is back", || {
        get(&addrs[0], "/readyz").is_some_and(|(code, _)| code == 200)
    });
}

/// A follower applies what it learns committed a moment after it learns it: under writes it
/// is an entry or two behind most of the time, which must not make it "not ready" (it answered
/// 503 several times a second before: a load balancer would have dropped every follower).
#[test]
fn raft_nodes_stay_ready_under_a_steady_write_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &[]);
    let _down = Down(&dir);
    let addrs = metrics_addrs(&status);
    wait_until(Duration::from_secs(60), "every node ready", || {
        addrs.iter().all(|a| get(a, "/readyz").is_some_and(|(code, _)| code == 200))
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|i| {
            let addr = status["nodes"][i]["addr"].as_str().unwrap().to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut con = redis(&addr);
                let mut k = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    set(&mut con, &format!("w{i}-{}", k % 100));
                    k += 1;
                }
                k
            })
        })
        .collect();
    let mut not_ready = Vec::new();
    let started = std::time::Instant::now();
    let mut polls = 0;
    while started.elapsed() < Duration::from_secs(6) {
        for a in &addrs {
            polls += 1;
            match get(a, "/readyz") {
                Some((200, _)) => {}
                other => not_ready.push(format!("{a}: {other:?}")),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(written > 50, "the writers wrote ({written} SETs)");
    assert!(
        not_ready.is_empty(),
        "{} of {polls} polls not ready under writes: {:?}",
        not_ready.len(),
        &not_ready[..not_ready.len().min(5)]
    );
}

#[test]
fn a_raft_leader_with_a_voter_down_logs_a_bounded_number_of_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, "raft", &["--log-format", "json"]);
    let _down = Down(&dir);
    let addrs = metrics_addrs(&status);
    wait_until(Duration::from_secs(60), "every node ready", || {
        addrs.iter().all(|a| get(a, "/readyz").is_some_and(|(code, _)| code == 200))
    });
    let leader = (0..3)
        .find(|i| {
            let mut con = redis(status["nodes"][*i]["addr"].as_str().unwrap());
            let info: String = redis::cmd("INFO").arg("valthree").query(&mut con).unwrap();
            info.contains("raft_role:leader")
        })
        .expect("a leader");
    let victim = (leader + 1) % 3;
    let name = |i: usize| format!("n{}", i + 1);
    let log = dir.join(format!("{}.log", name(leader)));
    cluster(&dir, &["kill", &name(victim)]);
    let lines_before = std::fs::read_to_string(&log).unwrap().lines().count();
    // 25 s of linearizable reads on the leader: every one is a read-index round that asks the
    // lost voter too, and openraft reports each failure (one ERROR per round before).
    let mut con = redis(status["nodes"][leader]["addr"].as_str().unwrap());
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(25) {
        let _: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        reads += 1;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let new: Vec<&str> = text.lines().skip(lines_before).collect();
    eprintln!("{} log lines in 25 s of {reads} reads with a voter down", new.len());
    // Each noisy call site writes its first line, then one summary per 10 s window.
    assert!(new.len() <= 40, "{} lines in 25 s ({reads} reads) with a voter down:\n{}", new.len(), new.join("\n"));
    assert!(reads > 100, "only {reads} reads in 25 s");
    let summaries: Vec<Value> = new
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["fields"]["repeated"].as_u64().is_some())
        .collect();
    assert!(!summaries.is_empty(), "no line says how many were held back:\n{}", new.join("\n"));
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["node"], name(leader).as_str(), "{line}");
        assert_eq!(v["mode"], "raft", "{line}");
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    let message = summaries[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains(" (repeated ") && message.ends_with(" s)"), "{message}");
    // Never a secret in a log line: the admin token and cluster secret the nodes run with.
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("cluster.json")).unwrap()).unwrap();
    for secret in ["admin_token", "cluster_secret"] {
        let value = state[secret].as_str().unwrap();
        assert!(value.len() >= 16 && !text.contains(value), "{secret} in the log");
    }
}
