//! The nemesis: while a workload runs, inject one fault at a time into a local cluster (or
//! into containers, `docker.rs`), heal it, and record both in the history
//! (`"process":"nemesis"`), so the checker's report shows when each fault happened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::docker::Docker;
use super::{
    ClusterState, Liveness, clock_fault, disk_fault, disk_heal, heal, kill, partition, pause, power_loss, process,
    restart, resume,
};

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

/// The victim of a fault that strikes every node at once.
pub const ALL_NODES: &str = "all";

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL a node, later restart it.
    Kill,
    /// Cut the power of one node, or of every node at once (a SIGKILL of nodes started with
    /// `cluster up --fault-fs lazy`, which loses every write not yet fsync'd), later restart
    /// them: a local cluster.
    PowerLoss,
    /// SIGSTOP a node, later SIGCONT it.
    Pause,
    /// Cut one node off from the others (in s3 mode: from the object store), later heal.
    Partition,
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
    /// changes need a local cluster of a mode with membership, power cuts one started with
    /// `--fault-fs lazy`, disk faults a local cluster; containers take kill, pause and
    /// partition. Kinds not named here are assumed supported.
    pub fn supports(&self, fault: Fault) -> bool {
        let state = match self {
            Target::Docker(_) => return matches!(fault, Fault::Kill | Fault::Pause | Fault::Partition),
            Target::Local(dir) => ClusterState::require(dir).ok(),
        };
        match fault {
            Fault::Membership => state.is_some_and(|s| s.mode != "s3"),
            Fault::PowerLoss => state.is_some_and(|s| !s.nodes.is_empty() && s.nodes.iter().all(super::is_lazy)),
            _ => true,
        }
    }

    /// Injects `fault` on `victim`; the node it acts on (a membership change: the new one).
    /// A disk fault is `DISK_FAULTS[pick]`, a clock fault `CLOCK_FAULTS[pick]`.
    fn inject(&self, fault: Fault, victim: &str, pick: usize) -> Result<String, String> {
        match (self, fault) {
            (Target::Local(dir), Fault::Disk) => {
                let (op, error) = DISK_FAULTS[pick % DISK_FAULTS.len()];
                disk_fault(&ClusterState::require(dir)?, victim, op, error).map(|_| format!("{victim} {op} {error}"))
            }
            (Target::Docker(_), Fault::Disk) => Err("disk faults need a local cluster".into()),
            (Target::Local(dir), Fault::Clock) => {
                let args = CLOCK_FAULTS[pick % CLOCK_FAULTS.len()];
                clock_fault(&ClusterState::require(dir)?, victim, args).map(|skew| format!("{victim} {skew}"))
            }
            (Target::Docker(_), Fault::Clock) => Err("clock faults need a local cluster".into()),
            (Target::Local(dir), Fault::Membership) => super::add_node(dir).map(|(node, _)| node.name),
            (Target::Docker(_), Fault::Membership) => Err("membership changes need a local cluster".into()),
            (Target::Docker(_), Fault::PowerLoss) => {
                Err("power loss needs a local cluster started with --fault-fs lazy".into())
            }
            _ => self.inject_on(fault, victim).map(|()| victim.to_string()),
        }
    }

    fn inject_on(&self, fault: Fault, victim: &str) -> Result<(), String> {
        match (self, fault) {
            (Target::Local(dir), Fault::Kill) => kill(&ClusterState::require(dir)?, victim),
            (Target::Local(dir), Fault::PowerLoss) => {
                let state = ClusterState::require(dir)?;
                for node in Self::victims(&state, victim) {
                    power_loss(&state, &node)?;
                }
                Ok(())
            }
            (Target::Local(dir), Fault::Pause) => pause(&ClusterState::require(dir)?, victim),
            (Target::Local(dir), Fault::Partition) => {
                let rest: Vec<String> = self.nodes()?.into_iter().filter(|n| n != victim).collect();
                partition(dir, &[vec![victim.to_string()], rest])
            }
            (Target::Docker(docker), Fault::Kill) => docker.kill(victim),
            (Target::Docker(docker), Fault::Pause) => docker.pause(victim),
            (Target::Docker(docker), Fault::Partition) => docker.partition(victim),
            (_, Fault::Membership | Fault::Disk | Fault::Clock) | (Target::Docker(_), Fault::PowerLoss) => {
                unreachable!("handled by inject")
            }
        }
    }

    fn undo(&self, fault: Fault, victim: &str) -> Result<(), String> {
        match (self, fault) {
            (Target::Local(dir), Fault::Kill) => restart(dir, victim),
            (Target::Local(dir), Fault::PowerLoss) => {
                let state = ClusterState::require(dir)?;
                // Every node first, then wait for each: a majority must be up to serve.
                Self::victims(&state, victim).iter().try_for_each(|node| restart(dir, node))
            }
            (Target::Local(dir), Fault::Pause) => resume(&ClusterState::require(dir)?, victim),
            (Target::Local(dir), Fault::Partition) => heal(dir),
            (Target::Docker(docker), Fault::Kill) => docker.restart(victim),
            (Target::Docker(docker), Fault::Pause) => docker.resume(victim),
            (Target::Docker(docker), Fault::Partition) => docker.heal(victim),
            (Target::Local(dir), Fault::Membership) => super::remove_node(dir, victim).map(|_| ()),
            (Target::Local(dir), Fault::Disk) => disk_heal(dir, victim.split(' ').next().unwrap_or(victim)),
            (Target::Local(dir), Fault::Clock) => {
                let node = victim.split(' ').next().unwrap_or(victim);
                clock_fault(&ClusterState::require(dir)?, node, &["RESET"]).map(|_| ())
            }
            (Target::Docker(_), Fault::Membership | Fault::PowerLoss | Fault::Disk | Fault::Clock) => Ok(()),
        }
    }

    /// The nodes a power loss named `victim` cuts: one node, or `all`.
    fn victims(state: &ClusterState, victim: &str) -> Vec<String> {
        if victim == ALL_NODES {
            state.nodes.iter().map(|n| n.name.clone()).collect()
        } else {
            vec![victim.to_string()]
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
            Fault::Clock => "clock",
        }
    }
}

