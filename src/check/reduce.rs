//! Rewrites of one key's operations that keep its verdict and shrink the search: how the
//! checker decides histories with many crashed (indeterminate) writes.
//!
//! A crashed operation returns at the end of time, so the search may place it anywhere after
//! its call, or nowhere; every one of them doubles what the search may have to try, and a
//! history with a few hundred of them defeats the plain Wing–Gong–Lowe search (and
//! Porcupine). Three rewrites, each an equivalence — the key's operations are linearizable
//! after it exactly when they were before — take most of them out. Values are the reason they
//! work: the workload writes unique values, so a read names the write it saw.
//!
//! 1. **Observed crashed writes are bounded.** A value `v` is *produced only by* `w` when `w`
//!    is the one operation of the key that writes `v` (SET, CAS's new value), no APPEND could
//!    end in `v` (none has a suffix that `v` ends with) and no INCR could yield it (`v` is no
//!    integer, or the key has no INCR). An *observer* of `v` is a determinate operation
//!    whose result says the value was `v` when it took effect: a GET (GETDEL, GETSET)
//!    answering `v`, or a CAS expecting `v` that swapped. If a crashed `w` is the only
//!    producer of an observed `v`, it is made determinate (SET: OK; CAS: swapped) with its
//!    return moved to the earliest observer's return.
//!    *Why it is sound:* in any linearization, the observer `o` takes effect while the value
//!    is `v`; only `w` makes the value `v`, so `w` took effect — and swapped, if a CAS — before
//!    `o`, hence before `o` returned. So every linearization of the key also fits the bounded
//!    `w`, and conversely (the bounded interval lies inside the original one, and "OK" or
//!    "swapped" is one of the outcomes a crashed operation may have had).
//!
//! 2. **Unnamed values are one value.** A value is *named* when some operation of the key
//!    could tell it apart from others: a determinate read returned it, or some CAS (of any
//!    outcome) expects it — with APPEND in the key, when some such string merely *starts*
//!    with it, since an APPEND builds on it. Every other value written (an *unnamed* one) is
//!    rewritten to a sentinel: a string of NULs as long as the value (the same one for all
//!    unnamed values of that length). This needs a sentinel character no named string starts
//!    with (else nothing is rewritten) and, with INCR in the key, unnamed values that no
//!    INCR can read as an integer (with APPEND: that are no prefix of one).
//!    *Why it is sound:* replay any order of the operations twice, on the original values
//!    and on the rewritten ones. Invariant: either both values are equal, or the original is
//!    `u + t` and the rewritten `NUL^|u| + t` for an unnamed `u` (`t` what APPENDs added).
//!    Each operation keeps it and gets the same answer on both sides: a GET (GETDEL,
//!    GETSET) answers a named value or nil, and in the second case both values are present
//!    and neither is named (a named string would start with `u`, or with NUL); a CAS
//!    expects a named value, so it fails on both; DEL finds a value on both; INCR cannot
//!    read either as an integer; APPEND keeps the invariant and both lengths agree; a write
//!    sets both sides to equal values, or to an unnamed value and its sentinel. So an order
//!    is a linearization of the original operations exactly when it is one of the
//!    rewritten ones. The payoff: crashed writes of unnamed values of one length become
//!    identical operations, which the search treats as one ([`super::search`]: of identical
//!    crashed operations it only ever places the earliest-called one not yet placed), and
//!    model states collapse.
//!
//! 3. **Crashed writes of unnamed values are dropped** when nothing could notice them: the
//!    key has no APPEND, no DEL that answered 1 and no CAS that answered false (the only
//!    determinate operations whose answer a present-but-unnamed value can explain).
//!    *Why it is sound:* take a linearization that places such a crashed `w`, and consider
//!    the operations after it while the value is unnamed (call it `U`). None of them is a
//!    determinate GET, GETDEL or GETSET (they answer named values or nil), a swapping CAS
//!    (it expects a named value), an INCR that answered (`U` is no integer), a DEL that
//!    answered 0 (`U` is present), or — by the condition — a DEL that answered 1 or a CAS
//!    that answered false. So they are crashed operations that left `U` in place (a CAS or
//!    an INCR, which did nothing there) or the operation that ends the run by writing a
//!    value that does not depend on the one before (SET, GETSET, a crashed DEL or GETDEL,
//!    FLUSHALL, or another dropped write). Remove `w` and the crashed operations that did
//!    nothing: what is left is a linearization of the key without `w`, as every
//!    determinate operation sees the value it saw before. Conversely a crashed write may
//!    simply not have happened.
//!
//! The rewrites only remove or bound crashed operations and rename values no operation can
//! tell apart; every determinate operation stays, with its interval, in the search. The
//! tests in `check/tests.rs` hold histories whose verdict an unsound version of each rewrite
//! would change (a crashed write only a CAS that answered false can explain; one only a DEL
//! that answered 1 can; an APPEND that would see the rewritten value's length change).

use std::collections::{BTreeSet, HashMap};

use super::model::{Input, Output, parse_integer};
use super::prepare::Operation;

/// A key's operations after the rewrites, and what became of them.
#[derive(Debug)]
pub struct Reduced {
    /// The operations the search runs on.
    pub ops: Vec<Operation>,
    /// For each of `ops`, its index among the key's original operations.
    pub origin: Vec<usize>,
    /// Crashed writes bounded by their first observer (rule 1).
    pub bounded: usize,
    /// Values rewritten to a sentinel (rule 2).
    pub unnamed: usize,
    /// Crashed writes dropped (rule 3).
    pub dropped: usize,
}

