//! The Wing–Gong–Lowe search with Lowe's memoization, as Porcupine does it.
//!
//! The operations of one key become a list of call and return entries in time order. The
//! search walks the list: at a call it tries to linearize that operation now (the model must
//! accept its output); if it can, the operation's entries are lifted out of the list and the
//! walk restarts at the head. Reaching a return entry means an operation that had to take
//! effect by then could not: the last choice is undone and the walk tries the next
//! candidate. A (linearized set, model state) pair seen before is never explored again —
//! Lowe's memoization, which is what makes the search practical.
//!
//! The linearized set is kept as a 128-bit Zobrist hash (the XOR of a random word per
//! operation) rather than a bitset, so a cache entry costs 20 bytes however long the history;
//! two different sets collide with probability about 2^-128 per pair.
//!
//! Operations with unknown outcome return at the end of time, so they may be placed anywhere
//! after their call. Each of them is always applicable, so once every determinate operation
//! is placed the rest can follow in any order — or, equivalently, never happen.
//!
//! Identical crashed operations (same input, unknown outcome: after [`super::reduce`]
//! renames unnamed values, the crashed writes of them are such) are interchangeable: of
//! those not yet placed, the search only ever places the earliest-called one. *Why it is
//! sound:* if a linearization places a later-called one `b` at some instant while an
//! earlier-called identical `a` is unplaced there, `a` was also called by then, and neither
//! returns; swapping their roles (placing `a` where `b` was, and `b` where `a` was, or
//! nowhere) gives a linearization with the same states and answers. Repeating the swap
//! makes the placed members of each group its earliest-called ones in placing order, which
//! is the only order this search tries. Without it, k identical crashed writes are 2^k
//! subsets to the memoization; with it, k + 1 prefixes.
//!
//! Two more rules keep the search from branching where branching cannot help; they are what
//! lets it follow many operations of a key in flight at once (contention). Each restricts
//! the choices tried at a configuration (model state, operations placed) to a subset that
//! has a linearization whenever the configuration has one, so the search stays complete,
//! and each depends only on the configuration, so the memoization stays sound. An operation
//! is *callable* at a configuration when its call entry comes before the first return entry
//! still in the list: every operation that returned before it was called is placed.
//!
//! * **Operations that only read go first, and alone.** If a callable operation `r` whose
//!   answer says it only read ([`super::model::only_reads`]: a GET, a CAS that answered
//!   false, a DEL of 0, ...) can run on the current state with that answer, the search places
//!   it and tries nothing else at that configuration. *Why it is complete:* take a
//!   linearization `L` that continues the configuration and places `r` later. Move `r` to
//!   the front: it finds the current state and leaves it; where it stood in `L` it left the
//!   state as it found it too (it only reads, whatever the state), so every other operation
//!   sees what it saw in `L`; `r` is callable, so every operation that must precede it is
//!   already placed; operations that must follow `r` still do, as it only moved earlier.
//!   (An operation that merely leaves the *current* state alone, such as a SET of the current
//!   value, is not enough: where `L` placed it, it may have changed the state.)
//! * **Of identical determinate operations, the one that returns first goes first.** If
//!   two callable determinate operations `o` and `m` have the same input and output and
//!   `m` returns first, the search does not try `o` next. *Why it is complete:* a
//!   linearization that places `o` next and `m` at a later point `p` stays one when the two
//!   swap roles: the states and answers are the same; `m` is callable; `o` at `p` is after
//!   its call (it was callable before `p`), before its return (`p` ≤ `m`'s return ≤ `o`'s),
//!   and before every operation called after `o` returned (called after `m` returned, they
//!   came after `p` already). After [`super::reduce`] renames values no operation can tell
//!   apart, all SETs of such values of one length are identical: without this rule, the
//!   search tries them in every order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::model::{only_reads, step};
use super::prepare::{NEVER, Operation};

/// How the search of one key ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Linearizable,
    /// No order exists. `prefix` is the longest sequence of operations found that could be
    /// linearized, and `stuck` the operation that could not be placed after it.
    Violation {
        prefix: Vec<usize>,
        stuck: usize,
    },
    /// The deadline passed first, or the search was told to stop.
    TimedOut,
}

const HEAD: usize = 0;
const NIL: usize = usize::MAX;

