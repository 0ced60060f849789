//! TLS on the client port, tried with the clients users have: `redis-cli --tls` (and, in
//! tests/py, redis-py over TLS). Certificates are made for the test with the `openssl` tool.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Valthree, certificates, free_port};

fn cli(dir: &Path, port: u16, extra: &[&str], command: &[&str]) -> std::process::Output {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls", "--cacert"])
        .arg(dir.join("ca.crt"))
        .args(extra)
        .args(command)
        .output()
        .expect("redis-cli is needed (./scripts/test installs redis-tools)")
}

fn out(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_string()
}

/// A node in `dir` (certificates made there) serving TLS clients on a port of its own, which
/// it returns, with `extra` flags.
fn tls_node(dir: &Path, extra: &[&str]) -> (Valthree, u16) {
    certificates(dir);
    let tls_port = free_port();
    let p = |f: &str| dir.join(f).display().to_string();
    let (data, cert, key, tls_addr) = (p("data"), p("server.crt"), p("server.key"), format!("127.0.0.1:{tls_port}"));
    let mut args = vec!["--data-dir", &data, "--tls-port", &tls_addr, "--tls-cert-file", &cert, "--tls-key-file", &key];
    args.extend_from_slice(extra);
    (Valthree::start(dir, &args), tls_port)
}

#[test]
fn redis_cli_talks_tls_and_the_plain_port_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, tls_port) = tls_node(tmp.path(), &[]);
    assert_eq!(out(&cli(tmp.path(), tls_port, &[], &["SET", "k", "over tls"])), "OK");
    assert_eq!(out(&cli(tmp.path(), tls_port, &[], &["GET", "k"])), "over tls");
    // The same store on the plain port.
    let v: String = redis::cmd("GET").arg("k").query(&mut common::redis(&server.addr())).unwrap();
    assert_eq!(v, "over tls");
    // A plain-text client on the TLS port gets nothing served.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut raw, b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut raw, &mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("PONG"), "plain text answered on the TLS port");
}

#[test]
fn client_certificates_are_required_when_a_ca_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |f: &str| tmp.path().join(f).display().to_string();
    let ca = p("ca.crt");
    let (_server, tls_port) = tls_node(tmp.path(), &["--tls-ca-cert-file", &ca]);
    let (ccert, ckey) = (p("client.crt"), p("client.key"));
    let with_cert = cli(tmp.path(), tls_port, &["--cert", &ccert, "--key", &ckey], &["PING"]);
    assert_eq!(out(&with_cert), "PONG");
    let without = cli(tmp.path(), tls_port, &[], &["PING"]);
    assert_ne!(out(&without), "PONG", "a client without a certificate was served");
}

#[test]
fn a_bad_certificate_file_is_refused_at_start_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.crt");
    let key = tmp.path().join("nope.key");
    let port = free_port().to_string();
    let out = common::valthree(&[
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        tmp.path().join("d").to_str().unwrap(),
        "--tls-port",
        "127.0.0.1:0",
        "--tls-cert-file",
        missing.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::text(&out).contains("nope.crt"), "{}", common::text(&out));
}

/// With `--requirepass`, a TLS client that never sends its hello is a stranger like any
/// connection that has not authenticated, counted from its accept: before, the handshake's
/// own 10 s came first and nothing counted it, and 130 silent connections to the TLS port from
/// one address, reopened every 9 s, kept every other client of a `--maxclients 100` node out.
#[test]
fn tls_connections_that_never_say_hello_count_against_their_address() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, tls_port) = tls_node(tmp.path(), &["--requirepass", "pw", "--maxclients", "100"]);
    let mut silent: Vec<std::net::TcpStream> =
        (0..100).map(|_| std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let closed = silent
        .iter_mut()
        .map(|s| {
            s.set_read_timeout(Some(std::time::Duration::from_millis(10))).unwrap();
            // Closed: end of file; held: nothing within the timeout.
            matches!(std::io::Read::read(s, &mut [0u8; 16]), Ok(0))
        })
        .filter(|&closed| closed)
        .count();
    assert_eq!(closed, 36, "past 64 from one address, closed at once");
    // Room is left for everyone else.
    let mut client = common::Raw::connect_from([127, 0, 0, 2].into(), server.port);
    client.send(&common::request(&[b"AUTH", b"pw"]));
    assert_eq!(client.read_reply(), b"+OK\r\n");
    client.send(&common::request(&[b"INFO", b"stats"]));
    let info = String::from_utf8(client.read_reply()).unwrap();
    assert!(info.contains("unauthenticated_closed:36\r\n"), "{info}");
}
