//! The dynamo checker on small hand-built histories: each rule passes a correct history and
//! catches the history a broken store would leave.

use serde_json::{Value, json};

use super::*;
use crate::history::{Event, in_time_order};

const A: &str = "00000000000000aa";
const B: &str = "00000000000000bb";

/// Builds histories event by event, at increasing times.
#[derive(Default)]
struct H {
    events: Vec<Event>,
    t: u64,
}

impl H {
    fn push(&mut self, process: Process, kind: EventType, f: &str, key: Option<&str>, value: Value) -> &mut Self {
        self.t += 10;
        self.events.push(Event {
            index: 0,
            process,
            kind,
            f: f.into(),
            key: key.map(str::to_owned),
            value,
            error: None,
            fault: None,
            time: self.t,
        });
        self
    }

    fn config(&mut self, n: usize, r: usize, w: usize) -> &mut Self {
        self.push(
            Process::Nemesis,
            EventType::Info,
            "config",
            None,
            json!({"mode": "dynamo", "replicas": n, "r": r, "w": w}),
        )
    }

    fn invoke_vset(&mut self, c: u64, value: &str, context: Value) -> &mut Self {
        self.push(Process::Client(c), EventType::Invoke, "vset", Some("k"), json!({"value": value, "context": context}))
    }

    fn complete(&mut self, c: u64, kind: EventType, f: &str, value: Value) -> &mut Self {
        self.push(Process::Client(c), kind, f, Some("k"), value)
    }

    /// An acknowledged VSET: its dot and the new context.
    fn vset(&mut self, c: u64, value: &str, context: Value, dot: &str) -> &mut Self {
        self.invoke_vset(c, value, context.clone());
        let mut new = context;
        let (actor, counter) = dot.split_once(':').unwrap();
        new[actor] = json!(counter.parse::<u64>().unwrap());
        self.complete(c, EventType::Ok, "vset", json!({"dot": dot, "context": new}))
    }

    fn read(
        &mut self,
        c: u64,
        f: &str,
        node: Option<u64>,
        context: Value,
        siblings: &[(&str, Option<&str>)],
    ) -> &mut Self {
        let invoke = node.map_or(Value::Null, |n| json!({"node": n}));
        self.push(Process::Client(c), EventType::Invoke, f, Some("k"), invoke);
        let siblings: Vec<Value> = siblings.iter().map(|(d, v)| json!({"dot": d, "value": v})).collect();
        let mut value = json!({"context": context, "siblings": siblings});
        if let Some(n) = node {
            value["node"] = json!(n);
        }
        self.complete(c, EventType::Ok, f, value)
    }

    fn vget(&mut self, c: u64, context: Value, siblings: &[(&str, Option<&str>)]) -> &mut Self {
        self.read(c, "vget", None, context, siblings)
    }

    /// Settled replicas on nodes 1-3, all the same.
    fn settled(&mut self, context: Value, siblings: &[(&str, Option<&str>)]) -> &mut Self {
        for n in 1..=3 {
            self.read(0, "local", Some(n), context.clone(), siblings);
        }
        self
    }

    fn check(&self) -> Report {
        check(in_time_order(self.events.clone()).into_iter().map(Ok), None).unwrap()
    }
}

fn dot(actor: &str, n: u64) -> String {
    format!("{actor}:{n}")
}

fn kinds(report: &Report) -> Vec<Kind> {
    report.counts.keys().copied().collect()
}

/// Two blind writes through two nodes, a read that sees both as siblings, a write that merges
/// them under the read's context, and settled replicas that agree.
fn siblings_then_merge() -> H {
    let mut h = H::default();
    let (a1, b1, a3) = (dot(A, 1), dot(B, 1), dot(A, 3));
    h.config(3, 2, 2)
        .vset(1, "1-1", json!({}), &a1)
        .vset(2, "2-1", json!({}), &b1)
        .vget(3, json!({A: 1, B: 1}), &[(&a1, Some("1-1")), (&b1, Some("2-1"))])
        .vset(3, "3-1", json!({A: 1, B: 1}), &a3)
        .vget(1, json!({A: 3, B: 1}), &[(&a3, Some("3-1"))])
        .settled(json!({A: 3, B: 1}), &[(&a3, Some("3-1"))]);
    h
}

