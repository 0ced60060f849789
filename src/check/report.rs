//! The HTML report: one self-contained file (no network assets, no external fonts).
//!
//! The page opens with the verdict and the counts, a strip of the whole run (operations
//! started per moment, each nemesis fault as a band from injection to heal, each violation as
//! a red mark) and a legend naming only what the page draws. Then a timeline per key: each
//! client is a row; each operation a bar from invocation to completion (open-ended, hatched,
//! when the outcome is unknown); faults are bands behind the bars. For a key that is not
//! linearizable the longest linearizable prefix is drawn green and numbered in its
//! linearization order, the operation that could not be placed red, the operations
//! concurrent with it orange, and the view opens on that window. Large keys are cut to the
//! operations around what matters (the violation, else the first fault), and a strip under
//! each timeline shows the whole run, the part drawn and the part in view.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::faults::{Span, color, spans};
use super::plots::{self, Range, Sample};
use super::{Fault, NEVER, Operation, Report, describe, dynamo};

/// The fewest operations drawn per key when the key has that many.
pub const MAX_OPS_PER_KEY: usize = 600;
/// The most operations drawn per key, when there are few keys.
const MAX_OPS_ONE_KEY: usize = 5000;
/// The operations drawn on the whole page, shared by the keys shown.
const PAGE_BUDGET: usize = 20_000;
/// The columns of the "operations per moment" strips.
const BUCKETS: usize = 300;

fn op_json(op: &Operation, tag: &str, order: Option<usize>) -> Value {
    let mut o = json!({
        "p": op.process,
        "call": op.call,
        "ret": if op.ret == NEVER { Value::Null } else { json!(op.ret) },
        "label": format!("{}{}", op.input, op.output.as_ref().map(|o| format!(" → {o}")).unwrap_or_else(|| " → ?".into())),
        "ln": [op.lines.0, op.lines.1],
    });
    if !tag.is_empty() {
        o["tag"] = json!(tag);
    }
    if let Some(n) = order {
        o["order"] = json!(n);
    }
    o
}

