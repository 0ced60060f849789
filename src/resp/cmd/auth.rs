//! `AUTH [username] password`: only the `default` user exists, guarded by `--requirepass`.

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::auth::{Admission, credentials_match, too_many_attempts, turn_gap, wrong_pass};

#[derive(Debug)]
pub struct Auth {
    /// `None` for the one-argument form.
    username: Option<Vec<u8>>,
    password: Vec<u8>,
}

impl Auth {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let first = args.next_bytes()?;
        let auth = match args.try_next() {
            None => Self { username: None, password: first.to_vec() },
            Some(password) => Self { username: Some(first.to_vec()), password: password.to_vec() },
        };
        args.finish()?;
        Ok(auth)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        if ctx.server.requirepass.is_none() && self.username.is_none() {
            return Err(errinput!(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?"
            ));
        }
        let username = self.username.as_deref().unwrap_or(b"default");
        ctx.authenticate(username, &self.password).await?;
        Ok(Reply::ok())
    }
}

impl Ctx<'_> {
    /// Checks a username and password (AUTH, HELLO ... AUTH) when the source's allowance lets
    /// it (see [`crate::resp::auth`]): a wrong password repeated from the same address is
    /// answered at once; any other is compared at once, or at the source's next turn, or —
    /// no turn being free within a second — refused without being compared. Wrong passwords
    /// are counted and logged now and then.
    pub(super) async fn authenticate(&mut self, username: &[u8], password: &[u8]) -> Result<()> {
        use std::sync::atomic::Ordering;
        let server = self.server;
        let peer = self.session.peer.ip();
        let now = std::time::Instant::now();
        let matches = || credentials_match(server.requirepass.as_deref(), username, password);
        if server.auth_repeated_failures.seen(peer, username, password, now) {
            self.log_refusal(true, server.auth_failures.fetch_add(1, Ordering::Relaxed) + 1);
            return Err(wrong_pass());
        }
        let mut admission = server.auth_allowance.admit(peer, now, matches);
        let mut waited = false;
        if let Admission::Wait(turn) = admission {
            // Once: if another address booked that turn meanwhile, the answer is "too many".
            tokio::time::sleep_until(turn.into()).await;
            waited = true;
            admission = match server.auth_allowance.admit(peer, std::time::Instant::now(), matches) {
                Admission::Wait(_) => Admission::Refused,
                other => other,
            };
        }
        let matched = match admission {
            Admission::Compared(matched) => matched,
            Admission::At(turn) => {
                tokio::time::sleep_until(turn.into()).await;
                let matched = matches();
                server.auth_allowance.settle(peer, matched, std::time::Instant::now());
                matched
            }
            Admission::Wait(_) | Admission::Refused => {
                let throttled = server.auth_throttled.fetch_add(1, Ordering::Relaxed) + 1;
                self.session.auth_throttled = self.session.auth_throttled.saturating_add(1);
                if let Some(held_back) = server.auth_failure_log.allow() {
                    tracing::warn!(
                        client = self.session.id,
                        peer = %self.session.peer,
                        throttled,
                        held_back,
                        "too many AUTH attempts from this network: answered without comparing"
                    );
                }
                // Not an answer about the password, only about the source: a connection that
                // keeps asking is answered later and later (unless it waited already), so
                // that it cannot spin.
                if !waited {
                    tokio::time::sleep(turn_gap(self.session.auth_throttled)).await;
                }
                return Err(too_many_attempts());
            }
        };
        if matched {
            self.session.authenticated = true;
            return Ok(());
        }
        server.auth_repeated_failures.remember(peer, username, password, std::time::Instant::now());
        self.session.auth_failures = self.session.auth_failures.saturating_add(1);
        self.log_refusal(false, server.auth_failures.fetch_add(1, Ordering::Relaxed) + 1);
        Err(wrong_pass())
    }

    fn log_refusal(&self, repeated: bool, total: u64) {
        if let Some(held_back) = self.server.auth_failure_log.allow() {
            tracing::warn!(
                client = self.session.id,
                peer = %self.session.peer,
                on_this_connection = self.session.auth_failures,
                total,
                held_back,
                repeated,
                "authentication failed"
            );
        }
    }
}
