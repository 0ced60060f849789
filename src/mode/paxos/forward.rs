//! Home routing: a command runs at its key's home proposer; while the home is away (down,
//! cut off, hung, stopping) at the next member in the key's order that is up, the same for
//! every node, so that one proposer runs a key at a time (safe with any number of proposers
//! in a leaderless protocol, but two of them duel).
//!
//! ## The hedge: a hung home
//!
//! A crashed home refuses the connection and a cut-off one is refused by the partition layer:
//! the command then certainly did not run there, and runs here at once. A *hung* home (a
//! stopped process, a frozen container) is worse: its kernel still takes the forward into a
//! socket buffer, and the peer plane's keepalive notices only after a second or two. So a
//! forward unanswered for a few times the recent forward latency
//! ([`ForwardLatency::hedge_after`]: 5 × the median of the last 64, within
//! [`HEDGE_FLOOR`]–[`HEDGE_CAP`]) asks the home a ping. A home that answers it is alive and
//! only slow (a long fsync): the forward is waited for as before, and the ping repeated while
//! it lasts. So is a home that refuses the ping because it is stopping
//! ([`crate::peer::is_stopping`]), or that said it is leaving or has just left
//! ([`super::presence`]): it is alive, and ends the commands it took before it leaves — only
//! silence is a hang. A home that leaves [`HUNG_PINGS`] pings in a row unanswered for [`HUNG_PING`] each is hung: it is bypassed (marked
//! down, as a failed call marks it, until it answers a ping again), so every later command for
//! its keys goes to its stand-in ([`Node::run`]: the same node from every node, so that one
//! proposer runs the key while its home is away), and the forward in flight is hedged:
//!
//! * A **read** is routed anew (to the stand-in). It changes nothing: if the home also runs it when it wakes, its
//!   round writes back the value it read and answers nobody.
//! * A **write** answers `-UNCERTAIN` at once, instead of after the keepalive; it is **not**
//!   run here. The forward sits in the hung home's socket buffer (or its proposer's queue, or
//!   its accept in flight) and runs when the home wakes, and nothing tells that late run that
//!   the command already took effect: a register holds a value, not the ids of the commands
//!   that made it. Run here as well, an INCR would count twice, and even a SET, replayed after
//!   a later write, would bring an overwritten value back — not linearizable. So each command
//!   is either forwarded or run here, never both, and a write is applied at most once; the
//!   client of the one write in flight hears that its outcome is unknown (the error contract
//!   allows the home's late run), and its retry goes to the stand-in. Running the write again
//!   would need the register to remember the ids of the commands applied to it (a
//!   deduplication table carried in the replicated value, so that either run sees the other).
//!
//! Bypassing a home (or taking it back) also drops this node's cached one-round-trip promises
//! ([`Proposer::forget_promises`](super::proposer::Proposer::forget_promises)): the home's
//! rounds since made them stale, and an accept on a stale promise is refused by the live
//! acceptors but waits for the hung one's answer until the accept times out (2 s). A stand-in
//! that gets a key from a node that bypassed its home before it did so itself drops that
//! key's cached promise (`service`).
//!
//! A hung home thus costs its keys about `hedge_after` + [`HUNG_PINGS`] × [`HUNG_PING`] (about 0.65 s with an
//! idle machine's latencies) where the keepalive cost 1–2 s; a home wrongly found hung (a ping
//! slower than [`HUNG_PING`] twice in a row) costs one write an `-UNCERTAIN` and its keys a second of
//! contended local rounds, never correctness: CASPaxos orders the two proposers' rounds by
//! ballot.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::proposer::{Command, Outcome};
use super::wire;
use crate::error::{Error, Result};
use crate::node::lock;
use crate::peer::{self, proto};

use super::ballot::NodeId;
use super::network::transfer_time;
use super::node::Node;

