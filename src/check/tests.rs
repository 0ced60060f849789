//! The checker must accept what is linearizable and catch what is not.

use serde_json::{Value, json};

use super::{Verdict, check};
use crate::history::{Event, EventType, Numbered, Process};

/// One operation of a hand-written history: (process, f, key, argument, call, return, type, result).
/// `ret == None` means the invocation never completed.
type Spec<'a> = (u64, &'a str, &'a str, Value, u64, Option<u64>, EventType, Value);

fn history(ops: &[Spec]) -> Vec<Numbered> {
    let mut events = Vec::new();
    for (p, f, key, arg, call, ret, kind, out) in ops {
        let key = (!key.is_empty()).then(|| key.to_string());
        let event = |kind, value: &Value, time| Event {
            index: 0,
            process: Process::Client(*p),
            kind,
            f: f.to_string(),
            key: key.clone(),
            value: value.clone(),
            error: None,
            fault: None,
            time,
        };
        events.push(event(EventType::Invoke, arg, *call));
        if let Some(ret) = ret {
            events.push(event(*kind, out, *ret));
        }
    }
    crate::history::in_time_order(events)
}

fn verdict(ops: &[Spec]) -> Verdict {
    check(&history(ops), None, &|_, _| {}).unwrap().verdict
}

use EventType::{Fail, Info, Ok};

#[test]
fn concurrent_writes_may_be_read_in_either_order() {
    for (first, second) in [("a", "b"), ("b", "a")] {
        let ops = [
            (1, "set", "x", json!("a"), 0, Some(10), Ok, json!("a")),
            (2, "set", "x", json!("b"), 0, Some(10), Ok, json!("b")),
            (3, "get", "x", json!(null), 1, Some(5), Ok, json!(first)),
            (4, "get", "x", json!(null), 11, Some(12), Ok, json!(second)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable, "read {first} then {second}");
    }
}

#[test]
fn an_indeterminate_write_may_be_seen_or_never_seen() {
    for seen in [json!("a"), json!(null)] {
        let ops = [
            (1, "set", "x", json!("a"), 0, Some(2), Info, json!(null)),
            (2, "get", "x", json!(null), 5, Some(6), Ok, seen.clone()),
            (2, "get", "x", json!(null), 7, Some(8), Ok, seen.clone()),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable, "seen {seen}");
    }
    let never_completed = [
        (1, "incr", "n", json!(null), 0, None, Ok, json!(null)),
        (2, "get", "n", json!(null), 5, Some(6), Ok, json!("1")),
    ];
    assert_eq!(verdict(&never_completed), Verdict::Linearizable);
}

#[test]
fn flushall_empties_every_key() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "y", json!("b"), 2, Some(3), Ok, json!("b")),
        (2, "flushall", "", json!(null), 4, Some(5), Ok, json!(null)),
        (1, "get", "x", json!(null), 6, Some(7), Ok, json!(null)),
        (1, "get", "y", json!(null), 8, Some(9), Ok, json!(null)),
    ];
    assert_eq!(verdict(&ops), Verdict::Linearizable);
    let mut stale = ops;
    stale[4].7 = json!("b");
    assert_eq!(verdict(&stale), Verdict::NotLinearizable);
}

#[test]
fn flushall_is_judged_as_a_delete_of_each_key_at_an_instant_of_its_own() {
    // paxos mode's FLUSHALL deletes key by key: x may go before the read of x at 3..4 and y
    // only after the read of y at 5..6, though no single instant explains both; z, written
    // while the flush runs, may survive it.
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (5, "set", "y", json!("b"), 0, Some(1), Ok, json!("b")),
        (2, "flushall", "", json!(null), 2, Some(20), Ok, json!(null)),
        (3, "get", "x", json!(null), 3, Some(4), Ok, json!(null)),
        (3, "get", "y", json!(null), 5, Some(6), Ok, json!("b")),
        (4, "set", "z", json!("c"), 7, Some(8), Ok, json!("c")),
        (3, "get", "z", json!(null), 21, Some(22), Ok, json!("c")),
    ];
    assert_eq!(verdict(&ops), Verdict::Linearizable);
    // Each key's delete still falls inside the call: y read back after the flush returned is
    // a violation, and so is x read back after its own deletion was seen.
    let mut kept = ops.to_vec();
    kept.push((3, "get", "y", json!(null), 23, Some(24), Ok, json!("b")));
    assert_eq!(verdict(&kept), Verdict::NotLinearizable);
    let mut undeleted = ops.to_vec();
    undeleted.push((3, "get", "x", json!(null), 9, Some(10), Ok, json!("a")));
    assert_eq!(verdict(&undeleted), Verdict::NotLinearizable);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("b"), 2, Some(3), Ok, json!("b")),
        (2, "get", "x", json!(null), 4, Some(5), Ok, json!("a")),
    ];
    let report = check(&history(&ops), None, &|_, _| {}).unwrap();
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let v = &report.violations[0];
    assert_eq!(v.key, "x");
    let ops_x = &report.history.keys["x"];
    assert_eq!(ops_x[v.stuck].process, 2, "the stale read is the operation that cannot be placed");
    assert_eq!(v.stale, vec![(Some(0), 1)], "the write of what it read, overwritten by the other write before it");
}