/// The operations of one key worth drawing, in invocation order, and (when some were left
/// out) the position of the first one drawn: all of them if at most `cap`, else the `cap` around `focus` (an index into
/// `ops`), else around the first operation invoked at or after `at`, else the first ones.
fn selection(ops: &[Operation], cap: usize, focus: Option<usize>, at: Option<u64>) -> (Vec<usize>, Option<usize>) {
    let mut by_call: Vec<usize> = (0..ops.len()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    if by_call.len() <= cap {
        return (by_call, None);
    }
    let centre = match (focus, at) {
        (Some(f), _) => by_call.iter().position(|&i| i == f),
        (None, Some(t)) => Some(by_call.partition_point(|&i| ops[i].call < t)),
        (None, None) => None,
    };
    let start = centre.map_or(0, |c| c.saturating_sub(cap / 2).min(by_call.len() - cap));
    (by_call[start..start + cap].to_vec(), Some(start))
}

/// How many operations start in each of `BUCKETS` columns of `[t0, t1]`.
fn density(starts: impl Iterator<Item = u64>, t0: u64, t1: u64) -> Vec<u32> {
    let mut counts = vec![0u32; BUCKETS];
    let span = (t1 - t0).max(1) as u128;
    for call in starts {
        let b = ((call.saturating_sub(t0)) as u128 * BUCKETS as u128 / span) as usize;
        counts[b.min(BUCKETS - 1)] += 1;
    }
    counts
}

/// Renders a dynamo check as the same page: a timeline per key, each violation's operation
/// red and the writes it involves orange, the view opening on the first violation.
pub fn render_dynamo(report: &dynamo::Report, title: &str) -> String {
    let history = &report.history;
    let all = || history.keys.values().flatten();
    let (t0, t1) = run_range(&history.samples, &history.faults);
    let failed = all().filter(|o| o.outcome == crate::history::EventType::Fail).count();
    let unknown = all().filter(|o| o.ret == NEVER).count();
    let clients: HashSet<u64> = all().map(|o| o.process).collect();
    // Violations on keys with no versioned operation (a plain GET's) have no timeline.
    let drawable: Vec<&dynamo::Violation> =
        report.violations.iter().filter(|v| history.keys.contains_key(&v.key)).collect();
    let violated: Vec<&String> = {
        let mut seen = HashSet::new();
        drawable.iter().map(|v| &v.key).filter(|k| seen.insert(*k)).collect()
    };
    let order: Vec<&String> =
        violated.iter().copied().chain(history.keys.keys().filter(|k| !violated.contains(k))).take(200).collect();
    let cap = (PAGE_BUDGET / order.len().max(1)).clamp(MAX_OPS_PER_KEY, MAX_OPS_ONE_KEY);
    let mut keys = Vec::new();
    for key in order {
        let ops = &history.keys[key];
        let violation = drawable.iter().copied().find(|v| &v.key == key);
        // Every violation on the key is marked: its read red, the writes it involves orange.
        let mut stuck = HashSet::new();
        let mut involved = HashSet::new();
        for v in drawable.iter().filter(|v| &v.key == key) {
            stuck.extend(v.ops.first().copied());
            involved.extend(v.ops.iter().skip(1).copied());
        }
        let focus_op = violation.and_then(|v| v.ops.first().copied());
        let (start, end) = match (ops.len() > cap, focus_op) {
            (false, _) => (0, ops.len()),
            (true, Some(f)) => {
                let start = f.saturating_sub(cap / 2).min(ops.len() - cap);
                (start, start + cap)
            }
            (true, None) => (0, cap),
        };
        let mut shown: Vec<usize> = (start..end).collect();
        // The operations a violation names are drawn even when far from it.
        if violation.is_some() {
            shown.extend(stuck.iter().chain(&involved).copied().filter(|i| !(start..end).contains(i)));
            shown.sort_by_key(|&i| (ops[i].call, i));
            shown.dedup();
        }
        let drawn: Vec<Value> = shown
            .iter()
            .map(|&i| {
                let o = &ops[i];
                let tag = if stuck.contains(&i) {
                    "stuck"
                } else if involved.contains(&i) {
                    "window"
                } else {
                    ""
                };
                let mut j = json!({
                    "p": o.process,
                    "call": o.call,
                    "ret": if o.ret == NEVER { Value::Null } else { json!(o.ret) },
                    "label": o.describe(),
                    "ln": [o.lines.0, o.lines.1],
                });
                if !tag.is_empty() {
                    j["tag"] = json!(tag);
                }
                j
            })
            .collect();
        let end_of = |o: &dynamo::DOp| if o.ret == NEVER { o.call } else { o.ret };
        let focus = violation.map(|v| {
            let a = v.ops.iter().map(|&i| ops[i].call).min().unwrap_or(v.time);
            let b = v.ops.iter().map(|&i| end_of(&ops[i])).max().unwrap_or(v.time);
            json!([a, b.max(a + 1)])
        });
        let drawn_range = (
            shown.iter().map(|&i| ops[i].call).min().unwrap_or(t0),
            shown.iter().map(|&i| end_of(&ops[i])).max().unwrap_or(t1),
        );
        keys.push(json!({
            "key": key,
            "ok": violation.is_none(),
            "timedOut": false,
            "total": ops.len(),
            "truncated": shown.len() < ops.len(),
            "drawn": [drawn_range.0, drawn_range.1],
            "why": if shown.len() < ops.len() { if violation.is_some() { "around the first violation" } else { "the first ones" } } else { "" },
            "density": density(ops.iter().map(|o| o.call), t0, t1),
            "ops": drawn,
            "stuck": violation.map(|v| v.kind.as_str()),
            "problem": violation.map(|v| format!("{}: {}", v.kind.as_str(), v.message)),
            "stuckAt": violation.map(|v| v.time),
            "focus": focus,
            "window": violation.map(|v| v.ops.iter().map(|&i| ops[i].describe()).collect::<Vec<_>>()),
            "prefixLen": Value::Null,
        }));
    }
    let spans = spans(&history.faults);
    let verdict_class = match report.verdict() {
        dynamo::Verdict::Consistent => "good",
        dynamo::Verdict::NotConsistent => "bad",
        dynamo::Verdict::Unknown | dynamo::Verdict::NotChecked => "unk",
    };
    let plots = plots::render(
        &history.samples,
        &spans,
        Range { t0, t1 },
        &plots::Verdict { text: report.verdict().as_str(), class: verdict_class },
    );
    let spans = spans_json(&spans);
    let counts: Vec<String> = report.counts.iter().map(|(k, n)| k.count(*n)).collect();
    let keys_text = |n: usize| format!("{n} key{}", if n == 1 { "" } else { "s" });
    let banner = if report.ok() {
        let promises = [
            Some("no acknowledged write lost, no zombie, no dot reused"),
            history
                .quorums
                .is_some_and(|q| q.intersect())
                .then_some("every quorum read saw the writes acknowledged before it"),
            report.settled().then_some("the replicas converged"),
        ];
        let said: Vec<&str> = promises.into_iter().flatten().collect();
        json!(["✓ Passed.", format!("{}.", said.join("; "))])
    } else {
        match report.violations.first() {
            Some(first) => json!([
                "✗ Failed.",
                format!(
                    "{} on {} of {}. First, key {}: {}: {}",
                    counts.join(", "),
                    keys_text(violated.len()),
                    keys_text(history.keys.len()),
                    first.key,
                    first.kind.as_str(),
                    first.message
                )
            ]),
            None if !report.undecided.is_empty() => json!([
                "? Undecided.",
                format!("the time limit ran out before {} were checked", keys_text(report.undecided.len()))
            ]),
            None => json!([
                "? Not checked.",
                format!(
                    "no violation found, but convergence could not be judged: {} lack a readable settled replica \
                     from every owner",
                    keys_text(report.unsettled.len().max(1))
                )
            ]),
        }
    };
    let data = json!({
        "title": title,
        "verdict": report.verdict().as_str(),
        "verdictClass": verdict_class,
        "words": {
            "good": "consistent",
            "bad": "NOT consistent",
            "stuck": "the operation that shows the violation",
            "window": "the writes it involves",
            "vmark": "where a violation shows",
            "failed": "failed (checked never to show up)",
        },
        "banner": banner,
        "keys": keys,
        "keyCount": history.keys.len(),
        "violatedKeys": violated.len(),
        "timedOutKeys": [],
        "ops": history.total_ops,
        "checked": all().count() - failed,
        "unknown": unknown,
        "failed": failed,
        "clients": clients.len(),
        "t0": t0,
        "t1": t1,
        "elapsed": report.elapsed.as_secs_f64(),
        "faultEvents": history.faults.len(),
        "faults": spans,
        "density": density(all().map(|o| o.call), t0, t1),
    });
    page(&data, &plots)
}

/// The run's time range: every invocation, every known completion and every fault.
fn run_range(ops: &[Sample], faults: &[Fault]) -> (u64, u64) {
    let times = ops
        .iter()
        .flat_map(|s| [Some(s.call), (s.ret != NEVER).then_some(s.ret)])
        .flatten()
        .chain(faults.iter().map(|f| f.time));
    let (t0, t1) = times.fold((u64::MAX, 0), |(a, b), t| (a.min(t), b.max(t)));
    if t0 > t1 { (0, 1) } else { (t0, t1.max(t0 + 1)) }
}

fn spans_json(spans: &[Span]) -> Vec<Value> {
    spans
        .iter()
        .map(|s| {
            json!({
                "kind": s.kind,
                "target": s.target,
                "start": s.start,
                "end": s.end,
                "action": s.action,
                "undo": s.undo,
                "span": s.span,
                "color": color(if s.span { &s.kind } else { "" }),
                "error": s.error,
            })
        })
        .collect()
}

/// The page around its data and its plots ([`plots::render`]).
fn page(data: &Value, plots: &str) -> String {
    // Keep `</script>` out of the embedded JSON.
    let data = data.to_string().replace("</", "<\\/");
    let (head, rest) = TEMPLATE.split_once("__PLOTS__").expect("the template has a place for the plots");
    let (middle, tail) = rest.split_once("__DATA__").expect("the template has a place for the data");
    [head, plots, middle, &data, tail].concat()
}

/// Renders the report as one HTML document.
pub fn render(report: &Report, title: &str) -> String {
    let history = &report.history;
    let all_ops = || history.keys.values().flatten();
    let (t0, t1) = run_range(&history.samples, &history.faults);
    // Operations checked (FLUSHALL is in every key's list: count it once by its line).
    let mut seen = HashSet::new();
    let (mut checked, mut unknown, mut clients) = (0usize, 0usize, HashSet::new());
    for op in all_ops() {
        if seen.insert(op.lines.0) {
            checked += 1;
            unknown += usize::from(op.ret == NEVER);
            clients.insert(op.process);
        }
    }
    let spans = spans(&history.faults);
    let first_fault = spans.iter().find(|s| s.span).map(|s| s.start);

    // Violated keys first, the earliest violation first; then the others by name.
    let mut violations: Vec<_> = report.violations.iter().collect();
    violations.sort_by_key(|v| (history.keys[&v.key][v.stuck].call, v.key.clone()));
    let violated: HashSet<&str> = violations.iter().map(|v| v.key.as_str()).collect();
    let order: Vec<&String> = violations
        .iter()
        .map(|v| &v.key)
        .chain(history.keys.keys().filter(|k| !violated.contains(k.as_str())))
        .take(200)
        .collect();
    let cap = (PAGE_BUDGET / order.len().max(1)).clamp(MAX_OPS_PER_KEY, MAX_OPS_ONE_KEY);

    let mut keys = Vec::new();
    for key in order {
        let ops = &history.keys[key];
        let violation = report.violations.iter().find(|v| &v.key == key);
        let (shown, cut) = selection(ops, cap, violation.map(|v| v.stuck), first_fault);
        let truncated = cut.is_some();
        let why = match (cut, violation, first_fault) {
            (None, _, _) => "",
            (Some(_), Some(_), _) => "around the violation",
            (Some(0), None, Some(_)) => "from the start, through the first fault",
            (Some(_), None, Some(_)) => "around the first fault",
            (Some(_), None, None) => "the first ones",
        };
        let drawn: Vec<Value> = shown
            .iter()
            .map(|&i| {
                let (tag, order) = match violation {
                    Some(v) if v.stuck == i => ("stuck", None),
                    Some(v) => match v.prefix.iter().position(|&p| p == i) {
                        Some(pos) => ("prefix", Some(pos + 1)),
                        None if v.window.contains(&i) => ("window", None),
                        None => ("", None),
                    },
                    None => ("", None),
                };
                op_json(&ops[i], tag, order)
            })
            .collect();
        let end_of = |o: &Operation| if o.ret == NEVER { o.call } else { o.ret };
        let focus = violation.map(|v| {
            let a = v.window.iter().map(|&i| ops[i].call).min().unwrap_or(ops[v.stuck].call);
            let b = v.window.iter().map(|&i| end_of(&ops[i])).max().unwrap_or(end_of(&ops[v.stuck]));
            json!([a, b.max(a + 1)])
        });
        let drawn_range = (
            shown.iter().map(|&i| ops[i].call).min().unwrap_or(t0),
            shown.iter().map(|&i| if ops[i].ret == NEVER { ops[i].call } else { ops[i].ret }).max().unwrap_or(t1),
        );
        keys.push(json!({
            "key": key,
            "ok": violation.is_none() && !report.timed_out.contains(key),
            "timedOut": report.timed_out.contains(key),
            "total": ops.len(),
            "truncated": truncated,
            "drawn": [drawn_range.0, drawn_range.1],
            "why": why,
            "density": density(ops.iter().map(|o| o.call), t0, t1),
            "ops": drawn,
            "stuck": violation.map(|v| describe(&ops[v.stuck])),
            "stuckAt": violation.map(|v| ops[v.stuck].call),
            "focus": focus,
            "window": violation.map(|v| v.window.iter().map(|&i| describe(&ops[i])).collect::<Vec<_>>()),
            "prefixLen": violation.map(|v| v.prefix.len()),
            // A stale read found without a search has no prefix: say what it is instead.
            "problem": violation.filter(|v| !v.stale.is_empty()).map(|v| format!(
                "a stale read: {} read what was certainly overwritten before it began (the operations that could have produced it, and what changed it after each, are listed)",
                describe(&ops[v.stuck])
            )),
        }));
    }
    let verdict_class = match report.verdict {
        super::Verdict::Linearizable => "good",
        super::Verdict::NotLinearizable => "bad",
        super::Verdict::Unknown => "unk",
    };
    let plots = plots::render(
        &history.samples,
        &spans,
        Range { t0, t1 },
        &plots::Verdict { text: report.verdict.as_str(), class: verdict_class },
    );
    let spans = spans_json(&spans);
    let data = json!({
        "title": title,
        "verdict": report.verdict.as_str(),
        "verdictClass": verdict_class,
        "keys": keys,
        "keyCount": history.keys.len(),
        "violatedKeys": report.violations.len(),
        "timedOutKeys": report.timed_out,
        "ops": history.total_ops,
        "checked": checked,
        "unknown": unknown,
        "failed": history.failed,
        "unknownReads": history.unknown_reads,
        "clients": clients.len(),
        "t0": t0,
        "t1": t1,
        "elapsed": report.elapsed.as_secs_f64(),
        "faultEvents": history.faults.len(),
        "faults": spans,
        "density": density(all_ops().map(|o| o.call), t0, t1),
    });
    page(&data, &plots)
}

const TEMPLATE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>valthree history check</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.2em 1.5em;color:#222}
h1{font-size:1.3em;margin:.2em 0 .4em} .bad{color:#b00020} .good{color:#1b7a2f} .unk{color:#a66a00}
.banner{border-radius:6px;padding:.55em .8em;margin:.4em 0;font-size:1.05em}
.banner.good{background:#e6f4ea;border:1px solid #9fd3ad;color:#145c24} .banner.bad{background:#fdecee;border:1px solid #f0a5ae;color:#8a0018}
.banner.unk{background:#fff4e0;border:1px solid #f0cf8f;color:#7a4e00} .banner b{font-size:1.1em}
.counts{margin:.3em 0 .6em;color:#333}
.key{border:1px solid #ccc;border-radius:6px;margin:.8em 0;padding:.5em .6em}
.key h2{font-size:1.05em;margin:.1em 0} .note{color:#666;font-size:.9em} .key p{margin:.35em 0}
.legend{display:flex;flex-wrap:wrap;gap:.25em 1.2em;font-size:.88em;color:#444;margin:.3em 0 .2em}
.legend span{display:inline-flex;align-items:center;gap:.35em} .legend svg{display:inline;width:auto;border:0;background:none;cursor:default}
svg{display:block;width:100%;background:#fafafa;border:1px solid #eee}
svg.tl{cursor:grab} svg.mini{cursor:pointer;background:#fff;margin-top:2px}
.op rect{stroke:#345;stroke-width:.6} .op text{font-size:10px;pointer-events:none}
.op.prefix rect{fill:#b9e4c1} .op.stuck rect{fill:#f4a1a9;stroke:#b00020;stroke-width:2}
.op.window rect{fill:#fbe3c8;stroke:#b00020;stroke-width:1.5} .op.plain rect{fill:#cfe0f5} .op.info rect{fill:url(#hatch)} .op.prefix.info rect{stroke:#1b7a2f;stroke-width:1.5}
.axis{font-size:10px;fill:#666} .grid{stroke:#e4e4e4} .flabel{font-size:10px;font-weight:600}
.vmark{stroke:#b00020;stroke-width:1.5} .vlabel{font-size:10px;fill:#b00020;font-weight:600}
#plots{margin:.4em 0 .8em} #plots svg.plot{background:#fff}
.summary{border-collapse:collapse;margin:.3em 0 .6em;font-size:.95em} .summary th{text-align:left;font-weight:600;color:#555;padding:.12em 1em .12em 0;vertical-align:top} .summary td{padding:.12em 0}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin:0 .3em 0 .1em;vertical-align:-.05em} .sw.ok{background:#3b82c4} .sw.info{background:#e69500} .sw.fail{background:#d6336c}
.plegend{font-size:.9em;color:#444;margin:.6em 0 .15em} .plegend>span{margin-left:.9em}
button{margin:.2em .4em .2em 0} ul{margin:.2em 0} .window li{font-family:ui-monospace,monospace;font-size:.9em}
</style></head><body>
<svg width="0" height="0" style="position:absolute;width:0;height:0;border:0"><defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde7b0"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d9a400" stroke-width="2"/></pattern></defs></svg>
<h1 id="head"></h1><div id="banner" class="banner"></div><div id="counts" class="counts"></div>
__PLOTS__
<div id="run"></div><div id="legend" class="legend"></div>
<div id="keys"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
const D = JSON.parse(document.getElementById('data').textContent);
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const NS = 'http://www.w3.org/2000/svg', W = 1200, L = 70, R = 8;
function el(name, attrs, parent) { const e = document.createElementNS(NS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (parent) parent.appendChild(e); return e; }
const num = n => Number(n).toLocaleString('en-US');
const plural = (n, one, many) => num(n) + ' ' + (n === 1 ? one : (many || one + 's'));
const secs = t => (t / 1e9).toFixed(t >= 1e10 ? 1 : t >= 1e9 ? 2 : 3) + ' s';
// Each fault carries its colour and whether it is an interval (`span`) or an instant.
const colorOf = f => f.color;
const isSpan = f => f.span;
const faultName = f => f.kind + (f.target ? ' ' + f.target : '');
const fEnd = f => f.end ?? D.t1;
function ticks(a, b, n) {
  const raw = (b - a) / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * p).find(s => s >= raw);
  const out = []; for (let t = Math.ceil(a / step) * step; t <= b; t += step) out.push(t);
  const d = Math.max(0, Math.min(9, -Math.floor(Math.log10(step / 1e9) + 1e-9)));
  return out.map(t => [t, (t / 1e9).toFixed(d) + ' s']);
}
// Axis along the bottom of an svg.
function axis(g, x, a, b, y, H) {
  for (const [t, s] of ticks(a, b, 10)) { const X = x(t); if (X < L || X > W - R) continue; el('line', {x1: X, x2: X, y1: 0, y2: y, class: 'grid'}, g); el('text', {x: X, y: y + 12, 'text-anchor': 'middle', class: 'axis'}, g).textContent = s; }
}
// Fault bands between y0 and y1, labels in up to `lanes` lanes from yl.
function bands(g, x, view, y0, y1, yl, lanes, since) {
  const ends = [];
  for (const f of D.faults) {
    const a = f.start, b = isSpan(f) ? fEnd(f) : f.start;
    if (b < view[0] || a > view[1]) continue;
    const xa = Math.max(x(a), L), xb = Math.min(x(b), W - R), c = colorOf(f);
    if (a !== b || isSpan(f)) el('rect', {x: xa, y: y0, width: Math.max(xb - xa, 1.5), height: y1 - y0, fill: c, 'fill-opacity': .12}, g);
    el('line', {x1: xa, x2: xa, y1: y0, y2: y1, stroke: c, 'stroke-width': 1.2, 'stroke-dasharray': a < view[0] ? '' : '4 3', 'stroke-opacity': a < view[0] ? 0 : 1}, g);
    if (a !== b) el('line', {x1: xb, x2: xb, y1: y0, y2: y1, stroke: c, 'stroke-width': 1, 'stroke-dasharray': '2 3', 'stroke-opacity': b > view[1] ? 0 : .8}, g);
    let label = isSpan(f) ? faultName(f) + (f.undo ? ' → ' + f.undo : ' (never healed)') : faultName(f);
    if (since && a < view[0]) label = faultName(f) + ' (since ' + secs(a) + ')';
    let lane = ends.findIndex(e => e < xa); if (lane < 0) { if (ends.length >= lanes) continue; lane = ends.length; ends.push(0); }
    const t = el('text', {x: xa + 3, y: yl + lane * 11, class: 'flabel', fill: c}, g); t.textContent = label;
    ends[lane] = xa + 6 * label.length + 8;
    el('title', {}, t).textContent = faultName(f) + ' at ' + secs(a) + (f.end !== null && a !== b ? ', ' + f.undo + ' at ' + secs(b) : '');
  }
}
function histogram(g, x, counts, y0, y1, fill) {
  const max = Math.max(1, ...counts), w = (D.t1 - D.t0) / counts.length;
  counts.forEach((n, i) => { if (!n) return; const h = (y1 - y0) * n / max, xa = x(D.t0 + i * w); el('rect', {x: xa, y: y1 - h, width: Math.max(x(D.t0 + (i + 1) * w) - xa - .3, .6), height: h, fill}, g); });
}
const xRun = t => L + (t - D.t0) / (D.t1 - D.t0) * (W - L - R);

// Head, verdict and counts.
document.title = D.title + ' — ' + D.verdict;
const WORDS = Object.assign({good: 'linearizable', bad: 'NOT linearizable', stuck: 'cannot be placed after the prefix', window: 'concurrent with it, not yet placed', vmark: 'where a key stops being linearizable', failed: 'failed (never took effect, not checked)'}, D.words || {});
const cls = D.verdictClass;
document.getElementById('head').innerHTML = esc(D.title) + ': <span class="' + cls + '">' + esc(D.verdict) + '</span>';
const banner = document.getElementById('banner'); banner.classList.add(cls);
const first = D.keys.find(k => k.stuck);
if (D.banner) banner.innerHTML = '<b>' + esc(D.banner[0]) + '</b> ' + esc(D.banner[1]);
else if (cls === 'good') banner.innerHTML = '<b>✓ Passed.</b> All ' + plural(D.checked, 'checked operation') + ' on ' + plural(D.keyCount, 'key') + ' fit one order consistent with what every client saw' + (D.faultEvents ? ', through ' + plural(D.faults.filter(isSpan).length, 'nemesis fault') : '') + '.';
else if (cls === 'bad') banner.innerHTML = '<b>✗ Failed.</b> ' + num(D.violatedKeys) + ' of ' + plural(D.keyCount, 'key') + (D.violatedKeys === 1 ? ' has' : ' have') + ' no valid order. First at ' + secs(first.stuckAt) + ', key <b>' + esc(first.key) + '</b>: <code>' + esc(first.stuck) + '</code> cannot be placed after a linearizable prefix of ' + plural(first.prefixLen, 'operation') + '.';
else banner.innerHTML = '<b>? Undecided.</b> The time limit ran out before ' + plural(D.timedOutKeys.length, 'key') + ' ' + (D.timedOutKeys.length === 1 ? 'was' : 'were') + ' decided (' + D.timedOutKeys.slice(0, 10).map(esc).join(', ') + (D.timedOutKeys.length > 10 ? ', …' : '') + ')' + (D.timedOutKeys.length < D.keyCount ? '; no violation was found in the others.' : '.');
const kinds = {}, kindColor = {}; for (const f of D.faults) if (isSpan(f)) { kinds[f.kind] = (kinds[f.kind] || 0) + 1; kindColor[f.kind] = f.color; }
const completed = D.checked - D.unknown;
document.getElementById('counts').innerHTML = '<b>' + plural(D.ops, 'operation') + '</b>: ' + num(completed) + ' completed, ' + num(D.unknown) + ' with unknown outcome, ' + num(D.failed) + ' ' + WORDS.failed + (D.unknownReads ? ', ' + num(D.unknownReads) + ' reads with unknown outcome (left out: a read that may not have happened changes nothing)' : '') + ' · ' + plural(D.keyCount, 'key') + ' · ' + plural(D.clients, 'client') + ' · ' + secs(D.t1 - D.t0) + ' of history · ' + (D.faultEvents ? plural(D.faultEvents, 'nemesis event') + ' (' + Object.entries(kinds).map(([k, n]) => n + ' ' + k).join(', ') + ')' : 'no nemesis faults') + ' · checked in ' + D.elapsed.toFixed(2) + ' s' + (D.keys.length < D.keyCount ? ' · first ' + D.keys.length + ' keys shown' : '') + '.';

// The whole run: operations started per moment, faults, violations.
if (D.checked) {
  const lanes = Math.min(3, Math.max(1, D.faults.length)), top = 4 + lanes * 11, hist = 28, H = top + hist + 16;
  const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, height: H}), g = el('g', {}, svg);
  el('text', {x: 4, y: top + 12, class: 'axis'}, g).textContent = 'whole run';
  el('text', {x: 4, y: top + 24, class: 'axis'}, g).textContent = 'ops started';
  axis(g, xRun, D.t0, D.t1, top + hist, H);
  bands(g, xRun, [D.t0, D.t1], 0, top + hist, 10, lanes, false);
  histogram(g, xRun, D.density, top, top + hist, '#9aa7b4');
  for (const k of D.keys) if (k.stuck) { const X = xRun(k.stuckAt); el('line', {x1: X, x2: X, y1: top - 2, y2: top + hist, class: 'vmark'}, g); el('path', {d: `M${X - 5} ${top - 6} L${X + 5} ${top - 6} L${X} ${top + 1} Z`, fill: '#b00020'}, g); }
  document.getElementById('run').appendChild(svg);
}

// The legend: only what the page draws.
function swatch(kind) {
  const s = el('svg', {width: 26, height: 12, viewBox: '0 0 26 12'});
  if (kind.startsWith('op ')) { const g = el('g', {class: kind}, s); el('rect', {x: 1, y: 1, width: 24, height: 10, rx: 3}, g); }
  else if (kind === 'density') el('path', {d: 'M1 11V7h4V3h4v8h4V5h4v6h4V8h4v3z', fill: '#9aa7b4'}, s);
  else if (kind === 'vmark') { el('path', {d: 'M8 0 L18 0 L13 6 Z', fill: '#b00020'}, s); el('line', {x1: 13, x2: 13, y1: 0, y2: 12, class: 'vmark'}, s); }
  else { const c = kindColor[kind] || '#6c7a89'; el('rect', {x: 1, y: 0, width: 24, height: 12, fill: c, 'fill-opacity': kind in kindColor ? .15 : 0}, s); el('line', {x1: 1.5, x2: 1.5, y1: 0, y2: 12, stroke: c, 'stroke-dasharray': '3 2'}, s); }
  return s;
}
{
  const has = t => D.keys.some(k => k.ops.some(t));
  const items = [];
  if (has(o => !o.tag && o.ret !== null)) items.push(['op plain', 'operation, from invocation to completion']);
  if (has(o => o.ret === null)) items.push(['op info', 'outcome unknown: may have taken effect any time after its start']);
  if (has(o => o.tag === 'prefix')) items.push(['op prefix', 'longest linearizable prefix; #n is its place in the order']);
  if (has(o => o.tag === 'stuck')) items.push(['op stuck', WORDS.stuck]);
  if (has(o => o.tag === 'window')) items.push(['op window', WORDS.window]);
  for (const k of Object.keys(kinds)) { const f = D.faults.find(f => isSpan(f) && f.kind === k); items.push([k, k + ' fault: ' + f.action + ' … ' + (f.undo || 'its end')]); }
  if (D.faults.some(f => !isSpan(f))) items.push(['other', 'nemesis event that starts or ends no fault (' + [...new Set(D.faults.filter(f => !isSpan(f)).map(faultName))].slice(0, 3).join(', ') + ')']);
  if (D.checked) items.push(['density', 'operations started (whole run, and per key under each timeline)']);
  if (D.violatedKeys) items.push(['vmark', WORDS.vmark]);
  const box = document.getElementById('legend');
  for (const [k, text] of items) { const s = document.createElement('span'); s.appendChild(swatch(k)); s.appendChild(document.createTextNode(text)); box.appendChild(s); }
  const hint = document.createElement('span'); hint.className = 'note'; hint.textContent = 'Timelines: drag to pan, wheel to zoom, click the strip under one to jump there.'; box.appendChild(hint);
}

function draw(k, box) {
  const procs = [...new Set(k.ops.map(o => o.p))].sort((a, b) => a - b);
  const row = 22, top = 30, rowsEnd = top + row * procs.length, H = rowsEnd + 18;
  const drawn = [k.drawn[0], Math.max(k.drawn[1], k.drawn[0] + 1)];
  const pad = v => { const m = (v[1] - v[0]) * 0.03; return [v[0] - m, v[1] + m]; };
  let home = pad(drawn);
  if (k.focus) { const [a, b] = k.focus, m = Math.max((b - a) * 0.6, 2e5); home = [a - m, b + m]; }
  let view = home.slice();
  const bar = document.createElement('div');
  const button = (text, v) => { const b = document.createElement('button'); b.textContent = text; b.onclick = () => { view = v.slice(); render(); }; bar.appendChild(b); };
  if (k.focus) button('violation', home);
  if (k.truncated) button('all drawn (' + num(k.ops.length) + ' of ' + num(k.total) + ')', pad(drawn));
  button(k.truncated ? 'whole run' : 'whole key', pad([D.t0, D.t1]));
  const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, height: H, class: 'tl'}), g = el('g', {}, svg);
  const MH = 30, mini = el('svg', {viewBox: `0 0 ${W} ${MH}`, height: MH, class: 'mini'}), mg = el('g', {}, mini);
  // A label ends where its client's next operation starts: an operation of unknown outcome
  // is drawn to the end of the run, and its label would run under the ones after it.
  const byClient = {};
  for (const o of k.ops) (byClient[o.p] ||= []).push(o);
  for (const list of Object.values(byClient)) {
    list.sort((u, v) => u.call - v.call);
    list.forEach((o, i) => { o.nextCall = i + 1 < list.length ? list[i + 1].call : null; });
  }
  function render() {
    g.innerHTML = '';
    const x = t => L + (t - view[0]) / (view[1] - view[0]) * (W - L - R);
    axis(g, x, view[0], view[1], rowsEnd, H);
    bands(g, x, view, 0, rowsEnd, 10, 2, true);
    procs.forEach((p, r) => { el('text', {x: 4, y: top + r * row + 12, 'font-size': 11}, g).textContent = 'client ' + p; });
    let visible = 0;
    for (const o of k.ops) {
      const a = x(o.call), b = x(o.ret ?? D.t1); if (b < L || a > W - R) continue;
      visible++;
      const r = procs.indexOf(o.p), c = el('g', {class: 'op ' + (o.tag || 'plain') + (o.ret === null ? ' info' : '')}, g);
      const xa = Math.max(a, L), minw = o.tag === 'stuck' ? 7 : 2, w = Math.max(Math.min(b, W - R) - xa, minw);
      el('rect', {x: o.tag === 'stuck' && b - xa < minw ? xa - (minw - (b - xa)) / 2 : xa, y: top + r * row, width: w, height: row - 6, rx: 3}, c);
      const end = Math.min(b, W - R, o.nextCall === null ? Infinity : x(o.nextCall));
      const label = (o.order ? '#' + o.order + ' ' : '') + o.label, room = Math.floor((end - xa - 6) / 7);
      if (room >= 3) el('text', {x: xa + 3, y: top + r * row + 11}, c).textContent = label.length <= room ? label : label.slice(0, room - 1) + '…';
      el('title', {}, c).textContent = 'client ' + o.p + ' ' + o.label + ' (' + (o.ln[1] ? 'lines ' + o.ln[0] + '-' + o.ln[1] : 'line ' + o.ln[0]) + ')' + (o.order ? ', #' + o.order + ' in the prefix' : '');
      if (o.tag === 'stuck') {
        const X = (a + Math.min(b, W - R)) / 2, y = top + r * row;
        el('path', {d: `M${X - 5} ${y - 8} L${X + 5} ${y - 8} L${X} ${y - 1} Z`, fill: '#b00020'}, g);
        const t = el('text', {x: X + 8, y: y - 1, class: 'vlabel'}, g); t.textContent = 'cannot be placed';
      }
    }
    if (!visible) { el('text', {x: (L + W) / 2, y: top + row * procs.length / 2, 'text-anchor': 'middle', class: 'axis'}, g).textContent = 'no operations drawn here: this report holds ' + num(k.ops.length) + ' of the key\'s ' + num(k.total) + ' (' + secs(drawn[0]) + ' – ' + secs(drawn[1]) + ')'; }
    // The strip: the whole run, the part drawn, the part in view.
    mg.innerHTML = '';
    el('text', {x: 4, y: 19, class: 'axis'}, mg).textContent = 'whole run';
    bands(mg, xRun, [D.t0, D.t1], 0, MH, 0, 0, false);
    histogram(mg, xRun, k.density, 3, MH - 3, '#b7c2cc');
    if (k.truncated) el('rect', {x: xRun(drawn[0]), y: 1, width: Math.max(xRun(drawn[1]) - xRun(drawn[0]), 1), height: MH - 2, fill: '#2e6fb7', 'fill-opacity': .1, stroke: '#2e6fb7', 'stroke-dasharray': '3 2'}, mg);
    if (k.stuckAt !== null) { const X = xRun(k.stuckAt); el('line', {x1: X, x2: X, y1: 0, y2: MH, class: 'vmark'}, mg); }
    const va = Math.max(xRun(view[0]), L), vb = Math.min(xRun(view[1]), W - R);
    el('rect', {x: va - (vb - va < 4 ? 2 : 0), y: .5, width: Math.max(vb - va, 4), height: MH - 1, fill: 'none', stroke: '#222', 'stroke-width': 1.5}, mg);
  }
  render();
  let drag = null;
  svg.addEventListener('mousedown', e => { drag = {x: e.clientX, view: view.slice()}; e.preventDefault(); });
  window.addEventListener('mouseup', () => drag = null);
  svg.addEventListener('mousemove', e => { if (!drag) return; const dt = (e.clientX - drag.x) / svg.clientWidth * W / (W - L - R) * (drag.view[1] - drag.view[0]); view = [drag.view[0] - dt, drag.view[1] - dt]; render(); });
  svg.addEventListener('wheel', e => { e.preventDefault(); const f = e.deltaY > 0 ? 1.25 : 0.8, mid = view[0] + ((e.offsetX / svg.clientWidth * W - L) / (W - L - R)) * (view[1] - view[0]); view = [mid - (mid - view[0]) * f, mid + (view[1] - mid) * f]; render(); });
  mini.addEventListener('click', e => { const t = D.t0 + ((e.offsetX / mini.clientWidth * W - L) / (W - L - R)) * (D.t1 - D.t0), h = (view[1] - view[0]) / 2; view = [t - h, t + h]; render(); });
  box.appendChild(bar); box.appendChild(svg); box.appendChild(mini);
}
// What faults the violation happened under, or the last one before it.
function faultContext(t) {
  const during = D.faults.filter(f => isSpan(f) && f.start <= t && fEnd(f) >= t);
  if (during.length) return 'During: ' + during.map(f => faultName(f) + ' (' + secs(f.start) + ' – ' + (f.end === null ? 'never healed' : secs(f.end)) + ')').join(', ') + '.';
  const before = D.faults.filter(f => f.start <= t).pop();
  if (before) return 'No fault in effect; the last one, ' + faultName(before) + (before.undo ? ' → ' + before.undo : '') + ', ended ' + secs(t - (before.end ?? before.start)) + ' earlier.';
  const next = D.faults.find(f => f.start > t);
  return D.faults.length ? 'Before any fault (the first, ' + faultName(next) + ', came ' + secs(next.start - t) + ' later).' : '';
}
const keys = document.getElementById('keys');
if (!D.keys.length) keys.innerHTML = '<p class="note">The history has no operations to check.</p>';
for (const k of D.keys) {
  const box = document.createElement('div'); box.className = 'key';
  const state = k.ok ? '<span class="good">' + esc(WORDS.good) + '</span>' : k.timedOut ? '<span class="unk">unknown (time limit)</span>' : '<span class="bad">' + esc(WORDS.bad) + '</span>';
  const part = !k.truncated ? '' : ', ' + num(k.ops.length) + ' drawn (' + secs(k.drawn[0]) + ' – ' + secs(k.drawn[1]) + (k.why ? ', ' + k.why : '') + ')';
  let html = '<h2>key ' + esc(k.key) + ': ' + state + ' <span class="note">' + plural(k.total, 'operation') + part + '</span></h2>';
  if (k.problem) html += '<p>At ' + secs(k.stuckAt) + ': <b class="bad">' + esc(k.problem) + '</b> ' + esc(faultContext(k.stuckAt)) + '</p><div>The operations involved:<ul class="window">' + k.window.map(w => '<li>' + esc(w) + '</li>').join('') + '</ul></div>';
  else if (k.stuck) html += '<p>At ' + secs(k.stuckAt) + ', after a linearizable prefix of ' + plural(k.prefixLen, 'operation') + ', this one cannot be placed: <b class="bad">' + esc(k.stuck) + '</b>. ' + esc(faultContext(k.stuckAt)) + '</p><div>Window (the last operation placed and everything concurrent with the stuck one):<ul class="window">' + k.window.map(w => '<li>' + esc(w) + '</li>').join('') + '</ul></div>';
  box.innerHTML = html; keys.appendChild(box);
  if (!k.ok || D.keys.length <= 20) draw(k, box);
  else { const b = document.createElement('button'); b.textContent = 'show timeline'; b.onclick = () => { b.remove(); draw(k, box); }; box.appendChild(b); }
}
</script></body></html>
"##;

#[cfg(test)]
mod tests {

    use super::*;
    use crate::check::{Input, Output, check};
    use crate::history::read_history;

    #[test]
    fn a_large_key_is_cut_around_the_violation() {
        let ops: Vec<Operation> = (0..1000u64)
            .map(|i| Operation {
                process: i % 4,
                input: Input::Get,
                output: Some(Output::Value(None)),
                call: i * 10,
                ret: i * 10 + 5,
                lines: (i as usize, None),
            })
            .collect();
        let (shown, start) = selection(&ops, 100, Some(900), None);
        assert_eq!((shown.len(), start), (100, Some(850)), "the stuck operation is in the middle");
        let (_, start) = selection(&ops, 100, Some(990), None);
        assert_eq!(start, Some(900), "near the end the window stays inside the key");
        let (_, start) = selection(&ops, 100, None, Some(5000));
        assert_eq!(start, Some(450), "without a violation, around the first fault");
        assert_eq!(selection(&ops, 1000, Some(3), None).1, None, "a small key is drawn whole");
    }

    fn page(history: &str) -> String {
        let events = read_history(history.as_bytes()).unwrap();
        render(&check(&events, None, &|_, _| {}).unwrap(), "t")
    }

    #[test]
    fn the_page_carries_what_it_draws_and_nothing_remote() {
        let ok = r#"{"index":0,"process":0,"type":"invoke","f":"set","key":"x","value":"0-1","time":10}
{"index":1,"process":"nemesis","type":"info","f":"kill","value":"n1","time":12}
{"index":2,"process":0,"type":"ok","f":"set","key":"x","value":"0-1","time":20}
{"index":3,"process":1,"type":"invoke","f":"get","key":"x","time":30}
{"index":4,"process":1,"type":"ok","f":"get","key":"x","value":"0-1","time":40}
{"index":5,"process":"nemesis","type":"info","f":"restart","value":"n1","time":50}
"#;
        let pass = page(ok);
        assert!(pass.contains(r#""verdict":"linearizable""#));
        assert!(
            pass.contains(r#""end":50"#) && pass.contains(r#""undo":"restart""#),
            "kill n1 is healed by restart n1"
        );
        assert!(!pass.contains(r#""tag":"#), "a passing key has no prefix, stuck or window operations");
        let stale = ok.replace(
            r#""type":"ok","f":"get","key":"x","value":"0-1""#,
            r#""type":"ok","f":"get","key":"x","value":"9-9""#,
        );
        let fail = page(&stale);
        assert!(fail.contains(r#""verdict":"NOT linearizable""#) && fail.contains(r#""tag":"stuck""#));
        for p in [&pass, &fail] {
            assert!(!p.replace("http://www.w3.org/2000/svg", "").contains("http"), "the report must be self-contained");
        }
    }
}
