//! The Redis front, end to end: the real binary, real client libraries, real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{CasSupport, Raw, Valthree, check_compare_and_set_commands, request};
use redis::{Commands, Value};

fn server(args: &[&str]) -> (tempfile::TempDir, Valthree) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut all = vec!["--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    let server = Valthree::start(dir.path(), &all);
    (dir, server)
}

fn connect(server: &Valthree, query: &str) -> redis::Connection {
    let client = redis::Client::open(format!("{}{query}", server.url())).unwrap();
    client.get_connection_with_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn every_command_works_through_the_redis_crate() {
    let (_dir, server) = server(&[]);
    let mut con = connect(&server, "");
    let _: () = con.set("k", "v").unwrap();
    assert_eq!(con.get::<_, Option<String>>("k").unwrap().as_deref(), Some("v"));
    assert_eq!(con.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(con.decr::<_, _, i64>("n", 7).unwrap(), -2);
    assert_eq!(redis::cmd("INCR").arg("n").query::<i64>(&mut con).unwrap(), -1);
    assert_eq!(redis::cmd("DECR").arg("n").query::<i64>(&mut con).unwrap(), -2);
    assert_eq!(con.append::<_, _, i64>("k", "xyz").unwrap(), 4);
    assert_eq!(con.strlen::<_, i64>("k").unwrap(), 4);
    let values: Vec<Option<String>> = con.mget(&["k", "nope", "n"]).unwrap();
    assert_eq!(values, vec![Some("vxyz".into()), None, Some("-2".into())]);
    assert_eq!(con.exists::<_, i64>(&["k", "k", "nope"]).unwrap(), 2);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 2);
    assert_eq!(con.del::<_, i64>(&["k", "nope"]).unwrap(), 1);
    let nx: Option<String> = redis::cmd("SET").arg("lock").arg("a").arg("NX").query(&mut con).unwrap();
    assert_eq!(nx.as_deref(), Some("OK"));
    let nx: Option<String> = redis::cmd("SET").arg("lock").arg("b").arg("NX").query(&mut con).unwrap();
    assert_eq!(nx, None);
    let old: Option<String> = redis::cmd("SET").arg("lock").arg("c").arg("XX").arg("GET").query(&mut con).unwrap();
    assert_eq!(old.as_deref(), Some("a"));
    assert_eq!(redis::cmd("ECHO").arg("hi").query::<String>(&mut con).unwrap(), "hi");
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).unwrap(), "PONG");
    assert_eq!(redis::cmd("SELECT").arg(0).query::<String>(&mut con).unwrap(), "OK");
    let err = redis::cmd("SELECT").arg(1).query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("DB index is out of range"), "{err}");
    let err = redis::cmd("SET").arg("t").arg("v").arg("EX").arg(10).query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("keys do not expire"), "{err}");
    assert_eq!(redis::cmd("FLUSHALL").query::<String>(&mut con).unwrap(), "OK");
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 0);
    let info: String = redis::cmd("INFO").query(&mut con).unwrap();
    for needle in
        ["# Server", "redis_version:", "# Clients", "connected_clients:1", "# Keyspace", "# Valthree", "mode:s3"]
    {
        assert!(info.contains(needle), "INFO lacks {needle:?}:\n{info}");
    }
    let valthree_only: String = redis::cmd("INFO").arg("valthree").query(&mut con).unwrap();
    assert!(valthree_only.contains("s3_batch:on") && !valthree_only.contains("# Server"));
    assert_eq!(redis::cmd("COMMAND").arg("COUNT").query::<i64>(&mut con).unwrap(), 45);
    // CONFIG GET answers as Redis does (a flat name, value list; globs; unknown names match
    // nothing); CONFIG SET is refused: the settings are serve's flags.
    let config: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("proto-max-*").arg("nosuch").query(&mut con).unwrap();
    assert_eq!(config, ["proto-max-bulk-len", "536870912"]);
    let set = redis::cmd("CONFIG").arg("SET").arg("timeout").arg("1").query::<Value>(&mut con).unwrap_err();
    assert!(set.to_string().contains("CONFIG SET is not supported"), "{set}");
    let vget = redis::cmd("VGET").arg("k").query::<Value>(&mut con).unwrap_err();
    assert!(vget.to_string().contains("VGET is a dynamo mode command; this server runs in s3 mode"), "{vget}");
    let docs: Value = redis::cmd("COMMAND").arg("DOCS").arg("get").query(&mut con).unwrap();
    assert!(matches!(docs, Value::Array(ref a) if a.len() == 2), "{docs:?}");
}

