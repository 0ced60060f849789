//! `valthree workload`: drive many clients against any Redis-protocol endpoint, record the
//! history, and optionally check it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use antithesis_sdk::assert_always;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::check::{Checked, check_any};
use crate::check::Verdict;
use crate::cluster::{ClusterState, Docker, Nemesis, NemesisChoice, Target};
use crate::history::{HistoryWriter, Op};
use crate::workload::{self, Action, Limit, Mix, Options, Progress};
use tokio::sync::watch;

/// What the exit status says, for `--help`.
const EXIT_STATUS: &str = "Exit status: 0 the run went as planned (and with --check, the history passed); \
1 the server answered some operation with a reply its command never gives (e.g. SET answered nil: \
the run FAILED whatever the history shows), or with --check a violation; 2 the run could not be \
made, or with --check unknown (the time limit ran out); 3 with --check against dynamo mode, not \
checked (no violation found, but some key's settled replicas could not all be read).";

/// The default mix against dynamo mode.
const DYNAMO_MIX: &str = "vget=3,vset=2,vdel=1";

/// The default mix against valthree's linearizable modes (s3, paxos, raft): the plain one
/// plus `cas`, SET IFEQ, which other servers may not have (redis-server before 8.4).
const LINEARIZABLE_MIX: &str = "get=3,set=2,del=1,incr=1,append=1,cas=2,getdel=1,getset=1";

/// Arguments of `valthree workload`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS)]
pub struct WorkloadArgs {
    /// Comma-separated addresses; client i talks to addrs[i % n] (default: the nodes of
    /// --cluster, or 127.0.0.1:6379).
    #[arg(long, value_delimiter = ',')]
    pub addrs: Vec<String>,
    /// A local cluster's directory (from `valthree cluster up`): its nodes are the addresses,
    /// and the nemesis acts on it.
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// Containers on a Docker network that are the nodes (comma-separated names): the
    /// nemesis acts on them with `docker kill/start`, `pause/unpause` and `network
    /// disconnect/connect` (give the addresses with --addrs).
    #[arg(long, value_delimiter = ',', conflicts_with = "cluster", requires = "docker_network")]
    pub docker: Vec<String>,
    /// With --docker: the network a partition disconnects a container from.
    #[arg(long)]
    pub docker_network: Option<String>,
    /// Faults to inject while the workload runs (comma-separated; needs --cluster or
    /// --docker): kill, pause, power-loss (each on one node, a minority, a majority, all, or
    /// the primary, drawn from the seed; power-loss needs a local cluster up with --fault-fs
    /// lazy), partition (a shape drawn from the seed: one, halves, ring, bridge, one-way;
    /// dropping messages), packet (call-level delay, loss, duplication, reordering on the
    /// peer plane; local clusters), membership (a node joins, then leaves; local clusters),
    /// disk (EIO or ENOSPC on one node's writes or fsyncs; local clusters), clock (one node's
    /// wall clock bumped or strobed, then reset; local clusters), or all (every kind the
    /// cluster supports: power-loss only when it is up with --fault-fs lazy, membership not
    /// in s3 mode).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub nemesis: Vec<NemesisChoice>,
    /// Time between two faults; each lasts half of it.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub nemesis_interval: Duration,
    /// Concurrent clients, each with one operation outstanding at a time.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Size of the key set (small means contention, which is the point).
    #[arg(long, default_value_t = 4)]
    pub keys: u64,
    /// Run for this long (e.g. 30s); the default when --ops is not given is 10s.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "ops")]
    pub duration: Option<Duration>,
    /// Run this many operations in all.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Name keys `{PREFIX}k0`, `{PREFIX}k1`, ... and skip the opening FLUSHALL (keys no one
    /// used start absent): several workloads can then run against one cluster at once.
    #[arg(long, default_value = "")]
    pub key_prefix: String,
    /// Seed of the operation streams: the same seed gives the same invocations (a cas expects
    /// what its client read, which the run decides).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the JSONL history.
    #[arg(long, default_value = "history.jsonl")]
    pub history: PathBuf,
    /// Relative weights of the operations [default: against valthree's s3, paxos and raft
    /// modes get=3,set=2,del=1,incr=1,append=1,cas=2,getdel=1,getset=1 (cas: SET IFEQ with
    /// the value the client last read); against dynamo mode vget=3,vset=2,vdel=1 (VGET WITHDOTS, and VSET/VDEL under
    /// the context the client last saw); against other servers get=3,set=2,del=1,incr=1,append=1].
    #[arg(long)]
    pub mix: Option<Mix>,
    /// Per-operation client-side timeout; a timed-out operation is recorded as indeterminate.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Check the history at the end and exit as `check-history` does (below): for
    /// linearizability, or against dynamo mode, for what dynamo promises (`check-history
    /// --model dynamo`). (A run without
    /// --key-prefix starts with FLUSHALL, recorded in the history: point it at a test database;
    /// against dynamo mode a run without one uses fresh keys instead.)
    #[arg(long)]
    pub check: bool,
    /// With --check, also write the HTML timeline here.
    #[arg(long, requires = "check")]
    pub html: Option<PathBuf>,
    /// With --check, the checker's time limit.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub check_timeout: Duration,
    /// Against dynamo mode: how long, after the run, the owners of the keys get to agree
    /// before their replicas are recorded for the convergence check. Each owner's own replica
    /// is read, which repairs nothing: only anti-entropy and hinted handoff converge them, so
    /// give it more than the nodes' --aae-interval.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub settle_timeout: Duration,
    /// Print the summary (and verdict) as JSON; no progress bar.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for every address to answer PING before starting (0s: start at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,
}

