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
//!
//! The judge keeps its own model of dots, version vectors and the context text ([`context`]):
//! it shares no code with the server it judges, so a bug in the server's causality cannot
//! hide in the verdict.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::plots::Sample;
use crate::history::{EventType, Numbered, Op, Process};

pub mod context;

pub use context::{Actor, Dot, VersionVector};

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
    InflatedContext,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost write",
            Kind::Zombie => "zombie",
            Kind::DotReused => "dot reused",
            Kind::StaleRead => "stale read",
            Kind::NotConverged => "not converged",
            Kind::InflatedContext => "inflated context",
        }
    }

    /// `n` of them, for counts.
    pub fn count(self, n: usize) -> String {
        let (one, many) = match self {
            Kind::LostWrite => ("lost write", "lost writes"),
            Kind::Zombie => ("zombie", "zombies"),
            Kind::DotReused => ("reused dot", "reused dots"),
            Kind::StaleRead => ("stale read", "stale reads"),
            Kind::NotConverged => ("key not converged", "keys not converged"),
            Kind::InflatedContext => ("inflated context", "inflated contexts"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
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
    /// The context an acknowledged write's reply handed back.
    pub returned: Option<VersionVector>,
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

/// A dot as reports show it: the actor's first 6 hex digits and the counter.
fn short(d: Dot) -> String {
    format!("{:06x}:{}", d.actor >> 40, d.counter)
}

fn vv_text(vv: &VersionVector) -> String {
    let entries: Vec<String> = vv.entries().map(|(a, c)| format!("{:06x}:{c}", a >> 40)).collect();
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
    /// Every client operation's timing and outcome, plain GETs too (the plots).
    pub samples: Vec<Sample>,
}

/// What the checker found.
#[derive(Debug)]
pub struct Report {
    pub history: History,
    /// Each write is named once per kind of violation (at the first read that shows it).
    pub violations: Vec<Violation>,
    pub counts: BTreeMap<Kind, usize>,
    /// Keys without a readable settled replica from every owner: convergence not checked.
    pub unsettled: Vec<String>,
    /// Keys the time limit left unchecked.
    pub undecided: Vec<String>,
    pub elapsed: Duration,
}

/// The verdict on a dynamo history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every promise was checked on every key and kept.
    Consistent,
    /// Some promise was broken.
    NotConsistent,
    /// No violation found, but the time limit left keys unchecked.
    Unknown,
    /// No violation found, but convergence could not be judged: some key lacks a readable
    /// settled replica from every owner. Unchecked is not passed.
    NotChecked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Consistent => "consistent",
            Verdict::NotConsistent => "NOT consistent",
            Verdict::Unknown => "unknown",
            Verdict::NotChecked => "not checked",
        }
    }
}

impl Report {
    /// Every promise checked and kept: no violation, every key checked, every key's settled
    /// replicas read and compared.
    pub fn ok(&self) -> bool {
        self.verdict() == Verdict::Consistent
    }

    pub fn verdict(&self) -> Verdict {
        if !self.counts.is_empty() {
            Verdict::NotConsistent
        } else if !self.undecided.is_empty() {
            Verdict::Unknown
        } else if !self.settled() {
            Verdict::NotChecked
        } else {
            Verdict::Consistent
        }
    }

