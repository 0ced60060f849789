//! The plots on a synthetic 10-second run with a fault of every kind the nemesis names, one
//! it does not, an instant event and a fault never ended; and on a run too long to draw dot
//! by dot.

use serde_json::{Value, json};

use super::*;
use crate::check::{check, report};
use crate::history::{Event, FaultMark, Process, in_time_order};

const MS: u64 = 1_000_000;

fn event(process: Process, kind: EventType, f: &str, key: Option<&str>, value: Value, time: u64) -> Event {
    Event { index: 0, process, kind, f: f.into(), key: key.map(str::to_owned), value, error: None, fault: None, time }
}

fn nemesis(f: &str, target: &str, time: u64, mark: Option<FaultMark>) -> Event {
    Event { fault: mark, ..event(Process::Nemesis, EventType::Info, f, None, json!(target), time) }
}

/// What the synthetic run holds, to compare the page with.
struct Run {
    events: Vec<Event>,
    ok: usize,
    info: usize,
    fail: usize,
    never: usize,
}

/// Four clients setting two keys for 10 s, one operation each 50 ms taking 2 ms — 400 ms
/// while n2 is paused (3–5 s); every 25th fails, every 40th times out (info); three more
/// clients invoke at 6 s and never hear back. Faults: kill, pause, partition, membership,
/// an unknown kind (meteor), a power loss never ended, and one unmarked event.
fn synthetic() -> Run {
    let mut run = Run { events: Vec::new(), ok: 0, info: 0, fail: 0, never: 0 };
    for c in 0..4u64 {
        let key = format!("k{}", c % 2);
        let mut t = c * 10 * MS;
        let mut seq = 0;
        while t < 9_900 * MS {
            seq += 1;
            let value = json!(format!("{c}-{seq}"));
            let slow = (3_000 * MS..5_000 * MS).contains(&t);
            let ret = t + if slow { 400 * MS } else { 2 * MS };
            let outcome = if seq % 25 == 0 {
                run.fail += 1;
                EventType::Fail
            } else if seq % 40 == 0 {
                run.info += 1;
                EventType::Info
            } else {
                run.ok += 1;
                EventType::Ok
            };
            let p = Process::Client(c);
            run.events.push(event(p, EventType::Invoke, "set", Some(&key), value.clone(), t));
            run.events.push(event(p, outcome, "set", Some(&key), value, ret));
            t = (ret + MS).max(t + 50 * MS);
        }
    }
    for c in 10..13u64 {
        run.never += 1;
        run.info += 1;
        run.events.push(event(
            Process::Client(c),
            EventType::Invoke,
            "set",
            Some("k0"),
            json!(format!("{c}-1")),
            6_000 * MS,
        ));
    }
    run.events.push(event(
        Process::Client(0),
        EventType::Invoke,
        "set",
        Some("k0"),
        json!("0-end"),
        10_000 * MS - 3 * MS,
    ));
    run.events.push(event(Process::Client(0), EventType::Ok, "set", Some("k0"), json!("0-end"), 10_000 * MS));
    run.ok += 1;
    let s = |k: &str| Some(FaultMark::start(k));
    let e = |k: &str| Some(FaultMark::end(k));
    run.events.extend([
        nemesis("kill", "n1", 1_000 * MS, s("kill")),
        nemesis("restart", "n1", 2_000 * MS, e("kill")),
        nemesis("tick", "", 2_500 * MS, None),
        nemesis("pause", "n2", 3_000 * MS, s("pause")),
        nemesis("resume", "n2", 5_000 * MS, e("pause")),
        nemesis("partition", "n3", 6_000 * MS, s("partition")),
        nemesis("heal", "all", 7_000 * MS, e("partition")),
        nemesis("add-node", "n4", 7_500 * MS, s("membership")),
        nemesis("meteor", "n1", 8_000 * MS, s("meteor")),
        nemesis("remove-node", "n4", 8_500 * MS, e("membership")),
        nemesis("all-clear", "n1", 9_000 * MS, e("meteor")),
        nemesis("power-loss", "n2", 9_500 * MS, s("power-loss")),
    ]);
    run
}

/// The plots section of the register checker's page for `events`.
fn plots_of(events: Vec<Event>) -> String {
    let report = check(&in_time_order(events), None, &|_, _| {}).unwrap();
    let page = report::render(&report, "synthetic");
    let start = page.find(r#"<section id="plots">"#).expect("the page has its plots");
    let end = start + page[start..].find("</section>").unwrap();
    page[start..end].to_string()
}

/// The opening tag of the first element carrying `marker` (an attribute, `key="value"`).
fn tag<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html.find(marker).unwrap_or_else(|| panic!("no element with {marker}"));
    let open = html[..at].rfind('<').unwrap();
    &html[open..at + html[at..].find('>').unwrap() + 1]
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let at = tag.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("no {name} in {tag}")) + name.len() + 3;
    &tag[at..at + tag[at..].find('"').unwrap()]
}

