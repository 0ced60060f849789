//! The HTML report: one self-contained file (no network assets) with a timeline per key.
//!
//! Each client is a row; each operation a bar from invocation to completion (open-ended,
//! hatched, when the outcome is unknown); nemesis faults are vertical lines. For a key that
//! is not linearizable the longest linearizable prefix is drawn green and numbered in its
//! linearization order, the operation that could not be placed red, and the view opens on
//! the window around it. Large keys are cut to the operations near what matters, and the
//! report says so.

use serde_json::{Value, json};

use super::{NEVER, Operation, Report, describe};

/// The most operations drawn per key.
pub const MAX_OPS_PER_KEY: usize = 600;

fn op_json(i: usize, op: &Operation, tag: &str, order: Option<usize>, in_window: bool) -> Value {
    json!({
        "win": in_window,
        "i": i,
        "p": op.process,
        "call": op.call,
        "ret": if op.ret == NEVER { Value::Null } else { json!(op.ret) },
        "text": describe(op),
        "label": format!("{}{}", op.input, op.output.as_ref().map(|o| format!(" → {o}")).unwrap_or_else(|| " → ?".into())),
        "tag": tag,
        "order": order,
    })
}

/// The operations of one key worth drawing: around the violation, or the first ones.
fn selection(ops: &[Operation], focus: Option<usize>) -> (Vec<usize>, bool) {
    let mut by_call: Vec<usize> = (0..ops.len()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    if by_call.len() <= MAX_OPS_PER_KEY {
        return (by_call, false);
    }
    let start = match focus {
        Some(f) => {
            let pos = by_call.iter().position(|&i| i == f).unwrap_or(0);
            pos.saturating_sub(MAX_OPS_PER_KEY * 3 / 4).min(by_call.len() - MAX_OPS_PER_KEY)
        }
        None => 0,
    };
    (by_call[start..start + MAX_OPS_PER_KEY].to_vec(), true)
}

/// Renders the report as one HTML document.
pub fn render(report: &Report, title: &str) -> String {
    let mut keys = Vec::new();
    let violated: Vec<&str> = report.violations.iter().map(|v| v.key.as_str()).collect();
    let order = report
        .violations
        .iter()
        .map(|v| v.key.clone())
        .chain(report.history.keys.keys().filter(|k| !violated.contains(&k.as_str())).cloned());
    for key in order.take(200) {
        let ops = &report.history.keys[&key];
        let violation = report.violations.iter().find(|v| v.key == key);
        let (shown, truncated) = selection(ops, violation.map(|v| v.stuck));
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
                op_json(i, &ops[i], tag, order, violation.is_some_and(|v| v.window.contains(&i)))
            })
            .collect();
        keys.push(json!({
            "key": key,
            "ok": violation.is_none() && !report.timed_out.contains(&key),
            "timedOut": report.timed_out.contains(&key),
            "total": ops.len(),
            "truncated": truncated,
            "ops": drawn,
            "stuck": violation.map(|v| describe(&ops[v.stuck])),
            "window": violation.map(|v| v.window.iter().map(|&i| describe(&ops[i])).collect::<Vec<_>>()),
            "prefixLen": violation.map(|v| v.prefix.len()),
        }));
    }
    let faults: Vec<Value> =
        report.history.faults.iter().map(|f| json!({"f": f.f, "value": f.value, "time": f.time})).collect();
    let data = json!({
        "title": title,
        "verdict": report.verdict.as_str(),
        "keys": keys,
        "keyCount": report.history.keys.len(),
        "ops": report.history.total_ops,
        "faults": faults,
    });
    // Keep `</script>` out of the embedded JSON.
    let data = data.to_string().replace("</", "<\\/");
    TEMPLATE.replace("__DATA__", &data)
}

