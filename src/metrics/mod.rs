//! What a node tells those who watch it: its counters, in one place that INFO and the
//! Prometheus `/metrics` endpoint both read, and the HTTP admin endpoint (`--metrics-addr`:
//! `/metrics`, `/livez`, `/readyz`).
//!
//! * [`Metrics`] — the node's counters: per command (calls, errors by kind, latency), bytes
//!   in and out, and per peer and RPC (calls, failures by [`CallError`](crate::peer::CallError)
//!   kind, latency). The RESP layer and the peer plane count into it; INFO's `stats`,
//!   `commandstats` and `errorstats` sections read it.
//! * [`mode`] — the mode's own counters and gauges (raft's term, paxos' rounds, dynamo's
//!   hints, s3's PUTs): the fields each mode reports to INFO (`Store::describe`), typed and
//!   named for Prometheus by one table, so INFO and `/metrics` cannot disagree.
//! * [`endpoint`] — the HTTP server (hyper): `/metrics` in Prometheus' text format
//!   (prometheus-client encodes it), `/livez` (the process serves) and `/readyz` (the node can
//!   answer a linearizable read now, else 503 and the reason).
//!
//! Names follow Prometheus' conventions: `valthree_` first, seconds and bytes as units,
//! `_total` on counters. Label values are bounded: command names come from the command table
//! (a request that names no known command counts as `unknown`), RPC names from the proto, error
//! kinds from [`Error::kind`](crate::error::Error::kind), peers are node names.

pub mod endpoint;
pub mod mode;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::node::{lock, read_lock, write_lock};

/// The upper bounds (seconds) of the latency histograms' buckets: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The command label of an error replied to a request that did not parse (an unknown
/// command, wrong arity, a syntax error).
pub const UNKNOWN_COMMAND: &str = "unknown";

/// One command's counters.
#[derive(Debug)]
pub struct CommandStats {
    calls: AtomicU64,
    usec: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    latency: Histogram,
}

/// One command's line of INFO `commandstats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub name: &'static str,
    pub calls: u64,
    pub usec: u64,
    /// Ran and failed.
    pub failed: u64,
    /// Refused before running (NOAUTH).
    pub rejected: u64,
}

impl CommandStats {
    fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            usec: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// How a peer call failed, as [`CallError`](crate::peer::CallError) says, plus the calls
/// abandoned by their caller's deadline (which may have run too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerFailure {
    /// Certainly not delivered.
    NotSent,
    /// The peer refused it before running anything.
    Refused,
    /// It may have run.
    MaybeSent,
    /// The caller stopped waiting (its deadline): it may have run.
    Abandoned,
}

impl PeerFailure {
    const ALL: [PeerFailure; 4] =
        [PeerFailure::NotSent, PeerFailure::Refused, PeerFailure::MaybeSent, PeerFailure::Abandoned];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            PeerFailure::NotSent => "not_sent",
            PeerFailure::Refused => "refused",
            PeerFailure::MaybeSent => "maybe_sent",
            PeerFailure::Abandoned => "abandoned",
        }
    }
}

/// One peer's counters for one RPC.
#[derive(Debug)]
pub struct PeerStats {
    calls: AtomicU64,
    failures: [AtomicU64; 4],
    latency: Histogram,
}

impl PeerStats {
    fn new() -> Self {
        Self { calls: AtomicU64::new(0), failures: Default::default(), latency: Histogram::new(LATENCY_BUCKETS) }
    }

