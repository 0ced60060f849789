//! `valthree cluster up|status|kill|pause|resume|restart|rolling-restart|partition|packet|heal|clock|down`: a local
//! cluster in one command, and the faults to test it with.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cluster::{self, ClusterState, Liveness, UpOptions, process};
use crate::mode::ModeName;
use crate::node::FaultFs;

/// Arguments of `valthree cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The cluster's directory (state file, node data, logs).
    #[arg(long, global = true, default_value = ".valthree")]
    pub dir: PathBuf,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The cluster subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start N nodes in the background and wait until each answers PING.
    Up {
        #[arg(long, value_enum, default_value = "s3")]
        mode: ModeName,
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Node i serves clients on base+i and peers on base+1000+i (metrics on base+2000+i).
        #[arg(long, default_value_t = 6379)]
        base_port: u16,
        /// Peer ports are client ports plus this, metrics ports plus twice this (at least --nodes).
        #[arg(long, default_value_t = crate::cluster::PEER_PORT_OFFSET)]
        port_offset: u16,
        /// Testing: `lazy` starts every node with a file layer that keeps each write not yet
        /// fsync'd inside the process, so that `power-loss` (a SIGKILL) loses what a power cut would.
        #[arg(long, value_enum, default_value = "off")]
        fault_fs: FaultFs,
        /// Extra `valthree serve` flags for every node (after `--`), e.g. `-- --s3-batch off`.
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// Show each node: up, paused or down, and what it reports of itself.
    Status,
    /// SIGKILL a node.
    Kill {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
    },
    /// Cut a node's power: SIGKILL of a node started with `--fault-fs lazy`, losing every
    /// write it had not fsync'd (`restart` brings it back).
    PowerLoss {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
    },
    /// SIGSTOP a node.
    Pause {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
    },
    /// SIGCONT a paused node.
    Resume {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
    },
    /// Restart a node with the same flags and data.
    Restart {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
    },
    /// Restart every node in turn without downtime: SIGTERM (a raft leader hands its
    /// leadership over first; raft followers go first, the leader last), wait for it to end,
    /// start it with the same flags and data, and go on once it answers VALTHREE.HEALTH
    /// (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s.
    RollingRestart,
    /// Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic
    /// only). Cut links drop calls, as a real network does: a caller waits for its deadline
    /// or its connection's keepalive (1 s). In s3 mode the nodes outside the largest group
    /// lose the object store (on a tie, the last group keeps it).
    Partition {
        /// The groups, e.g. `n1 | n2,n3` (or, with `--shape`, nothing).
        #[arg(required_unless_present = "shape", conflicts_with = "shape", num_args = 1..)]
        groups: Vec<String>,
        /// A shape instead of groups, its members drawn from `--seed`: one (a node cut off),
        /// halves (a minority and a majority), ring (each node sees a different majority),
        /// bridge (two halves joined through one node), one-way (a node that cannot reach
        /// the others but they reach it, or the reverse). s3 mode: one and halves.
        #[arg(long, value_enum)]
        shape: Option<cluster::Shape>,
        /// The seed that picks a shape's members.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Refuse calls at once on both sides instead of dropping them (fail-fast, for tests;
        /// not with one-way cuts).
        #[arg(long)]
        refuse: bool,
    },
    /// Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and
    /// reply delayed, lost, a request duplicated or overtaken by the next; on every link, or
    /// on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them.
    Packet {
        /// The nodes whose links suffer (default: every link).
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        nodes: Vec<String>,
        /// Added to each request and reply, in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay: u64,
        /// Up to this many more milliseconds, drawn for each message.
        #[arg(long, default_value_t = 0)]
        jitter: u64,
        /// The chance (0 to 1) that a request, or its reply, is lost.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// The chance (0 to 1) that a request is delivered twice.
        #[arg(long, default_value_t = 0.0)]
        duplicate: f64,
        /// The chance (0 to 1) that a request is held back until the next one on its link has left.
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        /// Seeds the draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Restore all node-to-node traffic: end the partition and the packet faults.
    Heal,
    /// Skew a node's wall clock (testing): its timestamps, tombstone ages and hint windows
    /// read the skewed clock; timeouts and timers run on the monotonic clock and are not
    /// moved. A restart resets it.
    Clock {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
        #[command(subcommand)]
        action: ClockAction,
    },
    /// paxos, raft and dynamo modes: start one more node (empty) and add it to the membership
    /// while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a
    /// learner that catches up, then a voter; dynamo: it claims an even share of partitions,
    /// filled as a pending replica before the ring changes).
    AddNode,
    /// paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its
    /// partitions have moved to the others), then stop it and delete its data.
    RemoveNode {
        #[arg(value_parser = NodeName, hide_possible_values = true)]
        node: String,
    },
    /// Stop every node (SIGTERM, then SIGKILL after a grace period).
    Down {
        /// Also delete the cluster's directory.
        #[arg(long)]
        purge: bool,
    },
}

/// What `cluster clock NODE` does to the node's wall clock.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ClockAction {
    /// Move it by MS milliseconds (negative: back), on top of any earlier bump.
    Bump {
        #[arg(allow_negative_numbers = true)]
        ms: i64,
    },
    /// Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS.
    Strobe {
        #[arg(allow_negative_numbers = true)]
        a_ms: i64,
        #[arg(allow_negative_numbers = true)]
        b_ms: i64,
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        period_ms: u64,
    },
    /// Back to the host's clock.
    Reset,
}

