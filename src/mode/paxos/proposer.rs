//! The proposer: a state machine over messages, with no I/O (toydb's style). The driver
//! feeds it commands (`submit`), acceptor replies (`step`) and clock ticks (`tick`), and
//! drains what it wants sent and answered from `take_output`.
//!
//! Per key at most one round is in flight; commands arriving meanwhile queue up and the next
//! round carries them all: their change functions are applied in arrival order between the
//! phases, and every command of the batch is answered from that one round.
//!
//! Outcomes follow the error contract (docs/errors.md): a round that never got an accept out is definitely not
//! applied (`TryAgain` after bounded retries); once an accept was sent and no quorum
//! confirmed it, a later proposer may still adopt the value, so the outcome is `Uncertain` —
//! unless every acceptor refused it and said it never accepted that ballot (acceptors remember
//! the last ballot each proposer got accepted), which shows the value exists nowhere, and the
//! round is retried. A refusal from an acceptor that *had* accepted the ballot counts as an
//! acknowledgement, so a lost reply does not cost the round.
//!
//! Quorums come from a [`Quorums`]: a majority of the members, and during a membership
//! change (joint consensus, §2.3 done as Raft's joint configurations) also a majority of the
//! previous members. A retried round waits a few random ticks first, so two proposers
//! duelling for one key drift apart instead of refusing each other forever.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use super::acceptor::{Landed, Request, Response};
use super::ballot::{Ballot, NodeId};
use crate::error::{Error, Result};
use crate::store::{Keyspace, Mutation, MutationReply};

/// Identifies a client command across the proposer's API.
pub type CommandId = u64;

/// What a command does to its register: read it, or change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Read,
    /// A mutation of this one key.
    Write(Mutation),
    /// Garbage collection (§3.1): if the register is absent, rewrite its tombstone on *every*
    /// acceptor at a fresh ballot, so the acceptors may then drop the slot.
    Collect,
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Read(Option<Bytes>),
    Write(MutationReply),
    /// `Some(ballot)`: every acceptor accepted the tombstone at `ballot`; `None`: the key holds
    /// a value, nothing to collect.
    Collected(Option<Ballot>),
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `request` about `key` to acceptor `to`; route its reply back with `round` (the
    /// id of this phase of this round).
    Send { to: NodeId, key: Bytes, round: u64, request: Request },
    /// Answer command `id`.
    Reply { id: CommandId, result: Result<Outcome> },
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ticks a prepare may wait for its quorum (then it retries: cheap).
    pub phase_timeout: u64,
    /// Ticks an accept may wait for its quorum. Giving up on an accept leaves the outcome
    /// unknown (`Uncertain`), so it waits longer than a prepare: a slow disk under load must
    /// not turn a healthy cluster's write into an unknown outcome.
    pub accept_timeout: u64,
    /// Prepare attempts per round before `TryAgain`.
    pub max_attempts: u32,
    /// The one-round-trip optimisation (§2.2.1).
    pub one_round_trip: bool,
    /// Test only: accept after this many acknowledgements instead of a majority. Breaks
    /// quorum intersection, so the history checker must catch it.
    pub unsafe_accept_quorum: Option<usize>,
    /// A retried round pauses up to `backoff × attempts` ticks (random) before it prepares again.
    pub backoff: u64,
    /// Bytes a phase may move per tick beyond `phase_timeout`: a phase carrying a value of
    /// `n` bytes (an accept, or promises of a key known to be large) may take
    /// `phase_timeout + n / bytes_per_tick` ticks. 0: no allowance.
    pub bytes_per_tick: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            phase_timeout: 20,
            accept_timeout: 40,
            max_attempts: 8,
            one_round_trip: true,
            unsafe_accept_quorum: None,
            backoff: 2,
            bytes_per_tick: 0,
        }
    }
}

/// Values at least this large are remembered per key, to give the key's phases time.
const LARGE_VALUE: usize = 1 << 20;
/// Keys whose large size is remembered at most (the memory is cleared when full).
const MAX_SIZE_HINTS: usize = 10_000;

/// Which sets of acceptors are quorums: a majority of `members`, and while a membership
/// change runs, also a majority of `previous`. Any two such quorums intersect, within one
/// configuration and across the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorums {
    pub members: Vec<NodeId>,
    pub previous: Option<Vec<NodeId>>,
}

impl Quorums {
    /// A plain configuration.
    pub fn new(members: Vec<NodeId>) -> Self {
        Self { members, previous: None }
    }

    /// Every acceptor a round talks to.
    pub fn all(&self) -> BTreeSet<NodeId> {
        self.members.iter().chain(self.previous.iter().flatten()).copied().collect()
    }

    fn majority_of(group: &[NodeId], set: &BTreeSet<NodeId>) -> bool {
        group.iter().filter(|n| set.contains(n)).count() > group.len() / 2
    }

    /// True when `set` holds a quorum.
    pub fn is_quorum(&self, set: &BTreeSet<NodeId>) -> bool {
        Self::majority_of(&self.members, set) && self.previous.as_ref().is_none_or(|p| Self::majority_of(p, set))
    }

    /// True when a quorum can still form once the acceptors in `lost` are out of the count.
    pub fn reachable_without(&self, lost: &BTreeSet<NodeId>) -> bool {
        self.is_quorum(&self.all().difference(lost).copied().collect())
    }
}

struct Pending {
    id: CommandId,
    command: Command,
}