    /// True when every key's settled replicas were read and compared.
    pub fn settled(&self) -> bool {
        self.unsettled.is_empty() && !self.history.keys.is_empty()
    }
}

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
    let mut open_gets: HashMap<u64, (usize, String, u64)> = HashMap::new();
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
                history.faults.push(super::Fault::of(&e));
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
                        open_gets.insert(process, (line, key, e.time));
                        history.total_ops += 1;
                    }
                    kind => {
                        let (l, key, call) =
                            open_gets.remove(&process).ok_or_else(|| err(line, "a completion never invoked"))?;
                        history.samples.push(Sample { call, ret: e.time, outcome: kind });
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
                    Op::Vset | Op::Vdel => VersionVector::from_json(&e.value["context"]).map_err(|m| err(line, m))?,
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
                    returned: None,
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
                history.samples.push(Sample { call: dop.call, ret: e.time, outcome: kind });
                if kind == EventType::Ok {
                    dop.ret = e.time;
                    match op {
                        Op::Vset | Op::Vdel => {
                            let dot = e.value["dot"].as_str().ok_or_else(|| err(line, "a write's ok needs its dot"))?;
                            dop.dot = Some(dot.parse().map_err(|m| err(line, m))?);
                            if !e.value["context"].is_null() {
                                dop.returned =
                                    Some(VersionVector::from_json(&e.value["context"]).map_err(|m| err(line, m))?);
                            }
                        }
                        _ => {
                            dop.context = VersionVector::from_json(&e.value["context"]).map_err(|m| err(line, m))?;
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
    let never = |call| Sample { call, ret: super::NEVER, outcome: EventType::Info };
    history.samples.extend(open_gets.values().map(|&(_, _, call)| never(call)));
    for (_, dop, key) in unfinished {
        history.samples.push(never(dop.call));
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
    /// (kind, subject) already reported: each write is reported once per kind.
    seen: HashSet<(Kind, usize)>,
    /// The settled replicas are not all readable: convergence is not checked for the key.
    unsettled: bool,
}

impl KeyCheck<'_> {
    /// Reports `message` about `subject` (a write, or the read itself) at `at`, once.
    fn report(&mut self, kind: Kind, subject: usize, at: usize, others: &[usize], message: impl FnOnce() -> String) {
        if !self.seen.insert((kind, subject)) {
            return;
        }
        let mut ops = vec![at];
        ops.extend(others.iter().copied().filter(|o| *o != at));
        self.found.push(Violation {
            kind,
            key: self.key.to_string(),
            message: message(),
            ops,
            time: self.ops[at].call,
        });
    }
}

/// The dot each write has: acknowledged, or learned from reads that showed its value.
fn dots(c: &mut KeyCheck<'_>, by_value: &HashMap<&str, usize>) -> Vec<Option<Dot>> {
    let ops = c.ops;
    let mut dots: Vec<Option<Dot>> = ops.iter().map(|o| if o.is_write() { o.dot } else { None }).collect();
    let mut owner: HashMap<Dot, usize> = HashMap::new();
    for i in 0..ops.len() {
        let Some(d) = dots[i] else { continue };
        match owner.get(&d) {
            Some(&j) => c.report(Kind::DotReused, i, i, &[j], || {
                format!(
                    "two writes were given the same dot {}: {} and {}",
                    short(d),
                    ops[j].describe(),
                    ops[i].describe()
                )
            }),
            None => {
                owner.insert(d, i);
            }
        }
    }
    for (r, read) in ops.iter().enumerate().filter(|(_, o)| o.is_read()) {
        for (dot, value) in &read.siblings {
            let Some(&w) = value.as_deref().and_then(|v| by_value.get(v)) else { continue };
            match dots[w] {
                None if ops[w].outcome != EventType::Fail => {
                    dots[w] = Some(*dot);
                    owner.entry(*dot).or_insert(w);
                }
                Some(d) if d != *dot => c.report(Kind::DotReused, w, r, &[w], || {
                    format!("{} shows the value of {} under dot {}", read.describe(), ops[w].describe(), short(*dot))
                }),
                _ => {}
            }
        }
    }
    dots
}

/// The writes with known dots, per actor, sorted by counter, and per actor the running join
/// of their contexts: the context of every known write of an actor up to a counter, in one
/// lookup. A read whose context covers counters up to `k` of actor `a` knows exactly the
/// writes of `a` up to `k`, and what they superseded is the join of their contexts.
struct Known {
    by_actor: HashMap<Actor, Vec<(u64, usize)>>,
    joined: HashMap<Actor, Vec<VersionVector>>,
}

impl Known {
    /// `seen[w]`: what write `w`'s client had read (see [`ClientViews`]).
    fn new(seen: &[VersionVector], dots: &[Option<Dot>], writes: &[usize]) -> Self {
        let mut by_actor: HashMap<Actor, Vec<(u64, usize)>> = HashMap::new();
        for &w in writes {
            if let Some(d) = dots[w] {
                by_actor.entry(d.actor).or_default().push((d.counter, w));
            }
        }
        let mut joined = HashMap::new();
        for (actor, list) in &mut by_actor {
            list.sort_unstable();
            let mut running = VersionVector::new();
            let prefix: Vec<VersionVector> = list
                .iter()
                .map(|&(_, w)| {
                    running.join(&seen[w]);
                    running.clone()
                })
                .collect();
            joined.insert(*actor, prefix);
        }
        Known { by_actor, joined }
    }

    /// How many known writes of `actor` a context with entry `k` covers.
    fn covered(&self, actor: Actor, k: u64) -> usize {
        self.by_actor.get(&actor).map_or(0, |l| l.partition_point(|&(c, _)| c <= k))
    }

    /// What the known writes `context` covers had seen: the join of their contexts.
    fn superseded(&self, context: &VersionVector) -> VersionVector {
        let mut out = VersionVector::new();
        for (actor, k) in context.entries() {
            let n = self.covered(actor, k);
            if n > 0 {
                out.join(&self.joined[&actor][n - 1]);
            }
        }
        out
    }

    /// The known writes a context covers whose dots `superseded` does not: the ones that must
    /// show as siblings.
    fn maximal<'a>(
        &'a self,
        context: &'a VersionVector,
        superseded: &'a VersionVector,
    ) -> impl Iterator<Item = usize> + 'a {
        context.entries().flat_map(move |(actor, k)| {
            let list = self.by_actor.get(&actor).map(Vec::as_slice).unwrap_or_default();
            let from = list.partition_point(|&(c, _)| c <= superseded.get(actor));
            let to = self.covered(actor, k);
            list[from..to.max(from)].iter().map(|&(_, w)| w)
        })
    }
}

/// What each write's client had seen when it wrote: a write supersedes another only if its
/// client had seen it — in the context of its last VGET, or as one of its own acknowledged
/// writes — never merely because the context it sent covers it (a context handed back by a
/// VSET that covered a sibling the client never saw would silently supersede it).
struct ClientViews {
    /// Per operation: the part of the sent context the client's last read had shown it.
    read: Vec<VersionVector>,
    /// Per write: the later writes of its own client whose sent context covers it.
    own: HashMap<usize, Vec<usize>>,
}

impl ClientViews {
    fn new(ops: &[DOp], dots: &[Option<Dot>]) -> Self {
        let mut read = vec![VersionVector::new(); ops.len()];
        let mut own: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut last_read: HashMap<u64, VersionVector> = HashMap::new();
        let mut written: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            if o.is_write() {
                let base = last_read.get(&o.process).cloned().unwrap_or_default();
                // The pointwise minimum: what it read, and sent.
                read[i] = base.entries().map(|(a, c)| (a, c.min(o.context.get(a)))).filter(|(_, c)| *c > 0).collect();
                for &w in written.get(&o.process).into_iter().flatten() {
                    if let Some(d) = dots[w]
                        && o.context.covers(d)
                        && !read[i].covers(d)
                    {
                        own.entry(w).or_default().push(i);
                    }
                }
                if o.outcome == EventType::Ok {
                    written.entry(o.process).or_default().push(i);
                }
            } else if o.op == Op::Vget && o.outcome == EventType::Ok {
                last_read.insert(o.process, o.context.clone());
            }
        }
        ClientViews { read, own }
    }

    /// True when write `s` legitimately supersedes write `w` (dot `d`).
    fn supersedes(&self, s: usize, w: usize, d: Dot) -> bool {
        self.read[s].covers(d) || self.own.get(&w).is_some_and(|o| o.contains(&s))
    }
}