#[test]
fn concurrent_writes_kept_as_siblings_and_merged_by_context_are_consistent() {
    let report = siblings_then_merge().check();
    assert!(report.ok(), "{}", verdict_text(&report));
    assert!(report.settled());
    assert!(verdict_text(&report).starts_with("consistent: "), "{}", verdict_text(&report));
    assert!(verdict_text(&report).contains("read-your-writes checked"));
}

#[test]
fn a_concurrent_write_dropped_by_last_writer_wins_is_a_lost_write() {
    let mut h = H::default();
    let (a1, b1) = (dot(A, 1), dot(B, 1));
    // Both blind writes are known to the read's context, but only the later one is shown.
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1).vset(2, "2-1", json!({}), &b1).vget(
        3,
        json!({A: 1, B: 1}),
        &[(&b1, Some("2-1"))],
    );
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::LostWrite], "{}", verdict_text(&report));
    assert!(report.violations[0].message.contains("1-1"), "{}", report.violations[0].message);
    assert!(verdict_text(&report).starts_with("NOT consistent"));
}

#[test]
fn a_write_some_unknown_write_may_have_superseded_is_not_called_lost() {
    let mut h = H::default();
    let a1 = dot(A, 1);
    h.config(3, 2, 2)
        .vset(1, "1-1", json!({}), &a1)
        .vget(2, json!({A: 1}), &[(&a1, Some("1-1"))])
        .invoke_vset(2, "2-1", json!({A: 1}))
        .complete(2, EventType::Info, "vset", Value::Null);
    // The timed-out write may have happened (under a dot the checker never saw, which the
    // read's context may cover) and superseded 1-1: a missing 1-1 is no proof of a loss.
    h.vget(3, json!({A: 1, B: 7}), &[]);
    let report = h.check();
    assert!(report.counts.is_empty(), "{}", verdict_text(&report));
}

#[test]
fn a_failed_write_that_shows_up_and_a_superseded_one_that_lingers_are_zombies() {
    let mut h = H::default();
    let (a1, a2) = (dot(A, 1), dot(A, 2));
    h.config(3, 2, 2).invoke_vset(1, "1-1", json!({})).complete(1, EventType::Fail, "vset", Value::Null).vget(
        2,
        json!({A: 1}),
        &[(&a1, Some("1-1"))],
    );
    assert_eq!(kinds(&h.check()), vec![Kind::Zombie]);

    let mut h = H::default();
    h.config(3, 2, 2)
        .vset(1, "1-1", json!({}), &a1)
        .vget(2, json!({A: 1}), &[(&a1, Some("1-1"))])
        .vset(2, "2-1", json!({A: 1}), &a2)
        .vget(3, json!({A: 2}), &[(&a1, Some("1-1")), (&a2, Some("2-1"))]);
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::Zombie], "{}", verdict_text(&report));
    assert!(report.violations[0].message.contains("whose context had seen it"));
}

#[test]
fn two_writes_given_one_dot_are_caught() {
    // Per-server plain clocks: the same context through the same node gives the same "dot".
    let mut h = H::default();
    let a1 = dot(A, 1);
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1).vset(2, "2-1", json!({}), &a1).vget(
        3,
        json!({A: 1}),
        &[(&a1, Some("2-1"))],
    );
    let report = h.check();
    assert!(kinds(&report).contains(&Kind::DotReused), "{}", verdict_text(&report));
}

#[test]
fn a_quorum_read_that_misses_an_earlier_acknowledged_write_is_stale_only_when_quorums_intersect() {
    let history = |r: usize, w: usize| {
        let mut h = H::default();
        let a1 = dot(A, 1);
        h.config(3, r, w).vset(1, "1-1", json!({}), &a1).vget(2, json!({}), &[]);
        h.check()
    };
    assert_eq!(kinds(&history(2, 2)), vec![Kind::StaleRead]);
    let sloppy = history(1, 1);
    assert!(sloppy.counts.is_empty(), "R + W <= N promises no read-your-writes: {}", verdict_text(&sloppy));
    assert!(verdict_text(&sloppy).contains("read-your-writes not checked"));
}

