//! Attacks replayed against the real binary, each as an attacker would run it (raw sockets,
//! a raw gRPC client), each refused. One test per attack of the security review; every one
//! failed before its fix.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, free_port};

/// Starts `valthree serve <args>` on a free client port and waits until it either exits or
/// listens. Returns its exit status and log when it refused to start; panics when it served.
fn refuses_to_start(dir: &Path, args: &[&str]) -> String {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = dir.join(format!("serve-{port}.log"));
    let mut all = vec!["serve", "--addr", &addr];
    all.extend_from_slice(args);
    let mut child = Command::new(BIN)
        .args(&all)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "{args:?}: exited successfully");
            return std::fs::read_to_string(&log).unwrap();
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: the node started and serves clients: {}", std::fs::read_to_string(&log).unwrap());
        }
        assert!(Instant::now() < deadline, "{args:?}: neither served nor exited within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Item 3: an empty secret file (or one whose first line is blank) must not mean "no
/// secret". Before the fix an empty `--requirepass-file` let every client in, silently.
#[test]
fn an_empty_secret_file_refuses_to_start_for_every_secret_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let blank_first = tmp.path().join("blank-first-line");
    std::fs::write(&blank_first, "\n0123456789abcdef0123456789abcdef\n").unwrap();
    for flag in ["--requirepass-file", "--admin-token-file", "--cluster-secret-file"] {
        for file in [&empty, &blank_first] {
            let data = tmp.path().join(format!("data{}", free_port()));
            let peer = format!("127.0.0.1:{}", free_port());
            let mut args = vec!["--data-dir", data.to_str().unwrap(), flag, file.to_str().unwrap()];
            if flag == "--cluster-secret-file" {
                args.extend_from_slice(&["--mode", "paxos", "--peer-addr", &peer]);
            }
            let log = refuses_to_start(tmp.path(), &args);
            assert!(
                log.contains(file.to_str().unwrap()),
                "{flag} {}: the message names the file: {log}",
                file.display()
            );
            assert!(log.contains("empty"), "{flag} {}: the message says why: {log}", file.display());
        }
    }
}

/// Item 5: before AUTH a request may carry at most 10 arguments (Redis' pre-AUTH limit on
/// multibulk requests). Before the fix an inline request was split into all its arguments
/// (30,000 here) before login, and answered as a command.
#[test]
fn an_inline_request_with_thousands_of_arguments_is_refused_before_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::Valthree::start(
        tmp.path(),
        &["--data-dir", tmp.path().join("d").to_str().unwrap(), "--requirepass", "pw"],
    );
    let mut raw = common::Raw::connect(server.port);
    let mut line = b"AUTH".to_vec();
    for _ in 0..30_000 {
        line.extend_from_slice(b" a");
    }
    line.extend_from_slice(b"\r\n");
    raw.send(&line);
    let reply = raw.read_reply();
    assert_eq!(String::from_utf8_lossy(&reply), "-ERR Protocol error: unauthenticated inline request\r\n");
    assert!(raw.read_exact_or_eof(1).is_empty(), "the connection is closed");

    // Ten arguments are still fine, and AUTH inline works.
    let mut raw = common::Raw::connect(server.port);
    raw.send(b"AUTH default pw\r\nPING\r\n");
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
}
