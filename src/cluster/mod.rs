//! A local cluster: N `valthree serve` processes on one machine, and the means to hurt it.
//!
//! Node i (from 1) serves clients on 127.0.0.1:(base+i) and peers on 127.0.0.1:(base+1000+i),
//! keeps its data in `D/n<i>/`, logs to `D/n<i>.log`, and `D/cluster.json` records pids,
//! ports and the exact command line of each node, so `restart` brings back the same node.
//! In s3 mode the nodes share one object store: the embedded directory `D/objects/`, or the
//! bucket given with `--s3-endpoint/--s3-bucket`.
//!
//! Maintenance: `rolling-restart` stops each node gracefully and starts it again, one at a
//! time, each once the one before is ready ([`rolling`]).
//!
//! Faults: `kill` (SIGKILL), `power-loss` (SIGKILL of a node started with `--fault-fs lazy`,
//! whose file layer keeps every write not yet fsync'd inside the process: the SIGKILL loses
//! what a power cut would), `pause`/`resume` (SIGSTOP/SIGCONT), `restart`, and
//! `partition`/`heal`, which cut node-to-node traffic inside every node's peer layer through
//! the authenticated `VALTHREE.FAULT` admin command — no root needed, but only peer traffic
//! is cut (clients still reach every node). In s3 mode the object store is the one peer:
//! it stays with the largest group, and every node outside that group is partitioned from it.
//! Real network partitions are what `docker/` is for.
//!
//! Nothing here trusts a pid blindly: a node counts as running only if its pid's command
//! line is that node's `valthree serve`, so a `cluster.json` left behind by a reboot is
//! recognised as stale instead of signalling some unrelated process.

mod aim;
mod client;
mod docker;
mod nemesis;
mod port;
pub mod process;
mod rolling;
mod shape;
mod state;

pub use client::{call, call_with_timeout, password, set_password};
pub use docker::Docker;
pub use nemesis::{Fault, Nemesis, NemesisChoice, Target};
pub use port::{PortUse, check_port, port_use};
pub use process::Liveness;
pub use rolling::rolling_restart;
pub use shape::{Partition, SHAPES, Shape};
pub use state::{ClusterState, NodeState, STATE_FILE};

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use redis_protocol::resp2::types::BytesFrame;

use crate::mode::ModeName;
use crate::node::{FaultFs, OBJECT_STORE};

/// How long `up` and `restart` wait for a node to answer PING.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` waits after SIGTERM before SIGKILL.
pub const DOWN_GRACE: Duration = Duration::from_secs(10);
/// Peer ports are client ports plus this, by default (`cluster up --port-offset`).
pub const PEER_PORT_OFFSET: u16 = 1000;
/// Metrics ports (`--metrics-addr`: /metrics, /livez, /readyz) are client ports plus twice
/// the peer ports' offset: plus this, by default.
pub const METRICS_PORT_OFFSET: u16 = 2 * PEER_PORT_OFFSET;

/// What `cluster up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub mode: ModeName,
    pub nodes: u32,
    pub dir: PathBuf,
    pub base_port: u16,
    /// Peer ports are client ports plus this, metrics ports plus twice this
    /// ([`PEER_PORT_OFFSET`] by default): a smaller one keeps a cluster in a narrow port range.
    pub port_offset: u16,
    /// Extra `valthree serve` flags for every node.
    pub extra: Vec<String>,
    /// The file layer of every node (`--fault-fs lazy`: a SIGKILL is a power cut).
    pub fault_fs: FaultFs,
}

/// Takes `--requirepass P` (or `--requirepass=P`) out of the flags for the nodes: the
/// password travels in their environment, where `ps` does not show it.
fn take_requirepass(extra: &[String]) -> (Vec<String>, String) {
    let mut flags = Vec::new();
    let mut password = String::new();
    let mut it = extra.iter();
    while let Some(flag) = it.next() {
        if flag == "--requirepass" {
            password = it.next().cloned().unwrap_or_default();
        } else if let Some(value) = flag.strip_prefix("--requirepass=") {
            password = value.to_string();
        } else {
            flags.push(flag.clone());
        }
    }
    (flags, password)
}

