//! Home routing: a command runs at its key's home proposer, or here when the home is
//! unreachable (safe in a leaderless protocol, merely contended).

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
    /// Runs a command at its key's home, or here when the home is unreachable.
    pub(super) async fn run(&self, key: Bytes, command: Command) -> Result<Outcome> {
        let home = self.home(&key);
        let Some(home) = home.filter(|h| *h != self.id && !self.is_down(*h)) else {
            if home.is_some_and(|h| h != self.id) {
                self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            return self.propose(key, command).await;
        };
        let request = wire::forward_to(self.id, key.clone(), &command)?;
        let mut client = self.client(home)?;
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        let deadline = FORWARD_TIMEOUT + transfer_time(prost::Message::encoded_len(&request));
        let failure = match tokio::time::timeout(deadline, client.forward(request)).await {
            Ok(Ok(reply)) => return wire::outcome_from(reply.into_inner()),
            Ok(Err(status)) => peer::CallError::from_status(&status),
            Err(_) => {
                // The home is alive (a hung one loses its connection to the keepalive first)
                // but slow: running the command here too would only duel with it.
                let why = format!("n{home} did not answer the forwarded command in time");
                return if command == Command::Read { Err(Error::TryAgain(why)) } else { Err(Error::Uncertain(why)) };
            }
        };
        let error_kind = failure.kind();
        match failure {
            peer::CallError::NotSent(why) | peer::CallError::Refused(why) => {
                // Certainly not run at the home: run it here.
                tracing::debug!(peer = home, error_kind, "forward not sent ({why}); running here");
                antithesis_sdk::assert_sometimes!(true, "paxos: a forward to an unreachable home ran locally");
                self.mark_down(home);
                self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
                self.propose(key, command).await
            }
            peer::CallError::MaybeSent(why) => {
                // The connection failed after the command was sent (reset, or the keepalive
                // found the home hung): bypass the home for a while.
                self.mark_down(home);
                if command == Command::Read {
                    // A read changes nothing: running it again here is safe.
                    self.stats.local_fallbacks.fetch_add(1, Ordering::Relaxed);
                    self.propose(key, command).await
                } else {
                    Err(Error::Uncertain(format!("forward to n{home}: {why}")))
                }
            }
        }
    }
}
