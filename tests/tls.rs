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

#[test]
fn redis_cli_talks_tls_and_the_plain_port_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    certificates(tmp.path());
    let tls_port = free_port();
    let p = |f: &str| tmp.path().join(f).display().to_string();
    let data = p("data");
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let (cert, key) = (p("server.crt"), p("server.key"));
    let server = Valthree::start(
        tmp.path(),
        &["--data-dir", &data, "--tls-port", &tls_addr, "--tls-cert-file", &cert, "--tls-key-file", &key],
    );
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
    certificates(tmp.path());
    let tls_port = free_port();
    let p = |f: &str| tmp.path().join(f).display().to_string();
    let (data, cert, key, ca) = (p("data"), p("server.crt"), p("server.key"), p("ca.crt"));
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let _server = Valthree::start(
        tmp.path(),
        &[
            "--data-dir",
            &data,
            "--tls-port",
            &tls_addr,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
        ],
    );
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