#[test]
fn a_lost_incr_is_caught() {
    let ops = [
        (1, "incr", "n", json!(null), 0, Some(1), Ok, json!(1)),
        (2, "incr", "n", json!(null), 2, Some(3), Ok, json!(1)),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
}

#[test]
fn a_read_of_a_value_never_written_is_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "get", "x", json!(null), 0, Some(5), Ok, json!("zz")),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
}

#[test]
fn readers_seeing_writes_in_opposite_orders_are_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(100), Ok, json!("a")),
        (2, "set", "x", json!("b"), 0, Some(100), Ok, json!("b")),
        (3, "get", "x", json!(null), 10, Some(20), Ok, json!("a")),
        (3, "get", "x", json!(null), 30, Some(40), Ok, json!("b")),
        (4, "get", "x", json!(null), 10, Some(20), Ok, json!("b")),
        (4, "get", "x", json!(null), 30, Some(40), Ok, json!("a")),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
}

#[test]
fn a_failed_write_that_is_later_read_is_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Fail, json!(null)),
        (2, "get", "x", json!(null), 2, Some(3), Ok, json!("a")),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
}

#[test]
fn malformed_histories_are_errors_with_line_numbers() {
    let overlapping = [
        (1, "set", "x", json!("a"), 0, Some(10), Ok, json!("a")),
        (1, "get", "x", json!(null), 5, Some(6), Ok, json!("a")),
    ];
    let err = check(&history(&overlapping), None, &|_, _| {}).unwrap_err();
    assert!(err.contains("line 2") && err.contains("still open"), "{err}");
    let unknown = [(1, "frob", "x", json!("a"), 0, Some(1), Ok, json!("a"))];
    let err = check(&history(&unknown), None, &|_, _| {}).unwrap_err();
    assert!(err.starts_with("line 1: unknown op"), "{err}");
    let lone = [(1, "cas", "x", json!("a"), 0, Some(1), Ok, json!(true))];
    let err = check(&history(&lone), None, &|_, _| {}).unwrap_err();
    assert!(err.starts_with("line 1: cas's value must be [expected, new]"), "{err}");
    let answer = [(1, "cas", "x", json!(["a", "b"]), 0, Some(1), Ok, json!("OK"))];
    let err = check(&history(&answer), None, &|_, _| {}).unwrap_err();
    assert!(err.starts_with("line 2: cas must return true or false"), "{err}");
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A linearizable history by construction: each operation takes effect at a random instant
/// inside its interval, and outputs come from applying operations in that order.
fn sequential_history(seed: u64) -> Vec<Spec<'static>> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut planned = Vec::new();
    for p in 0..4u64 {
        let mut t = rng.below(5);
        for seq in 0..12 {
            let call = t + rng.below(4);
            let ret = call + 1 + rng.below(25);
            let at = call + rng.below(ret - call + 1);
            let key = if rng.below(2) == 0 { "x" } else { "y" };
            let f = ["get", "get", "set", "del"][rng.below(4) as usize];
            planned.push((at, p, f, key, format!("{p}-{seq}"), call, ret));
            t = ret + 1;
        }
    }
    planned.sort_by_key(|o| (o.0, o.1));
    let mut state: std::collections::HashMap<&str, Option<String>> = Default::default();
    planned
        .into_iter()
        .map(|(_, p, f, key, value, call, ret)| {
            let current = state.entry(key).or_default();
            let (arg, out) = match f {
                "get" => (json!(null), json!(current.clone())),
                "set" => {
                    *current = Some(value.clone());
                    (json!(value), json!(value))
                }
                _ => (json!(null), json!(current.take().is_some() as u64)),
            };
            (p, f, key, arg, call, Some(ret), Ok, out)
        })
        .collect()
}

