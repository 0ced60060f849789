//! How fast does `check-history` decide, and how much memory does it take?
//!
//! `cargo bench --bench checker` writes synthetic linearizable histories (see
//! `valthree::check::synth`) of 10k, 100k and 1M operations to a temporary directory and
//! runs `check-history` on each in a fresh process of this same binary, which reports its
//! wall time and peak resident memory. The same figure for any history comes from
//! `/usr/bin/time -v valthree check-history FILE`.
//!
//! `cargo bench --bench checker -- --crashed DIR` writes the contended histories with crashed
//! writes (`valthree::check::synth::crashed_history`: 64 clients, 4 keys, 100k operations,
//! about 240 crashed writes; each mix linearizable and with one stale read planted; about 5
//! and about 16 operations of a key in flight) to DIR, keeps them there for other checkers,
//! and checks each the same way, with a 60 s limit (`--limit SECONDS`).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use valthree::check::{check_stream, synth};
use valthree::history::HistoryReader;
use valthree::history::Numbered;

const CASES: &[(u64, u64, u64)] = &[
    // (operations, clients, keys)
    (10_000, 8, 4),
    (10_000, 64, 1000),
    (100_000, 8, 4),
    (100_000, 64, 1000),
    (1_000_000, 8, 4),
    (1_000_000, 64, 1000),
];

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Child mode: check one file, print "seconds verdict peak-MiB".
fn check_one(path: &Path, timeout: Option<Duration>) {
    let started = Instant::now();
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let events = HistoryReader::new(file).map(|e| e.map_err(|e| e.to_string()));
    let report = check_stream(events, timeout, &|_, _| {}).unwrap();
    println!("{} {} {}", started.elapsed().as_secs_f64(), report.verdict.as_str().replace(' ', "_"), peak_rss_mib());
}

fn write(path: &Path, history: &[Numbered]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for n in history {
        serde_json::to_writer(&mut out, &n.event).unwrap();
        out.write_all(b"\n").unwrap();
    }
}

/// The mixes of the crashed-write histories: (name, get, set, del, incr, append, cas).
const MIXES: &[(&str, [u32; 6])] =
    [("get-set", [3, 2, 0, 0, 0, 0]), ("cas", [3, 2, 1, 0, 0, 2]), ("all", [3, 2, 1, 1, 1, 2])].as_slice();

/// The two contentions: about 5 operations of a key in flight (latency up to 5 µs, think up
/// to 10 µs), and about 16 (latency up to 50 µs, think up to 2 µs: the shape).
const CONTENTIONS: &[(&str, u64, u64)] = &[("", 5_000, 10_000), ("-16", 50_000, 2_000)];

fn crashed(me: &str, dir: &Path, limit: &str) {
    std::fs::create_dir_all(dir).unwrap();
    println!("{:>28} {:>8} {:>10} {:>10}  verdict", "history", "crashed", "seconds", "peak MiB");
    for &(contention, latency, think) in CONTENTIONS {
        for &(name, mix) in MIXES {
            for stale_read in [false, true] {
                let shape = synth::Shape { mix, stale_read, latency, think, ..synth::Shape::contended(28) };
                let history = synth::crashed_history(&shape);
                let crashed = history.iter().filter(|n| n.event.kind == valthree::history::EventType::Info).count();
                let file = format!("crashed{contention}-{name}{}.jsonl", if stale_read { "-stale" } else { "" });
                let path = dir.join(&file);
                write(&path, &history);
                let child = std::process::Command::new(me)
                    .args(["--check-one", path.to_str().unwrap(), limit])
                    .output()
                    .unwrap();
                let line = String::from_utf8_lossy(&child.stdout);
                let fields: Vec<&str> = line.split_whitespace().collect();
                println!(
                    "{file:>28} {crashed:>8} {:>10} {:>10}  {}",
                    fields.first().unwrap_or(&"?"),
                    fields.get(2).unwrap_or(&"?"),
                    fields.get(1).unwrap_or(&"?")
                );
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--check-one") {
        let timeout = args.get(i + 2).and_then(|s| s.parse().ok()).map(Duration::from_secs);
        return check_one(Path::new(&args[i + 1]), timeout);
    }
    if let Some(i) = args.iter().position(|a| a == "--crashed") {
        let limit = args.iter().position(|a| a == "--limit").and_then(|i| args.get(i + 1)).map_or("60", |s| s.as_str());
        return crashed(&args[0], Path::new(&args[i + 1]), limit);
    }
    // `cargo bench` passes --bench; test runners listing or running tests get nothing.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{:>10} {:>8} {:>6} {:>10} {:>14} {:>10}  verdict",
        "ops", "clients", "keys", "seconds", "ops/s", "peak MiB"
    );
    for &(ops, clients, keys) in CASES.iter().filter(|c| !quick || c.0 <= 10_000) {
        let path = dir.path().join(format!("h-{ops}-{clients}-{keys}.jsonl"));
        write(&path, &synth::linearizable_history(ops ^ clients ^ keys, clients, keys, ops));
        let child =
            std::process::Command::new(&args[0]).args(["--check-one", path.to_str().unwrap()]).output().unwrap();
        let line = String::from_utf8_lossy(&child.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let secs: f64 = fields.first().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        println!(
            "{ops:>10} {clients:>8} {keys:>6} {secs:>10.3} {:>14.0} {:>10.1}  {}",
            ops as f64 / secs,
            fields.get(2).and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN),
            fields.get(1).unwrap_or(&"?")
        );
    }
}
