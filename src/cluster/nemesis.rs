//! The nemesis: while a workload runs, inject one fault at a time into a local cluster (or
//! into containers, `docker.rs`), heal it, and record both in the history
//! (`"process":"nemesis"`), so the checker's report shows when each fault happened.
//!
//! Each fault's particulars are drawn from the seed: whom a kill, pause or power loss strikes
//! ([`Aim`]: one node, a minority, a majority, all, the primary), a partition's
//! [`Shape`](super::Shape), a packet fault's delay, loss, duplication and reordering. The
//! history's fault marks name them (`majority n1,n3`, `ring n1 -/-> n2; …`,
//! `all links: delay 12ms …`), and the same text ends the fault.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::aim::{AIMS, ALL_NODES, Aim, primary};
use super::docker::Docker;
use super::{
    ClusterState, Liveness, Partition, SHAPES, Shape, clock_fault, disk_fault, disk_heal, heal, kill, packet,
    partition_with, pause, power_loss, process, restart, resume,
};
use crate::node::Packets;

/// The disk faults the `disk` nemesis picks from: operation and error.
const DISK_FAULTS: [(&str, &str); 4] = [("write", "eio"), ("write", "enospc"), ("fsync", "eio"), ("fsync", "enospc")];
/// The clock faults the `clock` nemesis picks from (`VALTHREE.FAULT … CLOCK` arguments, in
/// milliseconds): bumps of ±2 s, ±1 min and ±1 h, and strobes between two offsets.
const CLOCK_FAULTS: [&[&str]; 8] = [
    &["BUMP", "+2000"],
    &["BUMP", "-2000"],
    &["BUMP", "+60000"],
    &["BUMP", "-60000"],
    &["BUMP", "+3600000"],
    &["BUMP", "-3600000"],
    &["STROBE", "0", "+60000", "50"],
    &["STROBE", "-60000", "+60000", "200"],
];
use crate::history::{EventType, FaultMark, HistoryWriter, Process, Record};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL nodes (one, a minority, a majority, all, or the primary), later restart them.
    Kill,
    /// Cut the power of nodes (one, a minority, a majority, all, or the primary: a SIGKILL of
    /// nodes started with `cluster up --fault-fs lazy`, which loses every write not yet
    /// fsync'd), later restart them: a local cluster.
    PowerLoss,
    /// SIGSTOP nodes (one, a minority, a majority, all, or the primary), later SIGCONT them.
    Pause,
    /// Partition the nodes in a shape drawn from the seed (one node cut off, halves, a
    /// majorities ring, a bridge, a one-way cut; s3 mode and containers: one node or halves,
    /// s3 cutting from the object store), dropping messages; later heal.
    Partition,
    /// Call-level packet faults on every link or on one node's links (delay with jitter,
    /// loss, duplication, reordering, drawn from the seed), later heal: a local cluster of
    /// paxos, raft or dynamo mode.
    Packet,
    /// A new node joins (`cluster add-node`), later it leaves again (`remove-node`): a local
    /// cluster of paxos, raft or dynamo mode.
    Membership,
    /// One node's disk fails: EIO or ENOSPC on its writes or its fsyncs (seeded); the node
    /// must refuse what it cannot make durable and exit; later the fault is cleared and the
    /// node restarted: a local cluster.
    Disk,
    /// One node's wall clock is bumped by ±2 s, ±1 min or ±1 h, or strobes between two
    /// offsets (seeded); later it is reset: a local cluster. Its monotonic clock, which every
    /// timeout runs on, is not moved.
    Clock,
}

/// `--nemesis`: one fault kind, or `all` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NemesisChoice {
    Kind(Fault),
    /// Every kind of [`Fault`] the target supports ([`Target::supports`]).
    All,
}

