//! `check-history --model dynamo`: what dynamo mode promises, checked on a recorded history.
//!
//! Linearizability does not apply to dynamo mode: concurrent writes become siblings. What it
//! does promise is exact causality — a write supersedes precisely the writes its context had
//! seen — and, with strict quorums and R + W > N, that a read sees every write acknowledged
//! before it began. Every write in a workload's history carries a unique value, the context
//! its client sent, and (when acknowledged) its dot; every read carries its context and each
//! sibling's dot and value. So every read can be judged on its own: the siblings a replica (or
//! a quorum's join) holds must be exactly the writes its context knows that no write it knows
//! superseded. From that rule come the checks:
//!
//! 1. **No acknowledged write lost**: a write a read's context knows is a sibling, or some write
//!    the read also knows had it in its context. The settled replicas after the run must know
//!    every acknowledged write.
//! 2. **No zombies**: no sibling is a write that failed, or one a write the read knows had seen.
//! 3. **Unique dots**: no two writes share a dot, no write appears under two.
//! 4. **Read-your-writes** (strict quorums with R + W > N): a quorum read that began after a
//!    write was acknowledged knows it.
//! 5. **Convergence**: the settled replicas of every key are identical.
//!
//! Writes whose outcome is unknown are given every benefit of the doubt: they may or may not
//! have happened, and when their dot was never seen they may explain a superseded write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::history::{EventType, Numbered, Op, Process};
use crate::mode::dynamo::dvv::{Dot, VersionVector};
use crate::workload::dynamo::context_of;

/// The cluster's quorum settings, from the history's `config` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorums {
    pub replicas: usize,
    pub r: usize,
    pub w: usize,
    /// Stand-ins count toward W: a write may be held by no owner a read asks.
    pub sloppy: bool,
}

impl Quorums {
    /// True when every read quorum meets every write quorum.
    pub fn intersect(&self) -> bool {
        self.r + self.w > self.replicas && !self.sloppy
    }
}

/// What a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    LostWrite,
    Zombie,
    DotReused,
    StaleRead,
    NotConverged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost write",
            Kind::Zombie => "zombie",
            Kind::DotReused => "dot reused",
            Kind::StaleRead => "stale read",
            Kind::NotConverged => "not converged",
        }
    }
}

/// One thing the history shows dynamo mode got wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub kind: Kind,
    pub key: String,
    pub message: String,
    /// The operations involved (indices into the key's operations), the offending one first.
    pub ops: Vec<usize>,
    /// When it shows (the offending operation's invocation).
    pub time: u64,
}

/// One write or read of a key, as the checker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DOp {
    pub process: u64,
    pub op: Op,
    /// vset's value; `None` for vdel and the reads.
    pub value: Option<String>,
    /// The write's context, or the read's.
    pub context: VersionVector,
    /// A read's siblings: (dot, value or `None` for a tombstone).
    pub siblings: Vec<(Dot, Option<String>)>,
    /// The write's dot: from its acknowledgement, or learned from a read that showed its value.
    pub dot: Option<Dot>,
    pub outcome: EventType,
    /// `local` reads: the node whose replica this is.
    pub node: Option<u64>,
    pub call: u64,
    /// `u64::MAX` when the outcome is unknown.
    pub ret: u64,
    pub lines: (usize, Option<usize>),
}

impl DOp {
    fn is_write(&self) -> bool {
        matches!(self.op, Op::Vset | Op::Vdel)
    }