/// The path data of an outcome's dots (its group holds a path per dot size).
fn dot_paths(latency: &str, outcome: &str) -> String {
    let start = latency.find(&format!(r#"data-outcome="{outcome}""#)).unwrap();
    let group = &latency[start..start + latency[start..].find("</g>").unwrap()];
    group.split(" d=\"").skip(1).map(|p| &p[..p.find('"').unwrap()]).collect()
}

/// The part of the page inside the SVG element with this id.
fn svg<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!(r#"id="{id}""#)).unwrap();
    &html[start..start + html[start..].find("</svg>").unwrap()]
}

#[test]
fn the_latency_plot_draws_every_operation_by_outcome_on_a_log_axis() {
    let run = synthetic();
    let plots = plots_of(run.events);
    let latency = svg(&plots, "latency-plot");
    for (name, n) in [("ok", run.ok), ("info", run.info - run.never), ("fail", run.fail)] {
        let dots = tag(latency, &format!(r#"data-outcome="{name}""#));
        assert_eq!(attr(dots, "data-ops"), n.to_string(), "{name} operations: {dots}");
        assert_eq!(attr(dots, "data-dots"), n.to_string(), "a small run is drawn dot by dot");
        assert_eq!(dot_paths(latency, name).matches("h0").count(), n, "one dot each");
    }
    assert_eq!(attr(tag(latency, r#"class="noreply""#), "data-ops"), run.never.to_string());
    // 2 ms and 400 ms latencies: decades from 1 ms to 1 s, and seconds along the bottom.
    for label in [">1 ms<", ">10 ms<", ">100 ms<", ">1 s<", ">0 s<", ">5 s<", ">10 s<", ">no reply<"] {
        assert!(latency.contains(label), "axis label {label}");
    }
    assert!(!latency.contains(">1 µs<") && !latency.contains(">100 µs<"), "no decade below the data");
    // The slow operations sit higher (smaller y) than the fast ones.
    let ok = dot_paths(latency, "ok");
    let ys: Vec<f64> = ok.split('M').skip(1).map(|p| p.split([' ', 'h']).nth(1).unwrap().parse().unwrap()).collect();
    let (top, bottom) = ys.iter().fold((f64::MAX, 0f64), |(a, b), &y| (a.min(y), b.max(y)));
    assert!(bottom - top > 80.0, "2 ms and 400 ms are far apart on the log axis: {top}..{bottom}");
}

#[test]
fn every_fault_is_a_labelled_shaded_interval_in_both_plots() {
    let plots = plots_of(synthetic().events);
    // The run is 0–10 s, drawn from x = 70 to x = 1192: 112.2 px a second.
    let x = |s: f64| 70.0 + s * 112.2;
    for id in ["latency-plot", "throughput-plot"] {
        let plot = svg(&plots, id);
        assert_eq!(plot.matches(r#"<rect class="fault""#).count(), 6, "{id}: six faults");
        for (kind, from, to) in [
            ("kill", 1.0, 2.0),
            ("pause", 3.0, 5.0),
            ("partition", 6.0, 7.0),
            ("membership", 7.5, 8.5),
            ("meteor", 8.0, 9.0),
            ("power-loss", 9.5, 10.0),
        ] {
            let band = tag(plot, &format!(r#"data-kind="{kind}""#));
            let (a, w): (f64, f64) = (attr(band, "x").parse().unwrap(), attr(band, "width").parse().unwrap());
            assert!((a - x(from)).abs() < 0.11 && (a + w - x(to)).abs() < 0.2, "{id} {kind}: {band}");
            assert_eq!(attr(band, "fill"), crate::check::faults::color(kind), "{kind}'s colour");
        }
        assert_eq!(attr(tag(plot, r#"data-kind="meteor""#), "fill"), crate::check::faults::OTHER, "unknown: grey");
        for label in [">kill n1<", ">pause n2<", ">partition n3<", ">membership n4<", ">power-loss n2 (never ended)<"] {
            assert!(plot.contains(label), "{id}: label {label}");
        }
        assert!(plot.contains("<title>pause n2: 3.00 s (pause) → 5.00 s (resume)</title>"), "{id}: the tooltip");
        assert_eq!(plot.matches(r#"<line class="instant""#).count(), 1, "{id}: the unmarked event is an instant");
    }
}

#[test]
fn throughput_counts_completions_per_outcome_in_buckets() {
    let run = synthetic();
    let plots = plots_of(run.events);
    let rate = svg(&plots, "throughput-plot");
    for (name, n) in [("ok", run.ok), ("info", run.info - run.never), ("fail", run.fail)] {
        let line = tag(rate, &format!(r#"class="rate {name}""#));
        assert_eq!(attr(line, "data-ops"), n.to_string(), "{name}");
        assert_eq!(attr(line, "data-buckets"), "20", "a 10 s run in 500 ms buckets");
    }
    assert!(plots.contains("in 500 ms buckets"), "the bucket width is said");
    // Four clients, one operation each 50 ms: 80 ops/s, less while n2 is paused.
    assert!(rate.contains(">80<") || rate.contains(">100<"), "the rate axis reaches the rate: {}", &rate[..400]);
}

#[test]
fn the_summary_gives_verdict_outcomes_and_faults() {
    let run = synthetic();
    let total = run.ok + run.info + run.fail;
    let plots = plots_of(run.events);
    let summary = &plots[..plots.find("</table>").unwrap()];
    assert!(summary.contains(r#"<td class="good"><b>linearizable</b>"#), "{summary}");
    assert!(summary.contains(&format!(r#"<b data-count="ops">{total}</b>"#)), "{summary}");
    for part in [
        format!("{} ok", run.ok),
        format!("{} info (outcome unknown, {} of them never completed)", run.info, run.never),
        format!("{} fail", run.fail),
        r#"<b data-count="faults">6</b>"#.to_string(),
        "1 kill (1.00 s)".into(),
        "1 pause (2.00 s)".into(),
        "1 meteor (1.00 s)".into(),
        "1 power-loss (500 ms)".into(),
        "some fault in effect 6.00 s of the run's 10.0 s".into(),
        "1 other nemesis event".into(),
        "median 2.00 ms".into(),
    ] {
        assert!(summary.contains(&part), "summary says {part:?}: {summary}");
    }
}

#[test]
fn a_long_run_is_aggregated_to_a_bounded_number_of_dots_keeping_outliers() {
    // 300,000 operations over 10 minutes, latencies spread 1-5 ms, one of 20 s.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut samples: Vec<Sample> = (0..300_000u64)
        .map(|i| {
            let call = i * 2 * MS;
            let outcome = match rng.u8(0..100) {
                0 => EventType::Fail,
                1 => EventType::Info,
                _ => EventType::Ok,
            };
            Sample { call, ret: call + rng.u64(MS..5 * MS), outcome }
        })
        .collect();
    samples[150_000].ret = samples[150_000].call + 20 * SECOND;
    let r = Range { t0: 0, t1: 600 * SECOND };
    let html = render(&samples, &[], r, &Verdict { text: "linearizable", class: "good" });
    let latency = svg(&html, "latency-plot");
    let mut dots = 0;
    for name in ["ok", "info", "fail"] {
        dots += attr(tag(latency, &format!(r#"data-outcome="{name}""#)), "data-dots").parse::<usize>().unwrap();
    }
    assert!(dots <= MAX_POINTS && dots > 100, "{dots} dots");
    assert!(latency.contains("300,000 operations as"), "the aggregation is said");
    assert!(latency.contains(">10 s<"), "the outlier's decade is on the axis");
    let ok = dot_paths(latency, "ok");
    let min_y = ok
        .split('M')
        .skip(1)
        .map(|p| p.split(' ').nth(1).unwrap().trim_end_matches("h0").parse::<f64>().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(min_y < 120.0, "the 20 s outlier keeps its dot, far above the 1-5 ms crowd: {min_y}");
    assert!(html.len() < 250_000, "the plots stay small: {} bytes", html.len());
    let rate = svg(&html, "throughput-plot");
    assert_eq!(attr(tag(rate, r#"class="rate ok""#), "data-buckets"), "600", "1 s buckets for 10 minutes");
}

#[test]
fn bucket_widths_keep_between_20_and_600_buckets() {
    assert_eq!(bucket_width(60 * SECOND), SECOND);
    assert_eq!(bucket_width(600 * SECOND), SECOND);
    assert_eq!(bucket_width(10 * SECOND), 500 * MS);
    assert_eq!(bucket_width(2 * SECOND), 100 * MS);
    assert_eq!(bucket_width(3600 * SECOND), 10 * SECOND);
    assert_eq!(bucket_width(1000), MS, "a run shorter than the narrowest bucket");
}

#[test]
fn an_empty_history_draws_empty_plots() {
    let html = render(&[], &[], Range { t0: 0, t1: 1 }, &Verdict { text: "linearizable", class: "good" });
    assert!(html.contains(r#"id="latency-plot""#) && html.contains(r#"<b data-count="ops">0</b>"#));
}