#[test]
fn compare_and_set_commands_answer_as_redis_8_4_and_valkey_document() {
    let (_dir, server) = server(&[]);
    check_compare_and_set_commands(&[server.port], CasSupport::MultiKey);
}

#[test]
fn binary_keys_and_values_round_trip() {
    let (_dir, server) = server(&[]);
    let mut con = connect(&server, "");
    let key: Vec<u8> = vec![0, 255, b'\r', b'\n', 7];
    let value: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let _: () = con.set(&key, &value).unwrap();
    assert_eq!(con.get::<_, Vec<u8>>(&key).unwrap(), value);
    let _: () = con.set("base64:trap", "base64:AAAA").unwrap();
    assert_eq!(con.get::<_, String>("base64:trap").unwrap(), "base64:AAAA");
}

#[test]
fn a_pipeline_of_a_thousand_commands_is_answered_in_order() {
    let (_dir, server) = server(&[]);
    let mut con = connect(&server, "");
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("INCR").arg("ctr").cmd("GET").arg("ctr");
        let _ = i;
    }
    let replies: Vec<i64> = pipe.query(&mut con).unwrap();
    let expected: Vec<i64> = (1..=1000).flat_map(|i| [i, i]).collect();
    assert_eq!(replies, expected);
}

#[test]
fn a_run_of_pipelined_gets_shares_one_read_yet_each_sees_the_writes_before_it() {
    let (_dir, open) = server(&[]);
    let mut raw = Raw::connect(open.port);
    // One write, a run of GETs (one read), a write, another run with an unknown command and
    // a GET of the wrong arity inside it: every reply in order, each as if alone.
    let mut bytes = request(&[b"SET", b"k", b"1"]);
    for _ in 0..20 {
        bytes.extend(request(&[b"GET", b"k"]));
    }
    bytes.extend(request(&[b"GET", b"missing"]));
    bytes.extend(request(&[b"SET", b"k", b"2"]));
    bytes.extend(request(&[b"GET", b"k"]));
    bytes.extend(request(&[b"NOSUCH"]));
    bytes.extend(request(&[b"GET"]));
    bytes.extend(request(&[b"GET", b"k"]));
    raw.send(&bytes);
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    for _ in 0..20 {
        assert_eq!(raw.read_reply(), b"$1\r\n1\r\n");
    }
    assert_eq!(raw.read_reply(), b"$-1\r\n");
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    assert_eq!(raw.read_reply(), b"$1\r\n2\r\n", "a GET after a write in the pipeline sees it");
    assert!(raw.read_reply().starts_with(b"-ERR unknown command"));
    assert!(raw.read_reply().starts_with(b"-ERR wrong number of arguments"));
    assert_eq!(raw.read_reply(), b"$1\r\n2\r\n");
    // Without AUTH a pipelined run of GETs is refused one by one.
    let (_dir2, guarded) = server(&["--requirepass", "pw"]);
    let mut raw = Raw::connect(guarded.port);
    let mut bytes = Vec::new();
    for _ in 0..3 {
        bytes.extend(request(&[b"GET", b"k"]));
    }
    raw.send(&bytes);
    for _ in 0..3 {
        assert!(raw.read_reply().starts_with(b"-NOAUTH"));
    }
}

