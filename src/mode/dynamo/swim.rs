//! Membership and failure detection: SWIM (Das, Gupta, Motivala, 2002) as the `foca` crate
//! implements it, carried over the peer plane (the `Swim` call), so a test partition or a
//! missing cluster secret cuts failure detection exactly as it cuts data traffic.
//!
//! Every `--swim-period` a node probes one member; a member that does not answer, directly
//! or through others, is SUSPECT, and DEAD after `--suspect-timeout` unless it refutes the
//! suspicion. A restarted node comes back under a new identity (its start time, kept durably
//! above every earlier one: [`super::storage::Storage::life`]), so peers take it as ALIVE
//! again at once, even when its clock was stepped back. The coordinator counts every member
//! that is not DEAD. Every timer here runs on the monotonic clock.
//!
//! A node stopping gracefully leaves (foca's `leave_cluster`): it declares itself DEAD to its
//! peers before it stops, so their coordinators route around it at once instead of asking it
//! until their probes find it gone.

use std::collections::{BTreeMap, HashMap};
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foca::{Config, Foca, Member, PostcardCodec, State, Timer};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::node::Node;
use crate::node::NodeId;
use crate::node::lock;

/// A node as SWIM knows it: its id, and which life of it (its start time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SwimId {
    pub id: NodeId,
    pub life: u64,
}

impl foca::Identity for SwimId {
    type Addr = NodeId;

    fn addr(&self) -> NodeId {
        self.id
    }

    /// Declared dead while alive (a partition healed): rejoin as a later life.
    fn renew(&self) -> Option<Self> {
        Some(Self { id: self.id, life: self.life + 1 })
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.life > adversary.life
    }
}

/// A member's health as this node's detector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Alive,
    Suspect,
    Dead,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Alive => "ALIVE",
            Health::Suspect => "SUSPECT",
            Health::Dead => "DEAD",
        }
    }
}

/// What the detector knows of one member.
#[derive(Debug, Clone, Copy)]
pub struct MemberState {
    pub health: Health,
    /// SWIM's incarnation number (raised by a member to refute a suspicion).
    pub incarnation: u16,
    /// Which life of the node (its start time, ms since the epoch).
    pub life: u64,
    /// Since when it has this health.
    pub since: Instant,
}

/// The handle the rest of the node uses: the membership table and the packet inbox.
pub struct Swim {
    table: Arc<Mutex<HashMap<NodeId, MemberState>>>,
    inbox: mpsc::UnboundedSender<Input>,
    changes: std::sync::atomic::AtomicU64,
}

/// What the detector's task is handed.
enum Input {
    /// A peer's packet.
    Packet(Bytes),
    /// Leave the cluster: the packets that say so, to send before the node stops.
    Leave(oneshot::Sender<Vec<(NodeId, Bytes)>>),
}

/// The receiving end, for [`run`].
pub struct Inbox(mpsc::UnboundedReceiver<Input>);

impl Swim {
    pub fn new() -> (Self, Inbox) {
        let (inbox, rx) = mpsc::unbounded_channel();
        let swim = Self { table: Arc::default(), inbox, changes: Default::default() };
        (swim, Inbox(rx))
    }

    /// Hands a peer's packet to the detector.
    pub fn receive(&self, packet: Bytes) {
        let _ = self.inbox.send(Input::Packet(packet));
    }

