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
//! two different sets collide with probability about 2^-128 per pair. The model state is
//! the key's value as an interned id, and the model is stepped on ids
//! ([`super::interned`]): a step allocates nothing and a cache entry hashes 20 bytes, with
//! a hash cheaper than SipHash. On a key with many operations in flight the search spends
//! most of its time stepping and hashing; neither changes what it explores.
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
//!
//! Three more rules let it follow keys where values are not written once — APPEND builds
//! on the value, INCR counts, DEL empties it — with crashed operations among them; each
//! only prunes a configuration that has no linearization, or a choice that another choice
//! at the same configuration covers, so the search stays complete, and each depends only on
//! the configuration, so the memoization stays sound:
//!
//! * **A demanded value that can no longer come back ends the configuration.** A
//!   determinate operation *demands* a value when its answer says the key held it at its
//!   instant: a GET (GETDEL, GETSET) that answered it, a CAS that swapped it, an INCR that
//!   answered `n ≥ 2` (it found `n - 1`). A *producer* of a value `v` is an operation that
//!   can make the key hold `v` when it held something else: a SET or GETSET of `v`, a CAS
//!   whose new value is `v` (unless it answered false), an APPEND whose suffix `v` ends with
//!   (of `v`'s length, if it answered), an INCR (answering `v`, if it answered). If some
//!   unplaced operation demands `v`, every producer of `v` is placed, and the key does not
//!   hold `v`, the configuration fails. *Why it is sound:* the list is every way the model
//!   ([`super::model::step`]) takes a key from another value to `v` (GET, a CAS that does
//!   not swap, an INCR of a non-integer keep the value); with none left, the key never holds
//!   `v` again, and the demanding operation can never be placed. Without the rule the
//!   search learns this only when it reaches that operation's return, after trying every
//!   order of the operations in flight before it; with the rule, right after the choice that
//!   buried `v`. Only the values whose standing a placement changes are looked at (the one
//!   it replaced, the ones it could produce), so it costs a few counters per step.
//! * **A crashed operation is not placed where it would change nothing** (a CAS that finds
//!   another value, an INCR of a non-integer, a DEL of an absent key, a write of the value
//!   already there). *Why it is complete:* placing it leads to the same state with one more
//!   operation placed; every continuation from there is also one from the configuration
//!   itself with the crashed operation never happening (it never returns, so nothing has to
//!   follow it), and the search explores those through the other choices. Without the rule,
//!   each such operation doubles the configurations a failing subtree is explored from.
//! * **Crashed operations are tried after the determinate ones.** This only orders the
//!   choices at a configuration, all of which are still tried; it makes the search find a
//!   linearization sooner when most crashed operations either never took effect or matter
//!   only to explain a later answer.
//!
//! `the_search_rules_never_change_a_verdict` (in `check/tests.rs`) holds the search with
//! these three rules against the search without them on small random histories of every
//! operation, linearizable and not.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::interned::{ABSENT, Fast, In, Out, Value, Values};
use super::model::{Input, Output, only_reads, parse_integer};
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

type FastSet<K> = HashSet<K, BuildHasherDefault<Fast>>;

/// A 64-bit mix (splitmix64), for the per-operation Zobrist words.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What the operations still to be placed demand of the key's value, and which of them can
/// still produce it: the bookkeeping of the rule "a demanded value that can no longer come
/// back ends the configuration" (see the module documentation).
struct Demands {
    /// Each demanded value.
    values: Vec<Value>,
    /// Per value id (as interned when the search began), the demand on it (`NIL`: none).
    /// Values interned later are new strings, so no operation demands them.
    of_value: Vec<usize>,
    /// Per operation, the value it demands (`NIL`: none).
    need: Vec<usize>,
    /// Per value, the operations that demand it, and how many of them are not yet placed.
    readers: Vec<Vec<usize>>,
    readers_left: Vec<usize>,
    /// Per operation, the demanded values it may produce; per value, how many of its
    /// producers are not yet placed.
    produces: Vec<Vec<usize>>,
    producers_left: Vec<usize>,
}

