//! A seeded simulation of dynamo mode's core: three nodes, each a [`Coordinator`] and an
//! in-memory replica, exchange messages through a network that delays, reorders, drops and
//! duplicates them; nodes crash (losing their coordinator and what was in flight, keeping
//! their replica, as a fsync'd store does) and restart, and are cut off by partitions. Hints
//! are recorded and replayed. Clients pinned to nodes run VGET and VSET/VDEL under the
//! context they last saw, recording the history a real workload records; after every fault
//! is healed and the hints are replayed, each key is read from all three replicas (which
//! repairs them) and each replica is recorded. The dynamo checker judges the history. The
//! same seed replays the same run; the broken reconciliations must be caught.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{Value, json};

use super::coordinator::{Coordinator, OpId, Options, Output, REPAIR, Reply, Request, Response, Targets};
use super::dvv::{Actor, Causality, Object, VersionVector};
use crate::check::dynamo::{Report, check};
use crate::history::{Event, EventType, Process, in_time_order};
use crate::node::NodeId;
use crate::workload::dynamo::vv_json;

const NODES: [NodeId; 3] = [1, 2, 3];
const CLIENTS: usize = 6;
/// Hint replays are sent under ids from here up (never a client's, never [`REPAIR`]).
const HINT_OP: OpId = 1 << 62;

/// A node's durable replica: its actor, its dot sequence, its objects and its hints.
struct Replica {
    actor: Actor,
    counter: u64,
    objects: BTreeMap<Bytes, Object>,
    hints: BTreeSet<(NodeId, Bytes)>,
}

impl Replica {
    fn apply(&mut self, request: Request, causality: Causality) -> Response {
        match request {
            Request::Put { key, context, value, timestamp_ms, hints } => {
                let object = self.objects.entry(key.clone()).or_default();
                let context = context.unwrap_or_else(|| object.context().clone());
                let counter = &mut self.counter;
                let dot = causality.dot(self.actor, &context, || {
                    *counter += 1;
                    *counter
                });
                object.put_as(causality, &context, dot, timestamp_ms, value);
                let object = object.clone();
                self.hints.extend(hints.into_iter().map(|t| (t, key.clone())));
                Response::Put { object, dot }
            }
            Request::Merge { key, object } => {
                self.objects.entry(key).or_default().merge_as(causality, &object);
                Response::Merged
            }
            Request::Handoff { key, object, owner } => {
                self.objects.entry(key.clone()).or_default().merge_as(causality, &object);
                self.hints.insert((owner, key));
                Response::Merged
            }
            Request::Get { key } => Response::Got(self.objects.get(&key).cloned().unwrap_or_default()),
        }
    }
}

enum Payload {
    Request(Request),
    Response(Response),
}

struct Message {
    at: u64,
    from: NodeId,
    to: NodeId,
    op: OpId,
    payload: Payload,
}

struct Node {
    replica: Replica,
    /// `None` while crashed.
    coordinator: Option<Coordinator>,
}

/// A client's operation in flight.
struct Pending {
    client: usize,
    f: &'static str,
    key: Bytes,
}

/// How the run misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Percent of messages dropped, and duplicated.
    pub drop: u32,
    pub duplicate: u32,
    /// Crashes and partitions.
    pub crashes: bool,
    pub partitions: bool,
}

struct Sim {
    rng: fastrand::Rng,
    causality: Causality,
    faults: Faults,
    nodes: BTreeMap<NodeId, Node>,
    /// The node cut off from the others, if any.
    isolated: Option<NodeId>,
    network: Vec<Message>,
    pending: BTreeMap<OpId, Pending>,
    busy: Vec<bool>,
    contexts: Vec<BTreeMap<Bytes, VersionVector>>,
    events: Vec<Event>,
    time: u64,
    next_op: OpId,
    /// Hint replays in flight: op → the key.
    replays: BTreeMap<OpId, Bytes>,
}

fn options(causality: Causality) -> Options {
    Options { causality, timeout: 40, ..Options::default() }
}