#[test]
fn generated_linearizable_histories_pass_and_a_stale_read_in_them_is_caught() {
    let mut mutated = 0;
    for seed in 0..300 {
        let ops = sequential_history(seed);
        assert_eq!(verdict(&ops), Verdict::Linearizable, "seed {seed}");
        // Change one read to a value that was overwritten before the read began:
        // w1 wrote v, w2 (another value) ran wholly after w1 and wholly before the read.
        let candidate = ops.iter().enumerate().find_map(|(r, read)| {
            if read.1 != "get" {
                return None;
            }
            ops.iter().find_map(|w1| {
                let later = ops.iter().any(|w2| {
                    w2.1 == "set" && w2.2 == read.2 && w2.4 > w1.5.unwrap() && w2.5.unwrap() < read.4 && w2.3 != w1.3
                });
                (w1.1 == "set" && w1.2 == read.2 && later && read.7 != w1.3).then(|| (r, w1.3.clone()))
            })
        });
        if let Some((r, old)) = candidate {
            let mut broken = ops.clone();
            broken[r].7 = old;
            assert_eq!(verdict(&broken), Verdict::NotLinearizable, "seed {seed}: stale read not caught");
            mutated += 1;
        }
    }
    assert!(mutated > 100, "the generator produced too few mutable histories ({mutated})");
}

#[test]
fn the_report_counts_failed_operations_and_reads_of_unknown_outcome_apart() {
    // One failed write, one read answered `info` (timed out) and one read that never
    // completed: the report must not call the two reads "failed (never took effect)".
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "set", "x", json!("b"), 2, Some(3), Fail, json!(null)),
        (3, "get", "x", json!(null), 4, Some(5), Info, json!(null)),
        (4, "get", "x", json!(null), 6, None, Ok, json!(null)),
        (1, "get", "x", json!(null), 7, Some(8), Ok, json!("a")),
    ];
    let report = check(&history(&ops), None, &|_, _| {}).unwrap();
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!((report.history.total_ops, report.history.failed, report.history.unknown_reads), (5, 1, 2));
    let html = super::report::render(&report, "t");
    assert!(html.contains("\"failed\":1") && html.contains("\"unknownReads\":2"), "the page's counts");
}

#[test]
fn cas_swaps_when_it_finds_its_expected_value_and_says_false_otherwise() {
    let ops = [
        (1, "cas", "x", json!(["a", "z"]), 0, Some(1), Ok, json!(false)), // absent: unequal
        (1, "set", "x", json!("a"), 2, Some(3), Ok, json!("a")),
        (2, "cas", "x", json!(["a", "b"]), 4, Some(10), Ok, json!(true)),
        (3, "cas", "x", json!(["a", "c"]), 4, Some(10), Ok, json!(false)),
        (1, "get", "x", json!(null), 11, Some(12), Ok, json!("b")),
        (1, "cas", "x", json!(["b", "d"]), 13, Some(14), Fail, json!(null)), // certainly not run
        (1, "get", "x", json!(null), 15, Some(16), Ok, json!("b")),
    ];
    assert_eq!(verdict(&ops), Verdict::Linearizable);
}

#[test]
fn a_cas_that_swapped_a_value_already_overwritten_is_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("b"), 2, Some(3), Ok, json!("b")),
        (2, "cas", "x", json!(["a", "c"]), 4, Some(5), Ok, json!(true)),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
}

#[test]
fn a_cas_that_missed_its_expected_value_while_it_was_there_is_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "cas", "x", json!(["a", "c"]), 2, Some(3), Ok, json!(false)),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    let absent = [(2, "cas", "x", json!(["a", "c"]), 2, Some(3), Ok, json!(true))];
    assert_eq!(verdict(&absent), Verdict::NotLinearizable, "an absent key never equals");
}

#[test]
fn two_cas_that_both_swapped_the_same_value_are_caught() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "cas", "x", json!(["a", "b"]), 2, Some(5), Ok, json!(true)),
        (3, "cas", "x", json!(["a", "c"]), 2, Some(5), Ok, json!(true)),
    ];
    assert_eq!(verdict(&ops), Verdict::NotLinearizable);
}

#[test]
fn getdel_and_getset_read_and_write_at_one_instant() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "getset", "x", json!("b"), 2, Some(3), Ok, json!("a")),
        (2, "getdel", "x", json!(null), 4, Some(5), Ok, json!("b")),
        (2, "get", "x", json!(null), 6, Some(7), Ok, json!(null)),
    ];
    assert_eq!(verdict(&ops), Verdict::Linearizable);
    let mut twice = ops.to_vec();
    twice.push((3, "getdel", "x", json!(null), 8, Some(9), Ok, json!("b")));
    assert_eq!(verdict(&twice), Verdict::NotLinearizable, "what GETDEL took is gone");
}