    fn is_read(&self) -> bool {
        matches!(self.op, Op::Vget | Op::Local) && self.outcome == EventType::Ok
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let what = match self.op {
            Op::Vset => format!("vset {}", self.value.as_deref().unwrap_or("?")),
            Op::Vdel => "vdel".into(),
            Op::Local => format!("replica of n{}", self.node.unwrap_or(0)),
            _ => "vget".into(),
        };
        let outcome = match (self.outcome, self.dot) {
            (EventType::Ok, Some(d)) if self.is_write() => format!("ok, dot {}", short(d)),
            (EventType::Ok, _) if self.is_write() => "ok".into(),
            (EventType::Ok, _) => {
                let s: Vec<String> = self
                    .siblings
                    .iter()
                    .map(|(d, v)| format!("{}@{}", v.as_deref().unwrap_or("(deleted)"), short(*d)))
                    .collect();
                format!("[{}]", s.join(", "))
            }
            (EventType::Fail, _) => "failed".into(),
            (_, Some(d)) => format!("unknown outcome, seen as dot {}", short(d)),
            _ => "unknown outcome".into(),
        };
        let lines = match self.lines.1 {
            Some(end) => format!("lines {}-{end}", self.lines.0),
            None => format!("line {}", self.lines.0),
        };
        format!("client {} {what} context {} -> {outcome} ({lines})", self.process, vv_text(&self.context))
    }
}

/// A dot as reports show it: the actor's first 4 hex digits and the counter.
fn short(d: Dot) -> String {
    format!("{:04x}:{}", d.actor >> 48, d.counter)
}

fn vv_text(vv: &VersionVector) -> String {
    let entries: Vec<String> = vv.entries().map(|(a, c)| format!("{:04x}:{c}", a >> 48)).collect();
    format!("{{{}}}", entries.join(" "))
}

/// A dynamo history, split by key.
#[derive(Debug, Default)]
pub struct History {
    pub keys: BTreeMap<String, Vec<DOp>>,
    pub quorums: Option<Quorums>,
    pub faults: Vec<super::Fault>,
    /// Plain GETs (only checked to show values some write that did not fail wrote).
    pub plain_gets: Vec<(String, Option<String>, usize)>,
    pub total_ops: usize,
}

/// What the checker found.
#[derive(Debug)]
pub struct Report {
    pub history: History,
    pub violations: Vec<Violation>,
    /// Per kind, how many violations (the list keeps the first few of each per key).
    pub counts: BTreeMap<Kind, usize>,
    /// True when the history ends with settled reads of every key (convergence checked).
    pub settled: bool,
    pub elapsed: Duration,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn verdict(&self) -> &'static str {
        if self.ok() { "consistent" } else { "NOT consistent" }
    }
}

/// Violations of one kind kept per key (the rest are counted).
const KEEP_PER_KIND: usize = 5;

fn err(line: usize, m: impl std::fmt::Display) -> String {
    format!("line {line}: {m}")
}

fn siblings_of(value: &Value, line: usize) -> Result<Vec<(Dot, Option<String>)>, String> {
    let list = value["siblings"].as_array().ok_or_else(|| err(line, "a read needs its siblings"))?;
    list.iter()
        .map(|s| {
            let dot = s["dot"].as_str().ok_or_else(|| err(line, "a sibling needs its dot"))?;
            let dot: Dot = dot.parse().map_err(|e| err(line, e))?;
            Ok((dot, s["value"].as_str().map(str::to_owned)))
        })
        .collect()
}