/// A node name, `n1`, `n2`, ... (or just its number): shells complete the first few names,
/// any number is accepted.
#[derive(Debug, Clone, Copy)]
struct NodeName;

/// The names offered for completion.
const COMPLETED_NODES: [&str; 9] = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"];

impl clap::builder::TypedValueParser for NodeName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let text = value.to_string_lossy();
        let digits = text.strip_prefix('n').unwrap_or(&text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            let message = format!("{text:?} is not a node name (n1, n2, ...: see `valthree cluster status`)");
            return Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd));
        }
        Ok(text.into_owned())
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(COMPLETED_NODES.into_iter().map(clap::builder::PossibleValue::new)))
    }
}

fn node_json(state: &ClusterState, node: &cluster::NodeState) -> Value {
    let liveness = process::liveness(node);
    let mut v = json!({
        "node": node.name, "pid": node.pid, "state": liveness.as_str(),
        "addr": node.addr, "peer_addr": node.peer_addr, "metrics_addr": node.metrics_addr,
        "data_dir": node.data_dir, "log": node.log,
    });
    if liveness == Liveness::Up {
        let info: serde_json::Map<String, Value> =
            cluster::info(node).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        v["info"] = Value::Object(info);
        v["isolated_from"] = json!(cluster::isolated_peers(state, node).unwrap_or_default());
        v["links"] = json!(cluster::links(state, node).unwrap_or_default());
    }
    v
}

fn print_table(state: &ClusterState, with_info: bool) {
    let columns = mode_columns(&state.mode);
    let mut header = format!("{:<5} {:>8}  {:<7}", "node", "pid", "state");
    for (name, width) in columns {
        header.push_str(&format!(" {name:<width$}"));
    }
    println!("{header} {:<16} {:<16} {:<16} log", "client", "peer", "metrics");
    for node in &state.nodes {
        let liveness = process::liveness(node);
        let info = if with_info && liveness == Liveness::Up { cluster::info(node) } else { Vec::new() };
        let mut row = format!("{:<5} {:>8}  {:<7}", node.name, node.pid, liveness.as_str());
        let values = if info.is_empty() { Vec::new() } else { mode_values(&state.mode, &info) };
        for (i, (_, width)) in columns.iter().enumerate() {
            row.push_str(&format!(" {:<width$}", values.get(i).map_or("-", String::as_str)));
        }
        let metrics = if node.metrics_addr.is_empty() { "-" } else { node.metrics_addr.as_str() };
        println!("{row} {:<16} {:<16} {metrics:<16} {}", node.addr, node.peer_addr, node.log.display());
        if !info.is_empty() {
            let isolated = cluster::isolated_peers(state, node).unwrap_or_default();
            let cut =
                if isolated.is_empty() { String::new() } else { format!(", partitioned from {}", isolated.join(",")) };
            println!("        {}{cut}", details(&info));
        }
    }
}

/// The columns of the status table that are a mode's own: their names and widths.
fn mode_columns(mode: &str) -> &'static [(&'static str, usize)] {
    match mode {
        "raft" => &[("role", 9), ("term", 5), ("leader", 7)],
        "paxos" => &[("role", 7), ("config", 7)],
        // What the node's failure detector (SWIM) sees of the members, and its ring's version.
        "dynamo" => &[("swim", 24), ("ring", 11)],
        _ => &[],
    }
}