    /// Leaves the cluster: from now on this node answers no probe, and the returned packets
    /// (to send before the node stops) tell its peers it is DEAD. Empty when the detector has
    /// stopped or knows no peer.
    pub async fn leave(&self) -> Vec<(NodeId, Bytes)> {
        let (tx, rx) = oneshot::channel();
        if self.inbox.send(Input::Leave(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// What the detector knows of `id` (`None`: nothing yet).
    pub fn seen(&self, id: NodeId) -> Option<MemberState> {
        lock(&self.table).get(&id).copied()
    }

    /// True when `id` is DEAD to the detector (a member never heard of is not).
    pub fn is_dead(&self, id: NodeId) -> bool {
        self.seen(id).is_some_and(|s| s.health == Health::Dead)
    }

    /// State changes seen (ALIVE → SUSPECT, ...), for INFO.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn publish(&self, members: impl Iterator<Item = (NodeId, Health, u16, u64)>) {
        let mut table = lock(&self.table);
        for (id, health, incarnation, life) in members {
            let since = match table.get(&id) {
                Some(old) if old.health == health && old.life == life => old.since,
                Some(_) | None => {
                    self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if table.contains_key(&id) {
                        tracing::info!(peer = id, health = health.name(), "membership: n{id} is {}", health.name());
                    }
                    Instant::now()
                }
            };
            table.insert(id, MemberState { health, incarnation, life, since });
        }
    }
}

/// The detector's timing, from the node's options.
fn config(period: Duration, suspect_timeout: Duration, members: usize) -> Config {
    Config {
        probe_period: period,
        probe_rtt: period * 2 / 5,
        num_indirect_probes: NonZeroUsize::new(2).expect("2 > 0"),
        max_transmissions: NonZeroU8::new(6).expect("6 > 0"),
        suspect_to_down_after: suspect_timeout,
        max_packet_size: NonZeroUsize::new(16 << 10).expect("positive"),
        notify_down_members: true,
        periodic_gossip: Some(foca::PeriodicParams {
            frequency: period / 2,
            num_members: NonZeroUsize::new(members.clamp(1, 3)).expect("positive"),
        }),
        periodic_announce: Some(foca::PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: NonZeroUsize::new(1).expect("positive"),
        }),
        periodic_announce_to_down_members: Some(foca::PeriodicParams {
            frequency: period * 2,
            num_members: NonZeroUsize::new(2).expect("positive"),
        }),
        ..Config::simple()
    }
}

/// Runs the detector until the node stops: one task owns foca, its timers and its inbox.
pub(super) async fn run(node: Weak<Node>, Inbox(mut inbox): Inbox) {
    let Some(n) = node.upgrade() else { return };
    let me = SwimId { id: n.id, life: n.storage.life() };
    let config = config(n.options.swim_period, n.options.suspect_timeout, n.ring().members().len().max(3) - 1);
    drop(n);
    let rng = rand::rngs::SmallRng::seed_from_u64(fastrand::u64(..));
    let mut foca = Foca::new(me, config, rng, PostcardCodec);
    let mut runtime = foca::AccumulatingRuntime::new();
    // Timers in deadline order; the sequence number keeps equal deadlines in order.
    let mut timers: BTreeMap<(Instant, u64), Timer<SwimId>> = BTreeMap::new();
    let mut sequence = 0u64;
    let mut announce = tokio::time::interval(Duration::from_secs(1));
    announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = timers.keys().next().map(|(at, _)| *at);
        let sleep = tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)).into());
        let result = tokio::select! {
            input = inbox.recv() => match input {
                Some(Input::Packet(p)) => foca.handle_data(&p, &mut runtime),
                Some(Input::Leave(done)) => {
                    let left = foca.leave_cluster(&mut runtime);
                    let mut packets = Vec::new();
                    while let Some((to, packet)) = runtime.to_send() {
                        packets.push((to.id, packet));
                    }
                    let _ = done.send(packets);
                    left
                }
                None => return,
            },
            _ = sleep, if next.is_some() => {
                let (_, timer) = timers.pop_first().expect("a timer is due");
                foca.handle_timer(timer, &mut runtime)
            }
            _ = announce.tick() => {
                // Alone (at start, or after everyone went away), or with members the ring
                // has and foca has not met (a node that joined), foca does not look for them
                // by itself: announce to every member of the ring.
                if let Some(n) = node.upgrade() {
                    let peers: Vec<NodeId> = n.ring().member_ids().into_iter().filter(|id| *id != n.id).collect();
                    if foca.num_members() < peers.len() {
                        for id in &peers {
                            let _ = foca.announce(SwimId { id: *id, life: 0 }, &mut runtime);
                        }
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::trace!("swim: {e}");
        }
        let Some(n) = node.upgrade() else { return };
        while let Some((to, packet)) = runtime.to_send() {
            n.send_swim(to.id, packet);
        }
        let now = Instant::now();
        while let Some((after, timer)) = runtime.to_schedule() {
            sequence += 1;
            timers.insert((now + after, sequence), timer);
        }
        while runtime.to_notify().is_some() {}
        n.swim.publish(foca.iter_membership_state().map(|m: &Member<SwimId>| {
            let health = match m.state() {
                State::Alive => Health::Alive,
                State::Suspect => Health::Suspect,
                State::Down => Health::Dead,
            };
            (m.id().id, health, m.incarnation(), m.id().life)
        }));
    }
}