/// Pairs invocations with completions and splits the operations by key.
pub fn prepare(events: impl Iterator<Item = Result<Numbered, String>>) -> Result<History, String> {
    let mut history = History::default();
    let mut open: HashMap<u64, (usize, DOp, String)> = HashMap::new();
    let mut open_gets: HashMap<u64, (usize, String)> = HashMap::new();
    for e in events {
        let Numbered { line, event: e } = e?;
        let process = match e.process {
            Process::Nemesis if e.f == "config" => {
                let n = |f: &str| e.value[f].as_u64().map(|v| v as usize);
                if let (Some(replicas), Some(r), Some(w)) = (n("replicas"), n("r"), n("w")) {
                    let sloppy = e.value["sloppy_quorum"].as_bool().unwrap_or(false);
                    history.quorums = Some(Quorums { replicas, r, w, sloppy });
                }
                continue;
            }
            Process::Nemesis => {
                history.faults.push(super::Fault { f: e.f.clone(), value: e.value.clone(), time: e.time });
                continue;
            }
            Process::Client(p) => p,
        };
        let op: Op = e.f.parse().map_err(|m: String| err(line, m))?;
        match op {
            Op::Vget | Op::Vset | Op::Vdel | Op::Local => {}
            Op::Get => {
                let key = e.key.clone().ok_or_else(|| err(line, "get without a key"))?;
                match e.kind {
                    EventType::Invoke => {
                        open_gets.insert(process, (line, key));
                        history.total_ops += 1;
                    }
                    kind => {
                        let (l, key) =
                            open_gets.remove(&process).ok_or_else(|| err(line, "a completion never invoked"))?;
                        if kind == EventType::Ok {
                            history.plain_gets.push((key, e.value.as_str().map(str::to_owned), l));
                        }
                    }
                }
                continue;
            }
            other => {
                return Err(err(
                    line,
                    format!(
                        "{} in a dynamo history: a plain write's context is not recorded, so it cannot be \
                         checked (use vset and vdel)",
                        other.as_str()
                    ),
                ));
            }
        }
        let key = e.key.clone().ok_or_else(|| err(line, format!("{} without a key", op.as_str())))?;
        match e.kind {
            EventType::Invoke => {
                if open.contains_key(&process) {
                    return Err(err(line, format!("process {process} invokes while an operation is open")));
                }
                let context = match op {
                    Op::Vset | Op::Vdel => context_of(&e.value["context"]).map_err(|m| err(line, m))?,
                    _ => VersionVector::new(),
                };
                let value = match op {
                    Op::Vset => {
                        Some(e.value["value"].as_str().ok_or_else(|| err(line, "vset needs its value"))?.to_owned())
                    }
                    _ => None,
                };
                let dop = DOp {
                    process,
                    op,
                    value,
                    context,
                    siblings: Vec::new(),
                    dot: None,
                    outcome: EventType::Info,
                    node: e.value["node"].as_u64(),
                    call: e.time,
                    ret: u64::MAX,
                    lines: (line, None),
                };
                open.insert(process, (line, dop, key));
                history.total_ops += 1;
            }
            kind => {
                let (_, mut dop, k) = open
                    .remove(&process)
                    .ok_or_else(|| err(line, format!("process {process} completes an operation it never invoked")))?;
                if k != key || dop.op != op {
                    return Err(err(
                        line,
                        format!("the completion does not match the invocation on line {}", dop.lines.0),
                    ));
                }
                dop.outcome = kind;
                dop.lines.1 = Some(line);
                if kind == EventType::Ok {
                    dop.ret = e.time;
                    match op {
                        Op::Vset | Op::Vdel => {
                            let dot = e.value["dot"].as_str().ok_or_else(|| err(line, "a write's ok needs its dot"))?;
                            dop.dot = Some(dot.parse().map_err(|m| err(line, m))?);
                        }
                        _ => {
                            dop.context = context_of(&e.value["context"]).map_err(|m| err(line, m))?;
                            dop.siblings = siblings_of(&e.value, line)?;
                        }
                    }
                } else if kind == EventType::Fail {
                    dop.ret = e.time;
                }
                history.keys.entry(key).or_default().push(dop);
            }
        }
    }
    // Operations never completed: unknown outcome.
    let mut unfinished: Vec<(usize, DOp, String)> = open.into_values().collect();
    unfinished.sort_by_key(|(l, _, _)| *l);
    for (_, dop, key) in unfinished {
        history.keys.entry(key).or_default().push(dop);
    }
    for ops in history.keys.values_mut() {
        ops.sort_by_key(|o| (o.call, o.lines.0));
    }
    Ok(history)
}

/// One key's judgement.
struct KeyCheck<'a> {
    key: &'a str,
    ops: &'a [DOp],
    found: Vec<Violation>,
}

impl KeyCheck<'_> {
    fn report(&mut self, kind: Kind, at: usize, others: &[usize], message: String) {
        let mut ops = vec![at];
        ops.extend(others.iter().copied().filter(|o| *o != at));
        self.found.push(Violation { kind, key: self.key.to_string(), message, ops, time: self.ops[at].call });
    }
}