impl Demands {
    fn new(ops: &[Operation], interned: &mut Values) -> Self {
        let mut d = Demands {
            values: Vec::new(),
            of_value: Vec::new(),
            need: vec![NIL; ops.len()],
            readers: Vec::new(),
            readers_left: Vec::new(),
            produces: vec![Vec::new(); ops.len()],
            producers_left: Vec::new(),
        };
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut texts: Vec<String> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(v) = demanded(op) else { continue };
            let id = *ids.entry(v.clone()).or_insert_with(|| {
                d.values.push(interned.id(&v));
                texts.push(v);
                d.readers.push(Vec::new());
                d.values.len() - 1
            });
            d.need[i] = id;
            d.readers[id].push(i);
        }
        d.readers_left = d.readers.iter().map(Vec::len).collect();
        d.producers_left = vec![0; d.values.len()];
        // Who can make the key hold a demanded value `v` when it held another: a write of
        // `v` (SET, GETSET, a CAS unless it answered false), an APPEND whose suffix `v` ends
        // with (of `v`'s length, if it answered), an INCR (yielding `v`, if it answered).
        let mut writers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut appends: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut incrs: Vec<usize> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match (&op.input, &op.output) {
                (Input::Cas { .. }, Some(Output::Swapped(false))) => {}
                (Input::Append(suffix), _) => appends.entry(suffix.as_str()).or_default().push(i),
                (Input::Incr, _) => incrs.push(i),
                (input, _) => {
                    if let Some(v) = input.written() {
                        writers.entry(v).or_default().push(i);
                    }
                }
            }
        }
        for (id, v) in texts.iter().enumerate() {
            let mut producers: Vec<usize> = writers.get(v.as_str()).cloned().unwrap_or_default();
            for (at, _) in v.char_indices() {
                for &i in appends.get(&v[at..]).into_iter().flatten() {
                    if !matches!(ops[i].output, Some(Output::Int(n)) if n != v.len() as i64) {
                        producers.push(i);
                    }
                }
            }
            if let Some(n) = parse_integer(v) {
                producers.extend(incrs.iter().copied().filter(|&i| match ops[i].output {
                    Some(Output::Int(got)) => got == n,
                    _ => true,
                }));
            }
            for i in producers {
                d.produces[i].push(id);
                d.producers_left[id] += 1;
            }
        }
        for (id, &v) in d.values.iter().enumerate() {
            if d.of_value.len() <= v as usize {
                d.of_value.resize(v as usize + 1, NIL);
            }
            d.of_value[v as usize] = id;
        }
        d
    }

    fn unmet(&self, id: usize, value: Value) -> bool {
        self.readers_left[id] > 0 && self.producers_left[id] == 0 && value != self.values[id]
    }

    /// A demanded value no operation can ever make the key hold, placed or not.
    fn never_met(&self) -> Option<usize> {
        (0..self.values.len()).find(|&id| self.unmet(id, ABSENT))
    }

    /// Places `op`, which took the value from `before` to `after`; returns a demanded value
    /// that can no longer be met, if placing it left one. Only the values whose standing
    /// it changed are looked at: the one it replaced and the ones it could produce.
    fn place(&mut self, op: usize, before: Value, after: Value) -> Option<usize> {
        if self.need[op] != NIL {
            self.readers_left[self.need[op]] -= 1;
        }
        for &id in &self.produces[op] {
            self.producers_left[id] -= 1;
        }
        let replaced = self.of_value.get(before as usize).copied().filter(|&id| id != NIL);
        self.produces[op].iter().copied().chain(replaced).find(|&id| self.unmet(id, after))
    }

    fn unplace(&mut self, op: usize) {
        if self.need[op] != NIL {
            self.readers_left[self.need[op]] += 1;
        }
        for &id in &self.produces[op] {
            self.producers_left[id] += 1;
        }
    }
}

/// The value a determinate operation needs the key to hold at its instant, when it names
/// one: a read that answered it, a CAS that swapped it, an INCR that answered `n` (it found
/// `n - 1`; for `n = 1`, absence or "0", which is not one value).
fn demanded(op: &Operation) -> Option<String> {
    match (&op.input, op.output.as_ref()?) {
        (Input::Get | Input::Getdel | Input::Getset(_), Output::Value(Some(v))) => Some(v.clone()),
        (Input::Cas { expected, .. }, Output::Swapped(true)) => Some(expected.clone()),
        (Input::Incr, Output::Int(n)) if *n >= 2 => Some((n - 1).to_string()),
        _ => None,
    }
}