    /// Counts a call that ended after `took`, failed as `failure` if it did.
    pub fn record(&self, took: Duration, failure: Option<PeerFailure>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took.as_secs_f64());
        if let Some(failure) = failure {
            self.failures[failure as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether a sample counts up or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One value read at scrape time from a [`Source`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The name, `valthree_` included and `_total` left out (the encoder adds it to counters).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    /// A sample with no labels.
    pub fn new(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Self {
        Self { name, help, kind, labels: Vec::new(), value }
    }

    /// With one more label.
    pub fn label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((key, value.into()));
        self
    }
}

/// Something read at each scrape (the server's gauges, the mode's fields).
pub type Source = Box<dyn Fn(&mut Vec<Sample>) + Send + Sync>;

/// The node's counters: one source for INFO and `/metrics`.
#[derive(Default)]
pub struct Metrics {
    commands: RwLock<BTreeMap<&'static str, Arc<CommandStats>>>,
    /// Errors replied, by command and kind.
    errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    peers: RwLock<BTreeMap<String, HashMap<String, Arc<PeerStats>>>>,
    sources: Mutex<Vec<Source>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A node's counters, all zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one run of `command` that took `took` and failed with an error of `kind` if it did.
    pub fn command_done(&self, command: &'static str, took: Duration, error: Option<&'static str>) {
        let stats = self.command(command);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.usec.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        stats.latency.observe(took.as_secs_f64());
        if let Some(kind) = error {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            *lock(&self.errors).entry((command, kind)).or_default() += 1;
        }
    }

    /// Counts an error replied to a request that did not run: under its command if it
    /// parsed (NOAUTH), or under [`UNKNOWN_COMMAND`] (unknown command, bad arity, syntax).
    pub fn command_error(&self, command: &'static str, kind: &'static str) {
        if command != UNKNOWN_COMMAND {
            self.command(command).rejected.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&self.errors).entry((command, kind)).or_default() += 1;
    }

    fn command(&self, name: &'static str) -> Arc<CommandStats> {
        if let Some(stats) = read_lock(&self.commands).get(name) {
            return stats.clone();
        }
        write_lock(&self.commands).entry(name).or_insert_with(|| Arc::new(CommandStats::new())).clone()
    }

    /// The counters of calls to `peer` (a node name) of `rpc` (the method's name).
    pub fn peer(&self, peer: &str, rpc: &str) -> Arc<PeerStats> {
        if let Some(stats) = read_lock(&self.peers).get(peer).and_then(|m| m.get(rpc)) {
            return stats.clone();
        }
        write_lock(&self.peers)
            .entry(peer.to_string())
            .or_default()
            .entry(rpc.to_string())
            .or_insert_with(|| Arc::new(PeerStats::new()))
            .clone()
    }

    /// Adds something read at each scrape.
    pub fn add_source(&self, source: Source) {
        lock(&self.sources).push(source);
    }

    /// Every command called so far: INFO's `commandstats`.
    pub fn command_stats(&self) -> Vec<CommandLine> {
        read_lock(&self.commands)
            .iter()
            .map(|(name, s)| CommandLine {
                name,
                calls: s.calls.load(Ordering::Relaxed),
                usec: s.usec.load(Ordering::Relaxed),
                failed: s.failed.load(Ordering::Relaxed),
                rejected: s.rejected.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Errors replied so far by kind (`ERR`, `TRYAGAIN`, ...): INFO's `errorstats`.
    pub fn error_stats(&self) -> BTreeMap<&'static str, u64> {
        let mut by_kind = BTreeMap::new();
        for ((_, kind), n) in lock(&self.errors).iter() {
            *by_kind.entry(*kind).or_default() += n;
        }
        by_kind
    }

    /// Every metric in Prometheus' text format (version 0.0.4).
    pub fn encode(self: &Arc<Self>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }

    fn encode_commands(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let commands = read_lock(&self.commands).clone();
        let mut calls = encoder.encode_descriptor(
            "valthree_commands",
            "Commands run, by command (as INFO commandstats' calls).",
            None,
            MetricType::Counter,
        )?;
        for (name, stats) in &commands {
            ConstCounter::new(stats.calls.load(Ordering::Relaxed))
                .encode(calls.encode_family(&[("command", *name)])?)?;
        }
        let mut latency = encoder.encode_descriptor(
            "valthree_command_duration_seconds",
            "How long commands took to run, by command.",
            None,
            MetricType::Histogram,
        )?;
        for (name, stats) in &commands {
            stats.latency.encode(latency.encode_family(&[("command", *name)])?)?;
        }
        let errors = lock(&self.errors).clone();
        let mut failed = encoder.encode_descriptor(
            "valthree_command_errors",
            "Error replies, by command and kind (ERR, TRYAGAIN, UNCERTAIN, CONFLICT, OOM, NOAUTH, ...).",
            None,
            MetricType::Counter,
        )?;
        for ((command, kind), n) in &errors {
            ConstCounter::new(*n).encode(failed.encode_family(&[("command", *command), ("kind", *kind)])?)?;
        }
        for (name, help, value) in [
            ("valthree_net_input_bytes", "Bytes read from clients.", &self.net_input_bytes),
            ("valthree_net_output_bytes", "Bytes written to clients.", &self.net_output_bytes),
        ] {
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }

    fn encode_peers(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let peers: Vec<(String, String, Arc<PeerStats>)> = read_lock(&self.peers)
            .iter()
            .flat_map(|(peer, rpcs)| {
                let mut rpcs: Vec<_> = rpcs.iter().collect();
                rpcs.sort_by(|a, b| a.0.cmp(b.0));
                rpcs.into_iter().map(|(rpc, s)| (peer.clone(), rpc.clone(), s.clone())).collect::<Vec<_>>()
            })
            .collect();
        let mut calls = encoder.encode_descriptor(
            "valthree_peer_calls",
            "Calls to peers (node-to-node gRPC), by peer and RPC.",
            None,
            MetricType::Counter,
        )?;
        for (peer, rpc, s) in &peers {
            let labels = [("peer", peer.as_str()), ("rpc", rpc.as_str())];
            ConstCounter::new(s.calls.load(Ordering::Relaxed)).encode(calls.encode_family(&labels)?)?;
        }
        let mut failures = encoder.encode_descriptor(
            "valthree_peer_call_failures",
            "Failed calls to peers, by peer, RPC and kind: not_sent (certainly not delivered), refused (by the \
             peer, before running), maybe_sent (may have run), abandoned (the caller's deadline passed).",
            None,
            MetricType::Counter,
        )?;
        for (peer, rpc, s) in &peers {
            for kind in PeerFailure::ALL {
                let n = s.failures[kind as usize].load(Ordering::Relaxed);
                let labels = [("peer", peer.as_str()), ("rpc", rpc.as_str()), ("kind", kind.name())];
                ConstCounter::new(n).encode(failures.encode_family(&labels)?)?;
            }
        }
        let mut latency = encoder.encode_descriptor(
            "valthree_peer_call_duration_seconds",
            "How long calls to peers took until their answer (or failure), by peer and RPC.",
            None,
            MetricType::Histogram,
        )?;
        for (peer, rpc, s) in &peers {
            s.latency.encode(latency.encode_family(&[("peer", peer.as_str()), ("rpc", rpc.as_str())])?)?;
        }
        Ok(())
    }

    fn encode_sources(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut samples = Vec::new();
        for source in lock(&self.sources).iter() {
            source(&mut samples);
        }
        // One descriptor per name, its samples together, in the order first seen.
        let mut order: Vec<&'static str> = Vec::new();
        let mut by_name: HashMap<&'static str, Vec<&Sample>> = HashMap::new();
        for sample in &samples {
            by_name
                .entry(sample.name)
                .or_insert_with(|| {
                    order.push(sample.name);
                    Vec::new()
                })
                .push(sample);
        }
        for name in order {
            let group = &by_name[name];
            let first = group[0];
            let kind = if first.kind == Kind::Counter { MetricType::Counter } else { MetricType::Gauge };
            let mut family = encoder.encode_descriptor(name, first.help, None, kind)?;
            for sample in group.iter().filter(|s| s.kind == first.kind) {
                let labels: Vec<(&str, &str)> = sample.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let metric = family.encode_family(&labels)?;
                match first.kind {
                    Kind::Counter => ConstCounter::new(sample.value).encode(metric)?,
                    Kind::Gauge => ConstGauge::new(sample.value).encode(metric)?,
                }
            }
        }
        Ok(())
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_commands(&mut encoder)?;
        self.encode_peers(&mut encoder)?;
        self.encode_sources(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_reach_the_text_format() {
        let metrics = Metrics::new();
        metrics.command_done("get", Duration::from_micros(150), None);
        metrics.command_done("set", Duration::from_millis(3), Some("TRYAGAIN"));
        metrics.command_error(UNKNOWN_COMMAND, "ERR");
        metrics.peer("n2", "Prepare").record(Duration::from_millis(1), Some(PeerFailure::NotSent));
        metrics.add_source(Box::new(|out| {
            out.push(Sample::new("valthree_raft_term", "The term.", Kind::Gauge, 7.0));
            out.push(Sample::new("valthree_raft_role", "Role.", Kind::Gauge, 1.0).label("role", "leader"));
            out.push(Sample::new("valthree_raft_role", "Role.", Kind::Gauge, 0.0).label("role", "follower"));
        }));
        let text = metrics.encode();
        for line in [
            "valthree_commands_total{command=\"get\"} 1",
            "valthree_command_errors_total{command=\"set\",kind=\"TRYAGAIN\"} 1",
            "valthree_command_errors_total{command=\"unknown\",kind=\"ERR\"} 1",
            "valthree_command_duration_seconds_bucket{command=\"get\",le=\"0.00025\"} 1",
            "valthree_peer_call_failures_total{peer=\"n2\",rpc=\"Prepare\",kind=\"not_sent\"} 1",
            "valthree_raft_term 7.0",
            "valthree_raft_role{role=\"follower\"} 0.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
        assert_eq!(text.matches("# TYPE valthree_raft_role gauge").count(), 1, "{text}");
        assert_eq!(metrics.error_stats().get("ERR"), Some(&1));
        let set = metrics.command_stats().into_iter().find(|c| c.name == "set").unwrap();
        assert_eq!((set.calls, set.failed, set.rejected), (1, 1, 0));
    }
}
