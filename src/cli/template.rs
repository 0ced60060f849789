//! The Antithesis test template: the commands under `/opt/antithesis/test/v1/valthree/` in the
//! image are links to this binary, which runs the one its name says (`first_wait_for_cluster`,
//! `parallel_driver_workload`, ...). The same commands run by hand as
//! `valthree test-template NAME`, e.g. with `docker exec`.
//!
//! Every command reads its configuration from the environment of the client container:
//! `VALTHREE_ADDRS` (the nodes, `n1:6379,n2:6379,n3:6379`) and `VALTHREE_HISTORIES` (the
//! directory every driver writes its history to, default `/var/lib/valthree/histories`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use antithesis_sdk::{assert_always, assert_sometimes};
use bytes::Bytes;
use clap::{Args, Parser};
use redis_protocol::resp2::types::BytesFrame;
use serde_json::json;

use super::check::check_any;
use crate::workload::client::{CallError, Conn};

/// The commands of the template, by the name their link has in the image.
pub const COMMANDS: [&str; 6] = [
    "first_wait_for_cluster",
    "parallel_driver_workload",
    "singleton_driver_long_workload",
    "anytime_every_node_answers_honestly",
    "eventually_histories_are_linearizable",
    "finally_histories_are_linearizable",
];

/// Commands of the image that are not part of the template: `idle` keeps the client container
/// up, `healthcheck` answers a container healthcheck (PING to the node on 127.0.0.1:6379).
const TOOLS: [&str; 2] = ["idle", "healthcheck"];

/// Arguments of `valthree test-template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// The command: one of the template's names (or `idle`, `healthcheck`).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(COMMANDS.iter().chain(&TOOLS)), required_unless_present = "list")]
    pub command: Option<String>,
    /// Print the template's command names, one a line.
    #[arg(long)]
    pub list: bool,
}

fn addrs() -> Vec<String> {
    std::env::var("VALTHREE_ADDRS")
        .unwrap_or_else(|_| "n1:6379,n2:6379,n3:6379".into())
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

fn histories() -> PathBuf {
    std::env::var_os("VALTHREE_HISTORIES").map_or_else(|| PathBuf::from("/var/lib/valthree/histories"), PathBuf::from)
}

/// The command a link's name stands for (`/opt/.../parallel_driver_workload` →
/// `parallel_driver_workload`), if it is one of the template's.
pub fn command_named(argv0: &str) -> Option<&'static str> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    COMMANDS.iter().copied().find(|c| *c == name)
}

