//! `valthree demo`: narrated scenarios that start their own local cluster, show a mechanism at
//! work step by step — each step the command a user could type, what to notice, what was
//! observed — and check every claim they make. A claim that does not hold ends the demo with
//! its name and a non-zero exit.

mod dynamo;
mod others;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use redis_protocol::resp2::types::BytesFrame;
use serde_json::{Value, json};

use crate::cluster::{self, ClusterState, UpOptions};
use crate::mode::ModeName;

/// One demo.
pub struct Demo {
    pub name: &'static str,
    /// The mode(s) it runs.
    pub modes: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Stage) -> Result<(), Failure>,
}

/// Every demo, in the order `demo all` runs them.
pub const DEMOS: &[Demo] = &[
    Demo {
        name: "quorum",
        modes: "dynamo",
        about: "R=W=2 of N=3: one node down costs nothing, two refuse writes",
        run: dynamo::quorum,
    },
    Demo {
        name: "conflict",
        modes: "dynamo",
        about: "concurrent writes become siblings; a write with the merged context resolves them",
        run: dynamo::conflict,
    },
    Demo {
        name: "repair",
        modes: "dynamo",
        about: "a stale replica is repaired by the read that finds it (hints off)",
        run: dynamo::repair,
    },
    Demo {
        name: "handoff",
        modes: "dynamo",
        about: "a node that was down catches up by hinted handoff, without any read",
        run: dynamo::handoff,
    },
    Demo {
        name: "membership",
        modes: "dynamo",
        about: "SWIM: a killed node turns SUSPECT, then DEAD; restarted, ALIVE",
        run: dynamo::membership,
    },
    Demo {
        name: "failover",
        modes: "raft",
        about: "the leader is killed, a new one is elected, writes resume, the old leader catches up",
        run: others::failover,
    },
    Demo {
        name: "occ",
        modes: "s3",
        about: "two nodes on one object: compare-and-swap conflicts are retried, no increment is lost",
        run: others::occ,
    },
    Demo {
        name: "availability",
        modes: "paxos, raft",
        about: "one node partitioned away: the longest gap the other nodes' clients see",
        run: others::availability,
    },
    Demo {
        name: "linearizability",
        modes: "s3",
        about: "the checker catches a planted stale-read bug and passes a correct node",
        run: others::linearizability,
    },
];

/// How a demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where its clusters live (default: a fresh temporary directory).
    pub dir: Option<PathBuf>,
    pub base_port: u16,
    /// Leave the last cluster running at the end.
    pub keep: bool,
    pub json: bool,
    /// Seconds to pause between steps (0: none).
    pub pace: f64,
    /// Extra `serve` flags for every node (a broken configuration, in tests).
    pub extra: Vec<String>,
}

/// Why a demo stopped early.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A claim it makes did not hold.
    Claim { claim: String, observed: String },
    /// Something it needs failed (a cluster that would not start, a port taken).
    Error(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

/// The clusters this process started (registered before they start), torn down on Ctrl-C,
/// and the temporary directories to remove then.
static STARTED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held while a cluster's processes start or restart: an interrupt waits for it, so no
/// process is left that the teardown did not know of.
static STARTING: Mutex<()> = Mutex::new(());
/// Set once interrupted: the demo stops talking.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tears down every cluster on Ctrl-C (then exits 130).
pub fn tear_down_on_interrupt() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!("\ninterrupted: tearing the demo's cluster down");
            let _starting = lock(&STARTING);
            for dir in lock(&STARTED).drain(..) {
                let _ = cluster::down(&dir, true);
            }
            for root in lock(&ROOTS).drain(..) {
                let _ = std::fs::remove_dir_all(root);
            }
            std::process::exit(130);
        }
    });
}

/// A running demo: its clusters, its steps, its log.
pub struct Stage {
    options: Options,
    root: PathBuf,
    /// A directory of its own, removed at the end (unless --keep).
    temporary: bool,
    clusters: Vec<PathBuf>,
    step: usize,
    log: Vec<Value>,
    tty: bool,
    started: Instant,
}