enum Phase {
    Preparing {
        ballot: Ballot,
        promises: BTreeMap<NodeId, (Ballot, Option<Bytes>)>,
        refused: BTreeSet<NodeId>,
        /// Refusals naming a ballot above what this proposer follows: no ballot it makes now
        /// gets past those acceptors.
        beyond_reach: BTreeMap<NodeId, Ballot>,
    },
    Accepting {
        ballot: Ballot,
        value: Option<Bytes>,
        outcomes: Vec<Result<Outcome>>,
        acks: BTreeSet<NodeId>,
        /// Refusals that prove the value is not there (the acceptor never accepted our ballot).
        refused: BTreeSet<NodeId>,
        /// Refusals from acceptors that cannot tell whether our ballot was accepted there.
        doubtful: BTreeSet<NodeId>,
    },
    /// Waiting a few ticks before the next prepare.
    Backoff,
}

struct Round {
    id: u64,
    batch: Vec<Pending>,
    phase: Phase,
    attempts: u32,
    deadline: u64,
    /// A garbage-collection round: needs every acceptor, never batched.
    collect: bool,
}

#[derive(Default)]
struct KeyState {
    queue: VecDeque<Pending>,
    round: Option<Round>,
    /// After a successful 1-RTT accept: the ballot every acceptor of its quorum promised
    /// next, and the value they hold.
    promised_next: Option<(Ballot, Option<Bytes>)>,
    /// The stamp of this key's newest entry in [`Proposer::cached`] (0: none): older entries
    /// of the key there are stale and evict nothing.
    cached_at: u64,
}

/// How many idle keys keep a cached one-round-trip promise (and their value) in memory.
pub const MAX_CACHED_PROMISES: usize = 10_000;

/// Counters for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProposerStats {
    pub rounds: u64,
    pub one_round_trip: u64,
    pub retries: u64,
    pub commands: u64,
    /// Rounds given up at once: their key's acceptors promised a ballot this node does not
    /// follow (within a second of the ceiling, or past the followed limit).
    pub out_of_reach: u64,
}

/// One node's proposer.
pub struct Proposer {
    id: NodeId,
    quorums: Quorums,
    options: Options,
    /// The highest ballot counter seen anywhere (and followed).
    counter: u64,
    /// The highest counter peers take now ([`Ballot::ceiling`]), as the driver last said.
    ceiling: u64,
    now: u64,
    next_round: u64,
    keys: BTreeMap<Bytes, KeyState>,
    /// Keys with a round running: the only ones `tick` looks at.
    active: BTreeSet<Bytes>,
    /// Keys idle with a cached promise, oldest first, each entry stamped (a key used again is
    /// queued again, and only its newest entry counts); beyond [`MAX_CACHED_PROMISES`] the
    /// oldest caches are dropped (the key's next round simply prepares again).
    cached: VecDeque<(Bytes, u64)>,
    /// The last stamp given to an entry of `cached`.
    cache_stamp: u64,
    output: Vec<Output>,
    rng: fastrand::Rng,
    stats: ProposerStats,
    /// Sizes of large values seen per key (from any reply, late ones too), so a key's
    /// prepare waits long enough for promises that carry its value.
    large: HashMap<Bytes, usize>,
}

/// Bytes a command writes into its key's value.
fn written_len(command: &Command) -> usize {
    match command {
        Command::Write(Mutation::Set { value, .. }) => value.len(),
        Command::Write(Mutation::Update { op: crate::store::UpdateOp::Append(tail), .. }) => tail.len(),
        _ => 0,
    }
}

/// Applies a batch of commands to a register's value, in order.
fn apply_batch(key: &Bytes, value: Option<Bytes>, batch: &[Pending]) -> (Option<Bytes>, Vec<Result<Outcome>>) {
    let mut register = Keyspace::new();
    if let Some(v) = value {
        register.insert(key.clone(), v);
    }
    let outcomes = batch
        .iter()
        .map(|p| match &p.command {
            Command::Read => Ok(Outcome::Read(register.get(key).cloned())),
            Command::Write(m) => register.apply(m).map(Outcome::Write),
            Command::Collect => Ok(Outcome::Collected(None)), // filled in when the round ends
        })
        .collect();
    (register.get(key).cloned(), outcomes)
}

impl Proposer {
    /// A proposer for one configuration of `acceptors`, counting ballots from zero.
    pub fn new(id: NodeId, acceptors: Vec<NodeId>, options: Options) -> Self {
        Self::with_quorums(id, Quorums::new(acceptors), options, 0)
    }

    /// A proposer with an explicit quorum system whose ballots start above `counter` (the
    /// durable high-water mark the driver keeps, so a restarted proposer never reuses one).
    pub fn with_quorums(id: NodeId, quorums: Quorums, options: Options, counter: u64) -> Self {
        Self {
            id,
            quorums,
            options,
            counter,
            ceiling: Ballot::MAX_COUNTER,
            now: 0,
            next_round: 0,
            keys: BTreeMap::new(),
            active: BTreeSet::new(),
            cached: VecDeque::new(),
            cache_stamp: 0,
            output: Vec::new(),
            rng: fastrand::Rng::with_seed(u64::from(id)),
            stats: ProposerStats::default(),
            large: HashMap::new(),
        }
    }

    /// The tick by which a phase on `key` moving `bytes` of value must have its quorum.
    fn phase_deadline(&self, key: &Bytes, bytes: usize, timeout: u64) -> u64 {
        let known = self.large.get(key).copied().unwrap_or(0);
        let allowance = match self.options.bytes_per_tick {
            0 => 0,
            rate => (bytes.max(known) as u64) / rate,
        };
        self.now + timeout + allowance
    }

