//! What a new user meets in the first hour: commands in pipelines, log files, refused
//! starts, help texts. Each test replays one thing that once got in a user's way.

mod common;

use std::process::Command;

use common::{BIN, Down, cluster, free_base, text, valthree};

/// Runs `script` in bash with `$V` set to the binary; returns (stdout, stderr).
fn bash(script: &str) -> (String, String) {
    let out = Command::new("bash").arg("-c").arg(script).env("V", BIN).output().expect("bash runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let base = free_base();
    let _down = Down(&dir);
    // `head -1` closes the pipe after one line; the command must not panic ("Broken pipe", 101).
    let (out, err) = bash(&format!(
        r#"$V cluster --dir {d} up --nodes 2 --base-port {base} | head -1; echo "up=${{PIPESTATUS[0]}}"
           $V cluster --dir {d} status | head -1; echo "status=${{PIPESTATUS[0]}}"
           $V completions bash | head -1 >/dev/null; echo "completions=${{PIPESTATUS[0]}}"
           $V --help | head -1 >/dev/null; echo "help=${{PIPESTATUS[0]}}""#
    ));
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "stderr: {err}");
    for what in ["up", "status", "completions", "help"] {
        let code = out.lines().find_map(|l| l.strip_prefix(&format!("{what}="))).expect("a status line");
        assert!(code == "0" || code == "141", "{what} exited {code} (141 is SIGPIPE, the quiet end): {out}");
    }
    assert!(out.starts_with("s3 cluster of 2 nodes is up"), "{out}");
}

#[test]
fn node_logs_in_files_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let base = free_base().to_string();
    let up = cluster(&dir, &["up", "--nodes", "1", "--base-port", &base]);
    let _down = Down(&dir);
    let log_path = up["nodes"][0]["log"].as_str().unwrap().to_string();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("valthree ready to accept connections"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in {log_path}: {log:?}");
}

#[test]
fn a_refused_up_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base();

    // A taken port: refused before anything is created.
    let dir = tmp.path().join("taken");
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", base + 2)).unwrap();
    let out = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "up", "--base-port", &base.to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("port {} is taken", base + 2)), "{}", text(&out));
    assert!(!dir.exists(), "a refused up left {}", dir.display());

    // Nodes that die at start-up: stopped, their files removed, the reason shown.
    let dir = tmp.path().join("dies");
    let base = free_base().to_string();
    let out = valthree(&[
        "cluster",
        "--dir",
        dir.to_str().unwrap(),
        "up",
        "--base-port",
        &base,
        "--",
        "--proto-max-bulk-len",
        "12qb",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("did not come up"), "{}", text(&out));
    assert!(text(&out).contains("unknown size unit"), "the node's own error is shown: {}", text(&out));
    assert!(!dir.exists(), "a failed up left {}", dir.display());

    // In a directory that was there before, only what `up` made goes.
    let dir = tmp.path().join("kept");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = valthree(&[
        "cluster",
        "--dir",
        dir.to_str().unwrap(),
        "up",
        "--base-port",
        &base,
        "--",
        "--proto-max-bulk-len",
        "12qb",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["notes.txt"]);
}

#[test]
fn membership_commands_say_which_modes_they_serve() {
    for sub in ["add-node", "remove-node"] {
        let help = text(&valthree(&["cluster", sub, "--help"]));
        assert!(help.contains("paxos, raft and dynamo modes"), "{sub}: {help}");
    }
}

#[test]
fn a_node_name_that_is_not_one_is_refused_by_the_parser() {
    let out = valthree(&["cluster", "kill", "banana"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is not a node name"), "{}", text(&out));
}

/// The compose files' client container runs `test-template idle` as its PID 1, to which the
/// kernel delivers no signal the process does not handle: unless idle handles SIGTERM,
/// `docker compose down` waits out the grace period and then kills it.
#[test]
fn the_idle_client_handles_sigterm_and_exits_cleanly() {
    let mut idle = Command::new(BIN).args(["test-template", "idle"]).spawn().unwrap();
    let pid = idle.id();
    let catches_sigterm = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).map(str::trim).unwrap_or("0");
        u64::from_str_radix(caught, 16).unwrap_or(0) & (1 << (15 - 1)) != 0
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !catches_sigterm() && std::time::Instant::now() < deadline && idle.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let handled = catches_sigterm();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let exit = idle.wait().unwrap();
    assert!(handled, "idle installs no SIGTERM handler: as a container's PID 1 it would ignore docker stop");
    assert_eq!(exit.code(), Some(0), "idle ends on SIGTERM with exit 0: {exit:?}");
}
