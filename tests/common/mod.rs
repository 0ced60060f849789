//! What the end-to-end tests share: the real binary, real servers, free ports.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The valthree binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_valthree");

/// Claims `block` for this test process, across the test processes running at once: a file
/// created exclusively in a shared directory (claims older than 15 minutes are stale).
fn claim(kind: &str, block: u16) -> bool {
    let dir = std::env::temp_dir().join("valthree-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{kind}-{block}"));
    if let Ok(meta) = std::fs::metadata(&path)
        && meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > Duration::from_secs(900))
    {
        let _ = std::fs::remove_file(&path);
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(&path).is_ok()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `port` accepts TCP connections.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on {port} within 30s");
}

/// Polls `done` every 20 ms until it holds; panics naming `what` was awaited after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}, in vain");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The events a running workload has recorded so far in the history at `path` (a line still
/// being written is left out; a missing file is an empty history).
pub fn recorded_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e} in history line {l}"))).collect()
}

/// Waits until the history at `path` holds at least `n` events: the workload writing it has
/// run that far.
pub fn wait_for_history(path: &Path, n: usize) {
    let what = format!("{n} events in {}", path.display());
    wait_until(Duration::from_secs(30), &what, || recorded_events(path).len() >= n);
}

/// The checker's verdicts, spelled here as the tests expect to read them (not taken from the
/// checker, so a change there shows up here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
}

impl Verdict {
    /// How the verdict's first line starts, before the colon.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "NOT linearizable",
        }
    }

    /// The exit status of `check-history` and `workload --check` with this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Linearizable => 0,
            Verdict::NotLinearizable => 1,
        }
    }
}

/// The first line of the verdict in the stdout of `workload --check`: the line after the
/// summary's `history: …` line (and after the `report: …` line when an HTML report was written).
pub fn verdict_line(stdout: &str) -> Option<&str> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("history: ")).skip(1).peekable();
    lines.next_if(|l| l.starts_with("report: "));
    lines.next()
}

/// Whether `line` is exactly `"<verdict>: <n> operations on <k> keys checked in <s.ss>s"`.
pub fn is_verdict_line(line: &str, verdict: Verdict) -> bool {
    let Some(rest) = line.strip_prefix(verdict.text()).and_then(|r| r.strip_prefix(": ")) else { return false };
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let seconds = |w: &str| {
        w.strip_suffix('s').and_then(|t| t.split_once('.')).is_some_and(|(i, f)| number(i) && number(f) && f.len() == 2)
    };
    match rest.split(' ').collect::<Vec<_>>()[..] {
        [n, "operations", "on", k, "keys", "checked", "in", t] => number(n) && number(k) && seconds(t),
        _ => false,
    }
}