struct Entry {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// A doubly linked list of entries over an arena; index 0 is the head sentinel.
struct List {
    e: Vec<Entry>,
}

impl List {
    fn new(ops: &[Operation]) -> Self {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, true, i));
            order.push((op.ret, false, i));
        }
        // Time order; at equal times calls first (treating the pair as concurrent is the
        // permissive reading of an ambiguous clock).
        order.sort_by_key(|&(time, is_call, op)| (time, !is_call, op));
        let mut e = vec![Entry { op: NIL, is_call: false, partner: NIL, prev: NIL, next: NIL }];
        let mut ret_of = vec![NIL; ops.len()];
        for (pos, &(_, is_call, op)) in order.iter().enumerate() {
            let idx = pos + 1;
            e.push(Entry { op, is_call, partner: NIL, prev: idx - 1, next: NIL });
            e[idx - 1].next = idx;
            if !is_call {
                ret_of[op] = idx;
            }
        }
        for entry in e.iter_mut().skip(1) {
            if entry.is_call {
                entry.partner = ret_of[entry.op];
            }
        }
        List { e }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.e[i].prev, self.e[i].next);
        self.e[p].next = n;
        if n != NIL {
            self.e[n].prev = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.e[i].prev, self.e[i].next);
        self.e[p].next = i;
        if n != NIL {
            self.e[n].prev = i;
        }
    }

    /// Removes a call and its return (undone by `unlift` in the reverse order).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.e[call].partner);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.e[call].partner);
        self.relink(call);
    }
}

/// Interns model states so the cache stores small ids.
#[derive(Default)]
struct States {
    ids: HashMap<Option<String>, u32>,
    values: Vec<Option<String>>,
}