// Crashed writes (see check/reduce.rs): each test below holds a history whose verdict an
// unsound version of one rewrite would get wrong.

#[test]
fn an_observed_crashed_write_may_take_effect_up_to_its_observers_return() {
    // The crashed write of a can only come after the read of b (state b at 11..13), so it
    // falls inside its observer's interval: bounding it by the observer's call would be wrong.
    let ops = [
        (1, "set", "x", json!("b"), 0, Some(1), Ok, json!("b")),
        (2, "set", "x", json!("a"), 5, None, Info, json!(null)),
        (3, "get", "x", json!(null), 10, Some(20), Ok, json!("a")),
        (4, "get", "x", json!(null), 11, Some(13), Ok, json!("b")),
    ];
    assert_eq!(verdict(&ops), Verdict::Linearizable);
    // Bounded, it must take effect: a read after the observer returned cannot miss it.
    let mut missed = ops.to_vec();
    missed.push((4, "get", "x", json!(null), 21, Some(22), Ok, json!("b")));
    assert_eq!(verdict(&missed), Verdict::NotLinearizable);
}

#[test]
fn a_crashed_write_is_bounded_only_when_no_other_operation_could_have_written_its_value() {
    // a is written twice: the read of a is the acknowledged write's, and the crashed one
    // never happened. Were the crashed one bounded by that read, it would fall after the
    // delete, and the last read could not be nil.
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "get", "x", json!(null), 2, Some(10), Ok, json!("a")),
        (3, "del", "x", json!(null), 3, Some(4), Ok, json!(1)),
        (4, "set", "x", json!("a"), 5, None, Info, json!(null)),
        (3, "get", "x", json!(null), 11, Some(12), Ok, json!(null)),
    ];
    assert_eq!(verdict(&ops), Verdict::Linearizable);
    // The same with the value built by an APPEND: "ab" is also "a" then "b".
    let appended = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "append", "x", json!("b"), 2, Some(3), Ok, json!(2)),
        (2, "get", "x", json!(null), 4, Some(10), Ok, json!("ab")),
        (3, "del", "x", json!(null), 5, Some(6), Ok, json!(1)),
        (4, "set", "x", json!("ab"), 7, None, Info, json!(null)),
        (3, "get", "x", json!(null), 11, Some(12), Ok, json!(null)),
    ];
    assert_eq!(verdict(&appended), Verdict::Linearizable);
}

#[test]
fn an_unobserved_crashed_write_can_explain_a_cas_that_answered_false_or_a_delete_of_one() {
    // Nobody reads b, but only b explains these answers: dropping it would be wrong.
    let cas = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "set", "x", json!("b"), 2, None, Info, json!(null)),
        (3, "cas", "x", json!(["a", "c"]), 3, Some(4), Ok, json!(false)),
    ];
    assert_eq!(verdict(&cas), Verdict::Linearizable);
    let del = [
        (2, "set", "x", json!("b"), 0, None, Info, json!(null)),
        (3, "del", "x", json!(null), 3, Some(4), Ok, json!(1)),
    ];
    assert_eq!(verdict(&del), Verdict::Linearizable);
    let crashed_cas = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "cas", "x", json!(["a", "b"]), 2, None, Info, json!(null)),
        (3, "cas", "x", json!(["a", "c"]), 3, Some(4), Ok, json!(false)),
    ];
    assert_eq!(verdict(&crashed_cas), Verdict::Linearizable);
    // Without such an answer the same write changes nothing, and the stale read stays caught.
    let stale = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "set", "x", json!("b"), 2, None, Info, json!(null)),
        (1, "set", "x", json!("c"), 3, Some(4), Ok, json!("c")),
        (3, "get", "x", json!(null), 5, Some(6), Ok, json!("a")),
    ];
    assert_eq!(verdict(&stale), Verdict::NotLinearizable);
}