fn progress_bar(args: &WorkloadArgs, limit: Limit, progress: Arc<Progress>) -> Option<tokio::task::JoinHandle<()>> {
    if args.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let (len, template) = match limit {
        Limit::Ops(n) => (n, "{spinner} {bar:30} {pos}/{len} ops {per_sec} {elapsed}"),
        Limit::Duration(d) => (d.as_secs().max(1), "{spinner} {bar:30} {elapsed}/{duration} {msg}"),
    };
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(template).expect("template"));
    let started = std::time::Instant::now();
    Some(tokio::spawn(async move {
        loop {
            let done = progress.completed.load(Ordering::Relaxed);
            match limit {
                Limit::Ops(_) => bar.set_position(done),
                Limit::Duration(_) => {
                    bar.set_position(started.elapsed().as_secs());
                    bar.set_message(format!("{done} ops"));
                }
            }
            if bar.position() >= len {
                bar.finish_and_clear();
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }))
}

/// The addresses to drive: --addrs, else the cluster's nodes, else the default port.
fn addresses(args: &WorkloadArgs) -> Result<Vec<String>, String> {
    if !args.addrs.is_empty() {
        return Ok(args.addrs.clone());
    }
    match &args.cluster {
        Some(dir) => Ok(ClusterState::require(dir)?.nodes.iter().map(|n| n.addr.clone()).collect()),
        None => Ok(vec!["127.0.0.1:6379".into()]),
    }
}

async fn drive(args: &WorkloadArgs) -> Result<(workload::Summary, Vec<String>), String> {
    if !args.nemesis.is_empty() && args.cluster.is_none() && args.docker.is_empty() {
        return Err("--nemesis needs a cluster to act on: --cluster DIR or --docker CONTAINERS".into());
    }
    let addrs = addresses(args)?;
    // The password: the cluster's (`cluster up -- --requirepass P`), or redis-cli's variable.
    match crate::cluster::password() {
        Some(password) => workload::client::set_password(password),
        None => workload::client::set_password(&std::env::var("REDISCLI_AUTH").unwrap_or_default()),
    }
    // 0s: start at once (a driver started while a node is down records its refusals).
    if !args.ready_timeout.is_zero() {
        let deadline = tokio::time::Instant::now() + args.ready_timeout;
        for addr in &addrs {
            workload::client::wait_until_ready(addr, deadline).await?;
        }
        antithesis_sdk::lifecycle::setup_complete(&json!({"addrs": addrs, "clients": args.clients}));
    }
    // dynamo mode promises no linearizability: its history is checked for what it promises.
    let mut mode = None;
    for addr in &addrs {
        mode = workload::client::server_mode(addr, args.timeout).await;
        if mode.is_some() {
            break;
        }
    }
    let dynamo = match mode.as_deref() == Some("dynamo") {
        true => Some(workload::dynamo::Config::read(&addrs, args.timeout).await?),
        false => None,
    };
    let mix = match (&args.mix, &dynamo) {
        (Some(mix), _) => mix.clone(),
        (None, Some(_)) => DYNAMO_MIX.parse().expect("the dynamo mix parses"),
        (None, None) if mode.is_some() => LINEARIZABLE_MIX.parse().expect("the linearizable mix parses"),
        (None, None) => Mix::default(),
    };
    if dynamo.is_some()
        && args.check
        && [Op::Set, Op::Del, Op::Incr, Op::Append, Op::Flushall].iter().any(|op| mix.has(*op))
    {
        return Err("against dynamo mode, --check needs a mix of vget, vset, vdel and get: a plain SET or DEL \
                    writes under a context the history cannot record"
            .into());
    }
    if dynamo.is_some() && mix.has(Action::Cas) {
        return Err("cas is SET IFEQ, which dynamo mode refuses (it has no atomic read-modify-write)".into());
    }
    if dynamo.is_some() && (mix.has(Action::Getdel) || mix.has(Action::Getset)) {
        return Err(
            "getdel and getset read and write in one step, which dynamo mode refuses (use VGET and VSET)".into()
        );
    }
    if dynamo.is_none() && [Op::Vget, Op::Vset, Op::Vdel, Op::Local].iter().any(|op| mix.has(*op)) {
        return Err("vget, vset and vdel are dynamo mode's commands; these servers do not run it".into());
    }
    // dynamo mode: fresh keys instead of the opening FLUSHALL (whose tombstones are writes
    // the history could not account for).
    let key_prefix = match (&dynamo, args.key_prefix.is_empty()) {
        (Some(_), true) => format!(
            "run{}-",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
        ),
        _ => args.key_prefix.clone(),
    };
    let file =
        std::fs::File::create(&args.history).map_err(|e| format!("cannot create {}: {e}", args.history.display()))?;
    let history = Arc::new(HistoryWriter::new(Box::new(file)));
    if let Some(config) = &dynamo {
        config.record(&history);
    }
    let limit = match (args.ops, args.duration) {
        (Some(n), _) => Limit::Ops(n),
        (None, d) => Limit::Duration(d.unwrap_or(Duration::from_secs(10))),
    };
    let options = Options {
        addrs,
        clients: args.clients.max(1),
        keys: args.keys,
        limit,
        seed: args.seed,
        mix,
        timeout: args.timeout,
        key_prefix: key_prefix.clone(),
    };
    let keys: Vec<String> = (0..args.keys.max(1)).map(|i| format!("{key_prefix}k{i}")).collect();
    if let Some(config) = &dynamo
        && args.check
        && !args.key_prefix.is_empty()
    {
        workload::dynamo::require_fresh(config, &keys, args.timeout).await?;
    }
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(args, limit, progress.clone());
    let (stop, stopped) = watch::channel(false);
    let target = match (&args.cluster, &args.docker_network) {
        (Some(dir), _) => Some(Target::Local(dir.clone())),
        (None, Some(network)) => Some(Target::Docker(Docker::new(args.docker.clone(), network.clone())?)),
        (None, None) => None,
    };
    let nemesis = match (target, args.nemesis.is_empty()) {
        (Some(target), false) => {
            let nemesis = Nemesis {
                faults: NemesisChoice::resolve(&args.nemesis, &target),
                target,
                interval: args.nemesis_interval,
                seed: args.seed,
                history: history.clone(),
                primary_key: format!("{key_prefix}k0"),
            };
            Some(tokio::spawn(nemesis.run(stopped)))
        }
        _ => None,
    };
    let interrupt = progress.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the operations in flight, healing the cluster");
            interrupt.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let summary = workload::run(options, history.clone(), progress).await;
    ctrl_c.abort();
    if let Some(bar) = bar {
        bar.abort();
    }
    let _ = stop.send(true);
    let mut faults = Vec::new();
    if let Some(nemesis) = nemesis {
        // Every fault is healed and every node back before the history is checked.
        faults = nemesis.await.map_err(|e| format!("nemesis: {e}"))?.map_err(|e| format!("nemesis: {e}"))?;
    }
    let summary = summary?;
    if dynamo.is_some() {
        // The settled state: every owner's replica of every key, once they agree.
        let now = addresses(args)?;
        let unsettled = workload::dynamo::settle(&now, &keys, &history, args.timeout, args.settle_timeout).await?;
        if !unsettled.is_empty() {
            eprintln!(
                "warning: not every owner's replica could be compared after the run (--settle-timeout {:?}): {}",
                args.settle_timeout,
                unsettled.join("; ")
            );
        }
    }
    if let Some(e) = history.error() {
        return Err(format!("writing {} failed: {e}", args.history.display()));
    }
    Ok((summary, faults))
}

/// Runs the command.
pub fn run(args: WorkloadArgs) -> ExitCode {
    antithesis_sdk::antithesis_init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let (summary, faults) = match runtime.block_on(drive(&args)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = json!({"summary": summary.to_json(), "history": args.history, "faults": faults});
    if !args.json {
        print!("{}", summary.to_text());
        if !args.nemesis.is_empty() {
            println!("faults injected ({}), time since the start:", faults.len());
            for line in &faults {
                println!("  {line}");
            }
        }
        println!("history: {}", args.history.display());
    }
    // A reply the command never gives fails the run, whatever the history's check says.
    let run_failed = summary.failed();
    assert_always!(!run_failed, "workload: every reply is one its command can give", &json!({}));
    if !args.check {
        if args.json {
            println!("{out}");
        }
        return if run_failed { ExitCode::from(1) } else { ExitCode::SUCCESS };
    }
    let report = match check_any(&args.history, None, args.check_timeout, !args.json) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match &report {
        Checked::Register(r) => {
            assert_always!(r.verdict != Verdict::NotLinearizable, "workload: the history is linearizable", &json!({}))
        }
        Checked::Dynamo(r) => {
            assert_always!(r.ok(), "workload: the dynamo history keeps what dynamo promises", &json!({}))
        }
    }
    if let Some(html) = &args.html {
        match report.write_html(html, &args.history.display().to_string()) {
            Ok(()) if args.json => out["html"] = json!(html),
            Ok(()) => println!("report: {}", html.display()),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    if args.json {
        out["check"] = report.json();
        println!("{out}");
    } else {
        print!("{}", report.text());
    }
    if run_failed {
        if !args.json {
            println!("the run FAILED: {} replies the protocol does not allow (see above)", summary.unexpected);
        }
        return ExitCode::from(1);
    }
    report.exit_code()
}