impl Nemesis {
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
            let mut victim = nodes[rng.usize(0..nodes.len())].clone();
            if fault == Fault::PowerLoss && rng.bool() {
                // Half the power cuts take every node down at once, as a real outage does.
                victim = ALL_NODES.to_string();
            }
            let (name, undo) = match fault {
                Fault::Kill => ("kill", "restart"),
                Fault::PowerLoss => ("power-loss", "restart"),
                Fault::Disk => ("disk", "disk-heal"),
                Fault::Clock => ("clock", "clock-reset"),
                Fault::Pause => ("pause", "resume"),
                Fault::Partition => ("partition", "heal"),
                Fault::Membership => ("add-node", "remove-node"),
            };
            let injected = {
                let (target, victim, pick) = (self.target.clone(), victim.clone(), rng.usize(..));
                Self::blocking(move || target.inject(fault, &victim, pick)).await
            };
            let victim = match &injected {
                Ok(acted_on) => acted_on.clone(),
                Err(_) if fault == Fault::Membership => "a new node".into(),
                Err(_) => victim,
            };
            note(name, &victim, injected.as_ref().err());
            self.record(name, Some(FaultMark::start(fault.name())), json!(victim), injected.as_ref().err().cloned());
            if injected.is_err() && matches!(fault, Fault::Membership | Fault::PowerLoss) {
                // No node joined, or no power was cut (a node without --fault-fs lazy refuses
                // it): nothing to undo, and a restart would be a kill the history never shows.
                continue;
            }
            let _ = tokio::time::timeout(pause_for, stop.changed()).await;
            let healed = {
                let (target, victim) = (self.target.clone(), victim.clone());
                Self::blocking(move || target.undo(fault, &victim)).await
            };
            note(undo, &victim, healed.as_ref().err());
            if healed.is_err() && matches!(fault, Fault::Kill | Fault::PowerLoss | Fault::Disk) {
                // The node may still be down: its fault stays open until the final repair.
                self.record(undo, None, json!(victim), healed.err());
                let nodes = if victim == ALL_NODES { nodes.clone() } else { vec![victim.clone()] };
                for node in nodes {
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