#[test]
fn values_nobody_can_tell_apart_still_keep_what_append_incr_and_cas_see_of_them() {
    // Nobody reads "xy", yet APPEND's answer counts its length.
    let length = [
        (1, "set", "x", json!("xy"), 0, Some(1), Ok, json!("xy")),
        (1, "append", "x", json!("c"), 2, Some(3), Ok, json!(3)),
    ];
    assert_eq!(verdict(&length), Verdict::Linearizable);
    // "ab" is never read whole, but "abc" starts with it.
    let prefix = [
        (1, "set", "x", json!("ab"), 0, Some(1), Ok, json!("ab")),
        (1, "append", "x", json!("c"), 2, Some(3), Ok, json!(3)),
        (2, "get", "x", json!(null), 4, Some(5), Ok, json!("abc")),
    ];
    assert_eq!(verdict(&prefix), Verdict::Linearizable);
    // Nobody reads "5", but INCR does.
    let integer = [
        (1, "set", "x", json!("5"), 0, Some(1), Ok, json!("5")),
        (1, "incr", "x", json!(null), 2, Some(3), Ok, json!(6)),
    ];
    assert_eq!(verdict(&integer), Verdict::Linearizable);
    // Nobody reads "a", but a CAS expects it.
    let expected = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "cas", "x", json!(["a", "b"]), 2, Some(3), Ok, json!(true)),
    ];
    assert_eq!(verdict(&expected), Verdict::Linearizable);
    let wrong = [
        (1, "set", "x", json!("xy"), 0, Some(1), Ok, json!("xy")),
        (1, "append", "x", json!("c"), 2, Some(3), Ok, json!(2)),
    ];
    assert_eq!(verdict(&wrong), Verdict::NotLinearizable);
}

/// The shape of issue 28, scaled down to what a debug build decides in seconds: many
/// clients on one key, many crashed writes, a stale read planted in the middle. With get
/// and set only, every crashed write is either observed (bounded) or unobservable (dropped);
/// with CAS and DEL, crashed writes may explain their answers and stay in the search, and
/// the stale read is found by the refutation, without the search.
#[test]
fn many_crashed_writes_are_decided_and_a_stale_read_among_them_is_found() {
    use super::synth::{Shape, crashed_history};
    for (mix, name) in [([3, 2, 0, 0, 0, 0], "get-set"), ([3, 2, 1, 0, 0, 2], "cas"), ([3, 2, 1, 1, 1, 2], "all")] {
        for stale_read in [false, true] {
            let shape =
                Shape { mix, stale_read, clients: 16, keys: 1, ops: 10_000, crashed: 60, ..Shape::contended(5) };
            let history = crashed_history(&shape);
            let report = check(&history, Some(std::time::Duration::from_secs(60)), &|_, _| {}).unwrap();
            let want = if stale_read { Verdict::NotLinearizable } else { Verdict::Linearizable };
            assert_eq!(report.verdict, want, "{name}, stale read {stale_read}, in {:?}", report.elapsed);
        }
    }
}

/// The operations of key `x`, as the refutation sees them.
fn key_x(ops: &[Spec]) -> Vec<super::Operation> {
    super::prepare(&history(ops)).unwrap().keys.remove("x").unwrap()
}

fn refuted(ops: &[Spec]) -> Option<super::refute::Stale> {
    super::refute::stale_read(&super::reduce::reduce(&key_x(ops)).ops)
}

#[test]
fn a_read_of_an_overwritten_value_is_refuted_without_searching() {
    let ops = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("b"), 2, Some(3), Ok, json!("b")),
        (2, "get", "x", json!(null), 4, Some(5), Ok, json!("a")),
    ];
    let stale = refuted(&ops).expect("the read is stale");
    assert_eq!((stale.reader, stale.broken), (2, vec![(Some(0), 1)]));
    let report = check(&history(&ops), None, &|_, _| {}).unwrap();
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    assert_eq!(report.violations[0].stale, vec![(Some(0), 1)]);
    assert_eq!(report.violations[0].window, vec![0, 1, 2]);
    // A read of nil after an acknowledged write: the key's initial absence is its producer.
    let nil = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (2, "get", "x", json!(null), 2, Some(3), Ok, json!(null)),
    ];
    assert_eq!(refuted(&nil).map(|s| s.broken), Some(vec![(None, 0)]));
    assert_eq!(verdict(&nil), Verdict::NotLinearizable);
}