/// Starts a cluster; refuses when one already runs in `dir` or a port is taken.
pub fn up(options: &UpOptions) -> Result<ClusterState, String> {
    if options.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if u32::from(options.port_offset) < options.nodes {
        return Err(format!(
            "--port-offset {} is below --nodes {}: client, peer and metrics ports would overlap",
            options.port_offset, options.nodes
        ));
    }
    // Every check that can refuse runs before anything is created, so a refused `up`
    // leaves nothing behind.
    if options.dir.exists() {
        let dir = options.dir.canonicalize().map_err(|e| format!("{}: {e}", options.dir.display()))?;
        if let Some(old) = ClusterState::load(&dir)? {
            let running: Vec<_> =
                old.nodes.iter().filter(|n| process::liveness(n) != Liveness::Down).map(|n| n.name.clone()).collect();
            if !running.is_empty() {
                return Err(format!(
                    "a cluster already runs in {} (nodes {} are up): `valthree cluster down --dir {}` first",
                    dir.display(),
                    running.join(", "),
                    dir.display()
                ));
            }
        }
    }
    let mut ports = Vec::new();
    for id in 1..=options.nodes {
        let port = u16::try_from(id).ok().and_then(|i| options.base_port.checked_add(i)).ok_or("port out of range")?;
        let peer_port = port.checked_add(options.port_offset).ok_or("peer port out of range")?;
        let metrics_port = peer_port.checked_add(options.port_offset).ok_or("metrics port out of range")?;
        for p in [port, peer_port, metrics_port] {
            check_port(p)?;
        }
        ports.push((port, peer_port, metrics_port));
    }
    let created_dir = !options.dir.exists();
    std::fs::create_dir_all(&options.dir).map_err(|e| format!("{}: {e}", options.dir.display()))?;
    let dir = options.dir.canonicalize().map_err(|e| format!("{}: {e}", options.dir.display()))?;
    if ClusterState::load(&dir)?.is_some() {
        tracing::info!("replacing a stale {STATE_FILE} whose processes are gone");
        let _ = std::fs::remove_file(ClusterState::path(&dir));
    }
    let (extra, requirepass) = take_requirepass(&options.extra);
    set_password(&requirepass);
    let uses_bucket = extra.iter().any(|a| a == "--s3-bucket" || a.starts_with("--s3-bucket="));
    // The nodes' metrics endpoints, on loopback, unless the flags choose otherwise.
    let own_metrics = extra.iter().any(|a| a == "--metrics-addr" || a.starts_with("--metrics-addr="));
    let mut nodes = Vec::new();
    for (id, (port, peer_port, metrics_port)) in (1..=options.nodes).zip(ports) {
        let name = format!("n{id}");
        let (addr, peer_addr) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{peer_port}"));
        let metrics_addr = if own_metrics { String::new() } else { format!("127.0.0.1:{metrics_port}") };
        let data_dir = dir.join(&name);
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--mode".into(),
            options.mode.as_str().into(),
            "--addr".into(),
            addr.clone(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        if options.mode == ModeName::S3 && !uses_bucket {
            args.extend(["--s3-dir".into(), dir.join("objects").display().to_string()]);
        }
        if options.mode != ModeName::S3 {
            let peers: Vec<String> = (1..=options.nodes)
                .map(|i| format!("{i}=127.0.0.1:{}", u32::from(options.base_port) + i + u32::from(options.port_offset)))
                .collect();
            args.extend(["--node-id".into(), id.to_string(), "--peer-addr".into(), peer_addr.clone()]);
            args.extend(["--peers".into(), peers.join(",")]);
        }
        if !metrics_addr.is_empty() {
            args.extend(["--metrics-addr".into(), metrics_addr.clone()]);
        }
        if options.fault_fs != FaultFs::Off {
            args.extend(["--fault-fs".into(), options.fault_fs.name().into()]);
        }
        args.extend(extra.iter().cloned());
        let log = dir.join(format!("{name}.log"));
        nodes.push(NodeState { name, id, pid: 0, addr, peer_addr, metrics_addr, data_dir, log, args });
    }
    let mut state = ClusterState {
        mode: options.mode.as_str().into(),
        dir: dir.clone(),
        admin_token: crate::peer::generate_secret()?,
        cluster_secret: crate::peer::generate_secret()?,
        requirepass,
        nodes,
        partition: Vec::new(),
        cuts: Vec::new(),
        refuse: false,
        packets: Default::default(),
        next_id: options.nodes + 1,
    };
    // What this `up` creates, to take back if it fails (an older cluster's data stays).
    let mut created: Vec<PathBuf> = state.nodes.iter().flat_map(|n| [n.data_dir.clone(), n.log.clone()]).collect();
    created.push(dir.join("objects"));
    created.retain(|p| !p.exists());
    let started = (|| {
        for i in 0..state.nodes.len() {
            state.nodes[i].pid = process::spawn(&state.nodes[i], &state.secrets())?;
        }
        state.save()?;
        for node in &state.nodes {
            process::wait_ready(node, READY_TIMEOUT)?;
        }
        // Answering PING is not serving: a node's first quorum round waits for its peer
        // connections. Wait (bounded) until every node answers a read through its mode, so
        // the first command after `up` does not race the cluster's start; a cluster that
        // cannot (a configuration that needs more nodes) is still up, with a warning.
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        for node in &state.nodes {
            if let Err(e) = rolling::ready(node, deadline) {
                eprintln!("warning: {} answers PING but not yet VALTHREE.HEALTH: {e}", node.name);
                break;
            }
        }
        Ok(())
    })();
    if let Err(e) = started {
        undo_up(&state, created_dir, &created);
        return Err(e);
    }
    Ok(state)
}

/// Takes back a failed `up`: stops the nodes it started and removes what it created (the
/// whole directory when `up` made it; otherwise the state file and the `created` paths).
fn undo_up(state: &ClusterState, created_dir: bool, created: &[PathBuf]) {
    for node in state.nodes.iter().filter(|n| n.pid != 0) {
        let _ = process::signal(node, Signal::SIGKILL);
        process::wait_gone(node, Duration::from_secs(5));
    }
    if created_dir {
        let _ = std::fs::remove_dir_all(&state.dir);
        return;
    }
    let _ = std::fs::remove_file(ClusterState::path(&state.dir));
    for path in created {
        let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    }
}

/// SIGKILL.
pub fn kill(state: &ClusterState, name: &str) -> Result<(), String> {
    let node = state.node(name)?;
    process::signal(node, Signal::SIGKILL)?;
    process::wait_gone(node, Duration::from_secs(5));
    Ok(())
}

/// True when `node` runs with `--fault-fs lazy` (or `lazy-torn`).
pub fn is_lazy(node: &NodeState) -> bool {
    let lazy = |value: &str| <FaultFs as clap::ValueEnum>::from_str(value, false).is_ok_and(|f| f != FaultFs::Off);
    node.args.windows(2).any(|w| w[0] == "--fault-fs" && lazy(&w[1]))
        || node.args.iter().any(|a| a.strip_prefix("--fault-fs=").is_some_and(lazy))
}

/// Cuts a node's power: SIGKILL of a node whose file layer keeps its unsynced writes in the
/// process, so they die with it. Refused for a node without `--fault-fs lazy`, whose
/// unsynced writes the kernel would keep (that is `kill`).
pub fn power_loss(state: &ClusterState, name: &str) -> Result<(), String> {
    let node = state.node(name)?;
    if !is_lazy(node) {
        return Err(format!(
            "{name} does not run with --fault-fs lazy: a SIGKILL keeps its writes in the kernel's page cache, \
             which is no power cut (start the cluster with `valthree cluster up --fault-fs lazy`; `kill` is the \
             plain SIGKILL)"
        ));
    }
    kill(state, name)
}

/// SIGSTOP.
pub fn pause(state: &ClusterState, name: &str) -> Result<(), String> {
    process::signal(state.node(name)?, Signal::SIGSTOP)
}

/// SIGCONT.
pub fn resume(state: &ClusterState, name: &str) -> Result<(), String> {
    process::signal(state.node(name)?, Signal::SIGCONT)
}

/// Stops the node if it runs, starts it again with the same flags and data, waits for it,
/// and re-applies the partition in force, if any.
pub fn restart(dir: &Path, name: &str) -> Result<(), String> {
    ClusterState::update(dir, |state| {
        let node = state.node_mut(name)?;
        if process::liveness(node) != Liveness::Down {
            process::signal(node, Signal::SIGKILL)?;
            process::wait_gone(node, Duration::from_secs(5));
        }
        // The kernel may take a moment to release the old process's port.
        let port: u16 = node.addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while let Err(why) = check_port(port) {
            if std::time::Instant::now() >= deadline {
                return Err(format!("{}: {why}", node.name));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let secrets = state.secrets();
        let node = state.node_mut(name)?;
        node.pid = process::spawn(node, &secrets)?;
        let node = node.clone();
        process::wait_ready(&node, READY_TIMEOUT)?;
        for args in link_commands(state, &in_force(state), state.refuse, &node.name) {
            fault(state, &node, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        if let Some(args) = state.packets.get(&node.name) {
            fault(state, &node, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(())
    })
}

/// SIGTERM every node (SIGCONT too, so paused ones can act on it), SIGKILL stragglers after
/// the grace period, forget the cluster; `purge` also deletes its directory.
pub fn down(dir: &Path, purge: bool) -> Result<Vec<String>, String> {
    let state = ClusterState::require(dir)?;
    let mut report = Vec::new();
    for node in &state.nodes {
        if process::signal(node, Signal::SIGTERM).is_ok() {
            let _ = process::signal(node, Signal::SIGCONT);
        }
    }
    for node in &state.nodes {
        if process::wait_gone(node, DOWN_GRACE) {
            report.push(format!("{} stopped", node.name));
        } else {
            let _ = process::signal(node, Signal::SIGKILL);
            process::wait_gone(node, Duration::from_secs(5));
            report.push(format!("{} killed after {DOWN_GRACE:?}", node.name));
        }
    }
    if purge {
        std::fs::remove_dir_all(&state.dir).map_err(|e| format!("{}: {e}", state.dir.display()))?;
    } else {
        std::fs::remove_file(ClusterState::path(&state.dir)).map_err(|e| e.to_string())?;
    }
    Ok(report)
}

/// How long a membership change (with its rescan) may take.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(300);

/// Replaces the value of `--flag` in a serve argument list (or appends the pair).
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() => args[i + 1] = value.to_string(),
        _ => args.extend([flag.to_string(), value.to_string()]),
    }
}

/// Sends `VALTHREE.MEMBERS` to the first running node other than `skip`; returns its lines.
fn members_command(state: &ClusterState, skip: &str, args: &[&str]) -> Result<Vec<String>, String> {
    let via = state
        .nodes
        .iter()
        .find(|n| n.name != skip && process::liveness(n) == Liveness::Up)
        .ok_or("no other node is up to run the membership change")?;
    admin(state, via, "VALTHREE.MEMBERS", args, MEMBERSHIP_TIMEOUT)
}

/// Sends an authenticated admin command to `node`; its reply is an array of lines.
fn admin(
    state: &ClusterState,
    node: &NodeState,
    command: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut all = vec![command, state.admin_token.as_str()];
    all.extend_from_slice(args);
    match call_with_timeout(&node.addr, &all, timeout)? {
        BytesFrame::Array(items) => Ok(items
            .into_iter()
            .filter_map(|f| match f {
                BytesFrame::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                _ => None,
            })
            .collect()),
        BytesFrame::Error(e) => Err(format!("{}: {e}", node.name)),
        other => Err(format!("{}: unexpected reply {other:?}", node.name)),
    }
}

/// Starts a new node with an empty data directory and has the cluster add it (joint
/// consensus and rescan run inside the nodes). Every node must be up and no partition in force.
///
/// The new node is recorded (so `status` shows it and `restart` finds it) before the
/// membership change starts, and the cluster's lock is not held while the change runs: it may
/// take minutes, and `restart`, `heal` and the rest stay usable meanwhile.
pub fn add_node(dir: &Path) -> Result<(NodeState, Vec<String>), String> {
    let node = ClusterState::update(dir, |state| {
        if state.mode == ModeName::S3.as_str() {
            return Err("s3 mode has no membership: every node shares the object store".into());
        }
        if has_network_faults(state) {
            return Err("heal the partition first".into());
        }
        if let Some(n) = state.nodes.iter().find(|n| process::liveness(n) != Liveness::Up) {
            return Err(format!("{} is {}: every node must be up", n.name, process::liveness(n).as_str()));
        }
        let template = state.nodes.first().ok_or("the cluster has no node")?.clone();
        let id = state.next_id.max(state.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1);
        let base: u16 = template.addr.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or("bad address")?;
        let base = base - template.id as u16;
        // The offset the cluster was started with (`up --port-offset`), as its first node shows.
        let template_peer: u16 =
            template.peer_addr.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or("bad peer address")?;
        let offset = template_peer.checked_sub(base + template.id as u16).unwrap_or(PEER_PORT_OFFSET);
        let port = base.checked_add(id as u16).ok_or("port out of range")?;
        let peer_port = port.checked_add(offset).ok_or("peer port out of range")?;
        let metrics_port = peer_port.checked_add(offset).ok_or("metrics port out of range")?;
        let has_metrics = !template.metrics_addr.is_empty();
        for p in [port, peer_port].into_iter().chain(has_metrics.then_some(metrics_port)) {
            check_port(p)?;
        }
        let name = format!("n{id}");
        let (addr, peer_addr) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{peer_port}"));
        let data_dir = state.dir.join(&name);
        // A node joins with no data: an old acceptor state could hold values GC already removed.
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        }
        let mut args = template.args.clone();
        set_flag(&mut args, "--addr", &addr);
        set_flag(&mut args, "--data-dir", &data_dir.display().to_string());
        set_flag(&mut args, "--node-id", &id.to_string());
        set_flag(&mut args, "--peer-addr", &peer_addr);
        let metrics_addr = if has_metrics { format!("127.0.0.1:{metrics_port}") } else { String::new() };
        if has_metrics {
            set_flag(&mut args, "--metrics-addr", &metrics_addr);
        }
        if let Some(i) = args.iter().position(|a| a == "--peers") {
            args.drain(i..(i + 2).min(args.len()));
        }
        args.push("--join".into());
        let log = state.dir.join(format!("{name}.log"));
        let mut node = NodeState { name, id, pid: 0, addr, peer_addr, metrics_addr, data_dir, log, args };
        node.pid = process::spawn(&node, &state.secrets())?;
        state.next_id = id + 1; // even if it fails: the id may have reached some node's configuration
        if let Err(e) = process::wait_ready(&node, READY_TIMEOUT) {
            stop_and_delete(&node);
            return Err(format!("adding {}: {e}", node.name));
        }
        state.nodes.push(node.clone());
        Ok(node)
    })?;
    let state = ClusterState::require(dir)?;
    let dynamo = state.mode == ModeName::Dynamo.as_str();
    match members_command(&state, &node.name, &["ADD", &node.id.to_string(), &node.peer_addr]) {
        Ok(lines) => Ok((node, lines)),
        // dynamo: the change stays in force and goes on (a holder is down, or the data is
        // still moving); the node stays, and `remove-node` calls its join off.
        Err(e) if dynamo && e.contains("UNCERTAIN") && process::liveness(&node) == Liveness::Up => Err(format!(
            "{} is still joining: {e}\n(it stays in the cluster; `valthree cluster add-node` again does not wait \
             for it, `DYNAMO.RING` shows when the ring has changed, `valthree cluster remove-node {}` calls it off)",
            node.name, node.name
        )),
        Err(e) => {
            ClusterState::update(dir, |state| {
                if dynamo {
                    // The ring may be waiting for the new node's data: call the join off.
                    let _ = members_command(state, &node.name, &["REMOVE", &node.id.to_string()]);
                }
                stop_and_delete(&node);
                state.nodes.retain(|n| n.name != node.name);
                Ok(())
            })?;
            let called_off = if dynamo { "the join was called off, " } else { "" };
            Err(format!("adding {}: {called_off}the node stopped and its data deleted ({e})", node.name))
        }
    }
}

/// Stops a node for good and deletes its data.
fn stop_and_delete(node: &NodeState) {
    if process::signal(node, Signal::SIGTERM).is_ok() {
        let _ = process::signal(node, Signal::SIGCONT);
        if !process::wait_gone(node, DOWN_GRACE) {
            let _ = process::signal(node, Signal::SIGKILL);
            process::wait_gone(node, Duration::from_secs(5));
        }
    }
    let _ = std::fs::remove_dir_all(&node.data_dir);
}

/// Has the cluster remove a node, then stops it and deletes its data. The cluster's lock is
/// not held while the membership change runs.
pub fn remove_node(dir: &Path, name: &str) -> Result<Vec<String>, String> {
    let state = ClusterState::update(dir, |state| {
        if state.mode == ModeName::S3.as_str() {
            return Err("s3 mode has no membership: every node shares the object store".into());
        }
        if has_network_faults(state) {
            return Err("heal the partition first".into());
        }
        state.node(name)?;
        if state.nodes.len() <= 1 {
            return Err("cannot remove the last node".into());
        }
        Ok(state.clone())
    })?;
    let node = state.node(name)?.clone();
    let dynamo = state.mode == ModeName::Dynamo.as_str();
    let lines = match members_command(&state, name, &["REMOVE", &node.id.to_string()]) {
        Ok(lines) => lines,
        // A leave that went on in the background after an earlier answer has finished.
        Err(e) if dynamo && e.contains(&format!("n{} is not a member", node.id)) => {
            vec![format!("{name} is no longer a member")]
        }
        Err(e) if dynamo && e.contains("UNCERTAIN") => {
            return Err(format!(
                "{name} is still leaving: {e}\n(it keeps running until its data has moved; `valthree cluster \
                 remove-node {name}` again waits for it, then stops it)"
            ));
        }
        Err(e) => return Err(e),
    };
    if dynamo {
        handed_over(&node, name)?;
    }
    ClusterState::update(dir, |state| {
        stop_and_delete(&node);
        state.nodes.retain(|n| n.name != name);
        Ok(lines)
    })
}

/// Waits until a dynamo node that left the ring has handed over everything it held: its
/// copies (after its `--handoff-grace`, an exchange with each new owner) and the hints it
/// keeps for writes other owners missed. Deleting its data before that could leave a write
/// acknowledged through it on fewer than W owners.
fn handed_over(node: &NodeState, name: &str) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        if process::liveness(node) != Liveness::Up {
            return Err(format!(
                "{name} left the ring but is not running, so it cannot hand over what it holds: restart it \
                 (`valthree cluster restart {name}`), then `valthree cluster remove-node {name}` again"
            ));
        }
        let info = info(node);
        let field = |f: &str| info.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
        let (objects, hints) = (field("dynamo_objects"), field("dynamo_hints_pending"));
        if objects.as_deref() == Some("0") && hints.as_deref() == Some("0") {
            return Ok(());
        }
        if start.elapsed() > MEMBERSHIP_TIMEOUT {
            return Err(format!(
                "{name} left the ring but still holds {} objects and {} hints to hand over (it keeps running; \
                 `valthree cluster remove-node {name}` again waits for it, then stops it)",
                objects.unwrap_or_else(|| "?".into()),
                hints.unwrap_or_else(|| "?".into())
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn fault(state: &ClusterState, node: &NodeState, args: &[&str]) -> Result<Vec<String>, String> {
    admin(state, node, "VALTHREE.FAULT", args, Duration::from_secs(5))
}

/// Injects a disk fault into `name`'s file layer: `error` (`eio`, `enospc`, or `off` to
/// clear) on its `op` (`write` or `fsync`). A node whose write or fsync then fails exits.
pub fn disk_fault(state: &ClusterState, name: &str, op: &str, error: &str) -> Result<Vec<String>, String> {
    fault(state, state.node(name)?, &["DISK", op, error])
}

/// Skews `name`'s wall clock: `args` is what follows `VALTHREE.FAULT token CLOCK` (`BUMP
/// +60000`, `STROBE -5000 5000 100`, `RESET`). Returns the skew now in effect (`offset
/// +60000ms`). A restart resets it.
pub fn clock_fault(state: &ClusterState, name: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["CLOCK"];
    all.extend_from_slice(args);
    Ok(fault(state, state.node(name)?, &all)?.join(" "))
}

/// Clears the disk faults of `name` and brings it back if its storage failed (it exits, or
/// is about to): restarted from what is durable.
pub fn disk_heal(dir: &Path, name: &str) -> Result<(), String> {
    let state = ClusterState::require(dir)?;
    let node = state.node(name)?;
    if process::liveness(node) == Liveness::Up {
        for op in ["write", "fsync"] {
            // A node exiting meanwhile cannot answer; the restart below covers it.
            let _ = disk_fault(&state, name, op, "off");
        }
        let failed = info(node).iter().any(|(k, v)| k == "storage_failed" && v != "no");
        if !failed && process::liveness(node) == Liveness::Up {
            return Ok(());
        }
    }
    restart(dir, name)
}

/// The peers `node` is currently partitioned from.
pub fn isolated_peers(state: &ClusterState, node: &NodeState) -> Result<Vec<String>, String> {
    fault(state, node, &["STATUS"])
}

/// `node`'s faulty links, one line each (`n2 to:drop from:drop`, `n3 packets delay 20ms …`).
pub fn links(state: &ClusterState, node: &NodeState) -> Result<Vec<String>, String> {
    fault(state, node, &["LINKS"])
}

/// Parses `n1|n2,n3` (or the groups as separate arguments) into groups of node names.
pub fn parse_groups(state: &ClusterState, spec: &[String]) -> Result<Vec<Vec<String>>, String> {
    let joined = spec.join("|");
    let mut groups = Vec::new();
    for group in joined.split('|').map(str::trim).filter(|g| !g.is_empty()) {
        let names: Result<Vec<String>, String> =
            group.split(',').map(|n| state.node(n.trim()).map(|n| n.name.clone())).collect();
        groups.push(names?);
    }
    if groups.len() < 2 {
        return Err("a partition needs at least two groups, e.g. `n1 | n2,n3`".into());
    }
    let mut seen: Vec<&String> = groups.iter().flatten().collect();
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err("a node may be in only one group".into());
    }
    Ok(groups)
}

/// The peers `name` must be cut from under `groups`. In s3 mode the object store stays with
/// the largest group (on a tie, the last of them), and every node outside it loses it.
fn isolation_for(state: &ClusterState, groups: &[Vec<String>], name: &str) -> Vec<String> {
    let Some(mine) = groups.iter().position(|g| g.iter().any(|n| n == name)) else { return Vec::new() };
    if state.mode == ModeName::S3.as_str() {
        let keeper = groups.iter().enumerate().max_by_key(|(i, g)| (g.len(), *i)).map(|(i, _)| i);
        return if keeper == Some(mine) { Vec::new() } else { vec![OBJECT_STORE.to_string()] };
    }
    groups.iter().enumerate().filter(|(i, _)| *i != mine).flat_map(|(_, g)| g.iter().cloned()).collect()
}

/// True while a partition or a packet fault is in force.
fn has_network_faults(state: &ClusterState) -> bool {
    !state.partition.is_empty() || !state.cuts.is_empty() || !state.packets.is_empty()
}

/// The partition in force (from its groups alone in a file written before shapes).
fn in_force(state: &ClusterState) -> Partition {
    if state.cuts.is_empty() && !state.partition.is_empty() {
        return Partition::of_groups(state.partition.clone());
    }
    Partition { cuts: state.cuts.iter().cloned().collect(), groups: state.partition.clone() }
}

/// The `VALTHREE.FAULT` commands that give node `name` its side of `partition`: its links cut
/// both ways (`ISOLATE`, or `REFUSE` when `refuse`), and those cut one way (`DROP TO`/`DROP
/// FROM`). In s3 mode, the object store placed by the groups.
fn link_commands(state: &ClusterState, partition: &Partition, refuse: bool, name: &str) -> Vec<Vec<String>> {
    let command = |words: &[&str], peers: Vec<String>| -> Vec<Vec<String>> {
        if peers.is_empty() {
            return Vec::new();
        }
        vec![words.iter().map(|w| w.to_string()).chain(peers).collect()]
    };
    let both_ways = if refuse { "REFUSE" } else { "ISOLATE" };
    if state.mode == ModeName::S3.as_str() {
        return command(&[both_ways], isolation_for(state, &partition.groups, name));
    }
    let (to, from) = partition.links_of(name);
    let both: Vec<String> = to.iter().filter(|p| from.contains(p)).cloned().collect();
    let mut commands = command(&[both_ways], both.clone());
    commands.extend(command(&["DROP", "TO"], to.into_iter().filter(|p| !both.contains(p)).collect()));
    commands.extend(command(&["DROP", "FROM"], from.into_iter().filter(|p| !both.contains(p)).collect()));
    commands
}

/// Cuts peer traffic between the groups, dropping it; every node must be up. On any
/// failure the cut is undone, so a partition is never left half applied.
pub fn partition(dir: &Path, groups: &[Vec<String>]) -> Result<(), String> {
    partition_with(dir, &Partition::of_groups(groups.to_vec()), false)
}

/// A partition of `shape`, its members drawn from `seed`, applied as [`partition_with`] does.
pub fn partition_shape(dir: &Path, shape: Shape, seed: u64, refuse: bool) -> Result<Partition, String> {
    let state = ClusterState::require(dir)?;
    if state.mode == ModeName::S3.as_str() && !shape.is_groups() {
        return Err(format!(
            "s3 mode: a node is cut from the object store or not, so only the shapes of groups (one, halves) \
             apply, not {}",
            shape.name()
        ));
    }
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let partition = shape.partition(&nodes, &mut fastrand::Rng::with_seed(seed))?;
    partition_with(dir, &partition, refuse)?;
    Ok(partition)
}

/// Cuts the links of `partition` on every node, dropping their messages (or, with `refuse`,
/// refusing every call at once: only for a partition whose cuts all go both ways); every
/// node must be up. On any failure the cut is undone, so a partition is never left half
/// applied. The packet faults in force stay.
pub fn partition_with(dir: &Path, partition: &Partition, refuse: bool) -> Result<(), String> {
    if refuse && !partition.is_symmetric() {
        return Err("a refusing partition cuts both ways: this shape has one-way cuts".into());
    }
    ClusterState::update(dir, |state| {
        if let Some(node) = state.nodes.iter().find(|n| process::liveness(n) != Liveness::Up) {
            return Err(format!(
                "{} is {}: every node must be up to partition",
                node.name,
                process::liveness(node).as_str()
            ));
        }
        if state.mode == ModeName::S3.as_str() && partition.groups.is_empty() {
            return Err("s3 mode: a partition must be one of groups".into());
        }
        state.partition.clear();
        state.cuts.clear();
        heal_nodes(state)?;
        let apply = |state: &ClusterState| -> Result<(), String> {
            for node in &state.nodes {
                for args in link_commands(state, partition, refuse, &node.name) {
                    fault(state, node, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
                }
                if let Some(args) = state.packets.get(&node.name) {
                    fault(state, node, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
                }
            }
            Ok(())
        };
        if let Err(e) = apply(state) {
            let _ = heal_nodes(state);
            state.packets.clear();
            return Err(e);
        }
        state.partition = partition.groups.clone();
        state.cuts = partition.cuts.iter().cloned().collect();
        state.refuse = refuse;
        Ok(())
    })
}

/// Puts call-level packet faults on every link that touches one of `nodes` (all links when
/// empty), each node's draws seeded from `seed`: peer traffic only (paxos, raft and dynamo
/// modes). They stay until `heal`; a partition in force stays too.
pub fn packet(dir: &Path, nodes: &[String], packets: &crate::node::Packets, seed: u64) -> Result<(), String> {
    ClusterState::update(dir, |state| {
        if state.mode == ModeName::S3.as_str() {
            return Err("packet faults act on the peer plane: paxos, raft and dynamo modes".into());
        }
        let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
        for wanted in nodes {
            state.node(wanted)?;
        }
        let touched =
            |name: &str| nodes.is_empty() || nodes.iter().any(|n| state.node(n).is_ok_and(|n| n.name == name));
        let mut planned = std::collections::BTreeMap::new();
        for node in &state.nodes {
            let peers: Vec<String> = names
                .iter()
                .filter(|peer| **peer != node.name && (touched(&node.name) || touched(peer)))
                .cloned()
                .collect();
            if peers.is_empty() {
                continue;
            }
            let mut args: Vec<String> = vec!["PACKETS".into()];
            for (name, value) in [
                ("DELAY", packets.delay.as_millis().to_string()),
                ("JITTER", packets.jitter.as_millis().to_string()),
                ("LOSS", packets.loss.to_string()),
                ("DUPLICATE", packets.duplicate.to_string()),
                ("REORDER", packets.reorder.to_string()),
                ("SEED", (seed ^ u64::from(node.id).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_string()),
            ] {
                args.extend([name.to_string(), value]);
            }
            args.push("PEERS".into());
            args.extend(peers);
            planned.insert(node.name.clone(), args);
        }
        for node in &state.nodes {
            if let Some(args) = planned.get(&node.name)
                && let Err(e) = fault(state, node, &args.iter().map(String::as_str).collect::<Vec<_>>())
            {
                let _ = heal_nodes(state);
                state.partition.clear();
                state.cuts.clear();
                state.packets.clear();
                return Err(e);
            }
        }
        state.packets = planned;
        Ok(())
    })
}

/// Sends HEAL to every running node; a paused node cannot be healed and is reported.
fn heal_nodes(state: &ClusterState) -> Result<(), String> {
    let mut errors = Vec::new();
    for node in &state.nodes {
        match process::liveness(node) {
            Liveness::Up => {
                if let Err(e) = fault(state, node, &["HEAL"]) {
                    errors.push(e);
                }
            }
            Liveness::Paused => errors.push(format!("{} is paused: resume it, then heal again", node.name)),
            Liveness::Down => {} // it comes back healed unless a partition is re-applied
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// Restores all peer traffic: forgets the partition and the packet faults.
pub fn heal(dir: &Path) -> Result<(), String> {
    ClusterState::update(dir, |state| {
        state.partition.clear();
        state.cuts.clear();
        state.refuse = false;
        state.packets.clear();
        heal_nodes(state)
    })
}

/// INFO's `valthree` (and in dynamo mode `dynamo`) section of a node, as name/value pairs.
pub fn info(node: &NodeState) -> Vec<(String, String)> {
    match call(&node.addr, &["INFO", "valthree", "dynamo"]) {
        Ok(BytesFrame::BulkString(b)) => String::from_utf8_lossy(&b)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
        _ => Vec::new(),
    }
}