impl Sim {
    fn new(seed: u64, causality: Causality, faults: Faults) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let nodes = NODES
            .iter()
            .map(|&id| {
                let replica =
                    Replica { actor: rng.u64(1..), counter: 0, objects: BTreeMap::new(), hints: BTreeSet::new() };
                (id, Node { replica, coordinator: Some(Coordinator::new(id, options(causality))) })
            })
            .collect();
        Sim {
            rng,
            causality,
            faults,
            nodes,
            isolated: None,
            network: Vec::new(),
            pending: BTreeMap::new(),
            busy: vec![false; CLIENTS],
            contexts: vec![BTreeMap::new(); CLIENTS],
            events: Vec::new(),
            time: 0,
            next_op: 1,
            replays: BTreeMap::new(),
        }
    }

    fn record(&mut self, client: usize, kind: EventType, f: &str, key: &Bytes, value: Value) {
        self.events.push(Event {
            index: 0,
            process: Process::Client(client as u64),
            kind,
            f: f.into(),
            key: Some(String::from_utf8_lossy(key).into_owned()),
            value,
            error: None,
            fault: None,
            time: self.time,
        });
    }

    fn nemesis(&mut self, f: &str, node: NodeId) {
        self.events.push(Event {
            index: 0,
            process: Process::Nemesis,
            kind: EventType::Info,
            f: f.into(),
            key: None,
            value: json!(format!("n{node}")),
            error: None,
            fault: None,
            time: self.time,
        });
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        a == b || self.isolated.is_none_or(|i| i != a && i != b)
    }

    /// Who `me`'s failure detector believes up: the truth, or now and then a stale "all".
    fn alive(&mut self, me: NodeId) -> Vec<NodeId> {
        if self.rng.u32(0..10) == 0 {
            return NODES.to_vec();
        }
        NODES.iter().copied().filter(|&n| self.reachable(me, n) && self.nodes[&n].coordinator.is_some()).collect()
    }

    fn send(&mut self, from: NodeId, to: NodeId, op: OpId, payload: Payload) {
        let at = self.time + 1 + self.rng.u64(0..15);
        self.network.push(Message { at, from, to, op, payload });
    }

    /// Moves every coordinator's output into the network, the clients and the hints.
    fn drain(&mut self) {
        for id in NODES {
            let Some(c) = self.nodes.get_mut(&id).and_then(|n| n.coordinator.as_mut()) else { continue };
            for output in c.take_output() {
                match output {
                    Output::Send { op, to, request } => self.send(id, to, op, Payload::Request(request)),
                    Output::Hint { target, key } => {
                        self.nodes.get_mut(&id).unwrap().replica.hints.insert((target, key));
                    }
                    Output::Reply { op, result } => self.complete(op, result),
                }
            }
        }
    }

    fn complete(&mut self, op: OpId, result: crate::error::Result<Reply>) {
        let Some(Pending { client, f, key }) = self.pending.remove(&op) else { return };
        self.busy[client] = false;
        match result {
            Ok(Reply::Written { context, dot }) => {
                let value = json!({"dot": dot.to_string(), "context": vv_json(&context)});
                self.contexts[client].insert(key.clone(), context);
                self.record(client, EventType::Ok, f, &key, value);
            }
            Ok(Reply::Read(object)) => {
                let value = read_json(&object);
                self.contexts[client].insert(key.clone(), object.context().clone());
                self.record(client, EventType::Ok, f, &key, value);
            }
            Err(e) => {
                let kind = if e.is_definite() { EventType::Fail } else { EventType::Info };
                self.record(client, kind, f, &key, Value::Null);
            }
        }
    }

    /// A client starts an operation through its node.
    fn start(&mut self, client: usize, key: Bytes, seq: u64) {
        // After the client's last completion, which may have come at this very time.
        self.time += 1;
        let node = NODES[client % NODES.len()];
        let context = self.contexts[client].get(&key).cloned().unwrap_or_default();
        let (f, value) = match self.rng.u32(0..6) {
            0..=2 => ("vget", None),
            3 | 4 => ("vset", Some(format!("{client}-{seq}"))),
            _ => ("vdel", None),
        };
        let argument = match f {
            "vset" => json!({"value": value, "context": vv_json(&context)}),
            "vdel" => json!({"context": vv_json(&context)}),
            _ => Value::Null,
        };
        self.record(client, EventType::Invoke, f, &key, argument);
        let alive = self.alive(node);
        let time = self.time;
        let op = self.next_op;
        self.next_op += 1;
        let Some(c) = self.nodes.get_mut(&node).unwrap().coordinator.as_mut() else {
            // The node is down: nothing was sent.
            self.record(client, EventType::Fail, f, &key, Value::Null);
            return;
        };
        match f {
            "vget" => c.get(op, key.clone(), &NODES, &alive, 2),
            _ => c.put(
                op,
                key.clone(),
                Targets { owners: &NODES, ..Targets::default() },
                &alive,
                Some(context),
                value.map(Bytes::from),
                time,
                2,
            ),
        }
        self.busy[client] = true;
        self.pending.insert(op, Pending { client, f, key });
    }

    /// Delivers the messages that are due, in random order.
    fn deliver(&mut self) {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.network.len() {
            if self.network[i].at <= self.time {
                due.push(self.network.swap_remove(i));
            } else {
                i += 1;
            }
        }
        self.rng.shuffle(&mut due);
        for m in due {
            let up = self.nodes[&m.to].coordinator.is_some();
            // A node's own replica is a local call (the writer thread), not the network's.
            let local = m.from == m.to;
            if !up || !self.reachable(m.from, m.to) || (!local && self.rng.u32(0..100) < self.faults.drop) {
                continue;
            }
            let copies = if !local && self.rng.u32(0..100) < self.faults.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                match &m.payload {
                    Payload::Request(request) => {
                        let response =
                            self.nodes.get_mut(&m.to).unwrap().replica.apply(request.clone(), self.causality);
                        self.send(m.to, m.from, m.op, Payload::Response(response));
                    }
                    Payload::Response(response) if m.op >= HINT_OP => {
                        if let (Response::Merged, Some(key)) = (response, self.replays.get(&m.op)) {
                            let hint = (m.from, key.clone());
                            self.nodes.get_mut(&m.to).unwrap().replica.hints.remove(&hint);
                        }
                    }
                    Payload::Response(_) if m.op == REPAIR => {}
                    Payload::Response(response) => {
                        if let Some(c) = self.nodes.get_mut(&m.to).unwrap().coordinator.as_mut() {
                            c.step(m.op, m.from, response.clone());
                        }
                    }
                }
            }
        }
    }

    /// Every node's hints: the key's current object to a target that is up and reachable.
    fn replay_hints(&mut self) {
        for id in NODES {
            if self.nodes[&id].coordinator.is_none() {
                continue;
            }
            let hints: Vec<(NodeId, Bytes)> = self.nodes[&id].replica.hints.iter().cloned().collect();
            for (target, key) in hints {
                if self.nodes[&target].coordinator.is_some() && self.reachable(id, target) {
                    let object = self.nodes[&id].replica.objects.get(&key).cloned().unwrap_or_default();
                    let op = HINT_OP + self.next_op;
                    self.next_op += 1;
                    self.replays.insert(op, key.clone());
                    self.send(id, target, op, Payload::Request(Request::Merge { key, object }));
                }
            }
        }
    }

    fn tick(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(c) = node.coordinator.as_mut() {
                c.tick();
            }
        }
    }

    /// One step of the faults: a crash, a restart, a partition or a heal.
    fn fault(&mut self) {
        let node = NODES[self.rng.usize(0..NODES.len())];
        match self.rng.u32(0..4) {
            0 if self.faults.crashes && self.nodes[&node].coordinator.is_some() => {
                self.nodes.get_mut(&node).unwrap().coordinator = None;
                self.network.retain(|m| m.to != node);
                // Its clients' operations in flight: the connection dropped (unknown outcome).
                let lost: Vec<OpId> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| NODES[p.client % NODES.len()] == node)
                    .map(|(op, _)| *op)
                    .collect();
                for op in lost {
                    let p = self.pending.remove(&op).unwrap();
                    self.busy[p.client] = false;
                    self.record(p.client, EventType::Info, p.f, &p.key, Value::Null);
                }
                self.nemesis("kill", node);
            }
            1 => self.restart_all(),
            2 if self.faults.partitions && self.isolated.is_none() => {
                self.isolated = Some(node);
                self.nemesis("partition", node);
            }
            _ => self.heal(),
        }
    }

    fn restart_all(&mut self) {
        for id in NODES {
            if self.nodes[&id].coordinator.is_none() {
                self.nodes.get_mut(&id).unwrap().coordinator = Some(Coordinator::new(id, options(self.causality)));
                self.nemesis("restart", id);
            }
        }
    }

    fn heal(&mut self) {
        if let Some(node) = self.isolated.take() {
            self.nemesis("heal", node);
        }
    }

    /// One unit of time: messages, output, timers.
    fn advance(&mut self) {
        self.time += 1;
        self.deliver();
        self.drain();
        if self.time.is_multiple_of(5) {
            self.tick();
        }
        if self.time.is_multiple_of(25) {
            self.replay_hints();
        }
        self.drain();
    }

    fn quiet(&self) -> bool {
        self.pending.is_empty() && self.network.is_empty()
    }
}

