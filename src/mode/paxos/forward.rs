//! Home routing: a command runs at its key's home proposer; while the home is away (down,
//! cut off, stopping) at the next member in the key's order that is up, the same for every
//! node, so that one proposer runs a key at a time (safe with any number of proposers in a
//! leaderless protocol, but two of them duel).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::proposer::{Command, Outcome};
use super::wire;
use crate::error::{Error, Result};
use crate::peer::{self};

use super::network::transfer_time;
use super::node::Node;

/// How long a forwarded command may take at its home (plus the time its bytes take to move).
/// A hung home is not waited for: the peer plane's keepalive closes its connection within
/// 1 s, which fails the forward, and the home is bypassed until it answers a ping.
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);

impl Node {
    /// Runs a command at the first member of its key's order that is up: its home, or the
    /// next one while the home is away. This node is always up to itself, so the walk ends
    /// here at the latest.
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
        }
        if home.is_some_and(|h| h != self.id) {
            self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        self.propose(key, command).await
    }

    /// Runs a command at `home`. `None`: it certainly did not run there (or it is a read),
    /// and `home` is bypassed from now on: the caller tries the next member.
    async fn forward(&self, home: super::ballot::NodeId, key: &Bytes, command: &Command) -> Option<Result<Outcome>> {
        let request = match wire::forward_to(self.id, key.clone(), command) {
            Ok(request) => request,
            Err(e) => return Some(Err(e)),
        };
        let mut client = match self.client(home) {
            Ok(client) => client,
            Err(e) => return Some(Err(e)),
        };
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let deadline = FORWARD_TIMEOUT + transfer_time(prost::Message::encoded_len(&request));
        let failure = match tokio::time::timeout(deadline, client.forward(request)).await {
            Ok(Ok(reply)) => return Some(wire::outcome_from(reply.into_inner())),
            Ok(Err(status)) => peer::CallError::from_status(&status),
            Err(_) => {
                // The home is alive (a hung one loses its connection to the keepalive first)
                // but slow: running the command elsewhere too would only duel with it.
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
}