/// How long a forwarded command may take at its home (plus the time its bytes take to move).
/// A hung home is not waited for (see the module doc); this bounds a home that is alive and
/// answers pings but does not finish the command.
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);
/// A forward is hedged after at least this long (the median of a healthy cluster's forwards
/// is a millisecond or two, and a loaded machine's scheduling hiccups are tens).
pub(super) const HEDGE_FLOOR: Duration = Duration::from_millis(40);
/// ... and after at most this long, however slow recent forwards were.
pub(super) const HEDGE_CAP: Duration = Duration::from_millis(250);
/// The hedge waits this many times the median recent forward.
pub(super) const HEDGE_MULTIPLE: u32 = 5;
/// A home that does not answer a ping within this long is hung. A ping touches no disk, so
/// an alive home answers it in well under a millisecond even while its fsyncs are slow; the
/// margin is for a loaded machine, where 100 ms wrongly found busy homes hung (each such
/// false alarm costs a write an `-UNCERTAIN` and its key a duel with the stand-in).
pub(super) const HUNG_PING: Duration = Duration::from_millis(300);
/// ... and this many pings in a row go unanswered.
pub(super) const HUNG_PINGS: u32 = 2;
/// A ping's timeout that fires this much late means this node was starved, not the home hung.
pub(super) const STARVED: Duration = Duration::from_millis(100);
/// How often a home that answered the ping is asked again while the forward lasts.
pub(super) const PING_AGAIN: Duration = Duration::from_millis(200);
/// Forward latencies remembered for the median.
const LATENCY_SAMPLES: usize = 64;

/// The latencies of this node's recent forwards that were answered.
#[derive(Default)]
pub(super) struct ForwardLatency {
    samples: std::sync::Mutex<VecDeque<Duration>>,
}

impl ForwardLatency {
    fn record(&self, took: Duration) {
        let mut samples = lock(&self.samples);
        if samples.len() == LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(took);
    }

    /// How long a forward goes unanswered before its home is asked whether it is alive.
    pub(super) fn hedge_after(&self) -> Duration {
        let mut sorted: Vec<Duration> = lock(&self.samples).iter().copied().collect();
        if sorted.is_empty() {
            return HEDGE_CAP;
        }
        let middle = sorted.len() / 2;
        let (_, median, _) = sorted.select_nth_unstable(middle);
        (*median * HEDGE_MULTIPLE).clamp(HEDGE_FLOOR, HEDGE_CAP)
    }
}