impl clap::ValueEnum for NemesisChoice {
    fn value_variants<'a>() -> &'a [Self] {
        static VARIANTS: std::sync::OnceLock<Vec<NemesisChoice>> = std::sync::OnceLock::new();
        VARIANTS.get_or_init(|| {
            let kinds = <Fault as clap::ValueEnum>::value_variants().iter().map(|f| NemesisChoice::Kind(*f));
            kinds.chain([NemesisChoice::All]).collect()
        })
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            NemesisChoice::Kind(fault) => clap::ValueEnum::to_possible_value(fault),
            NemesisChoice::All => {
                Some(clap::builder::PossibleValue::new(ALL_NODES).help("Every kind above that the cluster supports"))
            }
        }
    }
}

impl NemesisChoice {
    /// The fault kinds `choices` name against `target`: `all` stands for every kind the
    /// target supports, in the order the kinds are declared.
    pub fn resolve(choices: &[NemesisChoice], target: &Target) -> Vec<Fault> {
        let mut faults: Vec<Fault> = Vec::new();
        for choice in choices {
            let kinds: Vec<Fault> = match choice {
                NemesisChoice::Kind(fault) => vec![*fault],
                NemesisChoice::All => <Fault as clap::ValueEnum>::value_variants()
                    .iter()
                    .copied()
                    .filter(|f| target.supports(*f))
                    .collect(),
            };
            for kind in kinds {
                if !faults.contains(&kind) {
                    faults.push(kind);
                }
            }
        }
        faults
    }
}

/// What the faults act on.
#[derive(Debug, Clone)]
pub enum Target {
    /// The local cluster in this directory (`valthree cluster up`).
    Local(PathBuf),
    /// Containers on a Docker network.
    Docker(Docker),
}

impl Target {
    /// The nodes' names.
    fn nodes(&self) -> Result<Vec<String>, String> {
        match self {
            Target::Local(dir) => Ok(ClusterState::require(dir)?.nodes.iter().map(|n| n.name.clone()).collect()),
            Target::Docker(docker) => Ok(docker.containers.clone()),
        }
    }

    /// Whether `fault` can act on this target (what `--nemesis all` picks): membership
    /// changes and packet faults need a local cluster of a mode with peers (not s3), power
    /// cuts one started with `--fault-fs lazy`, disk and clock faults a local cluster;
    /// containers take kill, pause and partition. Kinds not named here are assumed supported.
    pub fn supports(&self, fault: Fault) -> bool {
        let state = match self {
            Target::Docker(_) => return matches!(fault, Fault::Kill | Fault::Pause | Fault::Partition),
            Target::Local(dir) => ClusterState::require(dir).ok(),
        };
        match fault {
            Fault::Membership | Fault::Packet => state.is_some_and(|s| s.mode != "s3"),
            Fault::PowerLoss => state.is_some_and(|s| !s.nodes.is_empty() && s.nodes.iter().all(super::is_lazy)),
            _ => true,
        }
    }

    /// The mode of the cluster (`None` for containers, whose mode is not known here).
    fn mode(&self) -> Option<String> {
        match self {
            Target::Local(dir) => ClusterState::require(dir).ok().map(|s| s.mode),
            Target::Docker(_) => None,
        }
    }

    /// The primary, if the target knows one (see [`super::aim`]).
    fn primary(&self, key: &str) -> Option<String> {
        match self {
            Target::Local(dir) => primary(&ClusterState::require(dir).ok()?, key),
            Target::Docker(_) => None,
        }
    }

