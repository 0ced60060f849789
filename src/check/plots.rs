//! The plots at the top of the report, Jepsen-style, drawn here as inline SVG: the page needs
//! no script to show them, nothing from the network, and they read the same offline.
//!
//! - A summary: the verdict, the operations by outcome, latency and throughput figures, the
//!   faults by kind and how long they were in effect.
//! - Latency: one dot per operation at its invocation time, its height the time to its
//!   completion on a log scale, coloured by outcome (ok, info, fail). An operation that never
//!   completed has no latency: it is a tick in the "no reply" strip along the top.
//! - Throughput: completions per second, one line per outcome.
//! - Behind both, each fault's interval shaded in its kind's colour and labelled (an instant
//!   nemesis event is a dashed line); hovering a band names it, with its start and end.
//!
//! Size is bounded whatever the history's length. Up to [`MAX_POINTS`] operations are drawn
//! one dot each, exactly where they fall. Beyond that the latency plot is aggregated: the
//! plot is cut into square cells of 2 px (4, 8, … until at most [`MAX_POINTS`] cells are
//! occupied), and each occupied cell gets one dot per outcome present in it, at the mean
//! position of its operations, sized by how many it stands for (one; up to nine; more), so
//! a lone failure among many successes stays a speck rather than a dot as big as theirs.
//! Outliers survive (a lone slow operation still owns its cell); only overlapping dots,
//! which the eye could not tell apart anyway, are merged. Throughput is bucketed into at
//! most [`MAX_BUCKETS`] columns (1 s each when the run is 20 s to 10 min long; narrower or
//! wider otherwise, always scaled to operations per second). So a history of a million
//! operations draws at most 5,000 dots and 1,800 line segments: a few hundred kB of page.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::faults::{Span, color};
use crate::history::EventType;

/// One client operation's timing and outcome: `ret` is [`super::NEVER`] for an operation
/// that never completed (its outcome is then `Info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub call: u64,
    pub ret: u64,
    pub outcome: EventType,
}

/// The most dots the latency plot draws (beyond this, dots are merged per cell).
pub const MAX_POINTS: usize = 5000;
/// The most throughput buckets.
pub const MAX_BUCKETS: usize = 600;
/// The fewest throughput buckets a run gets (a short run is cut finer than 1 s).
const MIN_BUCKETS: u64 = 20;

/// The geometry shared with the timelines below: the same width, left margin and fixed
/// height (so the same scale in the page), so the plots' time axis lines up with theirs.
const W: f64 = 1200.0;
const L: f64 = 70.0;
const R: f64 = 8.0;
/// Lanes of fault labels above each plot.
const LANES: usize = 3;
const LANE: f64 = 11.0;

const SECOND: u64 = 1_000_000_000;

/// The outcomes in drawing order (rare ones last, on top), with their names and colours.
const OUTCOMES: [(EventType, &str, &str); 3] =
    [(EventType::Ok, "ok", "#3b82c4"), (EventType::Info, "info", "#e69500"), (EventType::Fail, "fail", "#d6336c")];

fn outcome_index(o: EventType) -> usize {
    match o {
        EventType::Fail => 2,
        EventType::Info | EventType::Invoke => 1,
        EventType::Ok => 0,
    }
}

/// What the plots show besides the history itself.
pub struct Verdict<'a> {
    /// The verdict as the report words it (`linearizable`, `NOT consistent`, …).
    pub text: &'a str,
    /// `good`, `bad` or `unk`: the page's class for it.
    pub class: &'a str,
}

/// The time range the plots span (the report's run range).
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub t0: u64,
    pub t1: u64,
}

impl Range {
    fn x(&self, t: u64) -> f64 {
        L + (t.saturating_sub(self.t0)) as f64 / (self.t1 - self.t0).max(1) as f64 * (W - L - R)
    }
}