#[test]
fn resp3_connections_get_resp3_replies() {
    let (_dir, server) = server(&[]);
    let mut con = connect(&server, "?protocol=resp3");
    assert_eq!(redis::cmd("GET").arg("missing").query::<Value>(&mut con).unwrap(), Value::Nil);
    let hello: Value = redis::cmd("HELLO").arg(3).query(&mut con).unwrap();
    let Value::Map(fields) = hello else { panic!("HELLO 3 must answer a map, got {hello:?}") };
    let keys: Vec<String> = fields.iter().map(|(k, _)| redis::from_redis_value_ref(k).unwrap()).collect();
    assert_eq!(keys, ["server", "version", "proto", "id", "mode", "role", "modules"]);
    assert!(fields.contains(&(Value::BulkString(b"proto".to_vec()), Value::Int(3))));
    let mut raw = Raw::connect(server.port);
    raw.send(&request(&[b"HELLO", b"3"]));
    assert!(raw.read_reply().starts_with(b"%7\r\n"));
    raw.send(&request(&[b"GET", b"missing"]));
    assert_eq!(raw.read_reply(), b"_\r\n");
    raw.send(&request(&[b"INFO", b"valthree"]));
    assert!(raw.read_reply().starts_with(b"="), "INFO is a verbatim string in RESP3");
}

#[test]
fn requirepass_guards_every_command_but_auth_hello_quit() {
    let (_dir, server) = server(&["--requirepass", "s3cret"]);
    let mut raw = Raw::connect(server.port);
    for (req, want) in [
        (request(&[b"GET", b"k"]), &b"-NOAUTH Authentication required.\r\n"[..]),
        (request(&[b"PING"]), b"-NOAUTH Authentication required.\r\n"),
        (request(&[b"AUTH", b"wrong"]), b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
        (
            request(&[b"AUTH", b"admin", b"s3cret"]),
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (request(&[b"AUTH", b"s3cret"]), b"+OK\r\n"),
        (request(&[b"PING"]), b"+PONG\r\n"),
    ] {
        raw.send(&req);
        assert_eq!(String::from_utf8_lossy(&raw.read_reply()), String::from_utf8_lossy(want));
    }
    let mut hello = Raw::connect(server.port);
    hello.send(&request(&[b"HELLO", b"3"]));
    assert!(hello.read_reply().starts_with(b"-NOAUTH HELLO must be called"));
    hello.send(&request(&[b"HELLO", b"3", b"AUTH", b"default", b"s3cret", b"SETNAME", b"app"]));
    assert!(hello.read_reply().starts_with(b"%7\r\n"));
    hello.send(&request(&[b"CLIENT", b"GETNAME"]));
    assert_eq!(hello.read_reply(), b"$3\r\napp\r\n");
    // The redis crate authenticates from the URL.
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", server.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = con.set("k", "v").unwrap();
    assert_eq!(con.get::<_, String>("k").unwrap(), "v");
}

#[test]
fn malformed_input_gets_a_protocol_error_and_the_server_lives_on() {
    let (_dir, server) = server(&[]);
    for garbage in [&b"*2\r\n$3\r\nGET\r\n:1\r\n"[..], b"*abc\r\n", b"*1\r\n$-5\r\n", b"GET \"open\r\n"] {
        let mut raw = Raw::connect(server.port);
        raw.send(garbage);
        let reply = raw.read_exact_or_eof(1024);
        assert!(reply.starts_with(b"-ERR Protocol error: "), "{garbage:?} got {:?}", String::from_utf8_lossy(&reply));
    }
    let mut con = connect(&server, "");
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).unwrap(), "PONG");
}