    /// Injects `fault` as `strike` says; what it acted on (a membership change: the new node).
    fn inject(&self, fault: Fault, strike: &Strike) -> Result<String, String> {
        match (self, fault) {
            (Target::Local(dir), Fault::Disk) => {
                let victim = &strike.nodes[0];
                let (op, error) = DISK_FAULTS[strike.disk % DISK_FAULTS.len()];
                disk_fault(&ClusterState::require(dir)?, victim, op, error).map(|_| format!("{victim} {op} {error}"))
            }
            (Target::Docker(_), Fault::Disk) => Err("disk faults need a local cluster".into()),
            (Target::Local(dir), Fault::Clock) => {
                let victim = &strike.nodes[0];
                let args = CLOCK_FAULTS[strike.disk % CLOCK_FAULTS.len()];
                clock_fault(&ClusterState::require(dir)?, victim, args).map(|skew| format!("{victim} {skew}"))
            }
            (Target::Docker(_), Fault::Clock) => Err("clock faults need a local cluster".into()),
            (Target::Local(dir), Fault::Membership) => super::add_node(dir).map(|(node, _)| node.name),
            (Target::Docker(_), Fault::Membership) => Err("membership changes need a local cluster".into()),
            (Target::Docker(_), Fault::PowerLoss) => {
                Err("power loss needs a local cluster started with --fault-fs lazy".into())
            }
            (Target::Local(dir), Fault::Partition) => {
                partition_with(dir, strike.partition.as_ref().expect("planned"), false).map(|()| strike.label.clone())
            }
            (Target::Local(dir), Fault::Packet) => {
                let (packets, seed) = strike.packets.expect("planned");
                packet(dir, &strike.nodes, &packets, seed).map(|()| strike.label.clone())
            }
            (Target::Docker(_), Fault::Packet) => Err(
                "packet faults need a local cluster (containers built FROM scratch have no tc; see docs/verification.md)"
                    .into(),
            ),
            _ => strike.nodes.iter().try_for_each(|victim| self.inject_on(fault, victim)).map(|()| strike.label.clone()),
        }
    }

    fn inject_on(&self, fault: Fault, victim: &str) -> Result<(), String> {
        match (self, fault) {
            (Target::Local(dir), Fault::Kill) => kill(&ClusterState::require(dir)?, victim),
            (Target::Local(dir), Fault::PowerLoss) => power_loss(&ClusterState::require(dir)?, victim),
            (Target::Local(dir), Fault::Pause) => pause(&ClusterState::require(dir)?, victim),
            (Target::Docker(docker), Fault::Kill) => docker.kill(victim),
            (Target::Docker(docker), Fault::Pause) => docker.pause(victim),
            (Target::Docker(docker), Fault::Partition) => docker.partition(victim),
            _ => unreachable!("handled by inject"),
        }
    }

    fn undo(&self, fault: Fault, strike: &Strike) -> Result<(), String> {
        let each = |f: &dyn Fn(&str) -> Result<(), String>| strike.nodes.iter().try_for_each(|n| f(n));
        match (self, fault) {
            // Every node first, then wait for each: a majority must be up to serve.
            (Target::Local(dir), Fault::Kill | Fault::PowerLoss) => each(&|n| restart(dir, n)),
            (Target::Local(dir), Fault::Pause) => {
                let state = ClusterState::require(dir)?;
                each(&|n| resume(&state, n))
            }
            (Target::Local(dir), Fault::Partition | Fault::Packet) => heal(dir),
            (Target::Docker(docker), Fault::Kill) => each(&|n| docker.restart(n)),
            (Target::Docker(docker), Fault::Pause) => each(&|n| docker.resume(n)),
            (Target::Docker(docker), Fault::Partition) => each(&|n| docker.heal(n)),
            (Target::Local(dir), Fault::Membership) => super::remove_node(dir, &strike.label).map(|_| ()),
            (Target::Local(dir), Fault::Disk) => disk_heal(dir, &strike.nodes[0]),
            (Target::Local(dir), Fault::Clock) => {
                clock_fault(&ClusterState::require(dir)?, &strike.nodes[0], &["RESET"]).map(|_| ())
            }
            (Target::Docker(_), Fault::Membership | Fault::PowerLoss | Fault::Disk | Fault::Packet | Fault::Clock) => {
                Ok(())
            }
        }
    }