/// The character sentinels are made of: no history value starts with it in practice, and
/// no INCR reads a string starting with it as an integer.
const SENTINEL: char = '\0';

/// True when `v` could be the start of a string INCR reads as an integer (a superset of
/// Redis' rule, which is all that matters for soundness).
fn may_start_integer(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    digits.bytes().all(|b| b.is_ascii_digit())
}

/// Applies the three rewrites to one key's operations (see the module documentation).
pub fn reduce(ops: &[Operation]) -> Reduced {
    let has_append = ops.iter().any(|o| matches!(o.input, Input::Append(_)));
    let has_incr = ops.iter().any(|o| matches!(o.input, Input::Incr));
    let mut ops: Vec<Operation> = ops.to_vec();
    let mut origin: Vec<usize> = (0..ops.len()).collect();

    // Rule 1: bound observed crashed writes.
    let mut writers: HashMap<&str, usize> = HashMap::new();
    for o in &ops {
        if let Some(v) = o.input.written() {
            *writers.entry(v).or_default() += 1;
        }
    }
    let suffixes: Vec<&str> = ops
        .iter()
        .filter_map(|o| match &o.input {
            Input::Append(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let mut first_observer: HashMap<&str, u64> = HashMap::new();
    for o in &ops {
        let seen = match (&o.input, &o.output) {
            (Input::Get | Input::Getdel | Input::Getset(_), Some(Output::Value(Some(v)))) => v.as_str(),
            (Input::Cas { expected, .. }, Some(Output::Swapped(true))) => expected.as_str(),
            _ => continue,
        };
        let first = first_observer.entry(seen).or_insert(o.ret);
        *first = (*first).min(o.ret);
    }
    let produced_only_by_its_writer = |v: &str| {
        writers.get(v) == Some(&1)
            && !(has_incr && parse_integer(v).is_some())
            && !suffixes.iter().any(|s| v.ends_with(s))
    };
    let mut bounds: Vec<(usize, u64, Output)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        if o.output.is_some() {
            continue;
        }
        let done = match &o.input {
            Input::Set(_) => Output::Done,
            Input::Cas { .. } => Output::Swapped(true),
            _ => continue,
        };
        let v = o.input.written().expect("set and cas write a value");
        if let Some(&first) = first_observer.get(v)
            && first >= o.call
            && produced_only_by_its_writer(v)
        {
            bounds.push((i, first, done));
        }
    }
    let bounded = bounds.len();
    for (i, ret, output) in bounds {
        ops[i].ret = ret;
        ops[i].output = Some(output);
    }

    // Rule 2: rename unnamed values.
    let mut named: BTreeSet<&str> = BTreeSet::new();
    let mut names = Vec::new();
    for o in &ops {
        match (&o.input, &o.output) {
            (Input::Cas { expected, .. }, _) => names.push(expected.clone()),
            (Input::Get | Input::Getdel | Input::Getset(_), Some(Output::Value(Some(v)))) => names.push(v.clone()),
            _ => {}
        }
    }
    named.extend(names.iter().map(String::as_str));
    let sentinel_free = !named.iter().any(|n| n.starts_with(SENTINEL));
    let is_named = |v: &str| {
        if has_append { named.range(v..).next().is_some_and(|n| n.starts_with(v)) } else { named.contains(v) }
    };
    let is_unnamed = |v: &str| {
        let integer = if has_append { may_start_integer(v) } else { parse_integer(v).is_some() };
        !(is_named(v) || (has_incr && integer))
    };
    let sentinel = |v: &str| -> String {
        if has_append { std::iter::repeat_n(SENTINEL, v.len()).collect() } else { SENTINEL.to_string() }
    };
    let mut renamed: Vec<(usize, String)> = Vec::new();
    if sentinel_free {
        for (i, o) in ops.iter().enumerate() {
            if let Some(v) = o.input.written()
                && is_unnamed(v)
            {
                renamed.push((i, sentinel(v)));
            }
        }
    }
    let unnamed = renamed.len();
    let mut rewritten = vec![false; ops.len()];
    for (i, to) in renamed {
        rewritten[i] = true;
        match &mut ops[i].input {
            Input::Set(v) | Input::Getset(v) | Input::Cas { new: v, .. } => *v = to,
            _ => unreachable!("only writes are renamed"),
        }
    }

    // Rule 3: drop crashed writes of unnamed values nothing could notice.
    let noticed = has_append
        || ops.iter().any(|o| {
            matches!(
                (&o.input, &o.output),
                (Input::Del, Some(Output::Int(1))) | (Input::Cas { .. }, Some(Output::Swapped(false)))
            )
        });
    let mut dropped = 0;
    if sentinel_free && !noticed {
        let mut keep = Vec::with_capacity(ops.len());
        let mut kept_origin = Vec::with_capacity(ops.len());
        for (i, o) in ops.into_iter().enumerate() {
            if rewritten[i] && o.output.is_none() {
                dropped += 1;
            } else {
                keep.push(o);
                kept_origin.push(origin[i]);
            }
        }
        ops = keep;
        origin = kept_origin;
    }
    Reduced { ops, origin, bounded, unnamed, dropped }
}
