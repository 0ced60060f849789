//! What a workload run did: counts per operation and outcome, and latencies.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::Action;
use crate::history::{EventType, Op};

/// Outcome counts of one operation type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub by_op: BTreeMap<Action, Counts>,
    /// Latencies of completed requests, in nanoseconds, per operation type.
    latencies: BTreeMap<Action, Vec<u64>>,
    /// Why operations failed or were left in doubt: (operation, reason) → count.
    reasons: BTreeMap<(Action, String), u64>,
    /// Replies the command never gives ([`super::Answer::Unexpected`]): each fails the run.
    pub unexpected: u64,
    /// The first few of them, for the report.
    unexpected_shown: Vec<String>,
    pub elapsed: Duration,
}

/// The unexpected replies a summary quotes.
const UNEXPECTED_SHOWN: usize = 5;

/// The reasons shown in the summary.
const REASONS_SHOWN: usize = 8;

/// The part of an error text that names its cause: the error code and message without the
/// details that differ between occurrences (a nested cause after ": ", a parenthesis), cut to
/// one short line. A colon followed by a number is a label, not a cause ("replicas up: 1 of
/// the key's 3, W is 2; nothing written"): the counts are the reason, and stay.
fn reason(error: &str) -> String {
    let line = error.lines().next().unwrap_or("").trim();
    let cause =
        line.match_indices(": ").map(|(i, _)| i).find(|&i| !line[i + 2..].starts_with(|c: char| c.is_ascii_digit()));
    let cut = [cause, line.find(" (")].into_iter().flatten().min().map_or(line, |i| &line[..i]).trim_end();
    cut.chars().take(REASON_CHARS).collect()
}

/// The longest reason the summary shows (a line of its table).
const REASON_CHARS: usize = 100;

