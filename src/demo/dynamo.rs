//! The dynamo mode demos: quorums, siblings, read repair, hinted handoff, failure detection.

use std::time::{Duration, Instant};

use redis_protocol::resp2::types::BytesFrame;

use super::{Failure, Stage, call, is_error, lines, render, text};
use crate::cluster::ClusterState;
use crate::mode::ModeName;

/// Failure detection fast enough for a demo (a DEAD node within about 2 s).
const FAST_DETECTION: [&str; 4] = ["--swim-period", "300ms", "--suspect-timeout", "1s"];

/// n`of`'s view of `node`: its DYNAMO.MEMBERS line.
fn member_line(state: &ClusterState, of: &str, node: &str) -> Result<String, String> {
    let reply = call(state, of, &["DYNAMO.MEMBERS"])?;
    Ok(lines(&reply).into_iter().find(|l| l.starts_with(&format!("{node} "))).unwrap_or_default())
}

/// Waits until `of` sees `node` in `health`; how long after `event` (the kill or restart
/// that caused it) the change came: the time since the event, less the time the member has
/// been in that state as the line says ("in this state for 2.1s"), since the change may have
/// come long before this wait began (a node killed several steps earlier).
fn wait_health(
    stage: &mut Stage,
    state: &ClusterState,
    of: &str,
    node: &str,
    health: &str,
    event: Instant,
    timeout: Duration,
) -> Result<Option<Duration>, Failure> {
    let (_, line) = stage.wait(&format!("{of} to see {node} {health}"), timeout, || {
        let line = member_line(state, of, node)?;
        Ok(line.contains(&format!(" {health} ")).then_some(line))
    })?;
    Ok(line.map(|line| event.elapsed().saturating_sub(in_state_for(&line).unwrap_or_default())))
}

