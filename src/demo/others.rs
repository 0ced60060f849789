//! The demos of the other modes: raft failover, s3 compare-and-swap, paxos vs raft
//! availability under a partition, and the linearizability checker at work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_protocol::resp2::types::BytesFrame;

use super::{Failure, Stage, call, render, text};
use crate::cluster::{self, ClusterState};
use crate::mode::ModeName;

/// A field of a node's INFO.
fn info(state: &ClusterState, node: &str, field: &str) -> Result<String, String> {
    let reply = call(state, node, &["INFO", "valthree"])?;
    let text = text(&reply).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .ok_or_else(|| format!("{node}'s INFO has no {field}"))
}

pub fn failover(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("raft: one leader orders every write; when it dies the others elect a new one.");
    let state = stage.up(ModeName::Raft, 3, &[])?;
    let (_, leader) = stage.wait("a leader", Duration::from_secs(15), || {
        let leader = info(&state, "n1", "raft_leader")?;
        Ok(leader.parse::<u32>().ok().map(|id| format!("n{id}")))
    })?;
    let leader = leader.ok_or_else(|| Failure::Error("no leader was elected in 15 s".into()))?;
    let r = stage.cli(&state, &leader, &["INFO", "valthree"], "raft_role, raft_leader, raft_term")?;
    let role = text(&r).unwrap_or_default().lines().find_map(|l| l.strip_prefix("raft_role:").map(str::to_owned));
    let role_seen = format!("raft_role:{}", role.clone().unwrap_or_default());
    stage.claim(&format!("{leader} says it leads"), role.as_deref() == Some("leader"), &role_seen)?;
    let other = if leader == "n1" { "n2" } else { "n1" };
    let r =
        stage.cli(&state, other, &["SET", "config", "v1"], "a write through a follower is forwarded to the leader")?;
    stage.claim("the write is acknowledged", text(&r).as_deref() == Some("OK"), &render(&r))?;
    stage.cluster(&state, &["kill", &leader], "the leader is gone: writes wait for an election")?;
    let killed = Instant::now();
    let port = state.node(other)?.addr.rsplit(':').next().unwrap_or_default().to_string();
    stage.begin(&format!("redis-cli -p {port} SET config v2"), "tried again and again until a new leader takes it");
    let (took, resumed) = stage.wait("a write to succeed again", Duration::from_secs(20), || {
        Ok(matches!(call(&state, other, &["SET", "config", "v2"]), Ok(BytesFrame::SimpleString(_))).then_some(()))
    })?;
    stage.observed(if resumed.is_some() { "OK" } else { "no success" });
    let new_leader = info(&state, other, "raft_leader")?;
    stage.claim(
        "a new leader is elected and writes resume",
        resumed.is_some() && format!("n{new_leader}") != leader,
        &format!(
            "writes resumed {:.2}s after the kill; the leader is now n{new_leader}",
            killed.elapsed().min(took).as_secs_f64()
        ),
    )?;
    stage.cluster(&state, &["restart", &leader], "the old leader comes back")?;
    let (_, caught_up) = stage.wait("the old leader to catch up", Duration::from_secs(20), || {
        let role = info(&state, &leader, "raft_role")?;
        let applied = info(&state, &leader, "raft_last_applied")?;
        let theirs = info(&state, other, "raft_last_applied")?;
        Ok((role != "leader" && applied == theirs).then_some(format!("role {role}, last applied {applied}")))
    })?;
    stage.claim(
        "it rejoins as a follower and applies every write",
        caught_up.is_some(),
        &caught_up.unwrap_or_default(),
    )?;
    let r = stage.cli(&state, &leader, &["GET", "config"], "")?;
    stage.claim("it serves the write made while it was down", text(&r).as_deref() == Some("v2"), &render(&r))
}