impl Node {
    /// Runs a command at the first member of its key's order that is up: its home, or the
    /// next one (its stand-in) while the home is away. Every node then sends an away home's
    /// keys to the same stand-in instead of each running them itself: two proposers on one
    /// key refuse each other, and with an acceptor hung every refused accept waits out the
    /// proposer's accept timeout for the hung one's answer. This node is always up to itself,
    /// so the walk ends here at the latest.
    pub(super) async fn run(&self, key: Bytes, command: Command) -> Result<Outcome> {
        let homes = self.homes(&key);
        let home = homes.first().copied();
        for candidate in homes {
            if candidate == self.id {
                break;
            }
            if self.is_down(candidate) {
                // A leaving node finishes what it took before its keys run elsewhere.
                self.wait_while_leaving(candidate).await;
                continue;
            }
            if let Some(outcome) = self.forward(candidate, &key, &command).await {
                return outcome;
            }
            // Refused because it is stopping: as if it had said so (see above).
            self.wait_while_leaving(candidate).await;
        }
        if home.is_some_and(|h| h != self.id) {
            self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        self.propose(key, command).await
    }

    /// The member `key` runs at now, as this node routes it ([`Node::run`]): the first in its
    /// order that is up, or this node.
    pub(super) fn runs_at(&self, key: &[u8]) -> Option<NodeId> {
        self.homes(key).into_iter().find(|candidate| *candidate == self.id || !self.is_down(*candidate))
    }

    /// Runs a command at `home`. `None`: it certainly did not run there (or it is a read),
    /// and `home` is bypassed from now on: the caller tries the next member.
    async fn forward(&self, home: NodeId, key: &Bytes, command: &Command) -> Option<Result<Outcome>> {
        let request = match wire::forward_to(self.id, key.clone(), command) {
            Ok(request) => request,
            Err(e) => return Some(Err(e)),
        };
        let mut client = match self.client(home) {
            Ok(client) => client,
            Err(e) => return Some(Err(e)),
        };
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let transfer = transfer_time(prost::Message::encoded_len(&request));
        let deadline = FORWARD_TIMEOUT + transfer;
        let started = Instant::now();
        let call = tokio::time::timeout(deadline, client.forward(request));
        let answered = tokio::select! {
            biased;
            answered = call => answered,
            // A large value takes its transfer time before the home can answer at all.
            () = self.until_hung(home, self.forward_latency.hedge_after() + transfer) => {
                // Hedged: the forward is dropped (its stream reset), the home bypassed.
                self.stats.hedged.fetch_add(1, Ordering::Relaxed);
                antithesis_sdk::assert_sometimes!(true, "paxos: a forward to a hung home was hedged");
                if *command == Command::Read {
                    // Routed anew: the home is bypassed now.
                    return None;
                }
                return Some(Err(Error::Uncertain(format!(
                    "n{home} did not answer the forwarded command, nor a ping: it may run it when it wakes"
                ))));
            }
        };
        let failure = match answered {
            Ok(Ok(reply)) => {
                self.forward_latency.record(started.elapsed());
                return Some(wire::outcome_from(reply.into_inner()));
            }
            Ok(Err(status)) => {
                if peer::is_stopping(&status) {
                    // Refused, and alive: it ends what it took before it leaves.
                    self.note_leaving(home);
                }
                peer::CallError::from_status(&status)
            }
            Err(_) => {
                // The home answers pings but not this command: running it elsewhere too would
                // only duel with it.
                let why = format!("n{home} did not answer the forwarded command in time");
                return Some(if *command == Command::Read {
                    Err(Error::TryAgain(why))
                } else {
                    Err(Error::Uncertain(why))
                });
            }
        };
        let error_kind = failure.kind();
        match failure {
            peer::CallError::NotSent(why) | peer::CallError::Refused(why) => {
                // Certainly not run at the home: run it at the next member.
                tracing::debug!(peer = home, error_kind, "forward not sent ({why}); running it at the next member");
                antithesis_sdk::assert_sometimes!(true, "paxos: a forward to an unreachable home ran elsewhere");
                self.mark_down(home);
                None
            }
            peer::CallError::MaybeSent(why) => {
                // The connection failed after the command was sent (reset, or the keepalive
                // found the home hung): bypass the home for a while.
                self.mark_down(home);
                if *command == Command::Read {
                    // A read changes nothing: running it again elsewhere is safe.
                    None
                } else {
                    Some(Err(Error::Uncertain(format!("forward to n{home}: {why}"))))
                }
            }
        }
    }

    /// Completes once `home` is found hung: after `after`, and then every [`PING_AGAIN`], it
    /// is asked a ping, and [`HUNG_PINGS`] in a row unanswered within [`HUNG_PING`] mark it down. A home another
    /// forward already marked down counts at once, unless it is stopping. Never completes
    /// while the home answers, or refuses because it is stopping, or is leaving.
    async fn until_hung(&self, home: NodeId, after: Duration) {
        tokio::time::sleep(after).await;
        // Whether the home said (by a note or a refused ping) that it is stopping: then it is
        // down to this node's routing, and alive.
        let mut stopping = false;
        loop {
            if self.is_leaving(home) || self.left_lately(home) {
                // A home stopping gracefully finishes the commands it took before it says it
                // has left (its pings are refused meanwhile), and its answer to this one is
                // then on its way, or its connection closes as it exits: not hedged.
                stopping = true;
                tokio::time::sleep(PING_AGAIN).await;
                continue;
            }
            if self.is_down(home) && !stopping {
                return;
            }
            let Ok(mut client) = self.client(home) else { return std::future::pending().await };
            // Two pings in a row unanswered: one alone, on a loaded machine, is a stall of the
            // home's scheduler more often than a hang.
            let mut unanswered = 0;
            while unanswered < HUNG_PINGS {
                let asked = Instant::now();
                let ping = tokio::time::timeout(HUNG_PING, client.ping(proto::PingRequest { from: self.id }));
                match ping.await {
                    Ok(Ok(_)) => break,
                    Ok(Err(status)) if peer::is_stopping(&status) => {
                        // Its *leaving* note was lost, or is still on its way.
                        self.note_leaving(home);
                        stopping = true;
                        break;
                    }
                    _ => {}
                }
                if asked.elapsed() > HUNG_PING + STARVED {
                    // The timeout itself fired late: this node's own runtime was starved (a
                    // loaded machine), and the silence says nothing about the home.
                    continue;
                }
                unanswered += 1;
            }
            if unanswered == HUNG_PINGS {
                tracing::debug!(peer = home, "a forward and its pings went unanswered: bypassing the hung home");
                self.mark_down(home);
                return;
            }
            tokio::time::sleep(PING_AGAIN).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::local;
    use super::*;
    use crate::peer::proto::PresenceChange;

    #[test]
    fn the_hedge_waits_a_multiple_of_the_median_forward_within_its_bounds() {
        let latency = ForwardLatency::default();
        assert_eq!(latency.hedge_after(), HEDGE_CAP, "no forward seen yet: the cautious bound");
        for ms in [1, 2, 2, 3, 900] {
            latency.record(Duration::from_millis(ms));
        }
        assert_eq!(latency.hedge_after(), HEDGE_FLOOR, "5 × a 2 ms median is below the floor");
        for _ in 0..LATENCY_SAMPLES {
            latency.record(Duration::from_millis(20));
        }
        assert_eq!(latency.hedge_after(), Duration::from_millis(100), "the old samples are forgotten");
        for _ in 0..LATENCY_SAMPLES {
            latency.record(Duration::from_millis(400));
        }
        assert_eq!(latency.hedge_after(), HEDGE_CAP);
    }

    /// A home that stops while it runs a forwarded write (it takes no new command and refuses
    /// pings), before the sender has heard its *leaving* note (lost, or late on a loaded
    /// machine), is alive: the forward is waited for and answered. Its refused pings were
    /// counted as unanswered, the home found hung and the write answered `-UNCERTAIN`, seen in
    /// a rolling restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forward_to_a_home_stopping_before_its_leaving_note_is_heard_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = local::cluster(dir.path(), 3).await;
        let (n1, n2) = (nodes[0].node.clone(), nodes[1].node.clone());
        let key = local::key_in_order(&n2, &[1]);
        // n1's rounds outlast the hedge (several hundred milliseconds).
        local::slow_calls_to(&n1, &[2, 3], Duration::from_millis(120));
        let forwarded = tokio::spawn({
            let (n2, key) = (n2.clone(), key.clone());
            async move { n2.run(key.clone(), local::set(&key)).await }
        });
        local::until_proposing(&n1, &key).await;
        // n1 stops taking commands; n2 hears nothing of it.
        let drained = tokio::spawn({
            let n1 = n1.clone();
            async move { n1.peer_commands.drain(Duration::from_secs(30)).await }
        });
        let outcome = forwarded.await.unwrap();
        assert!(matches!(outcome, Ok(Outcome::Write(_))), "{outcome:?}");
        assert_eq!(drained.await.unwrap(), 0, "the forward was finished, not cut off");
        assert_eq!(n2.stats.hedged.load(Ordering::Relaxed), 0);
    }

    /// A home's *left* note can overtake its answer to a forward (separate calls), or its
    /// *leaving* note expire while it still works: it finished the command before it said it
    /// left, so the answer is on its way. Seen as down and no longer leaving, the home was
    /// found hung at once and the write answered `-UNCERTAIN`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forward_to_a_home_that_says_it_left_before_answering_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = local::cluster(dir.path(), 3).await;
        let (n1, n2) = (nodes[0].node.clone(), nodes[1].node.clone());
        let key = local::key_in_order(&n2, &[1]);
        local::slow_calls_to(&n1, &[2, 3], Duration::from_millis(120));
        let forwarded = tokio::spawn({
            let (n2, key) = (n2.clone(), key.clone());
            async move { n2.run(key.clone(), local::set(&key)).await }
        });
        local::until_proposing(&n1, &key).await;
        let drained = tokio::spawn({
            let n1 = n1.clone();
            async move { n1.peer_commands.drain(Duration::from_secs(30)).await }
        });
        n2.heard(1, PresenceChange::Leaving).await;
        n2.heard(1, PresenceChange::Left).await;
        let outcome = forwarded.await.unwrap();
        assert!(matches!(outcome, Ok(Outcome::Write(_))), "{outcome:?}");
        assert_eq!(drained.await.unwrap(), 0, "the forward was finished, not cut off");
        assert_eq!(n2.stats.hedged.load(Ordering::Relaxed), 0);
    }
}