/// Waits until `of`'s failure detector has heard from every other member (its line names the
/// member's life). ALIVE is also what a member never heard from shows, and a member killed
/// before it was first heard from is never suspected: a demo that kills one waits for this.
fn heard_from_all(stage: &mut Stage, state: &ClusterState, of: &str) -> Result<(), Failure> {
    let others: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).filter(|n| n != of).collect();
    stage.wait(&format!("{of} to have heard from every member"), Duration::from_secs(10), || {
        for node in &others {
            if !member_line(state, of, node)?.contains(" life ") {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    Ok(())
}

/// How long a DYNAMO.MEMBERS line says its member has had its health.
fn in_state_for(line: &str) -> Option<Duration> {
    let (_, rest) = line.split_once("in this state for ")?;
    let seconds: f64 = rest.split_once('s')?.0.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// How long after `event` a change came, for a claim's observation.
fn seconds(took: Option<Duration>, event: &str) -> String {
    took.map_or_else(|| "not within the time allowed".into(), |t| format!("{:.1}s after {event}", t.as_secs_f64()))
}

/// A node's own replica of `key` (DYNAMO.LOCAL), quietly.
fn local(state: &ClusterState, node: &str, key: &str) -> Result<BytesFrame, String> {
    call(state, node, &["DYNAMO.LOCAL", key])
}

/// The values of a `VGET WITHDOTS` reply's siblings.
fn sibling_values(frame: &BytesFrame) -> Vec<String> {
    with_dots(frame).into_iter().filter_map(|(_, v)| v).collect()
}

/// The dots of a `VGET WITHDOTS` reply's siblings.
fn sibling_dots(frame: &BytesFrame) -> Vec<String> {
    with_dots(frame).into_iter().map(|(d, _)| d).collect()
}

fn with_dots(frame: &BytesFrame) -> Vec<(String, Option<String>)> {
    match frame {
        BytesFrame::Array(items) => items
            .iter()
            .skip(1)
            .filter_map(|s| match s {
                BytesFrame::Array(parts) if parts.len() == 3 => Some((text(&parts[0])?, text(&parts[2]))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The live values of a VGET / DYNAMO.LOCAL reply.
fn values(frame: &BytesFrame) -> Vec<String> {
    match frame {
        BytesFrame::Array(items) => items.iter().skip(1).filter_map(text).collect(),
        _ => Vec::new(),
    }
}

pub fn quorum(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("N=3 replicas, R=W=2: any two replicas make a quorum, so one can be down.");
    let state = stage.up(ModeName::Dynamo, 3, &FAST_DETECTION)?;
    heard_from_all(stage, &state, "n1")?;
    let r = stage.cli(&state, "n1", &["SET", "user:1", "ada"], "")?;
    stage.claim("a write is acknowledged by W=2 of the 3 replicas", text(&r).as_deref() == Some("OK"), &render(&r))?;
    stage.cluster(&state, &["kill", "n3"], "one replica of every key is gone")?;
    let mut killed = vec![("n3", Instant::now())];
    let r = stage.cli(&state, "n1", &["SET", "user:1", "grace"], "W=2 still holds: n1 and n2")?;
    stage.claim("with one node down writes still succeed", text(&r).as_deref() == Some("OK"), &render(&r))?;
    let r = stage.cli(&state, "n2", &["GET", "user:1"], "R=2 meets W=2 in at least one replica (R + W > N)")?;
    stage.claim("a read through another node sees the write", text(&r).as_deref() == Some("grace"), &render(&r))?;
    stage.cluster(&state, &["kill", "n2"], "now only n1 is left: no quorum of 2")?;
    killed.insert(0, ("n2", Instant::now()));
    for (node, at) in killed {
        let dead = wait_health(stage, &state, "n1", node, "DEAD", at, Duration::from_secs(15))?;
        stage.claim(&format!("n1's failure detector finds {node} dead"), dead.is_some(), &seconds(dead, "its kill"))?;
    }
    let r = stage.cli(
        &state,
        "n1",
        &["SET", "user:1", "lost?"],
        "fewer than W owners alive: refused before anything is written",
    )?;
    stage.claim("the write is refused with -TRYAGAIN", is_error(&r, "TRYAGAIN"), &render(&r))?;
    let mut restarted = Vec::new();
    for node in ["n2", "n3"] {
        restarted.push((node, Instant::now()));
        stage.cluster(&state, &["restart", node], "")?;
    }
    for (node, at) in restarted {
        let alive = wait_health(stage, &state, "n1", node, "ALIVE", at, Duration::from_secs(15))?;
        stage.claim(&format!("n1 sees {node} alive again"), alive.is_some(), &seconds(alive, "its restart began"))?;
    }
    let r = stage.cli(&state, "n3", &["GET", "user:1"], "the refused write changed nothing")?;
    stage.claim("the last acknowledged value is read back", text(&r).as_deref() == Some("grace"), &render(&r))
}

pub fn conflict(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("Two clients read the same version of a cart and write through different nodes.");
    let state = stage.up(ModeName::Dynamo, 3, &[])?;
    let r =
        stage.cli(&state, "n1", &["VGET", "cart"], "the first element is the context: what this client has seen")?;
    let context = lines(&r).first().cloned().unwrap_or_default();
    let a = stage.cli(&state, "n1", &["VSET", "cart", "milk", &context], "client A adds milk")?;
    let b =
        stage.cli(&state, "n2", &["VSET", "cart", "eggs", &context], "client B, with the same context, adds eggs")?;
    let both_ok = matches!((&a, &b), (BytesFrame::Array(x), BytesFrame::Array(y)) if x.len() == 2 && y.len() == 2);
    stage.claim(
        "both writes are acknowledged, each with its own dot",
        both_ok,
        &format!("{}\n{}", render(&a), render(&b)),
    )?;
    let r = stage.cli(
        &state,
        "n3",
        &["VGET", "cart", "WITHDOTS"],
        "neither write saw the other: both are kept, as siblings",
    )?;
    let siblings = match &r {
        BytesFrame::Array(items) => items.len().saturating_sub(1),
        _ => 0,
    };
    let mut shown = sibling_values(&r);
    shown.sort();
    let dots = sibling_dots(&r);
    stage.claim(
        "VGET shows both siblings with their dots",
        siblings == 2 && shown == ["eggs", "milk"] && dots.len() == 2 && dots[0] != dots[1],
        &render(&r),
    )?;
    let merged_context = lines(&r).first().cloned().unwrap_or_default();
    stage.say("The client merges the siblings (the union of the carts) and writes under the context it read.");
    stage.cli(&state, "n3", &["VSET", "cart", "milk,eggs", &merged_context], "this write has seen both siblings")?;
    let r = stage.cli(&state, "n1", &["VGET", "cart"], "")?;
    stage.claim("one sibling is left: the merge", values(&r) == ["milk,eggs"], &render(&r))
}

pub fn repair(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("Hints off, so a replica that misses a write stays stale until a read finds it.");
    let mut flags = FAST_DETECTION.to_vec();
    flags.extend(["--hinted-handoff", "off"]);
    let state = stage.up(ModeName::Dynamo, 3, &flags)?;
    stage.cli(&state, "n1", &["SET", "user:1", "v1"], "")?;
    // Acknowledged by W=2: the third copy may still be on its way.
    stage.wait("n3 to hold v1 too", Duration::from_secs(10), || {
        Ok((values(&local(&state, "n3", "user:1")?) == ["v1"]).then_some(()))
    })?;
    stage.cluster(&state, &["kill", "n3"], "n3 misses what is written now")?;
    let r = stage.cli(&state, "n1", &["SET", "user:1", "v2"], "acknowledged by n1 and n2")?;
    stage.claim("the overwrite is acknowledged", text(&r).as_deref() == Some("OK"), &render(&r))?;
    stage.cluster(&state, &["restart", "n3"], "")?;
    let r = stage.cli(&state, "n3", &["DYNAMO.LOCAL", "user:1"], "n3's own replica, read without a quorum")?;
    stage.claim("n3's replica is stale: it still holds v1", values(&r) == ["v1"], &render(&r))?;
    let r = stage.cli(
        &state,
        "n1",
        &["GET", "user:1"],
        "a read asks every live owner, answers with the join of the first R=2, then repairs the stale ones",
    )?;
    stage.claim("the read answers the latest value", text(&r).as_deref() == Some("v2"), &render(&r))?;
    let (took, repaired) = stage.wait("n3's replica to be repaired", Duration::from_secs(10), || {
        Ok((values(&local(&state, "n3", "user:1")?) == ["v2"]).then_some(()))
    })?;
    let r =
        stage.cli(&state, "n3", &["DYNAMO.LOCAL", "user:1"], "the read sent n3 the join it had found (read repair)")?;
    stage.claim(
        "n3's replica now holds v2",
        repaired.is_some() && values(&r) == ["v2"],
        &format!("{} after {:.2}s", render(&r), took.as_secs_f64()),
    )?;
    let replicas: Vec<String> =
        ["n1", "n2", "n3"].iter().map(|n| local(&state, n, "user:1").map(|f| render(&f))).collect::<Result<_, _>>()?;
    stage.claim(
        "every replica is now identical (context and siblings)",
        replicas.windows(2).all(|w| w[0] == w[1]),
        &replicas.join(" | "),
    )
}

pub fn handoff(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("Hints on: a write that misses an owner leaves a durable hint on its coordinator.");
    let state = stage.up(ModeName::Dynamo, 3, &FAST_DETECTION)?;
    heard_from_all(stage, &state, "n1")?;
    stage.cluster(&state, &["kill", "n3"], "")?;
    let killed = Instant::now();
    let dead = wait_health(stage, &state, "n1", "n3", "DEAD", killed, Duration::from_secs(15))?;
    stage.claim("n1 finds n3 dead", dead.is_some(), &seconds(dead, "its kill"))?;
    for i in 1..=5 {
        let (key, value) = (format!("order:{i}"), format!("item-{i}"));
        stage.cli(&state, "n1", &["SET", &key, &value], if i == 1 { "each write leaves a hint for n3" } else { "" })?;
    }
    let r = stage.cli(&state, "n1", &["INFO", "dynamo"], "dynamo_hints_pending")?;
    let pending = text(&r)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("dynamo_hints_pending:").map(|v| v.trim().to_string()));
    let n: u64 = pending.as_deref().and_then(|p| p.parse().ok()).unwrap_or(0);
    stage.claim(
        "n1 holds at least 5 hints for n3",
        n >= 5,
        &format!("dynamo_hints_pending:{}", pending.unwrap_or_default()),
    )?;
    stage.cluster(&state, &["restart", "n3"], "no read of these keys will happen")?;
    let (took, caught_up) = stage.wait("n3 to receive every hinted write", Duration::from_secs(15), || {
        for i in 1..=5 {
            if values(&local(&state, "n3", &format!("order:{i}"))?) != [format!("item-{i}")] {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    let r = stage.cli(&state, "n3", &["DYNAMO.LOCAL", "order:5"], "n3's own replica")?;
    stage.claim(
        "n3 caught up by hinted handoff, without any read",
        caught_up.is_some(),
        &format!("{} after {:.1}s", render(&r), took.as_secs_f64()),
    )
}

pub fn membership(stage: &mut Stage) -> Result<(), Failure> {
    stage.say("SWIM: each member probes another every --swim-period (300ms here); a member that fails a probe is SUSPECT, and DEAD after --suspect-timeout (1s).");
    let state = stage.up(ModeName::Dynamo, 3, &FAST_DETECTION)?;
    let alive = wait_health(stage, &state, "n1", "n2", "ALIVE", Instant::now(), Duration::from_secs(10))?;
    heard_from_all(stage, &state, "n1")?;
    let r = stage.cli(&state, "n1", &["DYNAMO.MEMBERS"], "every member ALIVE")?;
    stage.claim("n1 sees n2 ALIVE", alive.is_some(), &render(&r))?;
    stage.cluster(&state, &["kill", "n2"], "")?;
    let killed = Instant::now();
    let suspect = wait_health(stage, &state, "n1", "n2", "SUSPECT", killed, Duration::from_secs(10))?;
    let line = member_line(&state, "n1", "n2")?;
    stage.claim(
        "n1 suspects n2 within seconds",
        suspect.is_some() || line.contains(" DEAD "),
        &format!("{line}; {}", seconds(suspect, "its kill")),
    )?;
    let dead = wait_health(stage, &state, "n1", "n2", "DEAD", killed, Duration::from_secs(10))?;
    let r = stage.cli(&state, "n1", &["DYNAMO.MEMBERS"], "")?;
    stage.claim("then finds it DEAD", dead.is_some(), &format!("{}\n{}", seconds(dead, "its kill"), render(&r)))?;
    let restarted = Instant::now();
    stage.cluster(&state, &["restart", "n2"], "a restarted node is a new life of the member")?;
    let back = wait_health(stage, &state, "n1", "n2", "ALIVE", restarted, Duration::from_secs(10))?;
    let r = stage.cli(&state, "n1", &["DYNAMO.MEMBERS"], "")?;
    stage.claim(
        "n1 sees n2 ALIVE again",
        back.is_some(),
        &format!("{}\n{}", seconds(back, "its restart began"), render(&r)),
    )
}