#[test]
fn an_oversized_bulk_is_refused_before_it_is_buffered() {
    let (_dir, server) = server(&["--proto-max-bulk-len", "1kb"]);
    let mut raw = Raw::connect(server.port);
    // Announce a 1 GiB value; the server must answer at once, without waiting for it.
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n");
    let reply = raw.read_exact_or_eof(1024);
    assert_eq!(String::from_utf8_lossy(&reply), "-ERR Protocol error: invalid bulk length\r\n");
    let mut con = connect(&server, "");
    let _: () = con.set("small", vec![b'x'; 1024]).unwrap();
    let err = con.set::<_, _, ()>("big", vec![b'x'; 1025]).unwrap_err();
    assert!(err.is_connection_dropped() || err.to_string().contains("invalid bulk length"), "{err}");
}

#[test]
fn connections_beyond_maxclients_are_refused() {
    let (_dir, server) = server(&["--maxclients", "2"]);
    // The start-up probe's connection may still hold a slot for a moment: retry until PONG.
    let connect_ok = || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut raw = Raw::connect(server.port);
            raw.send(&request(&[b"PING"]));
            if raw.read_exact_or_eof(7) == b"+PONG\r\n" {
                return raw;
            }
            assert!(Instant::now() < deadline, "no free slot");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = connect_ok();
    let _second = connect_ok();
    let mut third = Raw::connect(server.port);
    assert_eq!(third.read_exact_or_eof(64), b"-ERR max number of clients reached\r\n");
    // Counted, as Redis counts it (INFO's rejected_connections).
    let mut first = first;
    first.send(&request(&[b"INFO", b"stats"]));
    let info = String::from_utf8_lossy(&first.read_reply()).to_string();
    let rejected: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("rejected_connections:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rejected_connections in {info}"));
    assert!(rejected >= 1, "{info}");
    drop(first);
    // The freed slot is usable again.
    connect_ok();
}

#[test]
fn quit_closes_after_replying_ok() {
    let (_dir, server) = server(&[]);
    let mut raw = Raw::connect(server.port);
    raw.send(&[request(&[b"QUIT"]), request(&[b"PING"])].concat());
    assert_eq!(raw.read_exact_or_eof(64), b"+OK\r\n");
}

#[test]
fn sigterm_answers_pipelined_requests_then_exits_cleanly() {
    let (_dir, mut server) = server(&[]);
    let mut busy = Raw::connect(server.port);
    let idle = Raw::connect(server.port);
    // INCRs, each its own commit (a run of pipelined SETs would be one, answered before the
    // signal arrives, and there would be no drain to watch).
    let burst: Vec<u8> = (0..200).flat_map(|i| request(&[b"INCR", format!("k{i}").as_bytes()])).collect();
    busy.send(&burst);
    let first = busy.read_reply();
    assert_eq!(first, b":1\r\n");
    server.signal("TERM");
    // Every request already sent is answered before the connection closes.
    let rest = busy.read_exact_or_eof(4 * 199);
    assert_eq!(rest.len(), 4 * 199, "in-flight replies were cut off");
    // The listener closed before the drain began: a new client is refused, not left hanging.
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err(), "a new connection was accepted");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    drop(idle);
    let log = server.log_text();
    assert!(log.contains("SIGTERM received"));
    let last = log.lines().rev().find(|l| l.contains("stopped: ")).unwrap_or_else(|| panic!("no last word: {log}"));
    assert!(last.contains("no command in flight was cut off"), "{last}");
}