fn read_json(object: &Object) -> Value {
    let siblings: Vec<Value> = object
        .siblings()
        .iter()
        .map(|s| json!({"dot": s.dot.to_string(), "value": s.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())}))
        .collect();
    json!({"context": vv_json(object.context()), "siblings": siblings})
}

/// Runs one simulation of `steps` client steps and returns its history.
pub fn simulate(seed: u64, causality: Causality, faults: Faults, steps: u64) -> Vec<Event> {
    let mut sim = Sim::new(seed, causality, faults);
    sim.events.push(Event {
        index: 0,
        process: Process::Nemesis,
        kind: EventType::Info,
        f: "config".into(),
        key: None,
        value: json!({"mode": "dynamo", "replicas": 3, "r": 2, "w": 2}),
        error: None,
        fault: None,
        time: 0,
    });
    let keys = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
    let mut seq = 0;
    for _ in 0..steps {
        if sim.rng.u32(0..100) < 15 {
            let client = sim.rng.usize(0..CLIENTS);
            if !sim.busy[client] {
                seq += 1;
                let key = keys[sim.rng.usize(0..keys.len())].clone();
                sim.start(client, key, seq);
            }
        }
        if sim.rng.u32(0..1000) < 4 {
            sim.fault();
        }
        sim.advance();
    }
    // Heal everything, let the operations in flight finish and the hints drain.
    sim.heal();
    sim.restart_all();
    let mut rounds = 0;
    while (!sim.quiet() || sim.nodes.values().any(|n| !n.replica.hints.is_empty())) && rounds < 20_000 {
        sim.advance();
        rounds += 1;
    }
    // Settle: a read of all three replicas repairs the stale ones; then record each.
    sim.faults.drop = 0;
    for key in &keys {
        for _ in 0..3 {
            let op = sim.next_op;
            sim.next_op += 1;
            sim.nodes.get_mut(&1).unwrap().coordinator.as_mut().unwrap().get(op, key.clone(), &NODES, &NODES, 3);
            while !sim.network.is_empty() || sim.nodes.values().any(|n| n.coordinator.as_ref().unwrap().in_flight() > 0)
            {
                sim.advance();
            }
            sim.drain();
        }
        for id in NODES {
            let object = sim.nodes[&id].replica.objects.get(key).cloned().unwrap_or_default();
            sim.time += 1;
            sim.record(0, EventType::Invoke, "local", key, json!({"node": id}));
            let mut value = read_json(&object);
            value["node"] = json!(id);
            sim.record(0, EventType::Ok, "local", key, value);
        }
    }
    sim.events
}

