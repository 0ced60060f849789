//! The linearizability checker behind `valthree check-history`.
//!
//! A history (see [`crate::history`]) is linearizable if every operation can be given one
//! instant between its invocation and its completion at which it took effect, such that the
//! operations, run one by one in that order against a single register per key, return what
//! the clients saw. Operations that failed never took effect; those with unknown outcome
//! may have taken effect at any instant after their invocation, or never.
//!
//! The check is the Wing–Gong–Lowe search with Lowe's memoization ([`search`]), run per key
//! — linearizability is compositional (Herlihy & Wing's locality; Porcupine's
//! P-compositionality), so a history is linearizable iff each key's sub-history is. Before
//! the search, each key's operations are rewritten in ways that keep its verdict and take
//! most crashed operations out of the search ([`reduce`]: observed crashed writes bounded by
//! their first observer, values no operation can tell apart merged, unobservable crashed
//! writes dropped), and the search treats identical crashed operations as one. Between the
//! two, a pass that does not search ([`refute`]) looks for reads of a value that certainly
//! was overwritten before the read began, whatever the crashed operations did: what the
//! search would need every order of the operations before the read to prove. A key that
//! only GETs and SETs distinct values is decided without search, in O(n log n), by
//! Gibbons and Korach's zones ([`zones`]).
//!
//! FLUSHALL is judged as what paxos mode promises of it: a delete of each key, each at an
//! instant of its own between the call and the reply (paxos lists the keys a quorum holds and
//! deletes them one by one; a key written while it runs may survive, its delete ordered before
//! that write). So FLUSHALL is placed in every key's sub-history as a delete of that key, and
//! the copies are checked independently: a key written before the flush began and read back
//! after it returned is a violation; a flush that no single instant explains (x gone before a
//! read that still saw y) is not. In s3 and raft mode FLUSHALL is one instant, a stronger
//! promise this check does not confirm: a violation it reports is real in every mode.

pub mod dynamo;
pub mod faults;
mod interned;
mod model;
pub mod plots;
mod prepare;
mod reduce;
mod refute;
pub mod report;
mod search;
pub mod synth;
mod zones;

pub use model::{Input, Output};
pub use prepare::{Fault, NEVER, Operation, Prepared, prepare, prepare_stream};
pub use search::Outcome;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::history::Numbered;

/// The verdict on a whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The time limit ran out before every key was decided (and none was found wrong).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "NOT linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// A key whose operations cannot be ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub key: String,
    /// The longest linearizable prefix found, as indices into the key's operations.
    pub prefix: Vec<usize>,
    /// The operation that could not be placed after that prefix.
    pub stuck: usize,
    /// The smallest window to look at: the last operation placed and every operation
    /// concurrent with the stuck one, in invocation order. For a stale read, the operations
    /// of `stale` and the read.
    pub window: Vec<usize>,
    /// When the stuck operation is a read found stale without a search (then `prefix` is
    /// empty): for each operation that could have produced what it read (`None`: the key's
    /// initial absence), one that certainly changed that value after it and before the read.
    pub stale: Vec<(Option<usize>, usize)>,
}

/// What the rewrites of crashed operations did, over every key ([`reduce`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewrites {
    /// Crashed writes made determinate, bounded by the return of their first observer.
    pub bounded: usize,
    /// Writes of values no operation can tell apart, renamed to one value per length.
    pub unnamed: usize,
    /// Crashed writes of such values dropped, as nothing could notice them.
    pub dropped: usize,
}

/// What the checker found.
#[derive(Debug)]
pub struct Report {
    pub verdict: Verdict,
    pub history: Prepared,
    pub violations: Vec<Violation>,
    /// Keys left undecided: the time limit ran out, or (when `violations` is not empty)
    /// their search was stopped once another key was found wrong.
    pub timed_out: Vec<String>,
    pub rewrites: Rewrites,
    pub elapsed: Duration,
}