/// Escapes text for HTML and SVG, in text and in attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `12,345`.
fn num(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in the unit that reads best: `850 µs`, `12.5 ms`, `1.02 s`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    let (v, unit) = if ns < 1_000 {
        (f, "ns")
    } else if ns < 1_000_000 {
        (f / 1e3, "µs")
    } else if ns < SECOND {
        (f / 1e6, "ms")
    } else {
        (f / 1e9, "s")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

/// A bucket's width: `500 ms`, `1 s`, `10 s`.
fn width_text(ns: u64) -> String {
    if ns.is_multiple_of(SECOND) {
        format!("{} s", ns / SECOND)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{} ms", ns / 1_000_000)
    } else {
        duration(ns)
    }
}

/// A power of ten of nanoseconds, for the latency axis: `1 µs`, `10 ms`, `1 s`, `100 s`.
fn decade(d: i64) -> String {
    let (unit, base) = match d {
        ..=2 => ("ns", 0),
        3..=5 => ("µs", 3),
        6..=8 => ("ms", 6),
        _ => ("s", 9),
    };
    format!("{} {unit}", 10u64.pow((d.max(0) - base) as u32))
}

/// A time on the run's axis: `12.5 s`.
fn secs(t: u64, decimals: usize) -> String {
    format!("{:.decimals$} s", t as f64 / 1e9)
}

/// Round tick values for `[a, b]`: about `n` of them, at 1, 2 or 5 times a power of ten.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

/// The time axis along `y`: grid lines up to it from `y_top`, labels under it.
fn time_axis(out: &mut String, r: Range, y_top: f64, y: f64) {
    let step = nice_step((r.t1 - r.t0) as f64, 10.0);
    let decimals = (-(step / 1e9).log10().floor()).clamp(0.0, 9.0) as usize;
    let mut t = ((r.t0 as f64) / step).ceil() * step;
    let _ = write!(out, r##"<g class="taxis">"##);
    while t <= r.t1 as f64 {
        let x = r.x(t as u64);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y_top}" y2="{y}" class="grid"/><text x="{x:.1}" y="{}" text-anchor="middle" class="axis">{}</text>"##,
            y + 12.0,
            secs(t as u64, decimals)
        );
        t += step;
    }
    let _ = write!(out, r##"<line x1="{L}" x2="{}" y1="{y}" y2="{y}" stroke="#999"/></g>"##, W - R);
}

/// Each fault's interval shaded from `y0` to `y1`, labelled in lanes above `y0`; an instant
/// is a dashed line. Every band carries a tooltip (`<title>`) naming it and its times.
fn fault_bands(out: &mut String, spans: &[Span], r: Range, y0: f64, y1: f64) {
    let mut lane_ends = [f64::MIN; LANES];
    let _ = write!(out, r##"<g class="faults">"##);
    for s in spans {
        let (a, b) = (r.x(s.start), r.x(s.end_or(r.t1)));
        let c = color(if s.span { &s.kind } else { "" });
        let when = if !s.span {
            format!("at {}", secs(s.start.saturating_sub(r.t0), 2))
        } else {
            format!(
                "{} ({}) → {}",
                secs(s.start.saturating_sub(r.t0), 2),
                esc(&s.action),
                match s.end {
                    Some(e) => format!("{} ({})", secs(e.saturating_sub(r.t0), 2), esc(&s.undo)),
                    None => "never ended".into(),
                }
            )
        };
        let failed = s.error.as_ref().map(|e| format!(" — failed: {}", esc(e))).unwrap_or_default();
        let title = format!("{}: {when}{failed}", esc(&s.name()));
        if s.span {
            let _ = write!(
                out,
                r##"<rect class="fault" data-kind="{}" x="{a:.1}" y="{y0}" width="{:.1}" height="{}" fill="{c}" fill-opacity="0.14" stroke="{c}" stroke-opacity="0.5" stroke-dasharray="4 3"><title>{title}</title></rect>"##,
                esc(&s.kind),
                (b - a).max(1.5),
                y1 - y0
            );
        } else {
            let _ = write!(
                out,
                r##"<line class="instant" data-kind="{}" x1="{a:.1}" x2="{a:.1}" y1="{y0}" y2="{y1}" stroke="{c}" stroke-dasharray="2 3"><title>{title}</title></line>"##,
                esc(&s.kind)
            );
        }
        let mut label = s.name();
        if s.span && s.end.is_none() {
            label.push_str(" (never ended)");
        }
        if s.error.is_some() {
            label.push_str(" (failed)");
        }
        // Labels ~6 px a character; a label that fits in no lane is left to the tooltip.
        // Lane 0 is the nearest the plot; a label near the right edge is pulled back inside.
        let width = 6.0 * label.chars().count() as f64;
        let x = (a + 2.0).min(W - R - width).max(L);
        if let Some(lane) = lane_ends.iter().position(|&end| end < x) {
            lane_ends[lane] = x + width + 8.0;
            let _ = write!(
                out,
                r##"<text class="flabel" x="{x:.1}" y="{}" fill="{c}">{}</text>"##,
                y0 - 4.0 - lane as f64 * LANE,
                esc(&label)
            );
        }
    }
    let _ = write!(out, "</g>");
}

/// A dot: its outcome, where it is drawn, and how many operations it stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dot {
    outcome: usize,
    x: f64,
    y: f64,
    n: usize,
}

/// The dots to draw: every point when there are at most [`MAX_POINTS`], else one per
/// outcome per occupied cell, at the mean position of the points it stands for (see the
/// module doc). Returns the dots and the cell size (0 when every point is drawn as it is).
fn downsample(points: &[(usize, f64, f64)]) -> (Vec<Dot>, f64) {
    if points.len() <= MAX_POINTS {
        return (points.iter().map(|&(outcome, x, y)| Dot { outcome, x, y, n: 1 }).collect(), 0.0);
    }
    let mut cell = 2.0;
    loop {
        let mut cells: BTreeMap<(usize, i64, i64), (f64, f64, usize)> = BTreeMap::new();
        for &(o, x, y) in points {
            let c = cells.entry((o, (x / cell).floor() as i64, (y / cell).floor() as i64)).or_default();
            *c = (c.0 + x, c.1 + y, c.2 + 1);
        }
        if cells.len() <= MAX_POINTS {
            let dots = cells.into_iter().map(|((outcome, ..), (sx, sy, n))| Dot {
                outcome,
                x: sx / n as f64,
                y: sy / n as f64,
                n,
            });
            return (dots.collect(), cell);
        }
        cell *= 2.0;
    }
}

/// The dot sizes of an aggregated plot, by how many operations a dot stands for (at most
/// this many): a lone failure is a speck on the crowd, not a dot as big as it.
const DOT_SIZES: [(usize, f64); 3] = [(1, 2.2), (9, 3.2), (usize::MAX, 4.6)];

/// A latency on the log axis.
struct LogAxis {
    lo: f64,
    hi: f64,
    y0: f64,
    y1: f64,
}

impl LogAxis {
    fn y(&self, ns: u64) -> f64 {
        let v = (ns.max(1) as f64).log10().clamp(self.lo, self.hi);
        self.y1 - (v - self.lo) / (self.hi - self.lo) * (self.y1 - self.y0)
    }
}

fn latency_plot(out: &mut String, samples: &[Sample], spans: &[Span], r: Range) {
    let top = 8.0 + LANES as f64 * LANE;
    let (strip0, strip1) = (top, top + 10.0);
    let (y0, y1) = (strip1 + 6.0, strip1 + 226.0);
    let h = y1 + 20.0;
    let latencies = samples.iter().filter(|s| s.ret != super::NEVER).map(|s| s.ret.saturating_sub(s.call).max(1));
    let (min, max) = latencies.fold((u64::MAX, 0), |(a, b), l| (a.min(l), b.max(l)));
    let (lo, hi) = if min > max {
        (6.0, 9.0)
    } else {
        let lo = (min as f64).log10().floor();
        (lo, (max as f64).log10().ceil().max(lo + 1.0))
    };
    // A few pixels inside the frame, so dots on a decade at either end are not cut.
    let axis = LogAxis { lo, hi, y0: y0 + 3.0, y1: y1 - 3.0 };
    let _ = write!(
        out,
        r##"<svg class="plot" id="latency-plot" viewBox="0 0 {W} {h}" height="{h}" role="img" aria-label="latency of every operation over time">"##
    );
    fault_bands(out, spans, r, strip0, y1);
    time_axis(out, r, y0, y1);
    // Decades on the y axis.
    let _ = write!(out, r##"<g class="yaxis">"##);
    for d in lo as i64..=hi as i64 {
        let y = axis.y(10u64.saturating_pow(d as u32));
        let _ = write!(
            out,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" text-anchor="end" class="axis">{}</text>"##,
            W - R,
            L - 4.0,
            y + 3.0,
            decade(d)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="end" class="axis">no reply</text><rect x="{L}" y="{strip0}" width="{}" height="{}" fill="#fff" fill-opacity="0.6" stroke="#ddd"/></g>"##,
        L - 4.0,
        strip0 + 8.0,
        W - L - R,
        strip1 - strip0
    );
    let points: Vec<(usize, f64, f64)> = samples
        .iter()
        .filter(|s| s.ret != super::NEVER)
        .map(|s| (outcome_index(s.outcome), r.x(s.call), axis.y(s.ret.saturating_sub(s.call))))
        .collect();
    let (dots, cell) = downsample(&points);
    if cell > 0.0 {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="end" class="axis">{} operations as {} dots, one per outcome per {cell} px cell</text>"##,
            W - R - 2.0,
            y0 - 3.0,
            num(points.len()),
            num(dots.len())
        );
    }
    for (i, (_, name, c)) in OUTCOMES.iter().enumerate() {
        let ops = points.iter().filter(|p| p.0 == i).count();
        let mine: Vec<&Dot> = dots.iter().filter(|d| d.outcome == i).collect();
        let _ = write!(
            out,
            r##"<g class="dots {name}" data-outcome="{name}" data-ops="{ops}" data-dots="{}" stroke="{c}" stroke-linecap="round" fill="none">"##,
            mine.len()
        );
        // Drawn one by one: one size. Aggregated: a path per size, the biggest first.
        let sizes: &[(usize, f64)] = if cell > 0.0 { &DOT_SIZES } else { &[(usize::MAX, 3.2)] };
        for (k, &(most, width)) in sizes.iter().enumerate().rev() {
            let least = if k == 0 { 0 } else { sizes[k - 1].0 };
            let mut d = String::new();
            for dot in mine.iter().filter(|d| d.n > least && d.n <= most) {
                let _ = write!(d, "M{:.1} {:.1}h0", dot.x, dot.y);
            }
            if !d.is_empty() {
                let _ = write!(out, r##"<path stroke-width="{width}" d="{d}"/>"##);
            }
        }
        let _ = write!(out, "</g>");
    }
    // Operations that never completed: ticks at their invocation in the strip.
    let mut d = String::new();
    let mut never = 0;
    let mut last = f64::MIN;
    for s in samples.iter().filter(|s| s.ret == super::NEVER) {
        never += 1;
        let x = r.x(s.call);
        if x - last >= 1.0 {
            let _ = write!(d, "M{x:.1} {:.1}V{:.1}", strip0 + 1.0, strip1 - 1.0);
            last = x;
        }
    }
    let _ = write!(
        out,
        r##"<path class="noreply" data-ops="{never}" d="{d}" stroke="{}" stroke-width="1.5"/>"##,
        OUTCOMES[1].2
    );
    let _ = write!(out, "</svg>");
}

/// The width of a throughput bucket for a run of `span` ns: 1 s when that gives
/// 20–[`MAX_BUCKETS`] buckets, else the round width nearest that range.
fn bucket_width(span: u64) -> u64 {
    const NICE: [u64; 21] = [
        1_000_000,
        2_000_000,
        5_000_000,
        10_000_000,
        20_000_000,
        50_000_000,
        100_000_000,
        200_000_000,
        500_000_000,
        SECOND,
        2 * SECOND,
        5 * SECOND,
        10 * SECOND,
        20 * SECOND,
        30 * SECOND,
        60 * SECOND,
        120 * SECOND,
        300 * SECOND,
        600 * SECOND,
        1800 * SECOND,
        3600 * SECOND,
    ];
    if span < MIN_BUCKETS * SECOND {
        NICE.iter().rev().copied().find(|&w| w * MIN_BUCKETS <= span).unwrap_or(NICE[0])
    } else if span.div_ceil(SECOND) as usize <= MAX_BUCKETS {
        SECOND
    } else {
        NICE.iter()
            .copied()
            .find(|&w| span.div_ceil(w) as usize <= MAX_BUCKETS)
            .unwrap_or_else(|| span.div_ceil(MAX_BUCKETS as u64))
    }
}

/// Completions per bucket, per outcome (operations that never completed are not counted).
fn throughput(samples: &[Sample], r: Range, width: u64) -> [Vec<usize>; 3] {
    let n = ((r.t1 - r.t0).div_ceil(width) as usize).max(1);
    let mut counts = [vec![0; n], vec![0; n], vec![0; n]];
    for s in samples.iter().filter(|s| s.ret != super::NEVER) {
        let b = (s.ret.saturating_sub(r.t0) / width) as usize;
        counts[outcome_index(s.outcome)][b.min(n - 1)] += 1;
    }
    counts
}

fn throughput_plot(out: &mut String, samples: &[Sample], spans: &[Span], r: Range) -> (f64, f64) {
    let width = bucket_width(r.t1 - r.t0);
    let counts = throughput(samples, r, width);
    let per_sec = SECOND as f64 / width as f64;
    let totals: Vec<usize> = (0..counts[0].len()).map(|b| counts.iter().map(|c| c[b]).sum()).collect();
    let peak = totals.iter().copied().max().unwrap_or(0) as f64 * per_sec;
    let top_rate = counts.iter().flatten().copied().max().unwrap_or(0) as f64 * per_sec;
    let step = nice_step(top_rate.max(1.0), 4.0);
    let y_max = (top_rate / step).ceil().max(1.0) * step;
    let top = 8.0 + LANES as f64 * LANE;
    let (y0, y1) = (top + 6.0, top + 156.0);
    let h = y1 + 20.0;
    let y = |rate: f64| y1 - rate / y_max * (y1 - y0);
    let _ = write!(
        out,
        r##"<svg class="plot" id="throughput-plot" viewBox="0 0 {W} {h}" height="{h}" role="img" aria-label="throughput per second by outcome">"##
    );
    fault_bands(out, spans, r, top, y1);
    time_axis(out, r, y0, y1);
    let _ = write!(out, r##"<g class="yaxis">"##);
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let label = if v >= 1000.0 { num(v as usize) } else { format!("{}", (v * 100.0).round() / 100.0) };
        let _ = write!(
            out,
            r##"<line x1="{L}" x2="{}" y1="{:.1}" y2="{:.1}" class="grid"/><text x="{}" y="{:.1}" text-anchor="end" class="axis">{label}</text>"##,
            W - R,
            y(v),
            y(v),
            L - 4.0,
            y(v) + 3.0
        );
        v += step;
    }
    let _ = write!(out, "</g>");
    let bucket_x = |b: usize| r.x(r.t0 + b as u64 * width).min(W - R);
    for (i, (_, name, c)) in OUTCOMES.iter().enumerate() {
        let total: usize = counts[i].iter().sum();
        if total == 0 {
            continue;
        }
        let mut d = format!("M{L:.1} {:.1}", y(counts[i][0] as f64 * per_sec));
        for (b, &n) in counts[i].iter().enumerate() {
            let _ = write!(d, "V{:.1}H{:.1}", y(n as f64 * per_sec), bucket_x(b + 1));
        }
        let _ = write!(
            out,
            r##"<path class="rate {name}" data-outcome="{name}" data-ops="{total}" data-buckets="{}" d="{d}" stroke="{c}" stroke-width="1.6" fill="none"/>"##,
            counts[i].len()
        );
    }
    let _ = write!(out, "</svg>");
    let mean = totals.iter().sum::<usize>() as f64 / ((r.t1 - r.t0).max(1) as f64 / 1e9);
    (mean, peak)
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[u64], q: f64) -> u64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The summary table.
fn summary(out: &mut String, samples: &[Sample], spans: &[Span], r: Range, verdict: &Verdict, rates: (f64, f64)) {
    let mut by = [0usize; 3];
    for s in samples {
        by[outcome_index(s.outcome)] += 1;
    }
    let never = samples.iter().filter(|s| s.ret == super::NEVER).count();
    let mut ok: Vec<u64> =
        samples.iter().filter(|s| s.outcome == EventType::Ok).map(|s| s.ret.saturating_sub(s.call)).collect();
    ok.sort_unstable();
    let mut kinds: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.span) {
        let e = kinds.entry(&s.kind).or_default();
        e.0 += 1;
        e.1 += s.end_or(r.t1) - s.start;
    }
    // Time with at least one fault in effect: the union of the intervals.
    let mut intervals: Vec<(u64, u64)> = spans.iter().filter(|s| s.span).map(|s| (s.start, s.end_or(r.t1))).collect();
    intervals.sort_unstable();
    let (mut faulty, mut reach) = (0u64, 0u64);
    for (a, b) in intervals {
        let a = a.max(reach);
        if b > a {
            faulty += b - a;
            reach = b;
        }
    }
    let instants = spans.iter().filter(|s| !s.span).count();
    let run = r.t1 - r.t0;
    let _ = write!(
        out,
        r##"<table class="summary" id="summary"><tr><th>verdict</th><td class="{}"><b>{}</b></td></tr>"##,
        esc(verdict.class),
        esc(verdict.text)
    );
    let _ = write!(
        out,
        r##"<tr><th>operations</th><td><b data-count="ops">{}</b>: <span class="sw ok"></span>{} ok · <span class="sw info"></span>{} info (outcome unknown{}) · <span class="sw fail"></span>{} fail</td></tr>"##,
        num(samples.len()),
        num(by[0]),
        num(by[1]),
        if never > 0 { format!(", {} of them never completed", num(never)) } else { String::new() },
        num(by[2])
    );
    if !ok.is_empty() {
        let _ = write!(
            out,
            "<tr><th>ok latency</th><td>median {} · 99th percentile {} · max {}</td></tr>",
            duration(quantile(&ok, 0.5)),
            duration(quantile(&ok, 0.99)),
            duration(*ok.last().unwrap())
        );
    }
    let _ = write!(
        out,
        "<tr><th>throughput</th><td>mean {:.0} ops/s · peak {:.0} ops/s ({} buckets)</td></tr>",
        rates.0,
        rates.1,
        width_text(bucket_width(run))
    );
    let faults = kinds.values().map(|k| k.0).sum::<usize>();
    let list: Vec<String> = kinds
        .iter()
        .map(|(k, (n, t))| {
            format!(r##"<span class="sw" style="background:{}"></span>{n} {} ({})"##, color(k), esc(k), duration(*t))
        })
        .collect();
    let _ = write!(
        out,
        r##"<tr><th>faults</th><td><b data-count="faults">{}</b>{}{}</td></tr>"##,
        num(faults),
        if faults > 0 {
            format!(": {} · some fault in effect {} of the run's {}", list.join(" · "), duration(faulty), duration(run))
        } else {
            " (no nemesis)".into()
        },
        if instants > 0 {
            format!(" · {} other nemesis event{}", instants, if instants == 1 { "" } else { "s" })
        } else {
            String::new()
        }
    );
    let _ = write!(out, "</table>");
}

/// The plots section: summary, latency, throughput. `samples` are every client operation;
/// `spans` the faults ([`super::faults::spans`]); `r` the run's time range.
pub fn render(samples: &[Sample], spans: &[Span], r: Range, verdict: &Verdict) -> String {
    let r = Range { t0: r.t0, t1: r.t1.max(r.t0 + 1) };
    let mut latency = String::new();
    latency_plot(&mut latency, samples, spans, r);
    let mut rate = String::new();
    let rates = throughput_plot(&mut rate, samples, spans, r);
    let mut out = String::from(r##"<section id="plots">"##);
    summary(&mut out, samples, spans, r, verdict, rates);
    let legend = |what: &str| {
        let items: Vec<String> = OUTCOMES
            .iter()
            .map(|(_, name, _)| format!(r##"<span><span class="sw {name}"></span>{name}</span>"##))
            .collect();
        format!(r##"<div class="plegend"><b>{what}</b> {}</div>"##, items.join(""))
    };
    out.push_str(&legend("Latency of every operation, by invocation time (log scale)"));
    out.push_str(&latency);
    out.push_str(&legend(&format!(
        "Throughput: completions per second, in {} buckets",
        width_text(bucket_width(r.t1 - r.t0))
    )));
    out.push_str(&rate);
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests;