/// Asserts that `out`, from `workload --check`, is `verdict`: its exit status and the exact
/// first line of its verdict. `context` says which run it was.
pub fn assert_verdict(out: &Output, verdict: Verdict, context: &str) {
    let said = text(out);
    assert_eq!(out.status.code(), Some(verdict.exit_code()), "{context}: expected {verdict:?}: {said}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = verdict_line(&stdout).unwrap_or_else(|| panic!("{context}: no verdict after the summary: {said}"));
    assert!(is_verdict_line(line, verdict), "{context}: expected {verdict:?}, the verdict reads {line:?}: {said}");
}

/// A `valthree serve` process, killed when dropped.
pub struct Valthree {
    pub child: Child,
    pub port: u16,
    pub args: Vec<String>,
    pub log: PathBuf,
}

impl Valthree {
    /// Starts `valthree serve --addr 127.0.0.1:<free> <args>` with its log in `log_dir`.
    pub fn start(log_dir: &Path, args: &[&str]) -> Self {
        Self::start_on(free_port(), log_dir, args)
    }

    pub fn start_on(port: u16, log_dir: &Path, args: &[&str]) -> Self {
        let log = log_dir.join(format!("valthree-{port}.log"));
        let mut all = vec!["serve".to_string(), "--addr".into(), format!("127.0.0.1:{port}")];
        all.extend(args.iter().map(|s| s.to_string()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child =
            Command::new(BIN).args(&all).stdout(Stdio::null()).stderr(file).spawn().expect("start valthree");
        wait_for_port(port, &mut child, "valthree");
        Self { child, port, args: all, log }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command line again.
    pub fn restart(&mut self) {
        self.kill9();
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        self.child = Command::new(BIN).args(&self.args).stdout(Stdio::null()).stderr(file).spawn().unwrap();
        wait_for_port(self.port, &mut self.child, "valthree");
    }

    /// Sends a signal by name (TERM, INT, STOP, CONT).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([format!("-{name}"), self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Valthree {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Finds a program in the test venv (`.venv/bin`) or on PATH. A test that needs it fails when
/// it is missing, in every environment: a test that skips itself would pass without testing.
pub fn find_program(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    // cargo's bin directory too: `cargo install` puts s3s-fs there, and it is not on every PATH.
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(cargo_bin) {
        let candidate = dir.join(name);
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "{name} is needed by this test but is neither in .venv/bin, on PATH nor in cargo's bin directory: \
         run ./scripts/test, which installs redis-server and chromium (Debian packages), moto's S3 server (into .venv) \
         and s3s-fs (cargo install)"
    );
}

/// A moto S3 server, killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
    /// The Python that has moto (and boto3) installed: the one beside `moto_server`.
    pub python: PathBuf,
}

impl Moto {
    /// moto's S3 server answering one request at a time (see tests/support/moto_serial.py:
    /// threaded moto can let two racing conditional PUTs both win).
    pub fn start() -> Self {
        let moto_server = find_program("moto_server");
        let python = ["python", "python3"]
            .iter()
            .map(|p| moto_server.with_file_name(p))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no python beside {}: run ./scripts/test", moto_server.display()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_serial.py");
        let port = free_port();
        let mut child = Command::new(&python)
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        wait_for_port(port, &mut child, "moto");
        Self { child, port, python }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `valthree serve` flags pointing at `bucket` on this server.
    pub fn serve_flags(&self, bucket: &str) -> Vec<String> {
        ["--s3-endpoint", &self.endpoint(), "--s3-bucket", bucket, "--s3-access-key", "test", "--s3-secret-key", "test"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// s3s-fs, an S3 server on a directory whose conditional PUT is not atomic (docs/s3.md),
/// killed when dropped.
pub struct S3sFs {
    child: Child,
    pub port: u16,
    _root: tempfile::TempDir,
}

impl S3sFs {
    pub fn start() -> Self {
        let bin = find_program("s3s-fs");
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "test", "--secret-key", "test"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        wait_for_port(port, &mut child, "s3s-fs");
        Self { child, port, _root: root }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket: a directory under its root.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir(self._root.path().join(name)).unwrap();
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server from the system's packages, killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A redis-server that loads the RDB file `rdb` on start (and never saves over it).
    pub fn start_on(rdb: &Path) -> Self {
        let dir = rdb.parent().unwrap().to_str().unwrap();
        let name = rdb.file_name().unwrap().to_str().unwrap();
        Self::start_with(&["--dir", dir, "--dbfilename", name])
    }

    fn start_with(extra: &[&str]) -> Self {
        let bin = find_program("redis-server");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for_port(port, &mut child, "redis-server");
        Self { child, port }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw RESP conversation over TCP, for byte-exact checks.
pub struct Raw {
    stream: std::net::TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Self {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self { stream }
    }

    /// Connects from `from`, another loopback address (every one of 127/8 is this host's).
    pub fn connect_from(from: std::net::Ipv4Addr, port: u16) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        let stream = runtime.block_on(socket.connect(([127, 0, 0, 1], port).into())).unwrap().into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self { stream }
    }

    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.stream.set_write_timeout(Some(timeout)).unwrap();
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends what the server takes; false when it closed the connection first.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        use std::io::Write;
        self.stream.write_all(bytes).is_ok()
    }

    /// Reads until `want` bytes arrived or the peer closed; returns what arrived.
    pub fn read_exact_or_eof(&mut self, want: usize) -> Vec<u8> {
        use std::io::Read;
        let mut out = vec![0; want];
        let mut got = 0;
        while got < want {
            match self.stream.read(&mut out[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        out.truncate(got);
        out
    }

    /// Reads one complete RESP reply (any type, nested).
    pub fn read_reply(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_value(&mut out);
        out
    }

    fn read_line(&mut self, out: &mut Vec<u8>) -> String {
        use std::io::Read;
        let start = out.len();
        let mut byte = [0u8];
        loop {
            match self.stream.read(&mut byte) {
                Ok(1) => out.push(byte[0]),
                _ => panic!("connection closed mid-reply after {:?}", String::from_utf8_lossy(out)),
            }
            if out.ends_with(b"\r\n") {
                return String::from_utf8_lossy(&out[start..out.len() - 2]).into_owned();
            }
        }
    }

    fn read_value(&mut self, out: &mut Vec<u8>) {
        let line = self.read_line(out);
        let (kind, rest) = line.split_at(1);
        match kind {
            "$" | "=" | "!" => {
                let n: i64 = rest.parse().unwrap();
                if n >= 0 {
                    let body = self.read_exact_or_eof(n as usize + 2);
                    out.extend_from_slice(&body);
                }
            }
            "*" | "~" | ">" => {
                let n: i64 = rest.parse().unwrap();
                for _ in 0..n.max(0) {
                    self.read_value(out);
                }
            }
            "%" => {
                let n: i64 = rest.parse().unwrap();
                for _ in 0..2 * n {
                    self.read_value(out);
                }
            }
            _ => {}
        }
    }
}

/// Encodes a command as a RESP multibulk request.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---- valthree cluster, run as a command ----

pub fn valthree(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run valthree")
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `valthree cluster <args> --dir <dir> --json` and returns its JSON.
pub fn cluster(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["cluster", "--dir", dir.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = valthree(&all);
    assert!(out.status.success(), "cluster {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A base port whose client, peer and metrics ports for five nodes are all free, claimed for
/// this process: bases are multiples of 10 from 20000, and the client block (base+1..), the
/// peer block (base+1001..) and the metrics block (base+2001..) are claimed, so no two claims
/// overlap.
pub fn free_base() -> u16 {
    loop {
        let base = 20_000 + (fastrand_port() % 900) * 10;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if (1..=5).all(|i| free(base + i) && free(base + 1000 + i) && free(base + 2000 + i))
            && claim("block", base)
            && claim("block", base + 1000)
            && claim("block", base + 2000)
        {
            return base;
        }
    }
}

pub fn fastrand_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let salt = CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(2_654_435_761);
    ((nanos ^ salt ^ (std::process::id() * 7919)) % 9000) as u16
}

/// Stops the cluster even when an assertion fails midway.
pub struct Down<'a>(pub &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = valthree(&["cluster", "--dir", self.0.to_str().unwrap(), "down"]);
    }
}

// ---- clusters of any mode, through redis clients ----

pub fn redis(addr: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con
}

pub fn addrs(status: &Value) -> Vec<String> {
    status["nodes"].as_array().unwrap().iter().map(|n| n["addr"].as_str().unwrap().to_string()).collect()
}

pub fn info_field(addr: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("valthree").arg("dynamo").query(&mut redis(addr)).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in INFO: {info}"))
}

pub fn up(dir: &Path, mode: &str, extra: &[&str]) -> Value {
    let base = free_base().to_string();
    let mut args = vec!["up", "--mode", mode, "--nodes", "3", "--base-port", &base];
    if !extra.is_empty() {
        args.push("--");
        args.extend_from_slice(extra);
    }
    cluster(dir, &args)
}

/// Runs `valthree workload --check` against the cluster in `dir`.
pub fn workload(dir: &Path, history: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "workload",
        "--cluster",
        dir.to_str().unwrap(),
        "--clients",
        "6",
        "--keys",
        "4",
        "--timeout",
        "2s",
        "--history",
        history.to_str().unwrap(),
        "--check",
    ];
    args.extend_from_slice(extra);
    valthree(&args)
}

/// Writers on every node, each writing only its own keys (so another writer's later write
/// cannot stand in for a lost one); kill -9 all nodes; restart; every acknowledged write must
/// be there with the value it was acknowledged with.
pub fn kill_9_of_every_node_loses_no_acknowledged_write(mode: &str) {
    crash_of_every_node_loses_no_acknowledged_write(mode, &|dir| up(dir, mode, &[]), "kill");
}

/// The same with the nodes `start` starts and the crash `cluster VERB NODE` makes (`kill`:
/// SIGKILL; `power-loss`: SIGKILL of a node on the lazy file layer, which loses what it had
/// not fsync'd).
pub fn crash_of_every_node_loses_no_acknowledged_write(
    mode: &str,
    start: &dyn Fn(&Path) -> serde_json::Value,
    verb: &str,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = start(&dir);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let stop = Arc::new(AtomicBool::new(false));
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..6)
        .map(|c| {
            let addr = addrs[c % 3].clone();
            let (stop, acked_so_far) = (stop.clone(), acked_so_far.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut con = redis(&addr);
                for i in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("w{c}-{i}");
                    match redis::cmd("SET").arg(&key).arg(i).query::<String>(&mut con) {
                        Ok(_) => {
                            acked.push((key, i));
                            acked_so_far.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => break, // the node died under us
                    }
                }
                acked
            })
        })
        .collect();
    // The crash comes in the middle of the burst: once enough writes were acknowledged.
    wait_until(Duration::from_secs(30), "200 acknowledged writes before the crash", || {
        assert!(!writers.iter().all(|w| w.is_finished()), "every writer stopped before the crash");
        acked_so_far.load(Ordering::SeqCst) >= 200
    });
    for n in ["n1", "n2", "n3"] {
        cluster(&dir, &[verb, n]);
    }
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<(String, u64)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acked.len() >= 200, "only {} writes were acknowledged before the crash", acked.len());
    for n in ["n1", "n2", "n3"] {
        cluster(&dir, &["restart", n]);
    }
    let mut con = redis(&addrs[1]);
    for (key, value) in &acked {
        let v: Option<u64> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(v, Some(*value), "{mode}: acknowledged {key} = {value} is not what survived `{verb}` of every node");
    }
}

/// `workload --check` under kill, pause and partition on each seed: linearizable, faults
/// recorded, and enough operations succeeded to mean something.
pub fn nemesis_workloads_are_linearizable(mode: &str, seeds: &[&str]) {
    for seed in seeds {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        up(&dir, mode, &[]);
        let _down = Down(&dir);
        let history = tmp.path().join("h.jsonl");
        let extra =
            ["--duration", "10s", "--seed", seed, "--nemesis", "kill,pause,partition", "--nemesis-interval", "1500ms"];
        let out = workload(&dir, &history, &extra);
        assert_verdict(&out, Verdict::Linearizable, &format!("{mode}, seed {seed}"));
        let events = std::fs::read_to_string(&history).unwrap();
        for f in ["\"kill\"", "\"pause\"", "\"partition\""] {
            assert!(events.contains(f), "{mode}, seed {seed}: no {f} fault in the history");
        }
        let oks = events.lines().filter(|l| l.contains("\"type\":\"ok\"")).count();
        assert!(oks > 200, "{mode}, seed {seed}: only {oks} operations succeeded under faults");
    }
}

/// A deliberately broken configuration (`flags`) under partitions: within three seeds the
/// checker must report NOT linearizable; every other run must be judged linearizable (an
/// unknown verdict or an error is a failure for another reason).
pub fn broken_configuration_is_caught(mode: &str, flags: &[&str], seconds: &str) {
    for seed in ["1", "2", "3"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        up(&dir, mode, flags);
        let _down = Down(&dir);
        let history = tmp.path().join("h.jsonl");
        let extra = ["--duration", seconds, "--seed", seed, "--nemesis", "partition", "--nemesis-interval", "2s"];
        let out = workload(&dir, &history, &extra);
        let context = format!("{mode} {flags:?}, seed {seed}");
        if out.status.code() == Some(Verdict::NotLinearizable.exit_code()) {
            assert_verdict(&out, Verdict::NotLinearizable, &context);
            return;
        }
        assert_verdict(&out, Verdict::Linearizable, &context);
    }
    panic!("three runs of {mode} with {flags:?} under partitions all passed the checker");
}

// ---- certificates for the TLS tests ----

/// A CA (`ca.crt`), a certificate for 127.0.0.1 (`server.crt`/`.key`, usable by peers for
/// both ends) and a client certificate (`client.crt`/`.key`), made with the `openssl` tool.
pub fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl tool is needed");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // The server certificate also serves as a peer's (mutual TLS: server and client auth).
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=valthree test CA",
    ]);
    for name in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "",
            "-days",
            "2",
        ];
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        args[3] = &csr;
        args[10] = &crt;
        // Extensions make version-3 certificates, the only kind webpki accepts.
        args.extend(["-extfile", if name == "server" { "san.cnf" } else { "client.cnf" }]);
        run(&args);
    }
}

// ---- compare-and-set commands, in every mode ----

/// A value whose digest begins with four zeros, `00006c38adf31777` (redis/redis#14496).
pub const LEADING_ZEROS: &[u8] =
    b"v8lf0c11xh8ymlqztfd3eeq16kfn4sspw7fqmnuuq3k3t75em5wdizgcdw7uc26nnf961u2jkfzkjytls2kwlj7626sd";

/// What a mode offers of the compare-and-set and multi-key commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasSupport {
    /// Everything, MSET/MSETNX atomic (s3, raft).
    MultiKey,
    /// Everything but MSET/MSETNX, refused with the reason (paxos).
    PerKey,
    /// None of the writes: each is refused, pointing to VGET/VSET (dynamo).
    Refused,
}

/// Sends each request to the next of `ports` in turn (so a cluster forwards some of them)
/// and checks its RESP2 reply byte for byte: Redis 8.4's SET IFEQ/IFNE/IFDEQ/IFDNE, DIGEST
/// and DELEX, Valkey's DELIFEQ, and the refusals each mode owes.
pub fn check_compare_and_set_commands(ports: &[u16], support: CasSupport) {
    let mut conns: Vec<Raw> = ports.iter().map(|p| Raw::connect(*p)).collect();
    let mut turn = 0;
    let mut ask = |line: &[&[u8]]| -> String {
        let conn = &mut conns[turn % ports.len()];
        turn += 1;
        conn.send(&request(line));
        String::from_utf8_lossy(&conn.read_reply()).into_owned()
    };
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let (ok, nil, one, zero) = ("+OK\r\n", "$-1\r\n", ":1\r\n", ":0\r\n");
    let syntax = "-ERR syntax error\r\n";
    // Digests known from outside valthree (Redis' DIGEST page and redis/redis#14496), so a
    // wrong hash or a dropped leading zero fails here.
    let (hello, dh) = ("Hello world", "b6acb9d84a38ff74");
    let (zeros, dz) = (std::str::from_utf8(LEADING_ZEROS).unwrap(), "00006c38adf31777");
    assert_eq!(ask(&[b"FLUSHALL"]), ok);
    assert_eq!(ask(&[b"SET", b"h", hello.as_bytes()]), ok);
    assert_eq!(ask(&[b"DIGEST", b"h"]), bulk(dh));
    assert_eq!(ask(&[b"SET", b"z", LEADING_ZEROS]), ok);
    assert_eq!(ask(&[b"DIGEST", b"z"]), bulk(dz));
    assert_eq!(ask(&[b"DEL", b"h", b"z"]), ":2\r\n");
    assert_eq!(ask(&[b"SET", b"k", b"v"]), ok);
    assert_eq!(ask(&[b"DIGEST", b"missing"]), nil);
    // Errors are the same whatever the mode: they are found before the store is asked.
    for bad in [
        &[&b"SET"[..], b"k", b"v", b"IFEQ", b"a", b"NX"][..],
        &[b"SET", b"k", b"v", b"XX", b"IFEQ", b"a"],
        &[b"SET", b"k", b"v", b"IFEQ", b"a", b"IFNE", b"b"],
        &[b"SET", b"k", b"v", b"IFEQ"],
        &[b"DELEX", b"k", b"IFXX", b"a"],
        &[b"DELEX", b"k", b"IFEQ"],
        &[b"DELEX", b"k", b"IFEQ", b"a", b"b"],
    ] {
        assert_eq!(ask(bad), syntax, "{bad:?}");
    }
    // Redis 8.4 wants all 16 digits: a digest without its leading zeros is refused, not
    // compared as a number (redis/redis#14496).
    let bad_digest = "-ERR must be exactly 16 hexadecimal characters\r\n";
    for bad in [
        &[&b"SET"[..], b"k", b"v", b"IFDEQ", b"xyz"][..],
        &[b"SET", b"k", b"v", b"IFDNE", b"6c38adf31777"],
        &[b"SET", b"k", b"v", b"IFDEQ", b"000006c38adf31777"],
        &[b"DELEX", b"k", b"IFDEQ", b"6c38adf31777"],
        &[b"DELEX", b"k", b"IFDNE", b"00006c38adf3177g"],
    ] {
        assert_eq!(ask(bad), bad_digest, "{bad:?}");
    }
    assert_eq!(ask(&[b"DELIFEQ", b"k"]), "-ERR wrong number of arguments for 'delifeq' command\r\n");
    if support == CasSupport::Refused {
        for line in [
            &[&b"SET"[..], b"k", b"w", b"IFEQ", b"v"][..],
            &[b"SET", b"k", b"w", b"IFDNE", dh.as_bytes()],
            &[b"DELEX", b"k"],
            &[b"DELEX", b"k", b"IFEQ", b"v"],
            &[b"DELIFEQ", b"k", b"v"],
            &[b"GETDEL", b"k"],
            &[b"GETSET", b"k", b"w"],
            &[b"SETNX", b"k", b"w"],
            &[b"MSET", b"k", b"w", b"j", b"w"],
            &[b"MSETNX", b"n1", b"w", b"n2", b"w"],
        ] {
            let reply = ask(line);
            assert!(reply.starts_with("-ERR ") && reply.contains("VSET"), "{line:?}: {reply}");
            // MSET reads nothing: its refusal is about writing several keys as one.
            let several = line[0].starts_with(b"MSET");
            assert_eq!(several, reply.contains("several keys") && reply.contains("per key"), "{line:?}: {reply}");
        }
        assert_eq!(ask(&[b"GET", b"k"]), bulk("v"), "a refused command changed nothing");
        assert_eq!(ask(&[b"EXISTS", b"j", b"n1"]), zero);
        return;
    }
    // SET's conditions on the value, with and without GET.
    assert_eq!(ask(&[b"SET", b"k", b"w", b"IFEQ", b"x"]), nil);
    assert_eq!(ask(&[b"SET", b"k", b"w", b"IFEQ", b"v"]), ok);
    assert_eq!(ask(&[b"SET", b"k", b"x", b"IFEQ", b"v", b"GET"]), bulk("w"));
    assert_eq!(ask(&[b"SET", b"k", b"x", b"GET", b"IFEQ", b"w"]), bulk("w"));
    assert_eq!(ask(&[b"SET", b"k", b"y", b"IFNE", b"x"]), nil);
    assert_eq!(ask(&[b"SET", b"k", b"y", b"ifne", b"q"]), ok);
    assert_eq!(ask(&[b"SET", b"k", hello.as_bytes(), b"IFDEQ", dh.as_bytes()]), nil);
    assert_eq!(ask(&[b"SET", b"k", hello.as_bytes(), b"IFDNE", dh.as_bytes(), b"GET"]), bulk("y"));
    // Either case compares equal; so does a digest with leading zeros.
    assert_eq!(ask(&[b"SET", b"k", LEADING_ZEROS, b"IFDEQ", dh.to_uppercase().as_bytes()]), ok);
    assert_eq!(ask(&[b"SET", b"k", b"q", b"IFDNE", dz.as_bytes()]), nil);
    assert_eq!(ask(&[b"SET", b"k", b"q", b"IFDEQ", dz.as_bytes(), b"GET"]), bulk(zeros));
    assert_eq!(ask(&[b"GET", b"k"]), bulk("q"));
    // An absent key: IFEQ/IFDEQ never create it, IFNE/IFDNE do.
    assert_eq!(ask(&[b"SET", b"new", b"v", b"IFEQ", b"v"]), nil);
    assert_eq!(ask(&[b"SET", b"new", b"v", b"IFDEQ", dh.as_bytes(), b"GET"]), nil);
    assert_eq!(ask(&[b"EXISTS", b"new"]), zero);
    assert_eq!(ask(&[b"SET", b"new", b"v", b"IFNE", b"v", b"GET"]), nil);
    assert_eq!(ask(&[b"SET", b"new2", b"v", b"IFDNE", dh.as_bytes()]), ok);
    assert_eq!(ask(&[b"EXISTS", b"new", b"new2"]), ":2\r\n");
    // DELEX and DELIFEQ.
    assert_eq!(ask(&[b"DELEX", b"k", b"IFEQ", b"nope"]), zero);
    assert_eq!(ask(&[b"DELEX", b"k", b"IFNE", b"q"]), zero);
    assert_eq!(ask(&[b"SET", b"k", LEADING_ZEROS]), ok);
    assert_eq!(ask(&[b"DELEX", b"k", b"IFDNE", dz.to_uppercase().as_bytes()]), zero);
    assert_eq!(ask(&[b"DELEX", b"k", b"IFDEQ", dh.as_bytes()]), zero);
    assert_eq!(ask(&[b"DELEX", b"k", b"IFDEQ", dz.as_bytes()]), one);
    assert_eq!(ask(&[b"DELEX", b"k"]), zero);
    assert_eq!(ask(&[b"DELEX", b"new"]), one);
    assert_eq!(ask(&[b"DELEX", b"new2", b"IFNE", b"x"]), one);
    assert_eq!(ask(&[b"DELIFEQ", b"d", b"v"]), zero);
    assert_eq!(ask(&[b"SET", b"d", b"v"]), ok);
    assert_eq!(ask(&[b"DELIFEQ", b"d", b"w"]), zero);
    assert_eq!(ask(&[b"DELIFEQ", b"d", b"v"]), one);
    assert_eq!(ask(&[b"DBSIZE"]), zero);
    // The older commands run through every node too (their bytes are compared with
    // redis-server in tests/compat.rs).
    assert_eq!(ask(&[b"SETNX", b"s", b"1"]), one);
    assert_eq!(ask(&[b"GETSET", b"s", b"2"]), bulk("1"));
    assert_eq!(ask(&[b"GETDEL", b"s"]), bulk("2"));
    let mset = ask(&[b"MSET", b"a", b"1", b"b", b"2"]);
    let msetnx = ask(&[b"MSETNX", b"c", b"1", b"d", b"2"]);
    match support {
        CasSupport::MultiKey => {
            assert_eq!((mset.as_str(), msetnx.as_str()), (ok, one));
            assert_eq!(ask(&[b"MGET", b"a", b"b", b"c", b"d"]), "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n2\r\n");
        }
        CasSupport::PerKey => {
            for (reply, name) in [(mset, "MSET"), (msetnx, "MSETNX")] {
                assert!(
                    reply.starts_with(&format!("-ERR {name} is not supported in paxos mode"))
                        && reply.contains("own CASPaxos register"),
                    "{reply}"
                );
            }
            assert_eq!(ask(&[b"DBSIZE"]), zero);
        }
        CasSupport::Refused => unreachable!(),
    }
}

// ---- partition shapes, packet faults and targets ----

/// Every partition shape the nemesis can draw in `mode`: s3 mode takes only the shapes of
/// groups (a node is cut from the object store or not).
pub fn shapes_of(mode: &str) -> &'static [&'static str] {
    if mode == "s3" { &["one", "halves"] } else { &["one", "halves", "ring", "bridge", "one-way"] }
}

/// `workload --check` in `mode` on `seed` under `nemesis`, faults 1 s apart for `seconds`;
/// the output and the history's events.
pub fn network_fault_workload(mode: &str, seed: &str, nemesis: &str, seconds: &str) -> (Output, Vec<Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    up(&dir, mode, &[]);
    let _down = Down(&dir);
    let history = tmp.path().join("h.jsonl");
    let extra = ["--duration", seconds, "--seed", seed, "--nemesis", nemesis, "--nemesis-interval", "1s"];
    let out = workload(&dir, &history, &extra);
    let events = recorded_events(&history);
    (out, events)
}

/// The `value`s of the nemesis' successful `f` starts.
pub fn fault_targets(events: &[Value], f: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == f && e["error"].is_null())
        .map(|e| e["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Partitions of every shape of `mode` came up, and (but in s3 mode) packet faults, each
/// marked as a fault's start and end.
pub fn assert_every_shape_and_packet_fault(mode: &str, events: &[Value], context: &str) {
    let partitions = fault_targets(events, "partition");
    for shape in shapes_of(mode) {
        assert!(
            partitions.iter().any(|p| p.starts_with(&format!("{shape} "))),
            "{context}: no {shape} partition among {partitions:?}"
        );
    }
    if mode != "s3" {
        let packets = fault_targets(events, "packet");
        assert!(packets.iter().any(|p| p.contains("links: delay")), "{context}: no packet fault: {packets:?}");
        let marked =
            |phase: &str| events.iter().any(|e| e["fault"]["kind"] == "packet" && e["fault"]["phase"] == phase);
        assert!(marked("start") && marked("end"), "{context}: packet faults are marked as faults");
    }
}

/// Under every partition shape and (but in s3 mode) packet faults, on `seed`: linearizable,
/// every shape seen, and enough operations succeeded to mean something.
pub fn shaped_partitions_and_packet_faults_are_linearizable(mode: &str, seed: &str) {
    let nemesis = if mode == "s3" { "partition" } else { "partition,packet" };
    let (out, events) = network_fault_workload(mode, seed, nemesis, "20s");
    let context = format!("{mode}, seed {seed}");
    assert_verdict(&out, Verdict::Linearizable, &context);
    assert_every_shape_and_packet_fault(mode, &events, &context);
    let oks = events.iter().filter(|e| e["type"] == "ok").count();
    assert!(oks > 100, "{context}: only {oks} operations succeeded under partitions and packet faults");
}

/// Kills and pauses of every target — one node, a minority, a majority, all, the primary —
/// keep `mode` linearizable, and the history names each target.
pub fn kills_and_pauses_of_every_target_are_linearizable(mode: &str, seed: &str) {
    let (out, events) = network_fault_workload(mode, seed, "kill,pause", "20s");
    let context = format!("{mode}, seed {seed}");
    assert_verdict(&out, Verdict::Linearizable, &context);
    let mut targets = fault_targets(&events, "kill");
    targets.extend(fault_targets(&events, "pause"));
    for aim in ["one n", "minority n", "majority n", "all", "primary n"] {
        assert!(targets.iter().any(|t| t.starts_with(aim)), "{context}: no {aim:?} target among {targets:?}");
    }
}