/// Each history below is linearizable, and a refutation that cut one corner of its rule
/// would call it stale: trusting the first writer of a value only, ignoring a crashed
/// writer, an APPEND that builds the value, or a DEL that makes the key absent again,
/// counting an operation that leaves the value alone as a change, or one concurrent with
/// the read as before it.
#[test]
fn the_refutation_calls_a_read_stale_only_when_no_producer_of_its_value_is_left() {
    let second_writer = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("b"), 2, Some(3), Ok, json!("b")),
        (3, "set", "x", json!("a"), 3, Some(10), Ok, json!("a")),
        (2, "get", "x", json!(null), 4, Some(5), Ok, json!("a")),
    ];
    let crashed_writer = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("b"), 2, Some(3), Ok, json!("b")),
        (3, "set", "x", json!("a"), 1, Some(2), Info, json!(null)),
        (2, "get", "x", json!(null), 4, Some(5), Ok, json!("a")),
    ];
    let append_builds_it = [
        (1, "set", "x", json!("ab"), 0, Some(1), Ok, json!("ab")),
        (1, "set", "x", json!("a"), 2, Some(3), Ok, json!("a")),
        (3, "append", "x", json!("b"), 4, Some(5), Ok, json!(2)),
        (2, "get", "x", json!(null), 4, Some(6), Ok, json!("ab")),
    ];
    let delete_again = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (3, "del", "x", json!(null), 2, Some(5), Ok, json!(1)),
        (2, "get", "x", json!(null), 3, Some(4), Ok, json!(null)),
    ];
    let value_left_alone = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "get", "x", json!(null), 2, Some(3), Ok, json!("a")),
        (3, "cas", "x", json!(["z", "c"]), 2, Some(3), Ok, json!(false)),
        (2, "get", "x", json!(null), 4, Some(5), Ok, json!("a")),
    ];
    let concurrent_change = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("b"), 2, Some(5), Ok, json!("b")),
        (2, "get", "x", json!(null), 4, Some(6), Ok, json!("a")),
    ];
    for (name, ops) in [
        ("second writer", &second_writer[..]),
        ("crashed writer", &crashed_writer[..]),
        ("append builds it", &append_builds_it[..]),
        ("delete again", &delete_again[..]),
        ("value left alone", &value_left_alone[..]),
        ("concurrent change", &concurrent_change[..]),
    ] {
        assert_eq!(refuted(ops), None, "{name}");
        assert_eq!(verdict(ops), Verdict::Linearizable, "{name}");
    }
}

/// Whatever the refutation calls stale, the exhaustive search must find wrong too: small
/// histories with crashed writes, CAS, DEL, INCR and APPEND, some with a read tampered with.
#[test]
fn the_refutation_never_contradicts_the_search() {
    use super::synth::{Shape, crashed_history};
    let (mut refuted, mut wrong) = (0, 0);
    for seed in 0..400 {
        let mix = if seed % 2 == 0 { [3, 2, 1, 0, 0, 3] } else { [3, 2, 1, 1, 1, 2] };
        let shape = Shape {
            clients: 4,
            keys: 1,
            ops: 24,
            mix,
            crashed: 4,
            stale_read: false,
            latency: 50_000,
            think: 20_000,
            ..Shape::contended(seed)
        };
        let mut history = crashed_history(&shape);
        // Tamper with one read: make it answer what another operation wrote.
        let written: Vec<Value> = history
            .iter()
            .filter(|n| n.event.f == "set" && n.event.kind == EventType::Invoke)
            .map(|n| n.event.value.clone())
            .collect();
        if seed % 3 != 0 && !written.is_empty() {
            let reads: Vec<usize> =
                (0..history.len()).filter(|&i| history[i].event.f == "get" && history[i].event.kind == Ok).collect();
            if !reads.is_empty() {
                let r = reads[seed as usize % reads.len()];
                history[r].event.value = written[(seed as usize / 3) % written.len()].clone();
            }
        }
        let ops = super::prepare(&history).unwrap().keys.remove("k0").unwrap();
        let reduced = super::reduce::reduce(&ops);
        let stale = super::refute::stale_read(&reduced.ops);
        let searched = super::search::check_key(&reduced.ops, None, &Default::default());
        if let Some(stale) = stale {
            refuted += 1;
            assert!(
                matches!(searched, super::Outcome::Violation { .. }),
                "seed {seed}: {stale:?} but the search found an order"
            );
        }
        wrong += matches!(searched, super::Outcome::Violation { .. }) as usize;
    }
    assert!(refuted > 50, "the tampering must give the refutation work: {refuted} refuted of {wrong} wrong");
}