#[test]
fn settled_replicas_that_differ_or_forgot_an_acknowledged_write_are_caught() {
    let mut h = H::default();
    let a1 = dot(A, 1);
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1);
    h.read(0, "local", Some(1), json!({A: 1}), &[(&a1, Some("1-1"))]);
    h.read(0, "local", Some(2), json!({}), &[]);
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::LostWrite, Kind::NotConverged], "{}", verdict_text(&report));
}

#[test]
fn a_history_without_settled_reads_says_convergence_was_not_checked() {
    let mut h = H::default();
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &dot(A, 1));
    let report = h.check();
    assert!(!report.ok() && !report.settled());
    assert_eq!(report.verdict(), Verdict::NotChecked);
    assert!(verdict_text(&report).contains("convergence not checked"));
}

#[test]
fn a_run_whose_settled_reads_all_failed_is_not_checked_rather_than_passed() {
    let mut h = H::default();
    let a1 = dot(A, 1);
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1).vget(2, json!({A: 1}), &[(&a1, Some("1-1"))]);
    for node in 1..=3 {
        h.push(Process::Client(0), EventType::Invoke, "local", Some("k"), json!({"node": node}));
        h.push(Process::Client(0), EventType::Fail, "local", Some("k"), Value::Null);
    }
    let report = h.check();
    assert!(report.counts.is_empty(), "{}", verdict_text(&report));
    assert!(!report.ok(), "unchecked is not passed: {}", verdict_text(&report));
    assert_eq!(report.verdict(), Verdict::NotChecked);
    assert!(verdict_text(&report).starts_with("not checked: "), "{}", verdict_text(&report));
    assert_eq!(report.unsettled, vec!["k".to_string()]);
    assert_eq!(verdict_json(&report)["verdict"], "not checked");
}

#[test]
fn plain_writes_are_refused_and_dynamo_histories_are_recognised() {
    let mut h = H::default();
    h.push(Process::Client(1), EventType::Invoke, "set", Some("k"), json!("1-1"));
    let err = check(in_time_order(h.events.clone()).into_iter().map(Ok), None).unwrap_err();
    assert!(err.contains("use vset and vdel"), "{err}");
    let events = in_time_order(siblings_then_merge().events);
    assert!(is_dynamo_history(&events));
    let json = verdict_json(&siblings_then_merge().check());
    assert_eq!(json["consistent"], true);
}

#[test]
fn a_write_reply_whose_context_claims_siblings_its_client_never_saw_is_caught() {
    // B's VSET answered the whole object's context (A's dot too): a write under it would
    // supersede A, which B never saw.
    let mut h = H::default();
    let (a1, b1) = (dot(A, 1), dot(B, 1));
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1).invoke_vset(2, "2-1", json!({})).complete(
        2,
        EventType::Ok,
        "vset",
        json!({"dot": b1, "context": {A: 1, B: 1}}),
    );
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::InflatedContext], "{}", verdict_text(&report));
}

#[test]
fn a_settled_replica_that_could_not_be_read_leaves_convergence_unchecked_not_violated() {
    let mut h = H::default();
    let a1 = dot(A, 1);
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1);
    h.read(0, "local", Some(1), json!({A: 1}), &[(&a1, Some("1-1"))]);
    h.push(Process::Client(0), EventType::Invoke, "local", Some("k"), json!({"node": 2}));
    h.complete(0, EventType::Fail, "local", Value::Null);
    let report = h.check();
    assert!(report.counts.is_empty(), "{}", verdict_text(&report));
    assert_eq!(report.verdict(), Verdict::NotChecked, "unchecked is not passed");
    assert_eq!(report.unsettled, vec!["k".to_string()]);
    assert!(verdict_text(&report).contains("convergence not checked for 1 key"), "{}", verdict_text(&report));
}