/// The dot each write has: acknowledged, or learned from reads that showed its value.
fn dots(c: &mut KeyCheck<'_>) -> Vec<Option<Dot>> {
    let ops = c.ops;
    let mut dots: Vec<Option<Dot>> = ops.iter().map(|o| if o.is_write() { o.dot } else { None }).collect();
    let by_value: HashMap<&str, usize> =
        ops.iter().enumerate().filter_map(|(i, o)| o.value.as_deref().map(|v| (v, i))).collect();
    let mut owner: HashMap<Dot, usize> = HashMap::new();
    for (i, d) in dots.iter().enumerate() {
        if let Some(d) = d {
            if let Some(&j) = owner.get(d) {
                c.report(
                    Kind::DotReused,
                    i,
                    &[j],
                    format!(
                        "two acknowledged writes were given the same dot {}: {} and {}",
                        short(*d),
                        ops[j].describe(),
                        ops[i].describe()
                    ),
                );
            } else {
                owner.insert(*d, i);
            }
        }
    }
    for (r, read) in ops.iter().enumerate().filter(|(_, o)| o.is_read()) {
        for (dot, value) in &read.siblings {
            let Some(value) = value else { continue };
            let Some(&w) = by_value.get(value.as_str()) else { continue };
            match dots[w] {
                None if ops[w].outcome != EventType::Fail => {
                    dots[w] = Some(*dot);
                    owner.entry(*dot).or_insert(w);
                }
                Some(d) if d != *dot => c.report(
                    Kind::DotReused,
                    r,
                    &[w],
                    format!(
                        "the value {value} of {} shows under dot {} instead of {}",
                        ops[w].describe(),
                        short(*dot),
                        short(d)
                    ),
                ),
                _ => {}
            }
        }
    }
    dots
}

