//! `valthree check-history FILE`: is the recorded history linearizable — or, for a history of
//! dynamo mode, does it keep what dynamo promises ([`crate::check::dynamo`])?
//!
//! Exit status: see [`EXIT_STATUS`].

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::check::{Report, Verdict, check_stream, describe, dynamo, report};
use crate::history::HistoryReader;

/// The models a history can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// One register per key: get/set/del/incr/append; flushall as a delete of each key at an
    /// instant of its own within the call (what paxos mode promises; s3 and raft promise one
    /// instant, which is not checked).
    Register,
    /// dynamo mode: no lost or zombie writes, unique dots, read-your-writes when R + W > N,
    /// converged replicas.
    Dynamo,
}

/// The exit status of a dynamo history whose convergence could not be judged.
pub const NOT_CHECKED: u8 = 3;

/// What the exit status says, for `--help` (of `check-history`, and of `workload --check`).
pub const EXIT_STATUS: &str = "Exit status: 0 linearizable (dynamo: consistent, every promise checked); \
1 a violation (NOT linearizable, NOT consistent); 2 unknown (the time limit ran out) or unusable input; \
3 not checked (dynamo: no violation found, but some key's settled replicas could not all be read, so \
convergence was not judged).";

/// Arguments of `valthree check-history`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS)]
pub struct CheckArgs {
    /// The JSONL history (from `valthree workload --history`).
    pub file: PathBuf,
    /// The model of what each key may do [default: dynamo for a history of dynamo mode,
    /// else register].
    #[arg(long, value_enum)]
    pub model: Option<Model>,
    /// Also write a self-contained HTML timeline here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Give up (verdict unknown, exit 2) after this long, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print a machine-readable verdict.
    #[arg(long)]
    pub json: bool,
}

/// The exit status for a verdict.
pub fn exit_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Linearizable => ExitCode::SUCCESS,
        Verdict::NotLinearizable => ExitCode::from(1),
        Verdict::Unknown => ExitCode::from(2),
    }
}

/// Reads and checks `file`; `Err` carries a message for unusable input.
pub fn check_file(file: &PathBuf, timeout: Duration, show_progress: bool) -> Result<Report, String> {
    let input = std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let events = HistoryReader::new(BufReader::new(input)).map(|e| e.map_err(|e| e.to_string()));
    let bar = if show_progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template("checking {bar:30} {pos}/{len} keys {elapsed}").expect("template"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = |done: usize, all: usize| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    };
    let report = check_stream(events, Some(timeout), &progress).map_err(|e| format!("{}: {e}", file.display()))?;
    bar.finish_and_clear();
    Ok(report)
}

/// The verdict for people.
pub fn verdict_text(report: &Report) -> String {
    let mut out = format!(
        "{}: {} operations on {} keys checked in {:.2}s\n",
        report.verdict.as_str(),
        report.history.total_ops,
        report.history.keys.len(),
        report.elapsed.as_secs_f64()
    );
    for v in &report.violations {
        let ops = &report.history.keys[&v.key];
        if !v.stale.is_empty() {
            out += &format!(
                "key {}: this read cannot be placed anywhere: what it read was certainly overwritten before it began:\n  {}\n",
                v.key,
                describe(&ops[v.stuck])
            );
            for &(p, x) in &v.stale {
                let from = p.map_or_else(|| "the key's initial absence".to_string(), |p| describe(&ops[p]));
                out += &format!("  produced by {from}\n    then changed by {}\n", describe(&ops[x]));
            }
            continue;
        }
        out += &format!(
            "key {}: after a linearizable prefix of {} operations, this one cannot be placed:\n  {}\n",
            v.key,
            v.prefix.len(),
            describe(&ops[v.stuck])
        );
        out += "  window (the last operation placed and every operation concurrent with it):\n";
        for &i in &v.window {
            out += &format!("    {}{}\n", describe(&ops[i]), if i == v.stuck { "   <- cannot be placed" } else { "" });
        }
    }
    if !report.timed_out.is_empty() && report.violations.is_empty() {
        out += &format!("time limit reached before deciding keys: {}\n", report.timed_out.join(", "));
    } else if !report.timed_out.is_empty() {
        out += &format!(
            "keys left undecided (the time limit, or a violation found elsewhere, stopped their search): {}\n",
            report.timed_out.join(", ")
        );
    }
    out
}