    fn remember_size(&mut self, key: &Bytes, size: usize) {
        if size < LARGE_VALUE {
            self.large.remove(key);
            return;
        }
        if self.large.len() >= MAX_SIZE_HINTS && !self.large.contains_key(key) {
            self.large.clear();
        }
        self.large.insert(key.clone(), size);
    }

    /// The highest ballot counter this proposer has used or seen.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Tells the proposer the highest ballot counter peers take now ([`Ballot::ceiling`]):
    /// it follows ballots only up to [`Ballot::followable`] of it. Without a call, there is
    /// no ceiling ([`Ballot::MAX_COUNTER`]).
    pub fn set_ceiling(&mut self, ceiling: u64) {
        self.ceiling = ceiling;
    }

    /// The highest counter this proposer follows now.
    fn followable(&self) -> u64 {
        Ballot::followable(self.ceiling)
    }

    pub fn stats(&self) -> ProposerStats {
        self.stats
    }

    pub fn quorums(&self) -> &Quorums {
        &self.quorums
    }

    /// Keys with a round running or commands queued.
    pub fn busy_keys(&self) -> usize {
        self.active.len()
    }

    /// Switches to a new quorum system (a membership change). Every cached promise is
    /// dropped; a round still preparing starts over under the new quorums, and a round
    /// whose accept is out answers `Uncertain` — it was counted against the old quorums.
    pub fn set_quorums(&mut self, quorums: Quorums) {
        if quorums == self.quorums {
            return;
        }
        self.quorums = quorums;
        let keys: Vec<Bytes> = self.keys.keys().cloned().collect();
        for key in keys {
            let state = self.keys.get_mut(&key).expect("present");
            state.promised_next = None;
            let accepting = match &state.round {
                None => continue,
                Some(r) => matches!(r.phase, Phase::Accepting { .. }),
            };
            if accepting {
                self.fail_all(&key, Error::Uncertain("the membership changed while the accept was out".into()));
            } else {
                self.send_prepares(&key);
            }
        }
    }

