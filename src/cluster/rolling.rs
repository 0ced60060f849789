//! `valthree cluster rolling-restart`: every node stopped gracefully and started again with
//! the same flags and data, one at a time, each only once the one before is ready again.
//!
//! Ready means the node answers `VALTHREE.HEALTH` with `+OK`: a linearizable read through its
//! mode (raft: a known leader's read index, applied here; paxos: a quorum round; dynamo: R
//! replicas; s3: the object store), the same test a load balancer uses. In dynamo mode the
//! next node is stopped only once no node keeps hints any more (the writes the restarted one
//! missed while down have been replayed to it), or [`HINTS_TIMEOUT`] has passed: every
//! acknowledged write is on W replicas either way, and hints are durable, but waiting keeps
//! every key on N.
//!
//! In raft mode the followers go first and the leader last, so leadership moves once; the
//! leader hands it over itself when it gets SIGTERM (`mode::raft`'s `handover`).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use redis_protocol::resp2::types::BytesFrame;

use super::{ClusterState, Liveness, NodeState, process};
use crate::mode::ModeName;

/// How long a restarted node may take to be ready again (caught up, replicas repaired).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// dynamo mode: how long to wait for the hints to be replayed before going on.
pub const HINTS_TIMEOUT: Duration = Duration::from_secs(20);
/// raft mode: how long to wait, after the leader stopped, for another node to say it leads.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node may take to stop on SIGTERM beyond its `--shutdown-timeout` (its
/// background tasks' own grace) before it is killed.
const STOP_SLACK: Duration = Duration::from_secs(6);

/// Restarts every node of the cluster in `dir` in turn; `progress` gets one line per step.
/// Returns those lines; fails, naming the node and why, when one does not stop, start
/// or become ready again in time (the nodes after it are left as they were).
pub fn rolling_restart(dir: &Path, mut progress: impl FnMut(&str)) -> Result<Vec<String>, String> {
    let state = ClusterState::require(dir)?;
    if let Some(node) = state.nodes.iter().find(|n| process::liveness(n) != Liveness::Up) {
        return Err(format!(
            "{} is {}: a rolling restart needs every node up (`valthree cluster restart {}` first)",
            node.name,
            process::liveness(node).as_str(),
            node.name
        ));
    }
    for node in &state.nodes {
        ready(node, Instant::now() + READY_TIMEOUT)
            .map_err(|e| format!("{} is not ready, so restarting any node could cost availability: {e}", node.name))?;
    }
    let started = Instant::now();
    let mut left: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let mut summary = Vec::new();
    // Every step is reported as it happens and kept for the summary.
    let mut say = |line: String| {
        progress(&line);
        summary.push(line);
    };
    while !left.is_empty() {
        let state = ClusterState::require(dir)?;
        let name = next_node(&state, &left);
        left.retain(|n| *n != name);
        let node = state.node(&name)?.clone();
        let step = Instant::now();
        let role = role(&state, &node);
        let shown = role.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        say(format!("{name}{shown}: stopping (SIGTERM)"));
        let stopped = stop(&node)?;
        say(format!("{name}: {stopped}"));
        if role.as_deref() == Some("leader") {
            // The stopped leader names the voter it asked to stand; the cluster knows who won.
            let others: Vec<NodeState> = state.nodes.iter().filter(|n| n.name != name).cloned().collect();
            match wait_for_leader(&others, Instant::now() + LEADER_TIMEOUT) {
                Some(leader) => say(format!(
                    "{leader} leads now, {:.1}s after {name} was asked to stop",
                    step.elapsed().as_secs_f64()
                )),
                None => say(format!(
                    "no other node leads {LEADER_TIMEOUT:?} after {name} stopped; going on (the followers elect one)"
                )),
            }
        }
        super::restart(dir, &name)?;
        say(format!(
            "{name}: started (pid {}), waiting until it is ready",
            ClusterState::require(dir)?.node(&name)?.pid
        ));
        let state = ClusterState::require(dir)?;
        let node = state.node(&name)?.clone();
        ready(&node, Instant::now() + READY_TIMEOUT)
            .map_err(|e| format!("{name} did not become ready within {READY_TIMEOUT:?} after its restart: {e}"))?;
        say(format!("{name}: ready again, {:.1}s after it was asked to stop", step.elapsed().as_secs_f64()));
        if state.mode == ModeName::Dynamo.as_str() {
            let waited = Instant::now();
            match wait_for_hints(&state, waited + HINTS_TIMEOUT) {
                0 => say(format!("hints replayed ({:.1}s)", waited.elapsed().as_secs_f64())),
                n => say(format!("{n} hints still kept after {HINTS_TIMEOUT:?}; going on (they are durable)")),
            }
        }
    }
    say(format!("{} nodes restarted in {:.1}s", state.nodes.len(), started.elapsed().as_secs_f64()));
    Ok(summary)
}