#[test]
fn an_unknown_mode_is_refused_with_a_clear_message() {
    let out = std::process::Command::new(common::BIN).args(["serve", "--mode", "etcd"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'etcd'"), "{stderr}");
    assert!(stderr.contains("s3, paxos, raft, dynamo"), "the modes are listed: {stderr}");
}

/// Many clients each sending half of a large value cannot exhaust the server: their query
/// buffers share one budget (`--maxmemory-clients`); the client whose read would pass it is
/// told so and closed, the others go on and nothing is half-applied.
#[test]
fn query_buffers_of_all_clients_share_one_budget() {
    let (_dir, server) = server(&["--maxmemory-clients", "10mb"]);
    let mb = 1 << 20;
    let header = |key: &str| format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n", key.len(), 8 * mb).into_bytes();
    let mut a = Raw::connect(server.port);
    a.send(&header("a"));
    a.send(&vec![b'x'; 6 * mb]);
    // Wait until the server holds a's 6 MB, then b's 6 MB would pass 10 MB.
    let mut watcher = Raw::connect(server.port);
    let mut held = || {
        watcher.send(&request(&[b"INFO", b"clients"]));
        let info = String::from_utf8(watcher.read_reply()).unwrap();
        let held = info.lines().find_map(|l| l.strip_prefix("client_query_buffers:")).expect("the field");
        held.trim().parse::<usize>().unwrap()
    };
    common::wait_until(Duration::from_secs(30), "a's 6 MB in the server's query buffers", || held() >= 6 * mb);
    let held_by_a = held();
    let mut b = Raw::connect(server.port);
    b.send(&header("b"));
    // The server may close b while b is still sending: then the reply can be lost to the reset.
    let sent = b.try_send(&vec![b'y'; 6 * mb]);
    let refused = String::from_utf8_lossy(&b.read_exact_or_eof(80)).into_owned();
    assert!(
        refused.starts_with("-ERR client query buffers exceed maxmemory-clients") || (!sent && refused.is_empty()),
        "{refused:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log_text().contains("exceed --maxmemory-clients") {
        assert!(Instant::now() < deadline, "b was not refused: {}", server.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // b's buffers return once its connection is dropped, which may be after the log line: wait
    // for them, or a's last 2 MB could find b still holding its share.
    common::wait_until(Duration::from_secs(30), "b's buffers returned", || held() < held_by_a + mb);
    // a finishes its value (8 MB in all, under the budget once b is gone).
    a.send(&vec![b'x'; 2 * mb]);
    a.send(b"\r\n");
    assert_eq!(a.read_reply(), b"+OK\r\n");
    let mut c = Raw::connect(server.port);
    c.send(&request(&[b"EXISTS", b"a", b"b"]));
    assert_eq!(c.read_reply(), b":1\r\n", "a was stored whole, b not at all");
}

/// `--timeout N` closes a client idle for N seconds, as Redis does; a busy one stays.
#[test]
fn idle_clients_are_closed_after_the_timeout() {
    let (_dir, server) = server(&["--timeout", "1"]);
    let mut idle = Raw::connect(server.port);
    let mut busy = Raw::connect(server.port);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1800) {
        busy.send(&request(&[b"PING"]));
        assert_eq!(busy.read_reply(), b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    let asked = Instant::now();
    assert!(idle.read_exact_or_eof(1).is_empty(), "the idle client got data");
    assert!(asked.elapsed() < Duration::from_secs(2), "the idle client was not closed (the read timed out)");
}

/// PING answers while the process runs; VALTHREE.HEALTH answers OK only while a read through
/// the mode works — a node whose stored data is invalid does not look healthy.
#[test]
fn health_tells_a_broken_store_from_a_running_process() {
    let (dir, server) = server(&[]);
    let mut conn = Raw::connect(server.port);
    conn.send(&request(&[b"SET", b"k", b"v"]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
    conn.send(&request(&[b"VALTHREE.HEALTH"]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
    let document = dir.path().join("data").join("db.json");
    let good = std::fs::read(&document).expect("the embedded document");
    std::fs::write(&document, b"{ not json").unwrap();
    conn.send(&request(&[b"PING"]));
    assert_eq!(conn.read_reply(), b"+PONG\r\n", "the process still answers PING");
    conn.send(&request(&[b"VALTHREE.HEALTH"]));
    let unhealthy = String::from_utf8_lossy(&conn.read_reply()).into_owned();
    assert!(unhealthy.starts_with('-'), "a corrupt document must not look healthy: {unhealthy:?}");
    std::fs::write(&document, good).unwrap();
    conn.send(&request(&[b"VALTHREE.HEALTH"]));
    assert_eq!(conn.read_reply(), b"+OK\r\n");
}
