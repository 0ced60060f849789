//! A fast, sound refutation before the search: reads that no linearization can explain,
//! found without searching.
//!
//! The search ([`super::search`]) proves a key wrong only by trying every order of the
//! operations that precede the wrong one; with hundreds of crashed writes and CAS or DEL
//! answers that an unseen crashed write may explain, that is more orders than any deadline
//! allows. Most real violations are simpler: a read saw a value that had certainly been
//! overwritten before the read began. This pass finds those in about linear time, in the
//! spirit of Gibbons and Korach's zones for registers with unique values ("Testing shared
//! memories", SIAM J. Comput. 1997): the operations of a value's cluster must be contiguous in
//! any linearization, so an operation that certainly changed the value and lies wholly between
//! the cluster's write and one of its reads cannot be ordered.
//!
//! **The rule.** A *reader* of `o` (a value, or `None` for an absent key) is a determinate
//! operation whose answer says the key held `o` at its instant: a GET, GETDEL or GETSET that
//! answered `o`, or a CAS expecting `o` that swapped. A *producer* of `o` is any operation that
//! can leave the key holding `o` after it held something else: for a value `v`, a SET or
//! GETSET of `v`, a CAS whose new value is `v` (unless it answered false), an APPEND whose
//! suffix `v` ends with (and, if it answered, whose length is `v`'s), an INCR that can yield
//! `v` (`v` an integer and, if it answered, its answer); for `None`, a DEL, GETDEL or FLUSHALL,
//! and the initial state (the key starts absent). An operation `x` *breaks* `o` when it is
//! determinate and the model, applied to `o` with `x`'s answer, does not leave `o` with that
//! answer: a SET of another value, any DEL on a value, a GET that answered something else, a
//! CAS that swapped (or answered false while expecting `o`), and so on.
//!
//! A reader `r` of `o` is *stale* when every producer `p` of `o` other than `r` that was called
//! before `r` returned has a breaker `x` (neither `p` nor `r`) that was called after `p`
//! returned and returned before `r` was called. Then the key is not linearizable.
//!
//! *Why it is sound:* take any linearization and look at `r`'s instant, where the key holds
//! `o`. Walk back from `r` to the last instant at which the key came to hold `o` from
//! something else: the operation there is a producer `p` (the list above is every way the
//! model can make a key hold `o`: GET, CAS that fails, and INCR that fails keep the value),
//! or there is none and `o` is `None` held since the start (`p` is the initial state). `p`
//! precedes `r`, so `p` was called before `r` returned. Every operation between `p` and `r`
//! in the order found the key holding `o` and left it so, with its answer. But `p`'s breaker
//! `x` returned before `r` was called and was called after `p` returned, so it lies between
//! them in every linearization, and being determinate it took effect with its answer; it
//! does not leave `o` with that answer — a contradiction. So no linearization exists.
//!
//! A producer with unknown outcome returns at the end of time and has no breaker, so a read
//! that a crashed write may explain is never called stale here (the search decides it); the
//! rewrites of [`super::reduce`] run first and give observed crashed writes a return. Only a
//! verdict of NOT linearizable comes from this pass; when it finds nothing, the search runs.
//! The pass gives up on a reader (sound, just less complete) when the read has more than
//! [`MAX_PRODUCERS`] candidate producers, so it stays near linear on keys where values repeat.

use std::collections::HashMap;

use super::model::{Input, Output, parse_integer, step};
use super::prepare::{NEVER, Operation};

/// A reader with more candidate producers than this is left to the search.
const MAX_PRODUCERS: usize = 16;

/// Why a key is not linearizable, found without searching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The operation whose answer no linearization explains.
    pub reader: usize,
    /// For each operation that could have produced what it read: (the producer, the
    /// operation that certainly changed the value after it and before the read). The
    /// initial state of the key is the producer `None`.
    pub broken: Vec<(Option<usize>, usize)>,
}

/// What `op` says the key held at its instant, if anything.
fn observed(op: &Operation) -> Option<Option<&str>> {
    match (&op.input, &op.output) {
        (Input::Get | Input::Getdel | Input::Getset(_), Some(Output::Value(v))) => Some(v.as_deref()),
        (Input::Cas { expected, .. }, Some(Output::Swapped(true))) => Some(Some(expected.as_str())),
        _ => None,
    }
}

/// Whether `op` can leave the key holding `o` (see the module documentation).
fn produces(op: &Operation, o: Option<&str>) -> bool {
    let Some(v) = o else {
        return matches!(op.input, Input::Del | Input::Getdel | Input::Flushall);
    };
    match (&op.input, &op.output) {
        (Input::Set(w) | Input::Getset(w), _) => w == v,
        (Input::Cas { new, .. }, output) => new == v && output != &Some(Output::Swapped(false)),
        (Input::Append(suffix), output) => {
            v.ends_with(suffix.as_str())
                && match output {
                    Some(Output::Int(len)) => *len == v.len() as i64,
                    _ => true,
                }
        }
        (Input::Incr, output) => match (parse_integer(v), output) {
            (Some(n), Some(Output::Int(got))) => n == *got,
            (Some(_), _) => true,
            (None, _) => false,
        },
        (Input::Get | Input::Del | Input::Getdel | Input::Flushall, _) => false,
    }
}