/// One node's values for [`mode_columns`], from its INFO.
fn mode_values(mode: &str, info: &[(String, String)]) -> Vec<String> {
    let get = |k: &str| info.iter().find(|(n, _)| n == k).map_or("-", |(_, v)| v.as_str()).to_string();
    match mode {
        "raft" => {
            let leader = get("raft_leader");
            let leader = if leader == "none" || leader == "-" { leader } else { format!("n{leader}") };
            vec![get("raft_role"), get("raft_term"), leader]
        }
        "paxos" => vec!["member".into(), format!("v{}", get("paxos_config_version"))],
        "dynamo" => {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for (_, health) in dynamo_members(&get("dynamo_members")) {
                let health = health.to_ascii_lowercase();
                match counts.iter_mut().find(|(h, _)| *h == health) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((health, 1)),
                }
            }
            counts.sort_by_key(|(h, _)| ["alive", "suspect", "dead"].iter().position(|k| k == h).unwrap_or(3));
            let swim = counts.iter().map(|(h, n)| format!("{n} {h}")).collect::<Vec<_>>().join(", ");
            let changing = if get("dynamo_ring_changing") == "1" { " changing" } else { "" };
            vec![swim, format!("v{}{changing}", get("dynamo_ring_version"))]
        }
        _ => Vec::new(),
    }
}

/// INFO's `dynamo_members` (`1=ADDR:ALIVE,2=ADDR:DEAD`) as (node name, health) pairs.
fn dynamo_members(members: &str) -> Vec<(String, &str)> {
    members
        .split(',')
        .filter_map(|m| {
            let (id, rest) = m.split_once('=')?;
            let (_, health) = rest.rsplit_once(':')?;
            Some((format!("n{id}"), health))
        })
        .collect()
}