pub fn occ(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("s3 mode: the whole database is one object, replaced by compare-and-swap (If-Match).");
    let state = stage.up(ModeName::S3, 2, &[])?;
    stage.cli(&state, "n1", &["SET", "counter", "0"], "")?;
    let ports: Vec<String> =
        state.nodes.iter().map(|n| n.addr.rsplit(':').next().unwrap_or_default().to_string()).collect();
    stage.begin(
        &format!(
            "for c in 1 2 3 4; do for p in {} {}; do (for i in $(seq 50); do redis-cli -p $p INCR counter; done >/dev/null &); done; done",
            ports[0], ports[1]
        ),
        "8 clients at once, 4 on each node: each node reads the object, adds one, and PUTs it back If-Match the version it read",
    );
    let acked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|c| {
            let addr = state.nodes[c % 2].addr.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    if matches!(cluster::call(&addr, &["INCR", "counter"]), Ok(BytesFrame::Integer(_))) {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let acked = acked.load(Ordering::Relaxed);
    stage.observed(&format!("{acked} INCRs acknowledged"));
    let conflicts: u64 = ["n1", "n2"]
        .iter()
        .map(|n| info(&state, n, "s3_occ_conflicts").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
        .sum();
    let puts: u64 =
        ["n1", "n2"].iter().map(|n| info(&state, n, "s3_puts").ok().and_then(|v| v.parse().ok()).unwrap_or(0)).sum();
    let writes: u64 = ["n1", "n2"]
        .iter()
        .map(|n| info(&state, n, "s3_writes_committed").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
        .sum();
    stage.cli(
        &state,
        "n1",
        &["INFO", "valthree"],
        "s3_occ_conflicts: a PUT whose If-Match lost the race (412), retried",
    )?;
    stage.claim(
        "the two nodes raced on the object: some compare-and-swaps failed and were retried (n1 and n2 together)",
        conflicts > 0,
        &format!("{conflicts} conflicts"),
    )?;
    stage.claim(
        "group commit carries several writes per PUT (n1 and n2 together)",
        puts > 0 && writes > puts,
        &format!("{writes} writes in {puts} PUTs, {:.1} per PUT", writes as f64 / puts.max(1) as f64),
    )?;
    let r = stage.cli(&state, "n2", &["GET", "counter"], "")?;
    stage.claim(
        "no increment was lost: the counter equals the acknowledged INCRs",
        text(&r) == Some(acked.to_string()),
        &format!("{} after {acked} acknowledged INCRs", render(&r)),
    )
}

/// Clients on the other two nodes writing in a loop while `isolated` is partitioned away: the
/// longest gap between two successes either saw.
fn longest_gap(stage: &mut Stage, state: &ClusterState, isolated: &str, cut: Duration) -> Result<Duration, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let others: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).filter(|n| n != isolated).collect();
    let clients: Vec<_> = others
        .iter()
        .map(|n| {
            let addr = state.node(n).map(|n| n.addr.clone()).unwrap_or_default();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut last, mut gap, mut i) = (Instant::now(), Duration::ZERO, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let value = i.to_string();
                    let ok = matches!(
                        cluster::call_with_timeout(
                            &addr,
                            &["SET", &format!("gap:{addr}"), &value],
                            Duration::from_secs(3)
                        ),
                        Ok(BytesFrame::SimpleString(_))
                    );
                    if ok {
                        gap = gap.max(last.elapsed());
                        last = Instant::now();
                    } else {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                gap.max(last.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let spec = format!("{isolated} | {}", others.join(","));
    let notice = format!("{isolated} is cut off from the other two; their clients keep writing");
    stage.cluster(state, &["partition", &spec], &notice)?;
    std::thread::sleep(cut);
    stage.cluster(state, &["heal"], "")?;
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    Ok(clients.into_iter().map(|c| c.join().unwrap_or(Duration::MAX)).max().unwrap_or(Duration::MAX))
}

pub fn availability(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("The same partition in two modes: one node is cut off while clients of the other two keep writing.");
    let cut = Duration::from_secs(4);
    let state = stage.up(ModeName::Paxos, 3, &[])?;
    let paxos = longest_gap(stage, &state, "n1", cut)?;
    stage.claim(
        "paxos: the majority side goes on writing through the partition (no leader to lose)",
        paxos < cut,
        &format!("longest gap {:.2}s of a {:.0}s cut", paxos.as_secs_f64(), cut.as_secs_f64()),
    )?;
    stage.down()?;
    let state = stage.up(ModeName::Raft, 3, &[])?;
    let (_, leader) = stage.wait("raft to elect a leader", Duration::from_secs(15), || {
        Ok(info(&state, "n1", "raft_leader")?.parse::<u32>().ok().map(|id| format!("n{id}")))
    })?;
    let leader = leader.ok_or_else(|| Failure::Error("no raft leader in 15 s".into()))?;
    stage.say(&format!("raft: the node cut off is the leader, {leader}: the others must elect a new one first."));
    let raft = longest_gap(stage, &state, &leader, cut)?;
    stage.claim(
        "raft: the majority side writes again once it has elected a new leader, within the cut",
        raft < cut,
        &format!("longest gap {:.2}s", raft.as_secs_f64()),
    )?;
    stage.claim(
        "raft's gap includes an election: at least its minimum timeout",
        raft >= Duration::from_millis(300),
        &format!("{:.2}s (paxos: {:.2}s)", raft.as_secs_f64(), paxos.as_secs_f64()),
    )
}

pub fn linearizability(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("A node with a planted bug (half its reads from an old snapshot), then a correct one; the same workload and checker.");
    let exe = std::env::current_exe().map_err(|e| Failure::Error(e.to_string()))?;
    for (broken, flags) in [(true, vec!["--unsafe-stale-reads"]), (false, vec![])] {
        let state = stage.up(ModeName::S3, 1, &flags)?;
        let history = state.dir.join("history.jsonl");
        let which = if broken { "broken" } else { "correct" };
        let (html, _) = stage.file(&format!("linearizability-{which}.html"));
        let _ = std::fs::remove_file(&html);
        let addr = state.nodes[0].addr.clone();
        let args = [
            "workload",
            "--addrs",
            &addr,
            "--clients",
            "4",
            "--keys",
            "2",
            "--duration",
            "3s",
            "--history",
            &history.display().to_string(),
            "--check",
            "--html",
            &html.display().to_string(),
        ]
        .map(str::to_owned);
        stage.begin(
            &format!("valthree {}", args.join(" ")),
            if broken { "the checker must catch the stale reads" } else { "" },
        );
        let out = std::process::Command::new(&exe).args(&args).output().map_err(|e| Failure::Error(e.to_string()))?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let verdict = said.lines().find(|l| l.contains("linearizable")).unwrap_or_default().to_string();
        stage.observed(&format!("{verdict}\nreport: {}", html.display()));
        if broken {
            stage.claim(
                "the checker reports the planted bug: NOT linearizable (exit 1)",
                out.status.code() == Some(1) && verdict.starts_with("NOT linearizable"),
                &verdict,
            )?;
        } else {
            stage.claim(
                "the correct node passes: linearizable (exit 0)",
                out.status.success() && verdict.starts_with("linearizable"),
                &verdict,
            )?;
        }
        stage.claim("the HTML timeline was written", html.exists(), &html.display().to_string())?;
        if broken {
            stage.down()?;
        }
    }
    let (report, stays) = stage.file("linearizability-*.html");
    if stays {
        stage.say(&format!("The two reports stay in {}: open them in a browser.", report.display()));
    } else {
        stage.say(&format!(
            "The two reports are {}, removed with the demo's temporary directory when it ends: with --dir DIR (or --keep) they stay.",
            report.display()
        ));
    }
    Ok(())
}