    /// Resumes paused nodes, restarts dead ones, heals partitions.
    fn heal_everything(&self) -> Vec<(&'static str, String, Result<(), String>)> {
        let dir = match self {
            Target::Docker(docker) => return docker.heal_everything(),
            Target::Local(dir) => dir,
        };
        let mut outcomes: Vec<(&'static str, String, Result<(), String>)> = Vec::new();
        let state = match ClusterState::require(dir) {
            Ok(state) => state,
            Err(e) => return vec![("heal", "all".to_string(), Err(e))],
        };
        for node in &state.nodes {
            match process::liveness(node) {
                Liveness::Paused => outcomes.push(("resume", node.name.clone(), resume(&state, &node.name))),
                Liveness::Down => outcomes.push(("restart", node.name.clone(), restart(dir, &node.name))),
                Liveness::Up => {}
            }
        }
        outcomes.push(("heal", "all".to_string(), heal(dir)));
        outcomes
    }
}

/// A fault schedule against a target.
pub struct Nemesis {
    pub target: Target,
    pub faults: Vec<Fault>,
    /// Time between faults; each fault lasts half of it.
    pub interval: Duration,
    pub seed: u64,
    pub history: Arc<HistoryWriter>,
    /// The key whose home or coordinator is the primary in paxos and dynamo modes (the
    /// workload's first key, `k0` after its prefix).
    pub primary_key: String,
}

/// One fault's particulars, drawn before it is injected.
#[derive(Debug, Clone, Default)]
struct Strike {
    /// The nodes struck (a packet fault: whose links; empty for every link).
    nodes: Vec<String>,
    /// How the history names it, at its start and at its end.
    label: String,
    partition: Option<Partition>,
    packets: Option<(Packets, u64)>,
    /// Which of [`DISK_FAULTS`] (a disk fault) or [`CLOCK_FAULTS`] (a clock fault).
    disk: usize,
}

/// Values drawn in rounds: each once per round, in a seeded order, so that a short run
/// still sees every one.
struct Round<T> {
    all: Vec<T>,
    left: Vec<T>,
}

impl<T: Copy> Round<T> {
    fn of(all: impl IntoIterator<Item = T>) -> Self {
        Self { all: all.into_iter().collect(), left: Vec::new() }
    }

    fn next(&mut self, rng: &mut fastrand::Rng) -> T {
        if self.left.is_empty() {
            self.left = self.all.clone();
            rng.shuffle(&mut self.left);
        }
        self.left.pop().expect("refilled above")
    }
}

/// The rounds a nemesis draws targets and shapes from.
struct Rounds {
    aims: Round<Aim>,
    shapes: Round<Shape>,
    group_shapes: Round<Shape>,
}

impl Default for Rounds {
    fn default() -> Self {
        Self {
            aims: Round::of(AIMS),
            shapes: Round::of(SHAPES),
            group_shapes: Round::of(SHAPES.into_iter().filter(|s| s.is_groups())),
        }
    }
}

/// The packet faults the `packet` nemesis draws: a delay of up to 30 ms with as much jitter,
/// and loss, duplication and reordering each from none to a fifth of the calls or more.
fn draw_packets(rng: &mut fastrand::Rng) -> Packets {
    let delay = rng.u64(1..=30);
    Packets {
        delay: Duration::from_millis(delay),
        jitter: Duration::from_millis(rng.u64(0..=delay)),
        loss: [0.0, 0.02, 0.05, 0.1][rng.usize(..4)],
        duplicate: [0.0, 0.05, 0.1, 0.2][rng.usize(..4)],
        reorder: [0.0, 0.1, 0.2, 0.3][rng.usize(..4)],
    }
}

impl Fault {
    /// The kind's name, as the command line spells it and the history's `fault` marks carry.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Membership => "membership",
            Fault::PowerLoss => "power-loss",
            Fault::Disk => "disk",
            Fault::Packet => "packet",
            Fault::Clock => "clock",
        }
    }
}