/// The search places an operation that only reads first and tries nothing else there; each
/// history below is judged wrongly by a version that does so for an operation that changes
/// the state (the first SET would go alone), for one that leaves only the current state alone
/// (the second SET of "a" must come after "b"), or for one not yet callable (the read of nil
/// would go before the write that returned before it was called).
#[test]
fn an_operation_that_changes_nothing_goes_first_only_when_callable() {
    let read_old_value_while_writing = [
        (1, "set", "x", json!("a"), 0, Some(10), Ok, json!("a")),
        (2, "get", "x", json!(null), 0, Some(10), Ok, json!(null)),
        (2, "get", "x", json!(null), 11, Some(12), Ok, json!("a")),
    ];
    let searched = |ops: &[Spec]| super::search::check_key(&key_x(ops), None, &Default::default());
    assert_eq!(searched(&read_old_value_while_writing), super::Outcome::Linearizable);
    let same_value_written_later = [
        (1, "set", "x", json!("a"), 0, Some(1), Ok, json!("a")),
        (1, "set", "x", json!("a"), 2, Some(20), Ok, json!("a")),
        (2, "set", "x", json!("b"), 3, Some(4), Ok, json!("b")),
        (2, "get", "x", json!(null), 5, Some(6), Ok, json!("a")),
    ];
    assert_eq!(searched(&same_value_written_later), super::Outcome::Linearizable);
    let read_after_write_returned = [
        (1, "set", "x", json!("a"), 0, Some(2), Ok, json!("a")),
        (2, "get", "x", json!(null), 5, Some(6), Ok, json!(null)),
    ];
    assert!(matches!(searched(&read_after_write_returned), super::Outcome::Violation { .. }));
}

/// Of identical determinate operations the search tries the one that returns first, if it is
/// callable. The first history is judged wrongly by a version that tries the later-returning
/// one (it must go after the other SET, so `m` must go first); the second by one that
/// prefers the earlier-returning twin even when it is not callable yet.
#[test]
fn of_identical_operations_the_one_that_returns_first_goes_first() {
    let earlier_one_first = [
        (1, "set", "x", json!("u"), 0, Some(10), Ok, json!("u")),
        (2, "set", "x", json!("u"), 0, Some(2), Ok, json!("u")),
        (2, "set", "x", json!("v"), 3, Some(4), Ok, json!("v")),
        (3, "get", "x", json!(null), 5, Some(6), Ok, json!("u")),
    ];
    let earlier_one_not_callable = [
        (1, "set", "x", json!("u"), 0, Some(10), Ok, json!("u")),
        (2, "get", "x", json!(null), 1, Some(3), Ok, json!("u")),
        (2, "set", "x", json!("u"), 5, Some(6), Ok, json!("u")),
    ];
    for (name, ops) in [("earlier one first", &earlier_one_first[..]), ("not callable", &earlier_one_not_callable[..])]
    {
        assert_eq!(refuted(ops), None, "{name}: the search, not the refutation, decides it");
        assert_eq!(verdict(ops), Verdict::Linearizable, "{name}");
    }
}

/// The contention of issue 28 (64 clients on 4 keys, about 16 operations of a key in flight,
/// no think time), scaled down for a debug build: decided, linearizable or not.
#[test]
fn sixteen_operations_of_a_key_in_flight_are_decided() {
    use super::synth::{Shape, crashed_history};
    for (mix, name) in [([3, 2, 0, 0, 0, 0], "get-set"), ([3, 2, 1, 0, 0, 2], "cas"), ([3, 2, 1, 1, 1, 2], "all")] {
        for stale_read in [false, true] {
            let shape = Shape {
                mix,
                stale_read,
                ops: 8_000,
                crashed: 20,
                latency: 50_000,
                think: 2_000,
                ..Shape::contended(9)
            };
            let report = check(&crashed_history(&shape), Some(std::time::Duration::from_secs(60)), &|_, _| {}).unwrap();
            let want = if stale_read { Verdict::NotLinearizable } else { Verdict::Linearizable };
            assert_eq!(report.verdict, want, "{name}, stale read {stale_read}, in {:?}", report.elapsed);
        }
    }
}

/// The shape of the hardest history — every operation, 64 clients on 4 keys, about
/// 16 operations of a key in flight, crashed writes at the rate — at 30k operations,
/// linearizable: decided, not left unknown. (The search is the whole cost here. In a debug
/// build on the 2-core machine at load average 20 it takes about 11 s, against a limit of
/// 120 s so that a slower machine does not fail it; the full 100k operations take about 25 s.)
#[test]
fn every_operation_sixteen_in_flight_at_scale_is_decided() {
    use super::synth::{Shape, crashed_history};
    let shape = Shape {
        mix: [3, 2, 1, 1, 1, 2],
        stale_read: false,
        ops: 30_000,
        crashed: 72,
        latency: 50_000,
        think: 2_000,
        ..Shape::contended(28)
    };
    let report = check(&crashed_history(&shape), Some(std::time::Duration::from_secs(120)), &|_, _| {}).unwrap();
    assert_eq!(report.verdict, Verdict::Linearizable, "in {:?}", report.elapsed);
}