/// Whether the determinate `op` cannot find the key holding `o` and leave it so.
fn breaks(op: &Operation, o: Option<&str>) -> bool {
    op.is_determinate() && step(o, &op.input, op.output.as_ref()).as_ref().map(Option::as_deref) != Some(o)
}

/// The producers of each value, indexed once per key.
struct Producers<'a> {
    ops: &'a [Operation],
    /// SET, GETSET and CAS (not answered false), by the value they write.
    by_value: HashMap<&'a str, Vec<usize>>,
    /// APPENDs that answered, by the length they answered; those that did not.
    appends_by_len: HashMap<i64, Vec<usize>>,
    appends_crashed: Vec<usize>,
    /// INCRs that answered, by their answer; those that did not.
    incrs_by_value: HashMap<i64, Vec<usize>>,
    incrs_crashed: Vec<usize>,
    /// DEL, GETDEL, FLUSHALL.
    removers: Vec<usize>,
}

impl<'a> Producers<'a> {
    fn new(ops: &'a [Operation]) -> Self {
        let mut p = Producers {
            ops,
            by_value: HashMap::new(),
            appends_by_len: HashMap::new(),
            appends_crashed: Vec::new(),
            incrs_by_value: HashMap::new(),
            incrs_crashed: Vec::new(),
            removers: Vec::new(),
        };
        for (i, op) in ops.iter().enumerate() {
            match (&op.input, &op.output) {
                (Input::Cas { .. }, Some(Output::Swapped(false))) => {}
                (Input::Set(v) | Input::Getset(v) | Input::Cas { new: v, .. }, _) => {
                    p.by_value.entry(v.as_str()).or_default().push(i)
                }
                (Input::Append(_), Some(Output::Int(len))) => p.appends_by_len.entry(*len).or_default().push(i),
                (Input::Append(_), _) => p.appends_crashed.push(i),
                (Input::Incr, Some(Output::Int(n))) => p.incrs_by_value.entry(*n).or_default().push(i),
                (Input::Incr, _) => p.incrs_crashed.push(i),
                (Input::Del | Input::Getdel | Input::Flushall, _) => p.removers.push(i),
                (Input::Get, _) => {}
            }
        }
        p
    }

    /// Every operation that [`produces`] `o`.
    fn of(&self, o: Option<&str>) -> Vec<usize> {
        let Some(v) = o else { return self.removers.clone() };
        let mut all: Vec<usize> = self.by_value.get(v).cloned().unwrap_or_default();
        let appends = self.appends_by_len.get(&(v.len() as i64)).into_iter().flatten().chain(&self.appends_crashed);
        all.extend(appends.copied().filter(|&i| produces(&self.ops[i], o)));
        if let Some(n) = parse_integer(v) {
            all.extend(self.incrs_by_value.get(&n).into_iter().flatten().chain(&self.incrs_crashed));
        }
        debug_assert!(all.iter().all(|&i| produces(&self.ops[i], o)));
        all
    }
}

/// How many operations the scan for one breaker looks at before it gives up on the reader.
const MAX_SCAN: usize = 1 << 14;

/// Looks for a stale reader among one key's operations (see the module documentation).
pub fn stale_read(ops: &[Operation]) -> Option<Stale> {
    let mut by_call: Vec<usize> = (0..ops.len()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    let index = Producers::new(ops);
    let mut producers_of: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    let mut readers: Vec<usize> = (0..ops.len()).filter(|&i| observed(&ops[i]).is_some()).collect();
    readers.sort_by_key(|&i| (ops[i].ret, i));
    for r in readers {
        let o = observed(&ops[r]).expect("readers observe");
        let producers = producers_of.entry(o).or_insert_with(|| index.of(o));
        let reader = &ops[r];
        let candidates: Vec<usize> =
            producers.iter().copied().filter(|&p| p != r && ops[p].call <= reader.ret).collect();
        if candidates.len() > MAX_PRODUCERS {
            continue;
        }
        // The first operation called after `after` (the start of time for `None`) that
        // returned before `r` was called and breaks `o`; `None` also when the scan gives up.
        let breaker_after = |after: Option<u64>, p: Option<usize>| -> Option<usize> {
            let start = match after {
                None => 0,
                Some(t) => by_call.partition_point(|&i| ops[i].call <= t),
            };
            by_call[start..]
                .iter()
                .copied()
                .take_while(|&x| ops[x].call < reader.call)
                .take(MAX_SCAN)
                .find(|&x| x != r && Some(x) != p && ops[x].ret < reader.call && breaks(&ops[x], o))
        };
        let mut broken = Vec::with_capacity(candidates.len() + 1);
        if o.is_none() {
            match breaker_after(None, None) {
                Some(x) => broken.push((None, x)),
                None => continue,
            }
        }
        let all = candidates.iter().all(|&p| {
            let found = if ops[p].ret == NEVER { None } else { breaker_after(Some(ops[p].ret), Some(p)) };
            found.map(|x| broken.push((Some(p), x))).is_some()
        });
        if all {
            return Some(Stale { reader: r, broken });
        }
    }
    None
}