fn check_key(c: &mut KeyCheck<'_>, quorums: Option<Quorums>, deadline: Option<Instant>) -> bool {
    let ops = c.ops;
    let by_value: HashMap<&str, usize> =
        ops.iter().enumerate().filter_map(|(i, o)| o.value.as_deref().map(|v| (v, i))).collect();
    let dots = dots(c, &by_value);
    let writes: Vec<usize> =
        (0..ops.len()).filter(|&i| ops[i].is_write() && ops[i].outcome != EventType::Fail).collect();
    let by_dot: HashMap<Dot, usize> = writes.iter().filter_map(|&w| dots[w].map(|d| (d, w))).collect();
    let seen = ClientViews::new(ops, &dots);
    let known = Known::new(&seen.read, &dots, &writes);
    // Superseded within a read's context `k`: by the join of what the writes it knows had
    // read (`superseded`), or by a later write of its own client that `k` knows.
    let superseded_in = |k: &VersionVector, superseded: &VersionVector, w: usize, d: Dot| {
        superseded.covers(d)
            || seen.own.get(&w).is_some_and(|o| o.iter().any(|&s| dots[s].is_some_and(|ds| k.covers(ds))))
    };
    // Writes whose dot was never seen may have happened and superseded others: per write, the
    // earliest invocation of such a write whose context covers it.
    let unseen: Vec<usize> = writes.iter().copied().filter(|&w| dots[w].is_none()).collect();
    let excuse: HashMap<usize, u64> = writes
        .iter()
        .filter_map(|&w| {
            let d = dots[w]?;
            unseen.iter().filter(|&&u| seen.supersedes(u, w, d)).map(|&u| ops[u].call).min().map(|t| (w, t))
        })
        .collect();
    let unseen_deletes: Vec<u64> = unseen.iter().filter(|&&u| ops[u].op == Op::Vdel).map(|&u| ops[u].call).collect();
    // The context a write's reply hands its client: what it sent, and its own dot.
    for &w in &writes {
        if let (EventType::Ok, Some(returned), Some(d)) = (ops[w].outcome, &ops[w].returned, ops[w].dot) {
            let mut expected = ops[w].context.clone();
            expected.add(d);
            // The sent context plus the write's dot, or (when the dot would also cover a
            // sibling the client has not seen) the sent context alone.
            if *returned != expected && *returned != ops[w].context {
                c.report(Kind::InflatedContext, w, w, &[], || {
                    format!(
                        "{} answered the context {}, not what it was sent plus its dot ({}): a write under it \
                         would supersede siblings its client never saw",
                        ops[w].describe(),
                        vv_text(returned),
                        vv_text(&expected)
                    )
                });
            }
        }
    }
    // Read-your-writes: acknowledged writes in order of completion, swept with the reads.
    let mut acked: Vec<usize> = writes.iter().copied().filter(|&w| ops[w].outcome == EventType::Ok).collect();
    acked.sort_by_key(|&w| ops[w].ret);
    let mut before: HashMap<Actor, (u64, usize)> = HashMap::new();
    let mut next_acked = 0;
    let ryw = quorums.is_some_and(|q| q.intersect());
    for (r, read) in ops.iter().enumerate().filter(|(_, o)| o.is_read()) {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return false;
        }
        let k = &read.context;
        let superseded = known.superseded(k);
        let shown: HashSet<Dot> = read.siblings.iter().map(|(d, _)| *d).collect();
        for (dot, value) in &read.siblings {
            if !k.covers(*dot) {
                c.report(Kind::Zombie, r, r, &[], || {
                    format!("{} shows a sibling (dot {}) its own context does not cover", read.describe(), short(*dot))
                });
            }
            let w = match value {
                Some(v) => by_value.get(v.as_str()).copied(),
                None => by_dot.get(dot).copied(),
            };
            let Some(w) = w else {
                let excused = value.is_none() && unseen_deletes.iter().any(|&t| t < read.ret);
                if !excused {
                    let what = value.clone().unwrap_or_else(|| "a delete".into());
                    c.report(Kind::Zombie, r, r, &[], || {
                        format!(
                            "{} shows {what} (dot {}), which no write of the history made",
                            read.describe(),
                            short(*dot)
                        )
                    });
                }
                continue;
            };
            if ops[w].outcome == EventType::Fail {
                c.report(Kind::Zombie, w, r, &[w], || {
                    format!("{} shows the write of {}, which failed", read.describe(), ops[w].describe())
                });
            } else if ops[w].call > read.ret {
                c.report(Kind::Zombie, w, r, &[w], || {
                    format!("{} shows the write of {}, invoked only after the read", read.describe(), ops[w].describe())
                });
            } else if superseded_in(k, &superseded, w, *dot) {
                let s = writes
                    .iter()
                    .copied()
                    .find(|&s| dots[s].is_some_and(|ds| k.covers(ds)) && seen.supersedes(s, w, *dot));
                c.report(Kind::Zombie, w, r, &[w, s.unwrap_or(w)], || {
                    let by = s.map_or_else(|| "a write".to_string(), |s| ops[s].describe());
                    format!(
                        "{} still shows {}, though it knows {by}, whose context had seen it",
                        read.describe(),
                        ops[w].describe()
                    )
                });
            }
        }
        // Lost writes: known to the context, superseded by no write it knows, yet not shown.
        for w in known.maximal(k, &superseded) {
            let d = dots[w].expect("known writes have dots");
            if shown.contains(&d)
                || superseded_in(k, &superseded, w, d)
                || excuse.get(&w).is_some_and(|&t| t < read.ret)
            {
                continue;
            }
            c.report(Kind::LostWrite, w, r, &[w], || {
                format!(
                    "{} knows {} (its context covers dot {}) but shows neither it nor any write that had seen it",
                    read.describe(),
                    ops[w].describe(),
                    short(d)
                )
            });
        }
        // Read-your-writes: a quorum read knows every write acknowledged before it began.
        while next_acked < acked.len() && ops[acked[next_acked]].ret < read.call {
            let w = acked[next_acked];
            if let Some(d) = dots[w] {
                let entry = before.entry(d.actor).or_insert((0, w));
                if d.counter >= entry.0 {
                    *entry = (d.counter, w);
                }
            }
            next_acked += 1;
        }
        if read.op == Op::Vget && ryw {
            let missed = before
                .values()
                .find(|(counter, w)| !k.covers(Dot { actor: dots[*w].unwrap().actor, counter: *counter }));
            if let Some(&(_, w)) = missed {
                let q = quorums.expect("checked above");
                c.report(Kind::StaleRead, r, r, &[w], || {
                    format!(
                        "{} began after {} was acknowledged, yet does not know it (R {} + W {} > N {})",
                        read.describe(),
                        ops[w].describe(),
                        q.r,
                        q.w,
                        q.replicas
                    )
                });
            }
        }
    }
    // The settled replicas: readable, identical, and knowing every acknowledged write.
    let locals: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].op == Op::Local).collect();
    let settled: Vec<usize> = locals.iter().copied().filter(|&i| ops[i].outcome == EventType::Ok).collect();
    c.unsettled = locals.is_empty() || settled.len() < locals.len();
    if let Some(&first) = settled.first() {
        let same = |a: &DOp, b: &DOp| a.context == b.context && a.siblings == b.siblings;
        if let Some(&other) = settled.iter().find(|&&i| !same(&ops[i], &ops[first])) {
            c.report(Kind::NotConverged, usize::MAX, other, &[first], || {
                format!("after the run the replicas differ: {} and {}", ops[first].describe(), ops[other].describe())
            });
        }
        for &w in &acked {
            if let Some(d) = dots[w]
                && let Some(&s) = settled.iter().find(|&&s| !ops[s].context.covers(d))
            {
                c.report(Kind::LostWrite, w, s, &[w], || {
                    format!(
                        "after the run {} has never heard of the acknowledged {}",
                        ops[s].describe(),
                        ops[w].describe()
                    )
                });
            }
        }
    }
    true
}