impl States {
    fn id(&mut self, s: Option<String>) -> u32 {
        if let Some(&id) = self.ids.get(&s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(s.clone());
        self.ids.insert(s, id);
        id
    }
}

/// A 64-bit mix (splitmix64), for the per-operation Zobrist words.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Searches for a linearization of `ops` (all on one key), giving up at `deadline` or once
/// `stop` is set.
pub fn check_key(ops: &[Operation], deadline: Option<Instant>, stop: &AtomicBool) -> Outcome {
    let mut list = List::new(ops);
    let zobrist: Vec<u128> =
        (0..ops.len() as u64).map(|i| (splitmix(2 * i) as u128) << 64 | splitmix(2 * i + 1) as u128).collect();
    let mut states = States::default();
    let mut state = states.id(None);
    let mut linearized: u128 = 0;
    let mut cache: HashSet<(u128, u32)> = HashSet::new();
    // The choices made so far: (call entry, state before it, its node in `trail`, whether
    // it was the only choice tried at its configuration).
    let mut calls: Vec<(usize, u32, usize, bool)> = Vec::new();
    // Every prefix ever tried, as a tree of (operation, parent) nodes, so the best prefix
    // can be remembered in O(1) and spelled out only if the key turns out to be wrong.
    let mut trail: Vec<(usize, usize)> = Vec::new();
    let mut remaining = ops.iter().filter(|o| o.is_determinate()).count();
    // (depth, trail node of the deepest prefix, the operation stuck after it)
    let mut best: (usize, usize, usize) = (0, NIL, NIL);
    // Groups of identical crashed operations, each in call order, and how many of each are
    // placed (always its first members).
    let mut group_of: Vec<usize> = vec![NIL; ops.len()];
    let mut members: Vec<Vec<usize>> = Vec::new();
    {
        let mut ids: HashMap<&super::model::Input, usize> = HashMap::new();
        let mut crashed: Vec<usize> =
            (0..ops.len()).filter(|&i| ops[i].ret == NEVER && !ops[i].is_determinate()).collect();
        crashed.sort_by_key(|&i| (ops[i].call, i));
        for i in crashed {
            let g = *ids.entry(&ops[i].input).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            group_of[i] = g;
            members[g].push(i);
        }
    }
    let mut placed_in_group: Vec<usize> = vec![0; members.len()];
    // Groups of identical determinate operations (same input and output), each holding its
    // unplaced members by (return, index); and the call and return entry of every operation.
    let mut twin_of: Vec<usize> = vec![NIL; ops.len()];
    let mut twins: Vec<BTreeSet<(u64, usize)>> = Vec::new();
    {
        let mut ids: HashMap<(&super::model::Input, &super::model::Output), usize> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(output) = &op.output {
                let g = *ids.entry((&op.input, output)).or_insert_with(|| {
                    twins.push(BTreeSet::new());
                    twins.len() - 1
                });
                twin_of[i] = g;
                twins[g].insert((op.ret, i));
            }
        }
    }
    let mut call_entry = vec![NIL; ops.len()];
    for (idx, e) in list.e.iter().enumerate().skip(1) {
        if e.is_call {
            call_entry[e.op] = idx;
        }
    }
    // Return entries still in the list: the first one bounds which calls are callable (the
    // arena is in time order, so an index comparison says which entry comes first).
    let mut returns: BTreeSet<usize> = (1..list.e.len()).filter(|&i| !list.e[i].is_call).collect();
    let mut entry = list.e[HEAD].next;
    // Set after each placement: look for an operation that changes nothing first.
    let mut fresh = true;
    let mut steps: u64 = 0;
    while remaining > 0 {
        // The deadline is looked at on the first step and every 16384 after.
        if steps.is_multiple_of(1 << 14)
            && (deadline.is_some_and(|d| Instant::now() >= d) || stop.load(Ordering::Relaxed))
        {
            return Outcome::TimedOut;
        }
        steps += 1;
        let current = states.values[state as usize].as_deref();
        // Rule: an operation that changes nothing goes first, and alone.
        let mut forced = NIL;
        if fresh {
            fresh = false;
            let mut at = list.e[HEAD].next;
            while at != NIL && list.e[at].is_call {
                let op = &ops[list.e[at].op];
                if only_reads(&op.input, op.output.as_ref()) && step(current, &op.input, op.output.as_ref()).is_some() {
                    forced = at;
                    break;
                }
                at = list.e[at].next;
            }
        }
        let e = &list.e[if forced != NIL { forced } else { entry }];
        if forced != NIL || e.is_call {
            let at = if forced != NIL { forced } else { entry };
            let g = group_of[e.op];
            if g != NIL && members[g][placed_in_group[g]] != e.op {
                entry = e.next; // an earlier identical crashed operation stands for it
                continue;
            }
            // Rule: of identical determinate operations, the one that returns first goes first.
            let t = twin_of[e.op];
            if forced == NIL
                && t != NIL
                && let Some(&(_, first)) = twins[t].first()
                && first != e.op
                && returns.first().is_some_and(|&r| call_entry[first] < r)
            {
                entry = e.next;
                continue;
            }
            let op = &ops[e.op];
            let mut placed = false;
            if let Some(next) = step(current, &op.input, op.output.as_ref()) {
                let next = states.id(next);
                let hashed = linearized ^ zobrist[e.op];
                if cache.insert((hashed, next)) {
                    let parent = calls.last().map_or(NIL, |c| c.2);
                    trail.push((e.op, parent));
                    calls.push((at, state, trail.len() - 1, forced != NIL));
                    state = next;
                    linearized = hashed;
                    if op.is_determinate() {
                        remaining -= 1;
                    }
                    if g != NIL {
                        placed_in_group[g] += 1;
                    }
                    if t != NIL {
                        twins[t].remove(&(op.ret, e.op));
                    }
                    returns.remove(&list.e[at].partner);
                    list.lift(at);
                    entry = list.e[HEAD].next;
                    fresh = true;
                    placed = true;
                }
            }
            if placed {
                continue;
            }
            if forced == NIL {
                entry = list.e[entry].next;
                continue;
            }
            // The only choice at this configuration leads where the search has been: it
            // fails, and so does the configuration.
        } else if calls.len() > best.0 || best.2 == NIL {
            best = (calls.len(), calls.last().map_or(NIL, |c| c.2), e.op);
        }
        // Backtrack: undo the last choice and try the next candidate after it, or, when it
        // was the only choice tried at its configuration, undo that configuration too.
        loop {
            let Some((call, previous, _, only)) = calls.pop() else {
                let mut prefix = Vec::with_capacity(best.0);
                let mut node = best.1;
                while node != NIL {
                    prefix.push(trail[node].0);
                    node = trail[node].1;
                }
                prefix.reverse();
                return Outcome::Violation { prefix, stuck: best.2 };
            };
            let op = list.e[call].op;
            state = previous;
            linearized ^= zobrist[op];
            if ops[op].is_determinate() {
                remaining += 1;
            }
            if group_of[op] != NIL {
                placed_in_group[group_of[op]] -= 1;
            }
            if twin_of[op] != NIL {
                twins[twin_of[op]].insert((ops[op].ret, op));
            }
            list.unlift(call);
            returns.insert(list.e[call].partner);
            if !only {
                entry = list.e[call].next;
                break;
            }
        }
    }
    Outcome::Linearizable
}
