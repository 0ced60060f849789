//! What a workload run did: counts per operation and outcome, and latencies.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

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
    pub by_op: BTreeMap<Op, Counts>,
    /// Latencies of completed requests, in nanoseconds, per operation type.
    latencies: BTreeMap<Op, Vec<u64>>,
    pub elapsed: Duration,
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
    /// Counts one completion.
    pub fn record(&mut self, op: Op, kind: EventType, latency: Option<Duration>) {
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

    /// Adds another client's totals.
    pub fn merge(&mut self, other: Summary) {
        for (op, c) in other.by_op {
            let mine = self.by_op.entry(op).or_default();
            mine.ok += c.ok;
            mine.fail += c.fail;
            mine.info += c.info;
        }
        for (op, l) in other.latencies {
            self.latencies.entry(op).or_default().extend(l);
        }
    }

    /// All counts added up.
    pub fn total(&self) -> Counts {
        self.by_op.values().fold(Counts::default(), |a, c| Counts {
            ok: a.ok + c.ok,
            fail: a.fail + c.fail,
            info: a.info + c.info,
        })
    }

    /// Completed operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        let t = self.total();
        (t.ok + t.fail + t.info) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn sorted(&self, op: Option<Op>) -> Vec<u64> {
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
            "ok": t.ok, "fail": t.fail, "info": t.info,
            "latency": latency(self.sorted(None)),
            "by_op": by_op,
        })
    }
}