/// The facts a node reports of itself that matter at a glance, per mode.
fn details(info: &[(String, String)]) -> String {
    let get = |k: &str| info.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("?");
    match get("mode") {
        "raft" => format!(
            "raft: members {}, commit index {}, applied {}",
            get("raft_members"),
            get("raft_commit_index"),
            get("raft_last_applied")
        ),
        "paxos" => format!(
            "paxos: configuration v{}, members {}, slots {}",
            get("paxos_config_version"),
            get("paxos_members"),
            get("paxos_slots")
        ),
        "s3" => format!("s3: object store {}, key {}", get("s3_object_store"), get("s3_object_key")),
        "dynamo" => {
            let members = dynamo_members(get("dynamo_members"))
                .into_iter()
                .map(|(name, health)| format!("{name} {health}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "dynamo: members {members}; N={} R={} W={}; {} objects, {} hints pending",
                get("dynamo_replicas"),
                get("dynamo_r"),
                get("dynamo_w"),
                get("dynamo_objects"),
                get("dynamo_hints_pending")
            )
        }
        other => format!("mode {other}"),
    }
}

fn run_command(args: &ClusterArgs) -> Result<Value, String> {
    let dir = &args.dir;
    let done = |what: String| -> Result<Value, String> {
        if !args.json {
            println!("{what}");
        }
        Ok(json!({"ok": true, "message": what}))
    };
    match &args.command {
        ClusterCommand::Up { mode, nodes, base_port, port_offset, fault_fs, extra } => {
            let spinner = if args.json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
            spinner.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner.set_message(format!("starting {nodes} {} nodes in {}", mode.as_str(), dir.display()));
            let options = UpOptions {
                mode: *mode,
                nodes: *nodes,
                dir: dir.clone(),
                base_port: *base_port,
                port_offset: *port_offset,
                extra: extra.clone(),
                fault_fs: *fault_fs,
            };
            let state = cluster::up(&options);
            spinner.finish_and_clear();
            let state = state?;
            if !args.json {
                println!("{} cluster of {} nodes is up in {}", state.mode, state.nodes.len(), state.dir.display());
                print_table(&state, false);
            }
            Ok(
                json!({"mode": state.mode, "dir": state.dir, "nodes": state.nodes.iter().map(|n| node_json(&state, n)).collect::<Vec<_>>()}),
            )
        }
        ClusterCommand::Status => {
            let state = ClusterState::require(dir)?;
            let all_down = state.nodes.iter().all(|n| process::liveness(n) == Liveness::Down);
            if !args.json {
                println!("{} cluster in {}", state.mode, state.dir.display());
                print_table(&state, true);
                if all_down {
                    println!("no node process is alive: this cluster.json is stale (`cluster down` cleans it up)");
                }
            }
            Ok(json!({"mode": state.mode, "dir": state.dir, "stale": all_down,
                      "nodes": state.nodes.iter().map(|n| node_json(&state, n)).collect::<Vec<_>>()}))
        }
        ClusterCommand::Kill { node } => {
            cluster::kill(&ClusterState::require(dir)?, node)?;
            done(format!("{node} killed"))
        }
        ClusterCommand::PowerLoss { node } => {
            cluster::power_loss(&ClusterState::require(dir)?, node)?;
            done(format!("{node} lost power (its writes not yet fsync'd are gone; `restart {node}` brings it back)"))
        }
        ClusterCommand::Pause { node } => {
            cluster::pause(&ClusterState::require(dir)?, node)?;
            done(format!("{node} paused"))
        }
        ClusterCommand::Resume { node } => {
            cluster::resume(&ClusterState::require(dir)?, node)?;
            done(format!("{node} resumed"))
        }
        ClusterCommand::Restart { node } => {
            cluster::restart(dir, node)?;
            done(format!("{node} restarted (pid {})", ClusterState::require(dir)?.node(node)?.pid))
        }
        ClusterCommand::RollingRestart => {
            let started = std::time::Instant::now();
            let json = args.json;
            let lines = cluster::rolling_restart(dir, |line| {
                let line = format!("{:>6.1}s  {line}", started.elapsed().as_secs_f64());
                // Progress goes where it does not spoil the JSON answer.
                if json { eprintln!("{line}") } else { println!("{line}") }
            })?;
            // The summary is the last progress line, printed already.
            let last = lines.last().cloned().unwrap_or_default();
            Ok(json!({"ok": true, "message": last, "steps": lines}))
        }
        ClusterCommand::Partition { groups, shape, seed, refuse } => {
            let how = if *refuse { " (refusing)" } else { "" };
            let partition = match shape {
                Some(shape) => cluster::partition_shape(dir, *shape, *seed, *refuse)?,
                None => {
                    let state = ClusterState::require(dir)?;
                    let partition = cluster::Partition::of_groups(cluster::parse_groups(&state, groups)?);
                    cluster::partition_with(dir, &partition, *refuse)?;
                    partition
                }
            };
            done(format!("partitioned{how}: {}", partition.describe()))
        }
        ClusterCommand::Packet { nodes, delay, jitter, loss, duplicate, reorder, seed } => {
            for (name, p) in [("--loss", loss), ("--duplicate", duplicate), ("--reorder", reorder)] {
                if !(0.0..=1.0).contains(p) {
                    return Err(format!("{name} is a chance from 0 to 1"));
                }
            }
            let packets = crate::node::Packets {
                delay: Duration::from_millis(*delay),
                jitter: Duration::from_millis(*jitter),
                loss: *loss,
                duplicate: *duplicate,
                reorder: *reorder,
            };
            cluster::packet(dir, nodes, &packets, *seed)?;
            let on =
                if nodes.is_empty() { "every link".to_string() } else { format!("the links of {}", nodes.join(",")) };
            done(format!("packet faults on {on}: {}", packets.describe()))
        }
        ClusterCommand::Heal => {
            cluster::heal(dir)?;
            done("healed: all peer traffic restored".into())
        }
        ClusterCommand::Clock { node, action } => {
            let words = match *action {
                ClockAction::Bump { ms } => vec!["BUMP".to_string(), ms.to_string()],
                ClockAction::Strobe { a_ms, b_ms, period_ms } => {
                    vec!["STROBE".into(), a_ms.to_string(), b_ms.to_string(), period_ms.to_string()]
                }
                ClockAction::Reset => vec!["RESET".into()],
            };
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let skew = cluster::clock_fault(&ClusterState::require(dir)?, node, &words)?;
            done(format!("{node}'s clock: {skew}"))
        }
        ClusterCommand::AddNode => {
            let (node, lines) = cluster::add_node(dir)?;
            if !args.json {
                println!("{} added ({}, peer {})", node.name, node.addr, node.peer_addr);
                for line in &lines {
                    println!("  {line}");
                }
            }
            Ok(json!({"ok": true, "node": node.name, "addr": node.addr, "configuration": lines}))
        }
        ClusterCommand::RemoveNode { node } => {
            let lines = cluster::remove_node(dir, node)?;
            if !args.json {
                println!("{node} removed and stopped");
                for line in &lines {
                    println!("  {line}");
                }
            }
            Ok(json!({"ok": true, "node": node, "configuration": lines}))
        }
        ClusterCommand::Down { purge } => {
            let report = cluster::down(dir, *purge)?;
            if !args.json {
                for line in &report {
                    println!("{line}");
                }
            }
            Ok(json!({"ok": true, "nodes": report, "purged": purge}))
        }
    }
}

/// Runs the command.
pub fn run(args: ClusterArgs) -> ExitCode {
    match run_command(&args) {
        Ok(v) => {
            if args.json {
                println!("{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if args.json {
                println!("{}", json!({"ok": false, "error": e}));
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}