fn check_key(c: &mut KeyCheck<'_>, quorums: Option<Quorums>) {
    let ops = c.ops;
    let dots = dots(c);
    let writes: Vec<usize> =
        (0..ops.len()).filter(|&i| ops[i].is_write() && ops[i].outcome != EventType::Fail).collect();
    let by_value: HashMap<&str, usize> =
        ops.iter().enumerate().filter_map(|(i, o)| o.value.as_deref().map(|v| (v, i))).collect();
    let by_dot: HashMap<Dot, usize> = writes.iter().filter_map(|&w| dots[w].map(|d| (d, w))).collect();
    // Who could have superseded each write: the writes whose context covers its dot.
    let superseders: HashMap<usize, Vec<usize>> = writes
        .iter()
        .filter_map(|&w| dots[w].map(|d| (w, d)))
        .map(|(w, d)| (w, writes.iter().copied().filter(|&s| s != w && ops[s].context.covers(d)).collect()))
        .collect();
    let unknown_deletes = writes.iter().any(|&w| ops[w].op == Op::Vdel && dots[w].is_none());
    let mut kept: HashMap<Kind, usize> = HashMap::new();
    let mut keep = |kind: Kind, c: &mut KeyCheck<'_>, at: usize, others: &[usize], message: String| {
        let n = kept.entry(kind).or_insert(0);
        *n += 1;
        if *n <= KEEP_PER_KIND {
            c.report(kind, at, others, message);
        } else {
            c.found.push(Violation {
                kind,
                key: c.key.to_string(),
                message: String::new(),
                ops: vec![],
                time: ops[at].call,
            });
        }
    };
    for (r, read) in ops.iter().enumerate().filter(|(_, o)| o.is_read()) {
        let k = &read.context;
        let shown: HashSet<Dot> = read.siblings.iter().map(|(d, _)| *d).collect();
        // Zombies: a sibling that failed, that no write wrote, or that a known write superseded.
        for (dot, value) in &read.siblings {
            let w = match value {
                Some(v) => by_value.get(v.as_str()).copied(),
                None => by_dot.get(dot).copied(),
            };
            let Some(w) = w else {
                if value.is_some() || !unknown_deletes {
                    let what = value.as_deref().unwrap_or("a delete");
                    keep(
                        Kind::Zombie,
                        c,
                        r,
                        &[],
                        format!(
                            "{} shows {what} (dot {}), which no write of the history made",
                            read.describe(),
                            short(*dot)
                        ),
                    );
                }
                continue;
            };
            if ops[w].outcome == EventType::Fail {
                keep(
                    Kind::Zombie,
                    c,
                    r,
                    &[w],
                    format!("{} shows the write of {}, which failed", read.describe(), ops[w].describe()),
                );
                continue;
            }
            if let Some(&s) =
                superseders.get(&w).and_then(|s| s.iter().find(|&&s| dots[s].is_some_and(|d| k.covers(d))))
            {
                keep(
                    Kind::Zombie,
                    c,
                    r,
                    &[w, s],
                    format!(
                        "{} still shows {}, though it knows {}, whose context had seen it",
                        read.describe(),
                        ops[w].describe(),
                        ops[s].describe()
                    ),
                );
            }
        }
        // Lost writes: a write the context knows that is neither shown nor superseded.
        for &w in &writes {
            let Some(d) = dots[w] else { continue };
            if !k.covers(d) || shown.contains(&d) {
                continue;
            }
            let explained = superseders[&w].iter().any(|&s| dots[s].is_none_or(|ds| k.covers(ds)));
            if !explained {
                keep(
                    Kind::LostWrite,
                    c,
                    r,
                    &[w],
                    format!(
                        "{} knows {} (its context covers dot {}) but shows neither it nor any write that had seen it",
                        read.describe(),
                        ops[w].describe(),
                        short(d)
                    ),
                );
            }
        }
        // Read-your-writes: a quorum read knows every write acknowledged before it began.
        if read.op == Op::Vget && quorums.is_some_and(|q| q.intersect()) {
            let missed = writes.iter().copied().find(|&w| {
                ops[w].outcome == EventType::Ok && ops[w].ret < read.call && dots[w].is_some_and(|d| !k.covers(d))
            });
            if let Some(w) = missed {
                let q = quorums.expect("checked above");
                keep(
                    Kind::StaleRead,
                    c,
                    r,
                    &[w],
                    format!(
                        "{} began after {} was acknowledged, yet does not know it (R {} + W {} > N {})",
                        read.describe(),
                        ops[w].describe(),
                        q.r,
                        q.w,
                        q.replicas
                    ),
                );
            }
        }
    }
    // The settled replicas: identical, and knowing every acknowledged write.
    let settled: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].op == Op::Local).collect();
    if let Some(&first) = settled.first() {
        let same = |a: &DOp, b: &DOp| a.outcome == EventType::Ok && a.context == b.context && a.siblings == b.siblings;
        if let Some(&other) = settled.iter().find(|&&i| !same(&ops[i], &ops[first])) {
            keep(
                Kind::NotConverged,
                c,
                other,
                &[first],
                format!("after the run the replicas differ: {} and {}", ops[first].describe(), ops[other].describe()),
            );
        }
        for &w in &writes {
            if let (EventType::Ok, Some(d)) = (ops[w].outcome, dots[w])
                && let Some(&s) = settled.iter().find(|&&s| !ops[s].context.covers(d))
            {
                keep(
                    Kind::LostWrite,
                    c,
                    s,
                    &[w],
                    format!(
                        "after the run {} has never heard of the acknowledged {}",
                        ops[s].describe(),
                        ops[w].describe()
                    ),
                );
            }
        }
    }
}