/// Runs one command of the template.
pub fn run(args: TemplateArgs) -> ExitCode {
    let Some(command) = args.command.filter(|_| !args.list) else {
        println!("{}", COMMANDS.join("\n"));
        return ExitCode::SUCCESS;
    };
    antithesis_sdk::antithesis_init();
    match command.as_str() {
        "first_wait_for_cluster" => first_wait_for_cluster(),
        "parallel_driver_workload" => driver("parallel", 100 + antithesis_sdk::random::get_random() % 400),
        "singleton_driver_long_workload" => driver("singleton", 2000 + antithesis_sdk::random::get_random() % 2000),
        "anytime_every_node_answers_honestly" => anytime_every_node_answers_honestly(),
        "idle" => idle(),
        "healthcheck" => healthcheck(),
        _ => histories_are_linearizable(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts")
}

/// Keeps the client container up until it is stopped. It runs as the container's PID 1, to
/// which the kernel delivers no signal the process does not handle: without handlers,
/// `docker stop` and `compose down` would wait out their grace period, then kill it.
fn idle() -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let stopped = runtime().block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        Ok::<(), std::io::Error>(())
    });
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle: cannot handle signals: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until every node answers PING, then tells Antithesis the system is ready for faults.
fn first_wait_for_cluster() -> ExitCode {
    let addrs = addrs();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let ready = runtime().block_on(async {
        for addr in &addrs {
            // Say what it waits for, at once and every 5 s, so a stuck start is not silent.
            let waiting = async {
                loop {
                    eprintln!("waiting for {addr} to answer PING");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            };
            let quick = tokio::time::timeout(
                Duration::from_millis(500),
                crate::workload::client::wait_until_ready(addr, deadline),
            );
            if let Ok(answered) = quick.await {
                answered?;
                continue;
            }
            tokio::select! {
                answered = crate::workload::client::wait_until_ready(addr, deadline) => answered?,
                _ = waiting => {}
            }
        }
        Ok::<(), String>(())
    });
    if let Err(e) = ready {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(histories()) {
        eprintln!("error: cannot create {}: {e}", histories().display());
        return ExitCode::from(2);
    }
    println!("every node answers: {}", addrs.join(", "));
    antithesis_sdk::lifecycle::setup_complete(&json!({"addrs": addrs}));
    ExitCode::SUCCESS
}

/// A bounded, randomized workload on keys of its own (a random prefix, no FLUSHALL), so
/// drivers can run side by side; its history stays in the histories directory for the
/// checks. The run is checked at once too.
fn driver(kind: &str, ops: u64) -> ExitCode {
    let seed = antithesis_sdk::random::get_random();
    let dir = histories();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let history = dir.join(format!("{kind}-{seed:016x}.jsonl"));
    let clients = 2 + seed % 4;
    let argv = [
        "valthree".to_string(),
        "workload".into(),
        "--addrs".into(),
        addrs().join(","),
        "--clients".into(),
        clients.to_string(),
        "--keys".into(),
        "4".into(),
        "--ops".into(),
        ops.to_string(),
        "--seed".into(),
        seed.to_string(),
        // Antithesis starts drivers in the middle of its faults: a node that is down is part
        // of the run, not a reason to refuse it.
        "--ready-timeout".into(),
        "0s".into(),
        "--key-prefix".into(),
        format!("{seed:016x}:"),
        "--history".into(),
        history.display().to_string(),
        "--check".into(),
    ];
    println!("{}", argv[1..].join(" "));
    let cli = super::Cli::parse_from(argv);
    super::run(cli)
}

/// One GET through every node: each answers with a value or nil, or honestly refuses
/// (`-TRYAGAIN`, `-UNCERTAIN`, or no connection at all while it is down or cut off) — never
/// any other error.
fn anytime_every_node_answers_honestly() -> ExitCode {
    let addrs = addrs();
    let mut dishonest = Vec::new();
    runtime().block_on(async {
        for addr in &addrs {
            let answer = async {
                let mut conn = Conn::connect(addr, Duration::from_secs(2)).await?;
                conn.call(&[Bytes::from_static(b"GET"), Bytes::from_static(b"anytime-probe")]).await
            };
            let reply = tokio::time::timeout(Duration::from_secs(5), answer).await;
            let verdict = match &reply {
                Err(_) | Ok(Err(CallError::NotSent(_) | CallError::Lost(_))) => "unreachable",
                Ok(Ok(BytesFrame::BulkString(_) | BytesFrame::Null)) => "answered",
                Ok(Ok(BytesFrame::Error(data))) if is_honest(data) => "refused",
                Ok(Ok(_)) => "dishonest",
            };
            assert_sometimes!(verdict == "answered", "anytime: a node answered a read during faults", &json!({}));
            assert_sometimes!(
                verdict == "refused",
                "anytime: a node refused a read with TRYAGAIN or UNCERTAIN",
                &json!({})
            );
            if verdict == "dishonest" {
                dishonest.push(format!("{addr}: {reply:?}"));
            }
            println!("{addr}: {verdict}");
        }
    });
    assert_always!(
        dishonest.is_empty(),
        "anytime: every node answers a read or refuses it with TRYAGAIN or UNCERTAIN",
        &json!({"dishonest": dishonest})
    );
    if dishonest.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// PING to the node in this container.
fn healthcheck() -> ExitCode {
    let pong = runtime().block_on(async {
        let mut conn = Conn::connect("127.0.0.1:6379", Duration::from_secs(2)).await.ok()?;
        tokio::time::timeout(Duration::from_secs(2), conn.call(&[Bytes::from_static(b"PING")])).await.ok()?.ok()
    });
    match pong {
        Some(BytesFrame::SimpleString(s)) if s.as_ref() == b"PONG" => ExitCode::SUCCESS,
        other => {
            eprintln!("no PONG: {other:?}");
            ExitCode::FAILURE
        }
    }
}

fn is_honest(error: &str) -> bool {
    error.starts_with("TRYAGAIN") || error.starts_with("UNCERTAIN") || error.starts_with("LOADING")
}

/// Checks every history in the histories directory.
fn histories_are_linearizable() -> ExitCode {
    let dir = histories();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    files.sort();
    let mut failed = 0;
    for file in &files {
        // An unreadable history or one the checker could not decide in time is no pass.
        let (passed, verdict) = match check_any(file, None, Duration::from_secs(120), false) {
            Ok(report) => (report.passed(), report.verdict().to_string()),
            Err(e) => (false, format!("unreadable ({e})")),
        };
        assert_always!(
            passed,
            "finally: every recorded history is checked and linearizable (dynamo: consistent)",
            &json!({"history": file.display().to_string(), "verdict": verdict})
        );
        println!("{}: {verdict}", file.display());
        if !passed {
            failed += 1;
        }
    }
    assert_sometimes!(!files.is_empty(), "finally: there were histories to check", &json!({}));
    println!("{} histories checked, {failed} not shown linearizable", files.len());
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