/// The verdict for scripts.
pub fn verdict_json(report: &Report) -> serde_json::Value {
    json!({
        "verdict": report.verdict.as_str(),
        "linearizable": report.verdict == Verdict::Linearizable,
        "operations": report.history.total_ops,
        "keys": report.history.keys.len(),
        "elapsed_s": report.elapsed.as_secs_f64(),
        "violations": report.violations.iter().map(|v| {
            let ops = &report.history.keys[&v.key];
            json!({
                "key": v.key,
                "prefix_len": v.prefix.len(),
                "stale_read": !v.stale.is_empty(),
                "stuck": describe(&ops[v.stuck]),
                "window": v.window.iter().map(|&i| describe(&ops[i])).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
        "timed_out_keys": report.timed_out,
        "crashed_writes_bounded": report.rewrites.bounded,
        "crashed_writes_dropped": report.rewrites.dropped,
    })
}

/// A history checked against its model.
pub enum Checked {
    Register(Report),
    Dynamo(dynamo::Report),
}

impl Checked {
    /// True for a linearizable (register) or consistent (dynamo) history.
    pub fn passed(&self) -> bool {
        match self {
            Checked::Register(r) => r.verdict == Verdict::Linearizable,
            Checked::Dynamo(r) => r.ok(),
        }
    }

    pub fn verdict(&self) -> &'static str {
        match self {
            Checked::Register(r) => r.verdict.as_str(),
            Checked::Dynamo(r) => r.verdict().as_str(),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Checked::Register(r) => verdict_text(r),
            Checked::Dynamo(r) => dynamo::verdict_text(r),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        match self {
            Checked::Register(r) => verdict_json(r),
            Checked::Dynamo(r) => dynamo::verdict_json(r),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Checked::Register(r) => exit_code(r.verdict),
            Checked::Dynamo(r) => match r.verdict() {
                dynamo::Verdict::Consistent => ExitCode::SUCCESS,
                dynamo::Verdict::NotConsistent => ExitCode::from(1),
                dynamo::Verdict::Unknown => ExitCode::from(2),
                dynamo::Verdict::NotChecked => ExitCode::from(NOT_CHECKED),
            },
        }
    }

    /// Writes the HTML report.
    pub fn write_html(&self, path: &PathBuf, title: &str) -> Result<(), String> {
        let page = match self {
            Checked::Register(r) => report::render(r, title),
            Checked::Dynamo(r) => report::render_dynamo(r, title),
        };
        std::fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// The model a history was recorded for: dynamo when its first events say so.
fn model_of(file: &PathBuf) -> Result<Model, String> {
    let input = std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let first: Vec<_> = HistoryReader::new(BufReader::new(input)).take(64).filter_map(|e| e.ok()).collect();
    Ok(if dynamo::is_dynamo_history(&first) { Model::Dynamo } else { Model::Register })
}

/// Reads and checks `file` against `model` (`None`: the one it was recorded for).
pub fn check_any(
    file: &PathBuf,
    model: Option<Model>,
    timeout: Duration,
    show_progress: bool,
) -> Result<Checked, String> {
    match model.map_or_else(|| model_of(file), Ok)? {
        Model::Register => check_file(file, timeout, show_progress).map(Checked::Register),
        Model::Dynamo => {
            let input = std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
            let events = HistoryReader::new(BufReader::new(input)).map(|e| e.map_err(|e| e.to_string()));
            dynamo::check(events, Some(timeout)).map(Checked::Dynamo).map_err(|e| format!("{}: {e}", file.display()))
        }
    }
}

/// Runs the command.
pub fn run(args: CheckArgs) -> ExitCode {
    let report = match check_any(&args.file, args.model, args.timeout, !args.json) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(html) = &args.html
        && let Err(e) = report.write_html(html, &args.file.display().to_string())
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if args.json {
        let mut out = report.json();
        if let Some(html) = &args.html {
            out["html"] = serde_json::json!(html);
        }
        println!("{out}");
    } else {
        print!("{}", report.text());
        if let Some(html) = &args.html {
            println!("report: {}", html.display());
        }
    }
    report.exit_code()
}