/// The node to restart next: in raft mode a follower while one is left, the leader last.
fn next_node(state: &ClusterState, left: &[String]) -> String {
    if state.mode == ModeName::Raft.as_str() {
        let leader =
            left.iter().find(|name| state.node(name).ok().and_then(|n| role(state, n)).as_deref() == Some("leader"));
        if let Some(follower) = left.iter().find(|name| Some(*name) != leader) {
            return follower.clone();
        }
    }
    left[0].clone()
}

/// A raft node's role (`leader`, `follower`, ...), from its INFO.
fn role(state: &ClusterState, node: &NodeState) -> Option<String> {
    if state.mode != ModeName::Raft.as_str() {
        return None;
    }
    super::info(node).into_iter().find(|(k, _)| k == "raft_role").map(|(_, v)| v)
}

/// Waits until one of `nodes` says it is the raft leader (the highest term's, should two say
/// so for a moment), or `deadline`; returns its name.
fn wait_for_leader(nodes: &[NodeState], deadline: Instant) -> Option<String> {
    loop {
        let leader = nodes
            .iter()
            .filter_map(|n| {
                let info = super::info(n);
                let field = |k: &str| info.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                (field("raft_role").as_deref() == Some("leader"))
                    .then(|| (field("raft_term").and_then(|t| t.parse::<u64>().ok()).unwrap_or(0), n.name.clone()))
            })
            .max();
        if let Some((_, name)) = leader {
            return Some(name);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then waits for the node to end: up to its `--shutdown-timeout` and the slack of
/// its background tasks, then SIGKILL. Says how it went, with the node's own last word.
fn stop(node: &NodeState) -> Result<String, String> {
    let began = Instant::now();
    process::signal(node, Signal::SIGTERM)?;
    let grace = shutdown_timeout(node) + STOP_SLACK;
    if !process::wait_gone(node, grace) {
        let _ = process::signal(node, Signal::SIGKILL);
        process::wait_gone(node, Duration::from_secs(5));
        return Ok(format!("did not stop within {grace:?} of SIGTERM; killed"));
    }
    let last_word = last_stop_line(node).map(|l| format!(": {l}")).unwrap_or_default();
    Ok(format!("stopped in {:.1}s{last_word}", began.elapsed().as_secs_f64()))
}

/// The node's `--shutdown-timeout` (its default when not given).
fn shutdown_timeout(node: &NodeState) -> Duration {
    let given = node.args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--shutdown-timeout") {
        Some("") => node.args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_string),
        None => None,
    });
    given.and_then(|t| humantime::parse_duration(&t).ok()).unwrap_or(crate::resp::DRAIN_TIMEOUT)
}

/// What the node said when it stopped (`stopped: ...`), from the end of its log.
fn last_stop_line(node: &NodeState) -> Option<String> {
    let log = std::fs::read_to_string(&node.log).ok()?;
    let line = log.lines().rev().take(20).find(|l| l.contains("stopped: "))?;
    let text = &line[line.find("stopped: ")? + "stopped: ".len()..];
    Some(text.split(" commands_cut=").next().unwrap_or(text).to_string())
}

/// Waits until `node` answers `VALTHREE.HEALTH` with `+OK`, or `deadline` passes; the error
/// says what the node answered last.
pub(super) fn ready(node: &NodeState, deadline: Instant) -> Result<(), String> {
    loop {
        let last = match super::call_with_timeout(&node.addr, &["VALTHREE.HEALTH"], Duration::from_secs(10)) {
            Ok(BytesFrame::SimpleString(s)) if s.as_ref() == b"OK" => return Ok(()),
            Ok(BytesFrame::Error(e)) => e.to_string(),
            Ok(other) => format!("unexpected reply {other:?}"),
            Err(e) => e,
        };
        if process::liveness(node) == Liveness::Down {
            return Err(format!("the process ended; {last}"));
        }
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until no node keeps hints, or `deadline`; returns how many are kept.
fn wait_for_hints(state: &ClusterState, deadline: Instant) -> u64 {
    loop {
        let kept = hints_kept(state);
        if kept == 0 || Instant::now() >= deadline {
            return kept;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The hints all nodes of a dynamo cluster keep together.
fn hints_kept(state: &ClusterState) -> u64 {
    state
        .nodes
        .iter()
        .map(|n| {
            super::info(n)
                .into_iter()
                .find(|(k, _)| k == "dynamo_hints_pending")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}