/// What a reason means, for the reasons every run of the default mix meets by design.
fn explain(op: Action, reason: &str) -> Option<&'static str> {
    match op {
        Action::Op(Op::Incr) if reason.contains("not an integer") => Some(
            "by design: the mix also SETs and APPENDs strings to the keys it INCRs, and Redis refuses INCR of a non-integer the same way (nothing changes)",
        ),
        _ if reason.starts_with("TRYAGAIN") => {
            Some("definitely not applied (a write conflict after retries, or no quorum during a fault)")
        }
        _ if reason.starts_with("connect to") => Some("never sent: no connection to the node (down or restarting)"),
        _ if reason.starts_with("UNCERTAIN")
            || reason == "timeout"
            || reason.contains("connection closed")
            || reason.contains("IO Error") =>
        {
            Some("indeterminate: may or may not have happened; the checker considers both")
        }
        _ => None,
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Summary {
    /// Counts one completion; `error` is the reason of a failed or indeterminate one.
    pub fn record(&mut self, op: impl Into<Action>, kind: EventType, latency: Option<Duration>, error: Option<&str>) {
        let op = op.into();
        if let Some(error) = error.filter(|_| matches!(kind, EventType::Fail | EventType::Info)) {
            *self.reasons.entry((op, reason(error))).or_default() += 1;
        }
        let counts = self.by_op.entry(op).or_default();
        match kind {
            EventType::Ok => counts.ok += 1,
            EventType::Fail => counts.fail += 1,
            EventType::Info => counts.info += 1,
            EventType::Invoke => {}
        }
        if let Some(l) = latency {
            self.latencies.entry(op).or_default().push(l.as_nanos() as u64);
        }
    }

    /// Counts a reply the command never gives (the completion itself is counted by
    /// [`Self::record`], as `info`).
    pub fn unexpected(&mut self, op: impl Into<Action>, why: &str) {
        let op = op.into();
        self.unexpected += 1;
        if self.unexpected_shown.len() < UNEXPECTED_SHOWN {
            self.unexpected_shown.push(format!("{}: {why}", op.as_str()));
        }
    }

    /// True when the server gave some reply its command never gives: the run failed.
    pub fn failed(&self) -> bool {
        self.unexpected > 0
    }

    /// Adds another client's totals.
    pub fn merge(&mut self, other: Summary) {
        self.unexpected += other.unexpected;
        for why in other.unexpected_shown {
            if self.unexpected_shown.len() < UNEXPECTED_SHOWN {
                self.unexpected_shown.push(why);
            }
        }
        for (op, c) in other.by_op {
            let mine = self.by_op.entry(op).or_default();
            mine.ok += c.ok;
            mine.fail += c.fail;
            mine.info += c.info;
        }
        for (op, l) in other.latencies {
            self.latencies.entry(op).or_default().extend(l);
        }
        for (key, n) in other.reasons {
            *self.reasons.entry(key).or_default() += n;
        }
    }

    /// The commonest reasons for failed and indeterminate operations, most frequent first,
    /// and how many operations the reasons left out account for.
    fn top_reasons(&self) -> (Vec<(Action, &str, u64)>, u64) {
        let mut all: Vec<(Action, &str, u64)> = self.reasons.iter().map(|((op, r), n)| (*op, r.as_str(), *n)).collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let rest = all.iter().skip(REASONS_SHOWN).map(|r| r.2).sum();
        all.truncate(REASONS_SHOWN);
        (all, rest)
    }

    /// All counts added up.
    pub fn total(&self) -> Counts {
        self.by_op.values().fold(Counts::default(), |a, c| Counts {
            ok: a.ok + c.ok,
            fail: a.fail + c.fail,
            info: a.info + c.info,
        })
    }

    /// GETs whose outcome is unknown (counted in `info`): a read changes nothing, so the
    /// checker leaves them out, and its HTML report counts them with the operations it did
    /// not check.
    pub fn info_reads(&self) -> u64 {
        self.by_op.get(&Action::Op(Op::Get)).map_or(0, |c| c.info)
    }

    /// Completed operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        let t = self.total();
        (t.ok + t.fail + t.info) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn sorted(&self, op: Option<Action>) -> Vec<u64> {
        let mut all: Vec<u64> = match op {
            Some(op) => self.latencies.get(&op).cloned().unwrap_or_default(),
            None => self.latencies.values().flatten().copied().collect(),
        };
        all.sort_unstable();
        all
    }

    /// A table for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let t = self.total();
        let _ = writeln!(
            out,
            "{} operations in {:.1}s: {:.1} ops/s ({} ok, {} fail, {} info)",
            t.ok + t.fail + t.info,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            t.ok,
            t.fail,
            t.info
        );
        let _ = writeln!(
            out,
            "{:<9}{:>8}{:>8}{:>8}{:>10}{:>10}{:>10}",
            "op", "ok", "fail", "info", "p50 ms", "p99 ms", "max ms"
        );
        let rows = self.by_op.iter().map(|(op, c)| (op.as_str(), *c, self.sorted(Some(*op))));
        for (name, c, lat) in rows.chain(std::iter::once(("all", t, self.sorted(None)))) {
            let _ = writeln!(
                out,
                "{name:<9}{:>8}{:>8}{:>8}{:>10.2}{:>10.2}{:>10.2}",
                c.ok,
                c.fail,
                c.info,
                ms(percentile(&lat, 50.0)),
                ms(percentile(&lat, 99.0)),
                ms(lat.last().copied().unwrap_or(0))
            );
        }
        match self.info_reads() {
            0 => {}
            n => {
                let _ = writeln!(
                    out,
                    "{n} of the info are reads: a read changes nothing, so the checker leaves them out (not checked)"
                );
            }
        }
        let (reasons, rest) = self.top_reasons();
        if !reasons.is_empty() {
            let _ = writeln!(out, "why operations failed or were left in doubt:");
        }
        for (op, reason, n) in reasons {
            let _ = writeln!(out, "  {:<7}{n:>7}  {reason}", op.as_str());
            if let Some(meaning) = explain(op, reason) {
                let _ = writeln!(out, "  {:<7}{:>7}  ({meaning})", "", "");
            }
        }
        if rest > 0 {
            let _ = writeln!(out, "  {:<7}{rest:>7}  for other reasons (all of them are in the history)", "");
        }
        if self.failed() {
            let _ = writeln!(
                out,
                "the run FAILED: {} replies the protocol does not allow (recorded as info, since what the \
                 operation did is unknown), e.g.:",
                self.unexpected
            );
            for why in &self.unexpected_shown {
                let _ = writeln!(out, "  {why}");
            }
        }
        out
    }

    /// The same as JSON.
    pub fn to_json(&self) -> Value {
        let latency = |lat: Vec<u64>| json!({"p50_ms": ms(percentile(&lat, 50.0)), "p99_ms": ms(percentile(&lat, 99.0)), "max_ms": ms(lat.last().copied().unwrap_or(0))});
        let by_op: serde_json::Map<String, Value> = self
            .by_op
            .iter()
            .map(|(op, c)| {
                let l = latency(self.sorted(Some(*op)));
                (op.as_str().to_string(), json!({"ok": c.ok, "fail": c.fail, "info": c.info, "latency": l}))
            })
            .collect();
        let t = self.total();
        json!({
            "elapsed_s": self.elapsed.as_secs_f64(),
            "ops_per_sec": self.ops_per_sec(),
            "ok": t.ok, "fail": t.fail, "info": t.info, "info_reads": self.info_reads(),
            "latency": latency(self.sorted(None)),
            "by_op": by_op,
            "reasons": self.top_reasons().0.into_iter().map(|(op, reason, n)| json!({"op": op.as_str(), "reason": reason, "count": n})).collect::<Vec<_>>(),
            "unexpected_replies": self.unexpected,
            "unexpected_examples": self.unexpected_shown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_incrs_on_strings_are_counted_and_explained() {
        let mut summary = Summary::default();
        for _ in 0..3 {
            summary.record(Op::Incr, EventType::Fail, None, Some("ERR value is not an integer or out of range"));
        }
        summary.record(Op::Set, EventType::Info, None, Some("UNCERTAIN forward to n2: connection reset"));
        summary.record(Op::Get, EventType::Ok, None, None);
        let text = summary.to_text();
        assert!(text.contains("incr         3  ERR value is not an integer or out of range"), "{text}");
        assert!(text.contains("by design: the mix also SETs"), "{text}");
        assert!(text.contains("set          1  UNCERTAIN forward to n2\n"), "{text}");
        assert_eq!(summary.to_json()["reasons"][0]["count"], 3);
    }

    #[test]
    fn a_reason_keeps_what_follows_a_label_and_drops_a_cause_after_a_colon() {
        for whole in [
            "TRYAGAIN replicas up: 1 of the key's 3, W is 2; nothing written",
            "UNCERTAIN replicas holding the write: 1, W is 2; it may spread",
        ] {
            assert_eq!(reason(whole), whole);
        }
        assert_eq!(reason("UNCERTAIN forward to n2: connection reset"), "UNCERTAIN forward to n2");
        assert_eq!(reason("connect to 127.0.0.1:6379: Connection refused (os error 111)"), "connect to 127.0.0.1:6379");
        assert_eq!(reason("TRYAGAIN no quorum after 3 attempts (n2 down)"), "TRYAGAIN no quorum after 3 attempts");
        let mut summary = Summary::default();
        summary.record(
            Op::Set,
            EventType::Fail,
            None,
            Some("TRYAGAIN replicas up: 1 of the key's 3, W is 2; nothing written"),
        );
        let text = summary.to_text();
        assert!(
            text.contains("set          1  TRYAGAIN replicas up: 1 of the key's 3, W is 2; nothing written\n"),
            "{text}"
        );
    }

    #[test]
    fn reads_of_unknown_outcome_are_told_apart_as_the_checker_counts_them() {
        let mut summary = Summary::default();
        summary.record(Op::Get, EventType::Info, None, Some("timeout"));
        summary.record(Op::Get, EventType::Info, None, Some("timeout"));
        summary.record(Op::Set, EventType::Info, None, Some("timeout"));
        summary.record(Op::Set, EventType::Fail, None, Some("TRYAGAIN no quorum"));
        let text = summary.to_text();
        assert!(text.contains("(0 ok, 1 fail, 3 info)"), "{text}");
        assert!(
            text.contains("2 of the info are reads: a read changes nothing, so the checker leaves them out"),
            "{text}"
        );
        let json = summary.to_json();
        assert_eq!(
            (json["fail"].as_u64(), json["info"].as_u64(), json["info_reads"].as_u64()),
            (Some(1), Some(3), Some(2))
        );
    }
}