/// Checks a dynamo history; past `timeout` the keys not yet checked are left undecided.
pub fn check(
    events: impl Iterator<Item = Result<Numbered, String>>,
    timeout: Option<Duration>,
) -> Result<Report, String> {
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    let history = prepare(events)?;
    let mut violations = Vec::new();
    let (mut unsettled, mut undecided) = (Vec::new(), Vec::new());
    for (key, ops) in &history.keys {
        let mut c = KeyCheck { key, ops, found: Vec::new(), seen: HashSet::new(), unsettled: false };
        if !check_key(&mut c, history.quorums, deadline) {
            undecided.push(key.clone());
        } else if c.unsettled {
            unsettled.push(key.clone());
        }
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
    violations.sort_by_key(|v| (v.time, v.key.clone()));
    Ok(Report { history, violations, counts, unsettled, undecided, elapsed: started.elapsed() })
}

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// The verdict for people.
pub fn verdict_text(report: &Report) -> String {
    let h = &report.history;
    let ops: usize = h.keys.values().map(Vec::len).sum();
    let acked = h.keys.values().flatten().filter(|o| o.is_write() && o.outcome == EventType::Ok).count();
    let multi = h.keys.values().flatten().filter(|o| o.is_read() && o.siblings.len() > 1).count();
    let mut out = format!(
        "{}: {} on {} ({}, {} with siblings) checked in {:.2}s\n",
        report.verdict().as_str(),
        plural(ops, "operation"),
        plural(h.keys.len(), "key"),
        plural(acked, "acknowledged write"),
        plural(multi, "read"),
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
    if !report.unsettled.is_empty() {
        let keys = report.unsettled.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
        out += &format!(
            "convergence not checked for {} (the history lacks a readable settled replica from every owner): {keys}{}\n",
            plural(report.unsettled.len(), "key"),
            if report.unsettled.len() > 10 { ", ..." } else { "" }
        );
    }
    if !report.undecided.is_empty() {
        out += &format!("time limit reached before checking {}\n", plural(report.undecided.len(), "key"));
    }
    if !report.counts.is_empty() {
        let counts: Vec<String> = report.counts.iter().map(|(k, n)| k.count(*n)).collect();
        out += &format!("{}\n", counts.join(", "));
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
    let op = |key: &str, i: usize| {
        let o = &h.keys[key][i];
        json!({"description": o.describe(), "lines": [o.lines.0, o.lines.1], "dot": o.dot.map(|d| d.to_string())})
    };
    json!({
        "verdict": report.verdict().as_str(),
        "consistent": report.ok(),
        "model": "dynamo",
        "operations": h.keys.values().map(Vec::len).sum::<usize>(),
        "keys": h.keys.len(),
        "elapsed_s": report.elapsed.as_secs_f64(),
        "settled": report.settled(),
        "unsettled_keys": report.unsettled,
        "undecided_keys": report.undecided,
        "read_your_writes_checked": h.quorums.is_some_and(|q| q.intersect()),
        "counts": report.counts.iter().map(|(k, n)| (k.as_str().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "violations": report.violations.iter().map(|v| json!({
            "kind": v.kind.as_str(),
            "key": v.key,
            "message": v.message,
            "operations": v.ops.iter().filter(|_| h.keys.contains_key(&v.key)).map(|&i| op(&v.key, i)).collect::<Vec<_>>(),
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