#[test]
fn a_write_invoked_after_a_read_cannot_excuse_what_the_read_lost() {
    let mut h = H::default();
    let (a1, b1) = (dot(A, 1), dot(B, 1));
    h.config(3, 1, 1).vset(1, "1-1", json!({}), &a1).vset(2, "2-1", json!({}), &b1).vget(
        3,
        json!({A: 1, B: 1}),
        &[(&b1, Some("2-1"))],
    );
    // Later, a write that had seen 1-1 times out: it cannot have superseded 1-1 before the read.
    h.vget(4, json!({A: 1}), &[(&a1, Some("1-1"))]);
    h.invoke_vset(4, "4-1", json!({A: 1})).complete(4, EventType::Info, "vset", Value::Null);
    assert_eq!(kinds(&h.check()), vec![Kind::LostWrite]);
}

#[test]
fn a_sibling_outside_its_own_context_or_from_a_later_write_is_a_zombie() {
    let mut h = H::default();
    let a1 = dot(A, 1);
    h.config(3, 2, 2).vget(1, json!({}), &[(&a1, Some("2-1"))]).vset(2, "2-1", json!({}), &a1);
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::Zombie], "{}", verdict_text(&report));
    assert_eq!(report.counts[&Kind::Zombie], 2, "{}", verdict_text(&report));
}

#[test]
fn a_lost_write_is_counted_once_however_many_reads_show_it_lost() {
    let mut h = H::default();
    let (a1, b1) = (dot(A, 1), dot(B, 1));
    h.config(3, 2, 2).vset(1, "1-1", json!({}), &a1).vset(2, "2-1", json!({}), &b1);
    for c in 3..8 {
        h.vget(c, json!({A: 1, B: 1}), &[(&b1, Some("2-1"))]);
    }
    let report = h.check();
    assert_eq!(report.counts[&Kind::LostWrite], 1, "{}", verdict_text(&report));
    assert!(verdict_text(&report).contains("1 lost write\n"), "{}", verdict_text(&report));
}

#[test]
fn the_html_page_of_a_violation_on_a_key_with_only_plain_reads_renders() {
    let mut h = siblings_then_merge();
    h.push(Process::Client(9), EventType::Invoke, "get", Some("other"), Value::Null);
    h.push(Process::Client(9), EventType::Ok, "get", Some("other"), json!("phantom"));
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::Zombie]);
    let page = crate::check::report::render_dynamo(&report, "t");
    assert!(page.contains(r#""verdict":"NOT consistent""#));
    assert!(page.contains(r#"<td class="bad"><b>NOT consistent</b>"#), "the summary gives the verdict");
    let ops = report.history.samples.len();
    assert_eq!(ops, report.history.total_ops, "every operation is a sample, plain GETs too");
    assert!(page.contains(&format!(r#"<b data-count="ops">{ops}</b>"#)), "the summary counts them");
    assert!(page.contains(r#"id="latency-plot""#) && page.contains(r#"id="throughput-plot""#));
}

#[test]
fn a_write_under_a_context_that_covers_a_sibling_its_client_never_saw_loses_it() {
    // A and B write blind through one node (one actor): dots 5 and 6. B's reply context
    // claims dot 6, which covers 5 too; B's next write under it supersedes A's, which B
    // never saw. The context sent covers A; what B had seen does not: a lost write.
    let mut h = H::default();
    let (a5, a6, a7) = (dot(A, 5), dot(A, 6), dot(A, 7));
    h.config(3, 2, 2)
        .vset(1, "1-1", json!({}), &a5)
        .vset(2, "2-1", json!({}), &a6)
        .vset(2, "2-2", json!({A: 6}), &a7)
        .vget(3, json!({A: 7}), &[(&a7, Some("2-2"))]);
    let report = h.check();
    assert_eq!(kinds(&report), vec![Kind::LostWrite], "{}", verdict_text(&report));
    assert!(report.violations[0].message.contains("1-1"), "{}", report.violations[0].message);
    // The same through a client that read both first is a legitimate merge.
    let mut h = H::default();
    h.config(3, 2, 2)
        .vset(1, "1-1", json!({}), &a5)
        .vset(2, "2-1", json!({}), &a6)
        .vget(2, json!({A: 6}), &[(&a5, Some("1-1")), (&a6, Some("2-1"))])
        .vset(2, "2-2", json!({A: 6}), &a7)
        .vget(3, json!({A: 7}), &[(&a7, Some("2-2"))]);
    let report = h.check();
    assert!(report.counts.is_empty(), "{}", verdict_text(&report));
}