/// Searches for a linearization of `ops` (all on one key), giving up at `deadline` or once
/// `stop` is set.
pub fn check_key(ops: &[Operation], deadline: Option<Instant>, stop: &AtomicBool) -> Outcome {
    search(ops, deadline, stop, true)
}

/// The search, with (`rules`) or without the rules that only prune or order it — the
/// demanded values, the idle crashed operations and the crashed operations tried last —,
/// so that tests can hold the two against each other.
pub(super) fn search(ops: &[Operation], deadline: Option<Instant>, stop: &AtomicBool, rules: bool) -> Outcome {
    let mut list = List::new(ops);
    let zobrist: Vec<u128> =
        (0..ops.len() as u64).map(|i| (splitmix(2 * i) as u128) << 64 | splitmix(2 * i + 1) as u128).collect();
    // The model over interned values: every operation's input and answer as ids, and
    // whether its answer says it only read.
    let mut values = Values::default();
    let compiled: Vec<(In, Option<Out>)> = ops.iter().map(|o| values.compile(&o.input, o.output.as_ref())).collect();
    let reads_only: Vec<bool> = ops.iter().map(|o| only_reads(&o.input, o.output.as_ref())).collect();
    let mut state: Value = ABSENT;
    let mut linearized: u128 = 0;
    let mut cache: FastSet<(u128, u32)> = FastSet::default();
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
    let mut demands = Demands::new(ops, &mut values);
    if rules && let Some(id) = demands.never_met() {
        let stuck = *demands.readers[id].iter().min_by_key(|&&r| (ops[r].ret, r)).expect("a demand has a reader");
        return Outcome::Violation { prefix: Vec::new(), stuck };
    }
    let mut is_placed = vec![false; ops.len()];
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
    // Which candidates the walk tries: determinate operations first, then, from the head
    // again, crashed ones.
    let mut lazy = false;
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
        // Rule: an operation that changes nothing goes first, and alone.
        let mut forced = NIL;
        if fresh {
            fresh = false;
            let mut at = list.e[HEAD].next;
            while at != NIL && list.e[at].is_call {
                let op = list.e[at].op;
                if reads_only[op] && values.step(state, compiled[op].0, compiled[op].1).is_some() {
                    forced = at;
                    break;
                }
                at = list.e[at].next;
            }
        }
        let e = &list.e[if forced != NIL { forced } else { entry }];
        if forced != NIL || e.is_call {
            let at = if forced != NIL { forced } else { entry };
            if rules && forced == NIL && ops[e.op].is_determinate() == lazy {
                entry = e.next; // tried in the other pass
                continue;
            }
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
            let mut dead = None;
            let previous = state;
            let this = e.op;
            if let Some(next) = values.step(state, compiled[this].0, compiled[this].1) {
                let hashed = linearized ^ zobrist[e.op];
                // Rule: a crashed operation is not placed where it would change nothing.
                let idle = rules && !op.is_determinate() && next == state;
                if !idle && cache.insert((hashed, next)) {
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
                    is_placed[this] = true;
                    entry = list.e[HEAD].next;
                    fresh = true;
                    lazy = false;
                    placed = true;
                    let unmet = demands.place(this, previous, state);
                    dead = unmet.filter(|_| rules);
                }
            }
            if placed {
                let Some(unmet) = dead else { continue };
                // Rule: a value some operation still has to find can no longer come back.
                if calls.len() > best.0 || best.2 == NIL {
                    let stuck = demands.readers[unmet]
                        .iter()
                        .copied()
                        .filter(|&r| !is_placed[r])
                        .min_by_key(|&r| (ops[r].ret, r))
                        .expect("an unmet demand has a reader left");
                    best = (calls.len(), calls.last().map_or(NIL, |c| c.2), stuck);
                }
            } else if forced == NIL {
                entry = list.e[entry].next;
                continue;
            }
            // The only choice at this configuration leads where the search has been: it
            // fails, and so does the configuration.
        } else if rules && !lazy {
            lazy = true;
            entry = list.e[HEAD].next;
            continue;
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
            is_placed[op] = false;
            demands.unplace(op);
            returns.insert(list.e[call].partner);
            if !only {
                entry = list.e[call].next;
                lazy = !ops[op].is_determinate();
                break;
            }
        }
    }
    Outcome::Linearizable
}