/// The zones decide a key of GETs and SETs of distinct values without searching; on small
/// random histories of them (concurrent, with crashed writes, some reads tampered with) they
/// must agree with the exhaustive search every time, in both directions.
#[test]
fn the_zones_agree_with_the_search_on_keys_of_gets_and_sets() {
    use super::synth::{Shape, crashed_history};
    use super::zones::{Zones, decide};
    let (mut yes, mut no) = (0, 0);
    for seed in 0..1500 {
        let shape = Shape {
            clients: 4,
            keys: 1,
            ops: 20,
            mix: [3, 2, 0, 0, 0, 0],
            crashed: 3,
            stale_read: false,
            latency: 50_000,
            think: 10_000,
            ..Shape::contended(seed)
        };
        let mut history = crashed_history(&shape);
        let written: Vec<Value> = history
            .iter()
            .filter(|n| n.event.f == "set" && n.event.kind == EventType::Invoke)
            .map(|n| n.event.value.clone())
            .chain([Value::Null])
            .collect();
        let reads: Vec<usize> =
            (0..history.len()).filter(|&i| history[i].event.f == "get" && history[i].event.kind == Ok).collect();
        if seed % 2 == 1 && !reads.is_empty() {
            let r = reads[(seed as usize / 2) % reads.len()];
            history[r].event.value = written[(seed as usize / 7) % written.len()].clone();
        }
        let ops = super::prepare(&history).unwrap().keys.remove("k0").unwrap_or_default();
        let searched = super::search::check_key(&super::reduce::reduce(&ops).ops, None, &Default::default());
        let zones = decide(&ops);
        assert_ne!(zones, Zones::NotApplicable, "seed {seed}");
        assert_eq!(
            zones == Zones::Linearizable,
            searched == super::Outcome::Linearizable,
            "seed {seed}: zones {zones:?}, search {searched:?}"
        );
        if zones == Zones::Linearizable { yes += 1 } else { no += 1 }
    }
    assert!(yes > 300 && no > 300, "both verdicts must be exercised: {yes} yes, {no} no");
}

/// The rules the search prunes and orders by (demanded values that can no longer come back
/// end a configuration; crashed operations are not placed where they change nothing, and are
/// tried after the determinate ones) must never change a verdict: on small random histories
/// with every operation, crashed writes and some answers tampered with, the search with them
/// and the search without them agree every time, in both directions.
#[test]
fn the_search_rules_never_change_a_verdict() {
    use super::synth::{Shape, crashed_history};
    let (mut yes, mut no) = (0, 0);
    for seed in 0..600 {
        let shape = Shape {
            clients: 4,
            keys: 1,
            ops: 22,
            mix: [3, 2, 1, 1, 1, 2],
            crashed: 5,
            stale_read: false,
            latency: 50_000,
            think: 10_000,
            ..Shape::contended(seed)
        };
        let mut history = crashed_history(&shape);
        // Tamper with one answer: a read answers another value, or an APPEND or INCR
        // another number.
        let answers: Vec<usize> = (0..history.len())
            .filter(|&i| {
                history[i].event.kind == Ok && matches!(history[i].event.f.as_str(), "get" | "append" | "incr")
            })
            .collect();
        let written: Vec<Value> = history
            .iter()
            .filter(|n| n.event.kind == EventType::Invoke && matches!(n.event.f.as_str(), "set" | "append"))
            .map(|n| n.event.value.clone())
            .chain([Value::Null])
            .collect();
        if seed % 2 == 1 && !answers.is_empty() {
            let a = answers[(seed as usize / 2) % answers.len()];
            let e = &mut history[a].event;
            e.value = match e.f.as_str() {
                "get" => written[(seed as usize / 5) % written.len()].clone(),
                _ => json!(e.value.as_i64().unwrap_or(0) + 1 - (seed as i64 / 2) % 3),
            };
        }
        let ops = super::prepare(&history).unwrap().keys.remove("k0").unwrap_or_default();
        let reduced = super::reduce::reduce(&ops).ops;
        let stop = Default::default();
        let pruned = super::search::search(&reduced, None, &stop, true);
        let plain = super::search::search(&reduced, None, &stop, false);
        assert_eq!(
            pruned == super::Outcome::Linearizable,
            plain == super::Outcome::Linearizable,
            "seed {seed}: with the rules {pruned:?}, without {plain:?}"
        );
        if plain == super::Outcome::Linearizable { yes += 1 } else { no += 1 }
    }
    assert!(yes > 150 && no > 150, "both verdicts must be exercised: {yes} yes, {no} no");
}