/// Simulates and checks.
pub fn judge(seed: u64, causality: Causality, faults: Faults, steps: u64) -> Report {
    let events = simulate(seed, causality, faults, steps);
    check(in_time_order(events).into_iter().map(Ok), None).expect("a simulated history is well formed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::dynamo::{Kind, verdict_text};

    const ROUGH: Faults = Faults { drop: 10, duplicate: 10, crashes: true, partitions: true };

    #[test]
    fn dotted_version_vectors_keep_every_promise_under_drops_duplicates_crashes_and_partitions() {
        let (mut siblings, mut faults) = (0, BTreeSet::new());
        for seed in 0..24 {
            let report = judge(seed, Causality::Dvv, ROUGH, 4000);
            assert!(report.ok(), "seed {seed}: {}", verdict_text(&report));
            assert!(report.settled(), "seed {seed}");
            siblings += report.history.keys.values().flatten().filter(|o| o.siblings.len() > 1).count();
            faults.extend(report.history.faults.iter().map(|f| f.f.clone()));
        }
        assert!(siblings > 0, "the runs made concurrent writes for the checker to judge");
        for f in ["kill", "restart", "partition", "heal"] {
            assert!(faults.contains(f), "no {f} in the runs: {faults:?}");
        }
    }

    #[test]
    fn the_same_seed_replays_the_same_run() {
        assert_eq!(simulate(7, Causality::Dvv, ROUGH, 2000), simulate(7, Causality::Dvv, ROUGH, 2000));
        assert_ne!(simulate(7, Causality::Dvv, ROUGH, 2000), simulate(8, Causality::Dvv, ROUGH, 2000));
    }

    #[test]
    fn last_writer_wins_and_per_server_clocks_are_caught() {
        let calm = Faults { drop: 0, duplicate: 0, crashes: false, partitions: false };
        for (causality, kind) in [(Causality::Lww, Kind::LostWrite), (Causality::ServerClock, Kind::DotReused)] {
            let caught = (0..8).any(|seed| judge(seed, causality, calm, 3000).counts.contains_key(&kind));
            assert!(caught, "{causality:?}: no {kind:?} in eight seeds");
        }
    }
}
