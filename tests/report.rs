//! The HTML report in a real browser: `check-history --html` on a history with faults of
//! every kind, opened by headless Chromium, which must lay the plots out and paint them.
//! The screenshot is kept in cargo's test scratch directory for a person to look at.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, find_program};
use serde_json::{Value, json};

const MS: u64 = 1_000_000;

/// Writes a 12-second history: four clients setting two keys, a few failing or timing out,
/// slow while n2 is paused, two never answered; a fault of each kind the nemesis names, one
/// it does not (meteor), an unmarked event and a power loss never ended.
fn write_history(path: &Path) {
    let mut events: Vec<Value> = Vec::new();
    let mut push = |process: Value, kind: &str, f: &str, key: Option<&str>, value: Value, time: u64, fault: Value| {
        let mut e = json!({"process": process, "type": kind, "f": f, "time": time});
        if let Some(k) = key {
            e["key"] = json!(k);
        }
        if !value.is_null() {
            e["value"] = value;
        }
        if !fault.is_null() {
            e["fault"] = fault;
        }
        events.push(e);
    };
    for c in 0..4u64 {
        let (mut t, mut seq) = (c * 7 * MS, 0);
        while t < 11_800 * MS {
            seq += 1;
            let value = json!(format!("{c}-{seq}"));
            let slow = (3_000 * MS..5_500 * MS).contains(&t) && c % 2 == 0;
            let ret = t + if slow { 300 * MS + seq * MS } else { MS + (seq * 37 % 5) * MS };
            let outcome = if seq % 23 == 0 {
                "fail"
            } else if seq % 31 == 0 {
                "info"
            } else {
                "ok"
            };
            let key = format!("k{}", c % 2);
            push(json!(c), "invoke", "set", Some(&key), value.clone(), t, Value::Null);
            push(json!(c), outcome, "set", Some(&key), value, ret, Value::Null);
            t = (ret + MS).max(t + 40 * MS);
        }
    }
    for c in [8u64, 9] {
        push(json!(c), "invoke", "set", Some("k0"), json!(format!("{c}-1")), 6_500 * MS, Value::Null);
    }
    let mark = |kind: &str, phase: &str| json!({"kind": kind, "phase": phase});
    for (f, target, at, fault) in [
        ("kill", "n1", 1_000, mark("kill", "start")),
        ("restart", "n1", 2_000, mark("kill", "end")),
        ("note", "", 2_500, Value::Null),
        ("pause", "n2", 3_000, mark("pause", "start")),
        ("resume", "n2", 5_500, mark("pause", "end")),
        ("partition", "n3", 6_000, mark("partition", "start")),
        ("heal", "all", 7_000, mark("partition", "end")),
        ("add-node", "n4", 7_500, mark("membership", "start")),
        ("remove-node", "n4", 8_700, mark("membership", "end")),
        ("meteor", "n1", 9_000, mark("meteor", "start")),
        ("all-clear", "n1", 10_000, mark("meteor", "end")),
        ("power-loss", "n2", 10_800, mark("power-loss", "start")),
    ] {
        push(json!("nemesis"), "info", f, None, json!(target), at * MS, fault);
    }
    events.sort_by_key(|e| (e["time"].as_u64().unwrap(), e["type"] != "invoke"));
    let mut text = String::new();
    for (i, mut e) in events.into_iter().enumerate() {
        e["index"] = json!(i);
        text.push_str(&e.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Runs Chromium headless with `args` on `page`, within a generous deadline.
fn chromium(dir: &Path, args: &[String], page: &Path) -> std::process::Output {
    let child = Command::new(find_program("chromium"))
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < Duration::from_secs(180) {
            std::thread::sleep(Duration::from_millis(200));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        true
    });
    let out = child.wait_with_output().expect("wait for chromium");
    assert!(!watchdog.join().unwrap(), "chromium did not finish within 180 s");
    out
}

/// The plots are laid out: measured inside the browser by a probe appended to a copy of
/// the page, printed with `--dump-dom`.
fn layout(dir: &Path, report: &str) -> Value {
    let probe = r#"<script>
const box = e => { const b = e.getBoundingClientRect(); return [Math.round(b.width), Math.round(b.height)]; };
const q = s => [...document.querySelectorAll(s)];
const found = {
  plots: q('#plots svg.plot').map(s => [s.id, ...box(s)]),
  bands: q('#latency-plot rect.fault').map(r => [r.dataset.kind, box(r)[0]]),
  dots: q('#latency-plot g.dots').map(p => [p.dataset.outcome, ...box(p)]),
  rates: q('#throughput-plot path.rate').map(p => [p.dataset.outcome, ...box(p)]),
  timelines: q('svg.tl').length,
  summary: box(document.getElementById('summary')),
  head: document.getElementById('head').textContent,
};
document.body.insertAdjacentHTML('beforeend', '<pre id="probe">' + JSON.stringify(found) + '</pre>');
</script>"#;
    let probed = dir.join("probed.html");
    std::fs::write(&probed, report.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let out = chromium(dir, &["--window-size=1280,1600".into(), "--dump-dom".into()], &probed);
    let dom = String::from_utf8_lossy(&out.stdout);
    // The last one: the probe's own source, earlier in the page, spells the tag too.
    let start = dom.rfind(r#"<pre id="probe">"#).unwrap_or_else(|| {
        panic!("the probe did not run: {}\n{}", &dom[..dom.len().min(2000)], String::from_utf8_lossy(&out.stderr))
    }) + r#"<pre id="probe">"#.len();
    let json = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    let json = json.replace("&quot;", "\"").replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("the probe's output {json:?}: {e}"))
}

#[test]
fn the_report_shows_its_plots_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let html = dir.path().join("report.html");
    write_history(&history);
    let out = Command::new(BIN)
        .args(["check-history", history.to_str().unwrap(), "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read_to_string(&html).unwrap();

    let found = layout(dir.path(), &report);
    let plots = found["plots"].as_array().unwrap();
    assert_eq!(plots.len(), 2, "{found}");
    for p in plots {
        assert!(p[1].as_u64().unwrap() > 1000 && p[2].as_u64().unwrap() > 150, "{} laid out: {p}", p[0]);
    }
    let bands = found["bands"].as_array().unwrap();
    let kinds: Vec<&str> = bands.iter().map(|b| b[0].as_str().unwrap()).collect();
    assert_eq!(kinds, ["kill", "pause", "partition", "membership", "meteor", "power-loss"], "{found}");
    assert!(bands.iter().all(|b| b[1].as_u64().unwrap() >= 40), "every band is painted wide: {found}");
    for series in ["dots", "rates"] {
        let drawn = found[series].as_array().unwrap();
        assert_eq!(drawn.len(), 3, "{series}: ok, info and fail: {found}");
        assert!(drawn.iter().all(|d| d[1].as_u64().unwrap() > 100), "{series} spread over the run: {found}");
    }
    assert!(found["timelines"].as_u64().unwrap() >= 2, "the page's script drew the key timelines: {found}");
    assert!(found["head"].as_str().unwrap().ends_with("linearizable"), "{found}");

    let shot = dir.path().join("report.png");
    let out =
        chromium(dir.path(), &[format!("--screenshot={}", shot.display()), "--window-size=1280,1100".into()], &html);
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    std::fs::copy(&shot, &kept).unwrap();
    eprintln!("screenshot: {}", kept.display());

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (1280, 1100), "the window's size");
    let channels = frame.color_type.samples();
    let rgb: Vec<[u8; 3]> = pixels[..frame.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
    let count = |want: [u8; 3]| rgb.iter().filter(|p| **p == want).count();
    let painted = rgb.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(painted * 10 > rgb.len(), "the page is not blank: {painted} of {} pixels painted", rgb.len());
    // The dots' centres are their outcome's colour exactly: ok #3b82c4, fail #d6336c.
    assert!(count([0x3b, 0x82, 0xc4]) > 200, "ok dots painted: {}", count([0x3b, 0x82, 0xc4]));
    assert!(count([0xd6, 0x33, 0x6c]) > 20, "fail dots painted: {}", count([0xd6, 0x33, 0x6c]));
}