impl Nemesis {
    /// Draws the particulars of the next `fault` among `nodes`.
    async fn plan(&self, fault: Fault, nodes: &[String], rng: &mut fastrand::Rng, rounds: &mut Rounds) -> Strike {
        let mode = {
            let target = self.target.clone();
            Self::blocking(move || target.mode()).await
        };
        let one = nodes[rng.usize(0..nodes.len())].clone();
        let mut strike = Strike { nodes: vec![one.clone()], label: one, disk: rng.usize(..), ..Strike::default() };
        match fault {
            Fault::Kill | Fault::Pause | Fault::PowerLoss => {
                let aim = rounds.aims.next(rng);
                let primary = if aim == Aim::Primary {
                    let (target, key) = (self.target.clone(), self.primary_key.clone());
                    Self::blocking(move || target.primary(&key)).await
                } else {
                    None
                };
                let aim = if aim == Aim::Primary && primary.is_none() { Aim::One } else { aim };
                strike.nodes = aim.pick(nodes, primary.as_deref(), rng);
                strike.label = aim.label(&strike.nodes, nodes.len());
            }
            Fault::Partition => {
                // s3 mode cuts nodes from the object store, and containers are disconnected
                // from their network: both only take shapes of groups.
                let groups_only = matches!(self.target, Target::Docker(_)) || mode.as_deref() == Some("s3");
                let shape = if groups_only { rounds.group_shapes.next(rng) } else { rounds.shapes.next(rng) };
                match shape.partition(nodes, rng) {
                    Ok(partition) => {
                        // Containers: every node of the smaller group is disconnected.
                        strike.nodes = partition.groups.first().cloned().unwrap_or_default();
                        strike.label = format!("{} {}", shape.name(), partition.describe());
                        strike.partition = Some(partition);
                    }
                    Err(_) => {
                        let partition = Partition::of_groups(vec![
                            vec![strike.nodes[0].clone()],
                            nodes.iter().filter(|n| **n != strike.nodes[0]).cloned().collect(),
                        ]);
                        strike.label = format!("one {}", partition.describe());
                        strike.partition = Some(partition);
                    }
                }
            }
            Fault::Packet => {
                let packets = draw_packets(rng);
                if rng.bool() {
                    strike.label = format!("{} links: {}", strike.nodes[0], packets.describe());
                } else {
                    strike.nodes.clear();
                    strike.label = format!("all links: {}", packets.describe());
                }
                strike.packets = Some((packets, rng.u64(..)));
            }
            Fault::Membership | Fault::Disk | Fault::Clock => {}
        }
        strike
    }

    /// Records one nemesis action; `mark` says which fault it starts or ends.
    fn record(&self, f: &str, mark: Option<FaultMark>, value: serde_json::Value, error: Option<String>) {
        let record = Record { process: Process::Nemesis, kind: EventType::Info, f: f.into(), key: None, value, error };
        self.history.append_marked(record, mark);
    }