/// redis-cli's rendering of a reply.
pub fn render(frame: &BytesFrame) -> String {
    fn one(frame: &BytesFrame, indent: usize) -> String {
        match frame {
            BytesFrame::SimpleString(s) => String::from_utf8_lossy(s).into_owned(),
            // A multi-line text (INFO) as its lines, as redis-cli prints it.
            BytesFrame::BulkString(b) if b.contains(&b'\n') => {
                String::from_utf8_lossy(b).trim_end().replace("\r\n", "\n").replace('\r', "")
            }
            BytesFrame::BulkString(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
            BytesFrame::Null => "(nil)".into(),
            BytesFrame::Integer(n) => format!("(integer) {n}"),
            BytesFrame::Error(e) => format!("(error) {e}"),
            BytesFrame::Array(items) if items.is_empty() => "(empty array)".into(),
            BytesFrame::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let pad = if i == 0 { String::new() } else { " ".repeat(indent) };
                    format!("{pad}{}) {}", i + 1, one(f, indent + 3))
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
    one(frame, 0)
}

impl Stage {
    fn new(options: Options) -> Result<Self, String> {
        let (root, temporary) = match &options.dir {
            Some(dir) => (dir.clone(), false),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "valthree-demo-{}-{:08x}",
                    std::process::id(),
                    fastrand::u32(..)
                ));
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                lock(&ROOTS).push(dir.clone());
                (dir, true)
            }
        };
        let tty = !options.json && std::io::stdout().is_terminal();
        Ok(Stage {
            options,
            root,
            temporary,
            clusters: Vec::new(),
            step: 0,
            log: Vec::new(),
            tty,
            started: Instant::now(),
        })
    }

    fn print(&self, text: &str) {
        if !self.options.json && !INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            println!("{text}");
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.tty { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    /// Narration between steps.
    pub fn say(&mut self, text: &str) {
        self.print(&format!("\n{text}"));
        self.log.push(json!({"say": text}));
    }

    /// A numbered step: what it does (as a user would type it) and what to notice.
    fn begin(&mut self, command: &str, notice: &str) {
        if self.step > 0 && self.options.pace > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(self.options.pace));
        }
        self.step += 1;
        let n = self.paint("1", &format!("[{}]", self.step));
        self.print(&format!("{n} $ {}", self.paint("36", command)));
        if !notice.is_empty() {
            self.print(&format!("    notice: {notice}"));
        }
        self.log.push(json!({"step": self.step, "do": command, "notice": notice, "checks": []}));
    }

    fn observed(&mut self, text: &str) {
        for (i, line) in text.lines().enumerate() {
            self.print(&format!("    {}{line}", if i == 0 { "observed: " } else { "          " }));
        }
        if let Some(step) = self.log.iter_mut().rev().find(|s| s.get("step").is_some()) {
            step["observed"] = json!(text);
        }
    }

    /// Checks a claim the demo makes; one that does not hold ends the demo.
    pub fn claim(&mut self, claim: &str, holds: bool, observed: &str) -> Result<(), Failure> {
        let mark = if holds { self.paint("32", "✓") } else { self.paint("31", "✗") };
        // What was measured, when the step's own observation does not already show it.
        let already =
            self.log.iter().rev().find(|s| s.get("step").is_some()).and_then(|s| s["observed"].as_str()).unwrap_or("");
        let short =
            !observed.is_empty() && !observed.contains('\n') && observed.len() <= 100 && !already.contains(observed);
        self.print(&format!("    {mark} {claim}{}", if short { format!(" ({observed})") } else { String::new() }));
        if let Some(step) = self.log.iter_mut().rev().find(|s| s.get("step").is_some())
            && let Some(checks) = step["checks"].as_array_mut()
        {
            checks.push(json!({"claim": claim, "holds": holds, "observed": observed}));
        }
        if holds { Ok(()) } else { Err(Failure::Claim { claim: claim.into(), observed: observed.into() }) }
    }

    /// Where a demo keeps a file of its own (a report): in its directory, beside its clusters,
    /// so it outlives them; and whether it stays after the demo (`--dir` or `--keep`), or goes
    /// with the temporary directory.
    pub fn file(&self, name: &str) -> (PathBuf, bool) {
        (self.root.join(name), !self.temporary || self.options.keep)
    }

    /// `valthree cluster up`: a cluster of `mode` with `flags` for every node.
    pub fn up(&mut self, mode: ModeName, nodes: u32, flags: &[&str]) -> Result<ClusterState, Failure> {
        let dir = self.root.join(format!("{}-{}", mode.as_str(), self.clusters.len() + 1));
        let mut extra: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        extra.extend(self.options.extra.iter().cloned());
        let tail = if extra.is_empty() { String::new() } else { format!(" -- {}", extra.join(" ")) };
        let command = format!(
            "valthree cluster up --mode {} --nodes {nodes} --base-port {} --dir {}{tail}",
            mode.as_str(),
            self.options.base_port,
            dir.display()
        );
        self.begin(&command, "");
        let spinner = self.spinner(&format!("starting {nodes} {} nodes", mode.as_str()));
        let options = UpOptions {
            mode,
            nodes,
            dir: dir.clone(),
            base_port: self.options.base_port,
            port_offset: cluster::PEER_PORT_OFFSET,
            extra,
            fault_fs: crate::node::FaultFs::Off,
        };
        let state = {
            let _starting = lock(&STARTING);
            lock(&STARTED).push(dir.clone());
            cluster::up(&options)
        };
        spinner.finish_and_clear();
        self.clusters.push(dir);
        let state = state?;
        let nodes: Vec<String> = state.nodes.iter().map(|n| format!("{} on {}", n.name, n.addr)).collect();
        self.observed(&format!("up: {}", nodes.join(", ")));
        Ok(state)
    }

    /// `valthree cluster down` of the last cluster (another one follows).
    pub fn down(&mut self) -> Result<(), Failure> {
        let Some(dir) = self.clusters.pop() else { return Ok(()) };
        self.begin(&format!("valthree cluster down --purge --dir {}", dir.display()), "");
        cluster::down(&dir, true)?;
        lock(&STARTED).retain(|d| d != &dir);
        self.observed("down");
        Ok(())
    }

    fn spinner(&self, message: &str) -> ProgressBar {
        if !self.tty {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("    {spinner} {msg} {elapsed}").expect("template"));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.set_message(message.to_string());
        bar
    }

    /// `redis-cli -p PORT args...` against `node`: the reply, or the error a client would see.
    pub fn cli(
        &mut self,
        state: &ClusterState,
        node: &str,
        args: &[&str],
        notice: &str,
    ) -> Result<BytesFrame, Failure> {
        let node = state.node(node)?;
        let port = node.addr.rsplit(':').next().unwrap_or_default();
        let shown: Vec<String> = args.iter().map(|a| quoted(a)).collect();
        self.begin(&format!("redis-cli -p {port} {}", shown.join(" ")), notice);
        let reply = cluster::call(&node.addr, args)?;
        self.observed(&render(&reply));
        Ok(reply)
    }

    /// `valthree cluster kill|restart|pause|resume|partition|heal ...`.
    pub fn cluster(&mut self, state: &ClusterState, args: &[&str], notice: &str) -> Result<(), Failure> {
        let dir = state.dir.clone();
        let shown: Vec<String> = args.iter().map(|a| quoted(a)).collect();
        self.begin(&format!("valthree cluster {} --dir {}", shown.join(" "), dir.display()), notice);
        let fresh = ClusterState::require(&dir)?;
        match args {
            ["kill", node] => cluster::kill(&fresh, node)?,
            ["restart", node] => {
                let _starting = lock(&STARTING);
                cluster::restart(&dir, node)?
            }
            ["pause", node] => cluster::pause(&fresh, node)?,
            ["resume", node] => cluster::resume(&fresh, node)?,
            ["heal"] => cluster::heal(&dir)?,
            ["partition", spec] => {
                let groups = cluster::parse_groups(&fresh, &[spec.to_string()])?;
                cluster::partition(&dir, &groups)?
            }
            other => return Err(Failure::Error(format!("the demo asked for an unknown cluster command {other:?}"))),
        }
        self.observed("done");
        Ok(())
    }

    /// Waits (a spinner) until `probe` answers `Some`, up to `timeout`: how long it took and
    /// what it answered, or the last thing seen.
    pub fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<Option<T>, String>,
    ) -> Result<(Duration, Option<T>), Failure> {
        let spinner = self.spinner(&format!("waiting for {what}"));
        let started = Instant::now();
        let found = loop {
            match probe() {
                Ok(Some(t)) => break Some(t),
                Ok(None) | Err(_) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
                _ => break None,
            }
        };
        spinner.finish_and_clear();
        Ok((started.elapsed(), found))
    }

    /// The log, for --json.
    fn json(&self, name: &str, outcome: &Result<(), Failure>) -> Value {
        let failure = match outcome {
            Ok(()) => Value::Null,
            Err(Failure::Claim { claim, observed }) => json!({"claim": claim, "observed": observed}),
            Err(Failure::Error(e)) => json!({"error": e}),
        };
        json!({
            "demo": name,
            "passed": outcome.is_ok(),
            "failure": failure,
            "elapsed_s": self.started.elapsed().as_secs_f64(),
            "log": self.log,
            "kept": self.options.keep.then(|| self.clusters.last().cloned()).flatten(),
        })
    }

    /// Tears everything down, or with --keep says how to explore and remove what was kept.
    fn finish(&mut self) {
        if self.options.keep
            && let Some(dir) = self.clusters.last().cloned()
        {
            if let Ok(state) = ClusterState::require(&dir) {
                let port =
                    state.nodes.first().and_then(|n| n.addr.rsplit(':').next().map(str::to_owned)).unwrap_or_default();
                self.print(&format!(
                    "\nThe cluster is still running in {}:\n  valthree cluster status --dir {0}\n  redis-cli -p {port}\n  valthree cluster down --purge --dir {0}",
                    dir.display()
                ));
            }
            self.clusters.pop();
            lock(&STARTED).retain(|d| d != &dir);
            lock(&ROOTS).retain(|d| d != &self.root);
            self.temporary = false;
        }
        for dir in self.clusters.drain(..) {
            let _ = cluster::down(&dir, true);
            lock(&STARTED).retain(|d| d != &dir);
        }
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.root);
            lock(&ROOTS).retain(|d| d != &self.root);
            self.temporary = false;
        }
    }
}