/// Checks a parsed history. `progress` receives (keys done, keys in all) as keys finish.
pub fn check(
    events: &[Numbered],
    timeout: Option<Duration>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, String> {
    let started = Instant::now();
    check_prepared(prepare(events)?, started, timeout, progress)
}

/// Checks a history read as a stream (see [`crate::history::HistoryReader`]).
pub fn check_stream(
    events: impl Iterator<Item = Result<Numbered, String>>,
    timeout: Option<Duration>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, String> {
    let started = Instant::now();
    check_prepared(prepare_stream(events)?, started, timeout, progress)
}

fn check_prepared(
    history: Prepared,
    started: Instant,
    timeout: Option<Duration>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, String> {
    let deadline = timeout.map(|t| started + t);
    let keys: Vec<(&String, &Vec<Operation>)> = history.keys.iter().collect();
    let done = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let rewrites = Mutex::new(Rewrites::default());
    // First, over every key, the rewrites and the refutation, which take no search; a key
    // found wrong there decides the verdict, and the searches of the others stop.
    let stop = AtomicBool::new(false);
    let reduced: Vec<Mutex<Option<reduce::Reduced>>> = (0..keys.len()).map(|_| Mutex::new(None)).collect();
    in_parallel(keys.len(), |i| {
        let (key, ops) = keys[i];
        let r = reduce::reduce(ops);
        {
            let mut total = rewrites.lock().unwrap();
            total.bounded += r.bounded;
            total.unnamed += r.unnamed;
            total.dropped += r.dropped;
        }
        match refute::stale_read(&r.ops) {
            Some(stale) => {
                let o = |i: usize| r.origin[i];
                let pairs = stale.broken.iter().map(|&(p, x)| (p.map(o), o(x))).collect();
                results
                    .lock()
                    .unwrap()
                    .push((key.clone(), (Outcome::Violation { prefix: Vec::new(), stuck: o(stale.reader) }, pairs)));
                stop.store(true, Ordering::Relaxed);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, keys.len());
            }
            None => *reduced[i].lock().unwrap() = Some(r),
        }
    });
    in_parallel(keys.len(), |i| {
        let Some(r) = reduced[i].lock().unwrap().take() else { return };
        let conflict = match zones::decide(keys[i].1) {
            zones::Zones::Linearizable => {
                results.lock().unwrap().push((keys[i].0.clone(), (Outcome::Linearizable, Vec::new())));
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, keys.len());
                return;
            }
            zones::Zones::Conflict(ops) => Some(ops),
            zones::Zones::NotApplicable => None,
        };
        let found = match search::check_key(&r.ops, deadline, &stop) {
            Outcome::Violation { prefix, stuck } => {
                stop.store(true, Ordering::Relaxed);
                let prefix = prefix.into_iter().map(|i| r.origin[i]).collect();
                (Outcome::Violation { prefix, stuck: r.origin[stuck] }, Vec::new())
            }
            // The zones found the key wrong: the search only spells out where, if it can.
            Outcome::TimedOut if conflict.is_some() => {
                stop.store(true, Ordering::Relaxed);
                let ops = conflict.as_deref().unwrap_or_default();
                let stuck = *ops.iter().max_by_key(|&&o| (keys[i].1[o].call, o)).expect("a conflict names operations");
                (Outcome::Violation { prefix: Vec::new(), stuck }, Vec::new())
            }
            other => (other, Vec::new()),
        };
        results.lock().unwrap().push((keys[i].0.clone(), found));
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, keys.len());
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut violations = Vec::new();
    let mut timed_out = Vec::new();
    for (key, (outcome, stale)) in results {
        match outcome {
            Outcome::Linearizable => {}
            Outcome::TimedOut => timed_out.push(key),
            Outcome::Violation { prefix, stuck } => {
                let ops = &history.keys[&key];
                let window = if stale.is_empty() {
                    window(ops, &prefix, stuck)
                } else {
                    let mut w: Vec<usize> = stale.iter().flat_map(|&(p, x)| p.into_iter().chain([x])).collect();
                    w.push(stuck);
                    w.sort_by_key(|&i| (ops[i].call, i));
                    w.dedup();
                    w
                };
                violations.push(Violation { key, prefix, stuck, window, stale });
            }
        }
    }
    let verdict = if !violations.is_empty() {
        Verdict::NotLinearizable
    } else if !timed_out.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    let rewrites = rewrites.into_inner().unwrap();
    Ok(Report { verdict, history, violations, timed_out, rewrites, elapsed: started.elapsed() })
}

/// Runs `f(0..n)` on as many threads as the machine has cores, each index once.
fn in_parallel(n: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |c| c.get()).min(n.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    f(i);
                }
            });
        }
    });
}

fn window(ops: &[Operation], prefix: &[usize], stuck: usize) -> Vec<usize> {
    let s = &ops[stuck];
    let placed: std::collections::HashSet<usize> = prefix.iter().copied().collect();
    let mut w: Vec<usize> = (0..ops.len())
        .filter(|&i| i == stuck || (ops[i].call <= s.ret && ops[i].ret >= s.call && !placed.contains(&i)))
        .collect();
    if let Some(&last) = prefix.last() {
        w.push(last);
    }
    w.sort_by_key(|&i| (ops[i].call, i));
    w.dedup();
    w
}

/// One operation as a line of text, for reports.
pub fn describe(op: &Operation) -> String {
    let out = match &op.output {
        Some(o) => o.to_string(),
        None => "unknown".into(),
    };
    let lines = match op.lines.1 {
        Some(end) => format!("lines {}-{end}", op.lines.0),
        None => format!("line {}", op.lines.0),
    };
    format!("client {} {} -> {out} ({lines})", op.process, op.input)
}

#[cfg(test)]
mod tests;