const TEMPLATE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>valthree history check</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} .bad{color:#b00020} .good{color:#1b7a2f} .unk{color:#a66a00}
.key{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em}
.key h2{font-size:1.05em;margin:.2em 0} .note{color:#666;font-size:.9em}
svg{display:block;width:100%;background:#fafafa;border:1px solid #eee;cursor:grab}
.op rect{stroke:#345;stroke-width:.6} .op text{font-size:10px;pointer-events:none}
.op.prefix rect{fill:#b9e4c1} .op.stuck rect{fill:#f4a1a9;stroke:#b00020;stroke-width:2}
.op.window rect{fill:#fbe3c8;stroke:#b00020;stroke-width:1.5} .op.plain rect{fill:#cfe0f5} .op.info rect{fill:url(#hatch)}
.fault{stroke:#c0392b;stroke-dasharray:4 3} .faulttext{font-size:10px;fill:#c0392b}
button{margin-right:.4em} ul{margin:.3em 0}
</style></head><body>
<h1 id="head"></h1><p id="summary"></p>
<p class="note">Bars run from invocation to completion; hatched bars have an unknown outcome and may have taken effect any time after their start. Green bars are the longest linearizable prefix, numbered in linearization order; the red bar could not be placed after it. Drag to pan, wheel to zoom.</p>
<div id="keys"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
const D = JSON.parse(document.getElementById('data').textContent);
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
document.title = D.title + ' — ' + D.verdict;
const cls = D.verdict === 'linearizable' ? 'good' : D.verdict === 'unknown' ? 'unk' : 'bad';
document.getElementById('head').innerHTML = esc(D.title) + ': <span class="' + cls + '">' + esc(D.verdict) + '</span>';
document.getElementById('summary').textContent = D.ops + ' operations on ' + D.keyCount + ' keys, ' + D.faults.length + ' nemesis events' + (D.keys.length < D.keyCount ? ' (first ' + D.keys.length + ' keys shown)' : '') + '.';
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent) { const e = document.createElementNS(NS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (parent) parent.appendChild(e); return e; }
function draw(k, box) {
  const procs = [...new Set(k.ops.map(o => o.p))].sort((a, b) => a - b);
  const row = 22, top = 18, W = 1200, H = top + row * procs.length + 6;
  let tmin = Math.min(...k.ops.map(o => o.call)), tmax = Math.max(...k.ops.map(o => o.ret ?? o.call));
  tmax = Math.max(tmax, tmin + 1);
  const end = tmax + (tmax - tmin) * 0.05;
  let view = [tmin, end];
  const focus = k.ops.filter(o => o.win);
  if (focus.length) { const a = Math.min(...focus.map(o => o.call)), b = Math.max(...focus.map(o => o.ret ?? o.call)); const m = Math.max((b - a) * 0.6, 1); view = [a - m, b + m]; }
  const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, height: H});
  const defs = el('defs', {}, svg); const pat = el('pattern', {id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)'}, defs);
  el('rect', {width: 6, height: 6, fill: '#fde7b0'}, pat); el('line', {x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#d9a400', 'stroke-width': 2}, pat);
  const g = el('g', {}, svg);
  function render() {
    g.innerHTML = '';
    const x = t => 90 + (t - view[0]) / (view[1] - view[0]) * (W - 100);
    procs.forEach((p, r) => { const t = el('text', {x: 4, y: top + r * row + 14, 'font-size': 11}, g); t.textContent = 'client ' + p; });
    for (const f of D.faults) { if (f.time < view[0] || f.time > view[1]) continue; el('line', {x1: x(f.time), x2: x(f.time), y1: 0, y2: H, class: 'fault'}, g); const t = el('text', {x: x(f.time) + 2, y: 10, class: 'faulttext'}, g); t.textContent = f.f + ' ' + (typeof f.value === 'string' ? f.value : JSON.stringify(f.value ?? '')); }
    for (const o of k.ops) {
      const a = x(o.call), b = x(o.ret ?? end); if (b < 90 || a > W) continue;
      const r = procs.indexOf(o.p), c = el('g', {class: 'op ' + (o.tag || 'plain') + (o.ret === null ? ' info' : '')}, g);
      el('rect', {x: Math.max(a, 90), y: top + r * row, width: Math.max(b - Math.max(a, 90), 2), height: row - 6, rx: 3}, c);
      const label = (o.order ? '#' + o.order + ' ' : '') + o.label, room = Math.floor((b - Math.max(a, 90) - 6) / 6);
      if (room >= 3) { const t = el('text', {x: Math.max(a, 90) + 3, y: top + r * row + 11}, c); t.textContent = label.length <= room ? label : label.slice(0, room - 1) + '…'; }
      el('title', {}, c).textContent = o.text;
    }
  }
  render();
  let drag = null;
  svg.addEventListener('mousedown', e => drag = {x: e.clientX, view: view.slice()});
  window.addEventListener('mouseup', () => drag = null);
  svg.addEventListener('mousemove', e => { if (!drag) return; const dt = (e.clientX - drag.x) / svg.clientWidth * (drag.view[1] - drag.view[0]); view = [drag.view[0] - dt, drag.view[1] - dt]; render(); });
  svg.addEventListener('wheel', e => { e.preventDefault(); const f = e.deltaY > 0 ? 1.25 : 0.8, mid = view[0] + (e.offsetX / svg.clientWidth) * (view[1] - view[0]); view = [mid - (mid - view[0]) * f, mid + (view[1] - mid) * f]; render(); });
  const all = document.createElement('button'); all.textContent = 'whole key'; all.onclick = () => { view = [tmin, end]; render(); };
  box.appendChild(all); box.appendChild(svg);
}
const keys = document.getElementById('keys');
for (const k of D.keys) {
  const box = document.createElement('div'); box.className = 'key';
  const state = k.ok ? '<span class="good">linearizable</span>' : k.timedOut ? '<span class="unk">unknown (time limit)</span>' : '<span class="bad">NOT linearizable</span>';
  let html = '<h2>key ' + esc(k.key) + ': ' + state + '</h2><div class="note">' + k.total + ' operations' + (k.truncated ? ', ' + k.ops.length + ' drawn' : '') + '</div>';
  if (k.stuck) html += '<p>After a linearizable prefix of ' + k.prefixLen + ' operations, this one cannot be placed: <b class="bad">' + esc(k.stuck) + '</b></p><div>Window (the last operation placed and everything concurrent with the stuck one):<ul>' + k.window.map(w => '<li>' + esc(w) + '</li>').join('') + '</ul></div>';
  box.innerHTML = html; keys.appendChild(box);
  if (!k.ok || D.keys.length <= 20) draw(k, box);
  else { const b = document.createElement('button'); b.textContent = 'show timeline'; b.onclick = () => { b.remove(); draw(k, box); }; box.appendChild(b); }
}
</script></body></html>
"##;