impl Drop for Stage {
    /// A demo that panics still tears its clusters down.
    fn drop(&mut self) {
        self.finish();
    }
}

/// `arg` as a shell takes it: quoted when it holds a space or a character the shell reads.
fn quoted(arg: &str) -> String {
    if arg.is_empty() || arg.chars().any(|c| " |&;<>()$`\\\"'*?[]#~{}".contains(c)) {
        format!("'{}'", arg.replace('\'', "'\\''"))
    } else {
        arg.to_string()
    }
}

/// A command to `node` without a step of its own (what a probe does).
pub fn call(state: &ClusterState, node: &str, args: &[&str]) -> Result<BytesFrame, String> {
    cluster::call(&state.node(node)?.addr, args)
}

/// The demo named `name`.
pub fn find(name: &str) -> Option<&'static Demo> {
    DEMOS.iter().find(|d| d.name == name)
}

/// Runs one demo: its outcome and its JSON log.
pub fn run(demo: &Demo, options: &Options) -> (Result<(), Failure>, Value) {
    let mut stage = match Stage::new(options.clone()) {
        Ok(s) => s,
        Err(e) => {
            let log = json!({"demo": demo.name, "passed": false, "failure": {"error": e}});
            return (Err(Failure::Error(e)), log);
        }
    };
    stage.print(&format!(
        "{} — {} ({} mode)",
        stage.paint("1", &format!("demo {}", demo.name)),
        demo.about,
        demo.modes
    ));
    let outcome = (demo.run)(&mut stage);
    let log = stage.json(demo.name, &outcome);
    match &outcome {
        Ok(()) => stage.print(&format!("\n{} every claim held", stage.paint("32", "passed:"))),
        Err(Failure::Claim { claim, observed }) => stage.print(&format!(
            "\n{} the claim \"{claim}\" did not hold (observed: {observed})",
            stage.paint("31", "FAILED:")
        )),
        Err(Failure::Error(e)) => stage.print(&format!("\n{} {e}", stage.paint("31", "error:"))),
    }
    stage.finish();
    (outcome, log)
}

/// The text of a reply that should be a string.
pub fn text(frame: &BytesFrame) -> Option<String> {
    match frame {
        BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// The lines of an array reply of strings.
pub fn lines(frame: &BytesFrame) -> Vec<String> {
    match frame {
        BytesFrame::Array(items) => items.iter().filter_map(text).collect(),
        _ => Vec::new(),
    }
}

/// True for an error reply starting with `prefix`.
pub fn is_error(frame: &BytesFrame, prefix: &str) -> bool {
    matches!(frame, BytesFrame::Error(e) if e.starts_with(prefix))
}