/// Checks a dynamo history.
pub fn check(events: impl Iterator<Item = Result<Numbered, String>>) -> Result<Report, String> {
    let started = Instant::now();
    let history = prepare(events)?;
    let mut violations = Vec::new();
    let mut settled = !history.keys.is_empty();
    for (key, ops) in &history.keys {
        settled &= ops.iter().any(|o| o.op == Op::Local);
        let mut c = KeyCheck { key, ops, found: Vec::new() };
        check_key(&mut c, history.quorums);
        violations.extend(c.found);
    }
    // Plain GETs: a value must come from a write that did not fail.
    for (key, value, line) in &history.plain_gets {
        let Some(value) = value else { continue };
        let ops = history.keys.get(key).map(Vec::as_slice).unwrap_or_default();
        let writer = ops.iter().find(|o| o.value.as_deref() == Some(value));
        if writer.is_none_or(|w| w.outcome == EventType::Fail) {
            violations.push(Violation {
                kind: Kind::Zombie,
                key: key.clone(),
                message: format!("a GET on line {line} shows {value}, which no write that did not fail wrote"),
                ops: vec![],
                time: 0,
            });
        }
    }
    let mut counts = BTreeMap::new();
    for v in &violations {
        *counts.entry(v.kind).or_insert(0) += 1;
    }
    violations.retain(|v| !v.message.is_empty());
    violations.sort_by_key(|v| (v.time, v.key.clone()));
    Ok(Report { history, violations, counts, settled, elapsed: started.elapsed() })
}

/// The verdict for people.
pub fn verdict_text(report: &Report) -> String {
    let h = &report.history;
    let ops: usize = h.keys.values().map(Vec::len).sum();
    let acked = h.keys.values().flatten().filter(|o| o.is_write() && o.outcome == EventType::Ok).count();
    let multi = h.keys.values().flatten().filter(|o| o.is_read() && o.siblings.len() > 1).count();
    let mut out = format!(
        "{}: {ops} operations on {} keys ({acked} acknowledged writes, {multi} reads with siblings) checked in {:.2}s\n",
        report.verdict(),
        h.keys.len(),
        report.elapsed.as_secs_f64()
    );
    match h.quorums {
        Some(q) if q.intersect() => {
            out += &format!("read-your-writes checked: R {} + W {} > N {}\n", q.r, q.w, q.replicas)
        }
        Some(q) if q.sloppy => out += "read-your-writes not checked: sloppy quorums promise none\n",
        Some(q) => out += &format!("read-your-writes not checked: R {} + W {} <= N {}\n", q.r, q.w, q.replicas),
        None => out += "read-your-writes not checked: the history names no quorums\n",
    }
    if !report.settled {
        out += "convergence not checked: the history has no settled reads of every key\n";
    }
    for (kind, n) in &report.counts {
        out += &format!("{n} × {}\n", kind.as_str());
    }
    for v in report.violations.iter().take(20) {
        out += &format!("key {}: {}: {}\n", v.key, v.kind.as_str(), v.message);
    }
    if report.violations.len() > 20 {
        out += &format!("... and {} more (see --json)\n", report.violations.len() - 20);
    }
    out
}

/// The verdict for scripts.
pub fn verdict_json(report: &Report) -> Value {
    let h = &report.history;
    json!({
        "verdict": report.verdict(),
        "consistent": report.ok(),
        "model": "dynamo",
        "operations": h.keys.values().map(Vec::len).sum::<usize>(),
        "keys": h.keys.len(),
        "elapsed_s": report.elapsed.as_secs_f64(),
        "settled": report.settled,
        "read_your_writes_checked": h.quorums.is_some_and(|q| q.intersect()),
        "counts": report.counts.iter().map(|(k, n)| (k.as_str().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "violations": report.violations.iter().map(|v| json!({
            "kind": v.kind.as_str(),
            "key": v.key,
            "message": v.message,
            "operations": v.ops.iter().map(|&i| h.keys[&v.key][i].describe()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// True when the history is one a dynamo workload wrote (its `config` event, or VGET/VSET).
pub fn is_dynamo_history(first_events: &[Numbered]) -> bool {
    first_events.iter().any(|n| {
        let e = &n.event;
        (e.process == Process::Nemesis && e.f == "config" && e.value["mode"] == "dynamo")
            || e.f.parse::<Op>().is_ok_and(Op::is_versioned)
    })
}

#[cfg(test)]
mod tests;