    /// What the driver must do now.
    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.output)
    }

    /// Queues a command on `key`; it runs in the next round for that key. A write that
    /// touches anything but `key` is refused: one round changes one register.
    pub fn submit(&mut self, id: CommandId, key: Bytes, command: Command) {
        if let Command::Write(m) = &command {
            let only_this_key = match m {
                Mutation::Set { key: k, .. } | Mutation::Update { key: k, .. } | Mutation::Remove { key: k, .. } => {
                    *k == key
                }
                Mutation::Del { keys } => keys.iter().all(|k| *k == key),
                Mutation::MultiSet { pairs, .. } => pairs.iter().all(|(k, _)| *k == key),
                Mutation::FlushAll => false,
            };
            if !only_this_key {
                let error = Error::Input("a paxos round changes one key only".into());
                self.output.push(Output::Reply { id, result: Err(error) });
                return;
            }
        }
        self.stats.commands += 1;
        self.keys.entry(key.clone()).or_default().queue.push_back(Pending { id, command });
        self.start_round_if_idle(&key);
    }

    fn start_round_if_idle(&mut self, key: &Bytes) {
        let Some(state) = self.keys.get_mut(key) else { return };
        if state.round.is_some() || state.queue.is_empty() {
            return;
        }
        // A collection runs alone; other commands are batched up to the next collection.
        let collect = matches!(state.queue.front().map(|p| &p.command), Some(Command::Collect));
        let take = if collect {
            1
        } else {
            state.queue.iter().position(|p| p.command == Command::Collect).unwrap_or(state.queue.len())
        };
        let batch: Vec<Pending> = state.queue.drain(..take).collect();
        self.next_round += 1;
        self.stats.rounds += 1;
        let round = Round { id: self.next_round, batch, phase: Phase::Backoff, attempts: 0, deadline: 0, collect };
        let cached = state.promised_next.take().filter(|_| self.options.one_round_trip && !collect);
        self.keys.get_mut(key).expect("present").round = Some(round);
        self.active.insert(key.clone());
        match cached {
            Some((ballot, value)) => {
                // The cached ballot is spent now: a later prepare must go above it.
                self.counter = self.counter.max(ballot.counter);
                self.stats.one_round_trip += 1;
                self.send_accepts(key, ballot, value)
            }
            None => self.send_prepares(key),
        }
    }

    fn send_prepares(&mut self, key: &Bytes) {
        self.counter += 1;
        let ballot = Ballot::new(self.counter, self.id);
        let deadline = self.phase_deadline(key, 0, self.options.phase_timeout);
        self.next_round += 1;
        let phase_id = self.next_round;
        let round = self.keys.get_mut(key).and_then(|s| s.round.as_mut()).expect("a round is running");
        // Every phase gets its own id, so replies to an earlier attempt are never counted.
        round.id = phase_id;
        round.attempts += 1;
        round.deadline = deadline;
        round.phase = Phase::Preparing {
            ballot,
            promises: BTreeMap::new(),
            refused: BTreeSet::new(),
            beyond_reach: BTreeMap::new(),
        };
        let id = round.id;
        for to in self.quorums.all() {
            self.output.push(Output::Send { to, key: key.clone(), round: id, request: Request::Prepare { ballot } });
        }
    }

    /// Computes the new value from `current` and sends it out at `ballot`.
    fn send_accepts(&mut self, key: &Bytes, ballot: Ballot, current: Option<Bytes>) {
        // The new value is at most the current one plus what the batch writes.
        let written: usize = self
            .keys
            .get(key)
            .and_then(|s| s.round.as_ref())
            .map(|r| r.batch.iter().map(|p| written_len(&p.command)).sum())
            .unwrap_or(0);
        let moving = current.as_ref().map_or(0, Bytes::len) + written;
        self.remember_size(key, moving);
        // A collection waits for every acceptor, and the key's commands queue behind it: one
        // acceptor that cannot answer (away, restarting, its connection just broken) would
        // hold them for the whole accept timeout. It gives up after a prepare's timeout
        // instead (the key stays a tombstone, collected by a later pass).
        let collecting = self.keys.get(key).and_then(|s| s.round.as_ref()).is_some_and(|r| r.collect);
        let timeout = if collecting { self.options.phase_timeout } else { self.options.accept_timeout };
        let deadline = self.phase_deadline(key, moving, timeout);
        let followable = self.followable();
        self.next_round += 1;
        let phase_id = self.next_round;
        let round = self.keys.get_mut(key).and_then(|s| s.round.as_mut()).expect("a round is running");
        if round.collect && current.is_some() {
            // The key holds a value again: nothing to collect.
            self.finish(key, vec![Ok(Outcome::Collected(None))]);
            return;
        }
        // A ballot at or past what this node follows (it followed one a second below the
        // ceiling, and has prepared since) takes no promise of its successor: acceptors
        // refuse a promise above their ceiling (`wire::message_from`). Below it, the
        // successor is a second below the ceiling.
        let promise_next = self.options.one_round_trip && !round.collect && ballot.counter < followable;
        round.id = phase_id;
        let (value, outcomes) = apply_batch(key, current, &round.batch);
        round.deadline = deadline;
        round.phase = Phase::Accepting {
            ballot,
            value: value.clone(),
            outcomes,
            acks: BTreeSet::new(),
            refused: BTreeSet::new(),
            doubtful: BTreeSet::new(),
        };
        let id = round.id;
        for to in self.quorums.all() {
            let request = Request::Accept { ballot, value: value.clone(), promise_next };
            self.output.push(Output::Send { to, key: key.clone(), round: id, request });
        }
    }

    /// Ends the running round on `key`, answering its batch, and starts the next one.
    fn finish(&mut self, key: &Bytes, results: Vec<Result<Outcome>>) {
        let state = self.keys.get_mut(key).expect("present");
        let round = state.round.take().expect("a round is running");
        self.active.remove(key);
        for (pending, result) in round.batch.into_iter().zip(results) {
            self.output.push(Output::Reply { id: pending.id, result });
        }
        self.start_round_if_idle(key);
        if let Some(state) = self.keys.get_mut(key)
            && state.round.is_none()
            && state.queue.is_empty()
        {
            if state.promised_next.is_none() {
                self.keys.remove(key);
            } else {
                self.cache_stamp += 1;
                state.cached_at = self.cache_stamp;
                self.cached.push_back((key.clone(), self.cache_stamp));
                self.evict_idle_caches();
            }
        }
    }

    /// Drops every cached promise. The driver asks for it when its node's routing changes (a
    /// home bypassed or taken back): another proposer may then have run rounds on a key this
    /// one cached, and an accept on a stale promise, refused by the live acceptors, would wait
    /// out `accept_timeout` for a hung one's answer before it could give up.
    pub fn forget_promises(&mut self) {
        for (key, _) in std::mem::take(&mut self.cached) {
            if let Some(state) = self.keys.get_mut(&key) {
                state.promised_next = None;
                state.cached_at = 0;
                if state.round.is_none() && state.queue.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// Drops the cached promise of `key` (see [`Proposer::forget_promises`]).
    pub fn forget_promise(&mut self, key: &Bytes) {
        if let Some(state) = self.keys.get_mut(key) {
            state.promised_next = None;
        }
    }

    /// Drops the oldest cached promises of idle keys beyond the limit. An entry of a key
    /// cached again since is stale: dropped, the key's promise kept. (Before the stamps, a key
    /// written more than [`MAX_CACHED_PROMISES`] times met its own oldest entry, and lost its
    /// promise whenever it was idle then: after 10,000 writes, every write to a key written
    /// one at a time paid a prepare round, a second fsync'd round trip.)
    fn evict_idle_caches(&mut self) {
        while self.cached.len() > MAX_CACHED_PROMISES {
            let Some((key, stamp)) = self.cached.pop_front() else { break };
            if let Some(state) = self.keys.get(&key)
                && state.cached_at == stamp
                && state.round.is_none()
                && state.queue.is_empty()
            {
                self.keys.remove(&key);
            }
        }
    }

    fn fail_all(&mut self, key: &Bytes, error: Error) {
        let n = self.keys[key].round.as_ref().map_or(0, |r| r.batch.len());
        self.finish(key, vec![Err(error); n]);
    }

    /// An accept whose fate is unknown. A batch of reads only wrote back the value it read, so
    /// whether or not that accept survives changes nothing: it is retried. Anything else
    /// answers `Uncertain`.
    fn doubtful(&mut self, key: &Bytes, why: &str) {
        let reads_only =
            self.keys[key].round.as_ref().is_some_and(|r| r.batch.iter().all(|p| p.command == Command::Read));
        if reads_only {
            self.retry_or_give_up(key, why);
        } else {
            self.fail_all(key, Error::Uncertain(why.into()));
        }
    }

    /// Retries the round from a fresh prepare after a short random pause, or gives up with
    /// `TryAgain`.
    fn retry_or_give_up(&mut self, key: &Bytes, why: &str) {
        let attempts = self.keys[key].round.as_ref().map_or(0, |r| r.attempts);
        if attempts >= self.options.max_attempts {
            self.fail_all(key, Error::TryAgain(format!("no quorum after {attempts} attempts: {why}")));
            return;
        }
        self.stats.retries += 1;
        let pause = self.rng.u64(0..=u64::from(attempts) * self.options.backoff);
        if pause == 0 {
            self.send_prepares(key);
        } else {
            let round = self.keys.get_mut(key).and_then(|s| s.round.as_mut()).expect("a round is running");
            self.next_round += 1;
            round.id = self.next_round;
            round.phase = Phase::Backoff;
            round.deadline = self.now + pause;
        }
    }

    /// Handles an acceptor's reply to round `round` on `key`.
    pub fn step(&mut self, from: NodeId, key: &Bytes, round: u64, response: Response) {
        let followable = self.followable();
        let unfollowed = match &response {
            Response::Conflict { seen, .. } if seen.counter > followable => Some(*seen),
            _ => None,
        };
        if let Response::Conflict { seen, .. } = &response
            && unfollowed.is_none()
        {
            self.counter = self.counter.max(seen.counter);
        }
        // A ballot beyond reach (past the followed limit, or within a second of the ceiling:
        // a duel) is not followed, so the node's other keys keep ballots every peer takes;
        // this key's round gives up at once when it cannot get a quorum without those
        // acceptors, since no ballot this node makes before the ceiling rises gets past them.
        // One only just past what it follows ([`Ballot::REACH_SLACK`]: an honest proposer's,
        // made a moment ago above a ballot it followed) is not followed yet either, but the
        // round retries: the ceiling passes it before the backoff ends.
        let beyond_reach = unfollowed.filter(|seen| seen.counter > followable.saturating_add(Ballot::REACH_SLACK));
        if let Response::Promised { value, .. } = &response {
            // Late replies too: a retried prepare then waits long enough for this value.
            self.remember_size(key, value.as_ref().map_or(0, Bytes::len));
        }
        let all = self.quorums.all();
        if !all.contains(&from) {
            return; // an acceptor outside the configuration (a reply from before a change)
        }
        let Some(r) = self.keys.get_mut(key).and_then(|s| s.round.as_mut()).filter(|r| r.id == round) else {
            return; // a late reply to a round that is over
        };
        let collect = r.collect;
        enum Next {
            Wait,
            Accept(Ballot, Option<Bytes>),
            Retry(&'static str),
            GiveUp(Ballot),
            Done(Ballot, Option<Bytes>, Vec<Result<Outcome>>),
            Uncertain,
        }
        let next = match (&mut r.phase, response) {
            (Phase::Preparing { ballot, promises, refused, beyond_reach }, Response::Promised { accepted, value }) => {
                refused.remove(&from);
                beyond_reach.remove(&from);
                promises.insert(from, (accepted, value));
                let granted: BTreeSet<NodeId> = promises.keys().copied().collect();
                if self.quorums.is_quorum(&granted) {
                    let current = promises.values().max_by_key(|(b, _)| *b).and_then(|(_, v)| v.clone());
                    Next::Accept(*ballot, current)
                } else {
                    Next::Wait
                }
            }
            (Phase::Preparing { refused, promises, beyond_reach: out_of_reach, .. }, Response::Conflict { .. }) => {
                if !promises.contains_key(&from) {
                    refused.insert(from);
                    if let Some(seen) = beyond_reach {
                        out_of_reach.insert(from, seen);
                    }
                }
                if self.quorums.reachable_without(refused) {
                    Next::Wait
                } else if self.quorums.reachable_without(&out_of_reach.keys().copied().collect()) {
                    Next::Retry("prepare refused")
                } else {
                    Next::GiveUp(out_of_reach.values().copied().max().unwrap_or_default())
                }
            }
            (
                Phase::Accepting { acks, refused, doubtful, ballot, value, outcomes },
                Response::Accepted | Response::Conflict { landed: Landed::Yes, .. },
            ) => {
                // An accept refused now but taken earlier (its reply lost) counts: a value is
                // chosen once a quorum has accepted its ballot, whenever that happened.
                refused.remove(&from);
                doubtful.remove(&from);
                acks.insert(from);
                let reached = match self.options.unsafe_accept_quorum {
                    _ if collect => acks.len() == all.len(),
                    Some(n) => acks.len() >= n,
                    None => self.quorums.is_quorum(acks),
                };
                if reached {
                    Next::Done(*ballot, value.clone(), std::mem::take(outcomes))
                } else if acks.len() + refused.len() + doubtful.len() == all.len() {
                    Next::Uncertain // everyone answered, too few took it
                } else {
                    Next::Wait
                }
            }
            (Phase::Accepting { acks, refused, doubtful, .. }, Response::Conflict { landed, .. }) => {
                if !acks.contains(&from) {
                    if landed == Landed::No {
                        refused.insert(from)
                    } else {
                        doubtful.insert(from)
                    };
                }
                if refused.len() == all.len() {
                    // Refused everywhere: the value exists nowhere, so the batch never happened.
                    Next::Retry("accept refused by every acceptor")
                } else if refused.len() + doubtful.len() + acks.len() == all.len() {
                    Next::Uncertain
                } else {
                    Next::Wait
                }
            }
            _ => Next::Wait, // a promise after the accept phase began, or a duplicate
        };
        match next {
            Next::Wait => {}
            Next::Accept(ballot, current) => self.send_accepts(key, ballot, current),
            Next::Retry(why) => self.retry_or_give_up(key, why),
            Next::GiveUp(seen) => {
                self.stats.out_of_reach += 1;
                let why = format!(
                    "the key's acceptors promised ballot {}.{}, past the {followable} this node follows now \
                     (a ballot within a second of the clock's ceiling: a peer duelling for the key); try again",
                    seen.counter, seen.node
                );
                self.fail_all(key, Error::TryAgain(why));
            }
            Next::Done(ballot, value, mut outcomes) => {
                let state = self.keys.get_mut(key).expect("present");
                if collect {
                    outcomes = vec![Ok(Outcome::Collected(Some(ballot)))];
                } else {
                    state.promised_next = self.options.one_round_trip.then(|| (ballot.successor(), value));
                }
                self.finish(key, outcomes);
            }
            Next::Uncertain => self.doubtful(key, "accept reached no quorum; the value may still be adopted"),
        }
    }

    /// Advances the clock one tick; phases past their deadline give up or retry, and
    /// rounds whose pause is over prepare again.
    pub fn tick(&mut self) {
        self.now += 1;
        let due: Vec<(Bytes, u8)> = self
            .active
            .iter()
            .filter_map(|k| self.keys.get(k).map(|s| (k, s)))
            .filter_map(|(k, s)| {
                s.round.as_ref().filter(|r| r.deadline <= self.now).map(|r| {
                    let kind = match r.phase {
                        Phase::Preparing { .. } => 0,
                        Phase::Accepting { .. } => 1,
                        Phase::Backoff => 2,
                    };
                    (k.clone(), kind)
                })
            })
            .collect();
        for (key, kind) in due {
            match kind {
                0 => self.retry_or_give_up(&key, "prepare timed out"),
                1 => self.doubtful(&key, "accept timed out; the value may have been chosen"),
                _ => self.send_prepares(&key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Hand-played message sequences for the cases a random simulation rarely reaches.

    use super::*;
    use crate::mode::paxos::acceptor::{Slot, handle};
    use crate::store::{SetOptions, UpdateOp};

    type Acceptors = BTreeMap<NodeId, Slot>;
    type Sent = (NodeId, u64, Request);

    fn key() -> Bytes {
        Bytes::from_static(b"k")
    }

    fn set(v: &'static str) -> Command {
        Command::Write(Mutation::Set {
            key: key(),
            value: Bytes::from_static(v.as_bytes()),
            options: SetOptions::default(),
        })
    }

    fn incr() -> Command {
        Command::Write(Mutation::Update { key: key(), op: UpdateOp::IncrBy(1) })
    }

    /// Splits a proposer's output into requests to send and replies to clients.
    fn drain(p: &mut Proposer) -> (Vec<Sent>, Vec<(CommandId, Result<Outcome>)>) {
        let (mut sends, mut replies) = (Vec::new(), Vec::new());
        for out in p.take_output() {
            match out {
                Output::Send { to, round, request, .. } => sends.push((to, round, request)),
                Output::Reply { id, result } => replies.push((id, result)),
            }
        }
        (sends, replies)
    }

    /// Delivers `sends` to the acceptors in `to` (in that order) with their replies, and
    /// keeps going with whatever the proposer sends next, until it answers or stalls.
    /// Requests to other acceptors are returned, undelivered.
    fn pump(
        p: &mut Proposer,
        acceptors: &mut Acceptors,
        sends: Vec<Sent>,
        to: &[NodeId],
    ) -> (Vec<Sent>, Vec<(CommandId, Result<Outcome>)>) {
        let (mut held, mut replies, mut queue) = (Vec::new(), Vec::new(), sends);
        while !queue.is_empty() {
            let mut next = Vec::new();
            for &node in to {
                for (dest, round, request) in queue.iter().filter(|s| s.0 == node) {
                    let (response, _) = handle(acceptors.get_mut(dest).unwrap(), request);
                    p.step(*dest, &key(), *round, response);
                    let (s, r) = drain(p);
                    next.extend(s);
                    replies.extend(r);
                }
            }
            held.extend(queue.into_iter().filter(|s| !to.contains(&s.0)));
            queue = next;
        }
        (held, replies)
    }

    fn acceptors() -> Acceptors {
        [1, 2, 3].into_iter().map(|n| (n, Slot::default())).collect()
    }

    fn proposer(id: NodeId, one_round_trip: bool) -> Proposer {
        Proposer::new(id, vec![1, 2, 3], Options { one_round_trip, backoff: 0, ..Options::default() })
    }

    fn read(acceptors: &mut Acceptors, order: &[NodeId]) -> Option<Bytes> {
        let mut q = proposer(3, false);
        q.submit(99, key(), Command::Read);
        let (sends, _) = drain(&mut q);
        let (_, replies) = pump(&mut q, acceptors, sends, order);
        match &replies[..] {
            [(99, Ok(Outcome::Read(v)))] => v.clone(),
            other => panic!("the read did not complete: {other:?}"),
        }
    }

    #[test]
    fn a_ballot_past_the_followed_limit_spends_its_key_only() {
        let mut acc = acceptors();
        for slot in acc.values_mut() {
            handle(slot, &Request::Prepare { ballot: Ballot::new(Ballot::MAX_COUNTER, 9) });
        }
        let mut p = proposer(1, false);
        p.submit(1, key(), set("v"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut acc, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(1, Err(Error::TryAgain(_)))]), "{replies:?}");
        assert!(p.counter() < Ballot::MAX_FOLLOWED, "the node-wide counter did not follow: {}", p.counter());
        // A ballot within the limit is followed, and leaves room.
        let mut acc = acceptors();
        for slot in acc.values_mut() {
            handle(slot, &Request::Prepare { ballot: Ballot::new(Ballot::MAX_FOLLOWED, 9) });
        }
        p.submit(2, key(), set("v"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut acc, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(2, Ok(_))]), "{replies:?}");
        assert_eq!(Ballot::resumable_counter(Ballot::MAX_COUNTER + 7), Ballot::MAX_FOLLOWED);
        assert_eq!(Ballot::resumable_counter(Ballot::MAX_COUNTER), Ballot::MAX_COUNTER);
        assert_eq!(Ballot::resumable_counter(12), 12);
    }

    /// The duel of issue 25: a holder of the secret makes acceptors promise a key at exactly
    /// the clock's ceiling. The proposer does not follow (its counter would then make every
    /// key's ballots above what peers take), answers that key `TryAgain` after one prepare,
    /// and its other keys keep their one-round-trip ballots.
    #[test]
    fn a_key_promised_at_the_ceiling_fails_at_once_and_spends_no_other_keys_ballots() {
        let ceiling = Ballot::CEILING_FLOOR << 2;
        assert_eq!(Ballot::followable(ceiling), ceiling - Ballot::CEILING_RATE);
        assert_eq!(Ballot::followable(Ballot::MAX_COUNTER), Ballot::MAX_FOLLOWED);
        let mut pinned = acceptors();
        for slot in pinned.values_mut() {
            handle(slot, &Request::Prepare { ballot: Ballot::new(ceiling, 9) });
        }
        let mut p = proposer(1, true);
        p.set_ceiling(ceiling);
        p.submit(1, key(), set("v"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut pinned, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(1, Err(Error::TryAgain(_)))]), "{replies:?}");
        assert_eq!(p.stats().retries, 0, "no retry: no ballot this node makes now gets past the promise");
        assert_eq!(p.stats().out_of_reach, 1);
        assert!(p.counter() < Ballot::followable(ceiling), "the node-wide counter did not follow: {}", p.counter());

        // Another key (fresh acceptors) still gets ballots every peer takes, and promises
        // its successor (the one-round-trip optimisation).
        let mut other = acceptors();
        p.submit(2, key(), set("w"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut other, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(2, Ok(_))]), "{replies:?}");
        p.submit(3, key(), set("x"));
        let (sends, _) = drain(&mut p);
        assert!(
            sends.iter().all(|(_, _, r)| matches!(r, Request::Accept { promise_next: true, .. })),
            "the next command skips the prepare: {sends:?}"
        );
        pump(&mut p, &mut other, sends, &[1, 2, 3]);

        // A second later the duelled ballot is followed, and the key is writable.
        p.set_ceiling(ceiling + Ballot::CEILING_RATE);
        p.submit(4, key(), set("y"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut pinned, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(4, Ok(_))]), "{replies:?}");
    }

    /// Another honest proposer followed a duelled ballot at exactly what this one follows now
    /// and made its next ballot a few counters above it, on a key both ran (a stand-in after
    /// a hedge). That ballot is not followed yet, but the key is not given up on either: the
    /// round retries, and once the ceiling rose past the ballot (microseconds later) it is
    /// followed and the write goes through. Before, the write failed at once (`TryAgain`),
    /// and with a ceiling that rose a second at a time, every write meeting it until then.
    #[test]
    fn a_ballot_just_past_what_is_followed_is_retried_not_given_up() {
        let ceiling = Ballot::CEILING_FLOOR << 2;
        let honest = Ballot::new(Ballot::followable(ceiling) + 3, 3);
        let mut acc = acceptors();
        for slot in acc.values_mut() {
            handle(slot, &Request::Prepare { ballot: honest });
        }
        let mut p = Proposer::new(1, vec![1, 2, 3], Options::default());
        p.set_ceiling(ceiling);
        p.submit(1, key(), set("v"));
        let (sends, _) = drain(&mut p);
        let mut later = Vec::new();
        for (to, round, request) in sends {
            let (response, _) = handle(acc.get_mut(&to).unwrap(), &request);
            p.step(to, &key(), round, response);
            let (s, replies) = drain(&mut p);
            assert!(replies.is_empty(), "not given up: {replies:?}");
            later.extend(s);
        }
        assert_eq!(p.stats().out_of_reach, 0);
        assert_eq!(p.stats().retries, 1);
        assert!(p.counter() < honest.counter, "not followed yet: {}", p.counter());
        // The ceiling rises past the ballot: the retry follows it and writes.
        p.set_ceiling(ceiling + 3);
        let mut answered = Vec::new();
        for _ in 0..100 {
            let (_, replies) = pump(&mut p, &mut acc, std::mem::take(&mut later), &[1, 2, 3]);
            answered.extend(replies);
            if !answered.is_empty() {
                break;
            }
            p.tick();
            later = drain(&mut p).0;
        }
        assert!(matches!(answered[..], [(1, Ok(_))]), "{answered:?}");
        assert!(p.counter() > honest.counter);
    }

    /// One acceptor held at the ceiling does not fail the key: the others are a quorum.
    #[test]
    fn a_key_with_one_acceptor_at_the_ceiling_is_written_by_the_others() {
        let ceiling = Ballot::CEILING_FLOOR << 2;
        let mut acc = acceptors();
        handle(acc.get_mut(&1).unwrap(), &Request::Prepare { ballot: Ballot::new(ceiling, 9) });
        let mut p = proposer(2, true);
        p.set_ceiling(ceiling);
        p.submit(1, key(), set("v"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut acc, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(1, Ok(_))]), "{replies:?}");
        assert_eq!(p.stats().out_of_reach, 0);
    }

    /// A key written one command at a time, more often than the cache holds keys, keeps its
    /// promise: every write after the first is one round trip (its own older cache entries
    /// evict nothing). Other keys past the limit are still evicted, oldest first.
    #[test]
    fn a_key_written_many_times_keeps_its_promise_and_the_cache_stays_bounded() {
        let mut acc = acceptors();
        let mut p = proposer(1, true);
        let writes = MAX_CACHED_PROMISES as u64 + 50;
        for id in 1..=writes {
            p.submit(id, key(), set("v"));
            let (sends, _) = drain(&mut p);
            let (_, replies) = pump(&mut p, &mut acc, sends, &[1, 2, 3]);
            assert!(matches!(replies[..], [(i, Ok(_))] if i == id), "{replies:?}");
        }
        assert_eq!(p.stats().one_round_trip, writes - 1, "only the first write prepared");
        assert!(p.cached.len() <= MAX_CACHED_PROMISES);
        // Many other keys: the oldest idle ones lose their promise, the cache stays bounded.
        for i in 0..(MAX_CACHED_PROMISES + 10) {
            let k = Bytes::from(format!("other{i}"));
            p.submit(1_000_000 + i as u64, k.clone(), Command::Read);
            // Promise every prepare, accept every accept: a fresh key on fresh acceptors.
            for out in p.take_output() {
                if let Output::Send { to, round, request, .. } = out {
                    let mut slot = Slot::default();
                    let (response, _) = handle(&mut slot, &request);
                    p.step(to, &k, round, response);
                    for out in p.take_output() {
                        if let Output::Send { to, round, request, .. } = out {
                            let (response, _) = handle(&mut slot, &request);
                            p.step(to, &k, round, response);
                        }
                    }
                }
            }
        }
        assert!(p.cached.len() <= MAX_CACHED_PROMISES);
        assert!(p.keys.len() <= MAX_CACHED_PROMISES + 1, "{}", p.keys.len());
    }

    #[test]
    fn a_spent_one_round_trip_ballot_is_never_reused_for_another_value() {
        let mut acc = acceptors();
        let mut p = proposer(1, true);
        p.submit(1, key(), set("5"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut acc, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(1, Ok(_))]));
        // INCR goes out on the cached ballot, reaches only acceptor 3, and times out.
        p.submit(2, key(), incr());
        let (sends, _) = drain(&mut p);
        pump(&mut p, &mut acc, sends, &[3]);
        for _ in 0..=Options::default().accept_timeout {
            p.tick();
        }
        assert!(matches!(drain(&mut p).1[..], [(2, Err(Error::Uncertain(_)))]));
        // SET 50 must use a fresh ballot, so no acceptor can hold "6" under the ballot of "50".
        p.submit(3, key(), set("50"));
        let (sends, _) = drain(&mut p);
        let (_, replies) = pump(&mut p, &mut acc, sends, &[1, 2, 3]);
        assert!(matches!(replies[..], [(3, Ok(_))]));
        assert_eq!(read(&mut acc, &[3, 2, 1]), Some(Bytes::from_static(b"50")));
    }

    #[test]
    fn an_accept_refused_everywhere_after_it_may_have_landed_is_uncertain_not_retried() {
        let mut acc = acceptors();
        let mut p = proposer(1, true);
        p.submit(1, key(), set("5"));
        let (sends, _) = drain(&mut p);
        pump(&mut p, &mut acc, sends, &[1, 2, 3]);
        // INCR's accept lands on acceptor 1, whose reply is lost; the rest is delayed.
        p.submit(2, key(), incr());
        let (sends, _) = drain(&mut p);
        let (to_one, held): (Vec<Sent>, Vec<Sent>) = sends.iter().cloned().partition(|s| s.0 == 1);
        assert_eq!(handle(acc.get_mut(&1).unwrap(), &to_one[0].2).0, Response::Accepted);
        // Another proposer prepares everywhere, adopts "6" from acceptor 1, accepts it on 1 and 2.
        let mut q = proposer(3, false);
        q.submit(9, key(), Command::Read);
        let (prepares, _) = drain(&mut q);
        let (_, q_replies) = pump(&mut q, &mut acc, prepares, &[1, 2, 3]);
        assert!(matches!(&q_replies[..], [(9, Ok(Outcome::Read(Some(v))))] if v.as_ref() == b"6"));
        // The delayed accepts (and a duplicate of the one to acceptor 1) are now refused.
        let mut late = held;
        late.extend(to_one);
        let (_, replies) = pump(&mut p, &mut acc, late, &[2, 3, 1]);
        assert!(
            matches!(replies[..], [(2, Err(Error::Uncertain(_)))]),
            "INCR may have been applied through acceptor 1: it must be uncertain, got {replies:?}"
        );
        assert_eq!(read(&mut acc, &[1, 2, 3]), Some(Bytes::from_static(b"6")), "applied once, not twice");
    }
}