    /// Runs one blocking cluster operation off the async runtime.
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.expect("cluster operation panicked")
    }

    /// Injects and heals faults until `stop` turns true, then heals everything. Returns what
    /// it did, one line per fault or repair (`  2.5s  kill n2`), for the workload's summary.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<Vec<String>, String> {
        let started = std::time::Instant::now();
        let mut log = Vec::new();
        let mut note = |what: &str, victim: &str, error: Option<&String>| {
            let failed = error.map_or(String::new(), |e| format!(" (failed: {e})"));
            log.push(format!("{:>7.1}s  {what} {victim}{failed}", started.elapsed().as_secs_f64()));
        };
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x6e656d65736973);
        // Faults come in rounds, each kind once per round in a seeded order, so a short run
        // still sees every kind.
        let mut round: Vec<Fault> = Vec::new();
        let mut rounds = Rounds::default();
        // The nodes a fault left down (its undo failed), and which fault.
        let mut down: HashMap<String, Fault> = HashMap::new();
        while !*stop.borrow() {
            let pause_for = self.interval / 2;
            if tokio::time::timeout(pause_for, stop.changed()).await.is_ok() {
                break;
            }
            let target = self.target.clone();
            let nodes = Self::blocking(move || target.nodes()).await?;
            if round.is_empty() {
                round = self.faults.clone();
                rng.shuffle(&mut round);
            }
            let fault = round.pop().expect("refilled above");
            let strike = self.plan(fault, &nodes, &mut rng, &mut rounds).await;
            let (name, undo) = match fault {
                Fault::Kill => ("kill", "restart"),
                Fault::PowerLoss => ("power-loss", "restart"),
                Fault::Disk => ("disk", "disk-heal"),
                Fault::Clock => ("clock", "clock-reset"),
                Fault::Pause => ("pause", "resume"),
                Fault::Partition => ("partition", "heal"),
                Fault::Packet => ("packet", "heal"),
                Fault::Membership => ("add-node", "remove-node"),
            };
            let injected = {
                let (target, strike) = (self.target.clone(), strike.clone());
                Self::blocking(move || target.inject(fault, &strike)).await
            };
            let victim = match &injected {
                Ok(acted_on) => acted_on.clone(),
                Err(_) if fault == Fault::Membership => "a new node".into(),
                Err(_) => strike.label.clone(),
            };
            let strike = Strike { label: victim.clone(), ..strike };
            note(name, &victim, injected.as_ref().err());
            self.record(name, Some(FaultMark::start(fault.name())), json!(victim), injected.as_ref().err().cloned());
            if injected.is_err() && matches!(fault, Fault::Membership | Fault::PowerLoss) {
                // No node joined, or no power was cut (a node without --fault-fs lazy refuses
                // it): nothing to undo, and a restart would be a kill the history never shows.
                continue;
            }
            let _ = tokio::time::timeout(pause_for, stop.changed()).await;
            let struck = strike.nodes.clone();
            let healed = {
                let target = self.target.clone();
                Self::blocking(move || target.undo(fault, &strike)).await
            };
            note(undo, &victim, healed.as_ref().err());
            if healed.is_err() && matches!(fault, Fault::Kill | Fault::PowerLoss | Fault::Disk) {
                // The nodes may still be down: the fault stays open until the final repair.
                self.record(undo, None, json!(victim), healed.err());
                for node in struck {
                    down.insert(node, fault);
                }
                continue;
            }
            self.record(undo, Some(FaultMark::end(fault.name())), json!(victim), healed.err());
        }
        for line in self.heal_everything(&down).await? {
            note(&line, "", None);
        }
        Ok(log)
    }

    /// Resumes paused nodes, restarts dead ones, heals partitions — each attempted even
    /// when an earlier one failed, so one stubborn node leaves no other one hurt.
    /// Returns the repairs it made beyond healing partitions (`restart n2`).
    async fn heal_everything(&self, down: &HashMap<String, Fault>) -> Result<Vec<String>, String> {
        let target = self.target.clone();
        let outcomes = Self::blocking(move || target.heal_everything()).await;
        let mut errors = Vec::new();
        let mut repairs = Vec::new();
        for (f, node, result) in outcomes {
            let kind = final_repair_ends(f, &node, down);
            self.record(f, kind.map(|k| FaultMark::end(k.name())), json!(node), result.as_ref().err().cloned());
            match result {
                Err(e) => errors.push(e),
                Ok(()) if f != "heal" => repairs.push(format!("{f} {node} (final repair)")),
                Ok(()) => {}
            }
        }
        if errors.is_empty() { Ok(repairs) } else { Err(errors.join("; ")) }
    }
}

/// The fault a final repair `f` of `node` ends: a restart ends the fault that left the node
/// down (a kill, a power cut or a failed disk whose undo did not bring it back), a kill when
/// none is known.
fn final_repair_ends(f: &str, node: &str, down: &HashMap<String, Fault>) -> Option<Fault> {
    match f {
        "resume" => Some(Fault::Pause),
        "restart" => Some(down.get(node).copied().unwrap_or(Fault::Kill)),
        "heal" => Some(Fault::Partition),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_restart_ends_the_fault_that_left_the_node_down() {
        let down = HashMap::from([("n1".to_string(), Fault::PowerLoss), ("n2".to_string(), Fault::Disk)]);
        assert_eq!(final_repair_ends("restart", "n1", &down), Some(Fault::PowerLoss));
        assert_eq!(final_repair_ends("restart", "n2", &down), Some(Fault::Disk));
        assert_eq!(final_repair_ends("restart", "n3", &down), Some(Fault::Kill), "a node found dead: a kill");
        assert_eq!(final_repair_ends("resume", "n1", &down), Some(Fault::Pause));
    }
}
