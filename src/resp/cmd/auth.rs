//! `AUTH [username] password`: only the `default` user exists, guarded by `--requirepass`.

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::auth::{
    Admission, MAX_SECRET_LEN, admin_token_refused, same_digest, secret_digest, too_many_attempts, turn_gap, wrong_pass,
};

/// Which secret a client gave.
#[derive(Debug, Clone, Copy)]
enum Secret {
    /// AUTH's or HELLO's password.
    Password,
    /// An admin command's token (`--admin-token`).
    AdminToken,
}

impl Secret {
    fn name(self) -> &'static str {
        match self {
            Secret::Password => "password",
            Secret::AdminToken => "admin token",
        }
    }
}

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
        let expected = self.server.requirepass.as_deref().map(|p| secret_digest(p.as_bytes()));
        let default_user = username == b"default";
        let matched = self
            .compare_secret(Secret::Password, username, password, |given| match &expected {
                None => default_user,
                Some(expected) => default_user && same_digest(expected, given),
            })
            .await?;
        if !matched {
            return Err(wrong_pass());
        }
        self.session.authenticated = true;
        Ok(())
    }

    /// Checks the token an admin command was given against `--admin-token`, as a password is
    /// checked ([`Ctx::authenticate`]: the same allowance per source, the same counts): an
    /// error when none is configured (admin commands are off) or when the token differs.
    pub(super) async fn check_admin_token(&mut self, token: &[u8]) -> Result<()> {
        let Some(expected) = self.server.admin_token.as_deref().map(|t| secret_digest(t.as_bytes())) else {
            return Err(errinput!("admin commands are disabled: start the server with --admin-token"));
        };
        if !self.compare_secret(Secret::AdminToken, b"", token, |given| same_digest(&expected, given)).await? {
            return Err(admin_token_refused());
        }
        Ok(())
    }

    /// Compares `given` (`matches` sees its digest) when the source's allowance lets it: true
    /// or false, or `too many AUTH attempts` when it was not compared. A secret longer than
    /// any configured one may be ([`MAX_SECRET_LEN`]) cannot match and is not compared, nor
    /// hashed: a wrong one, answered at once.
    async fn compare_secret(
        &mut self,
        what: Secret,
        username: &[u8],
        given: &[u8],
        matches: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let server = self.server;
        let peer = self.session.peer.ip();
        if given.len() > MAX_SECRET_LEN {
            self.session.auth_failures = self.session.auth_failures.saturating_add(1);
            self.log_refusal(what, true, server.auth_failures.fetch_add(1, Ordering::Relaxed) + 1);
            return Ok(false);
        }
        // Hashed here, once, outside every lock: under the allowance's lock only digests are
        // compared.
        let digest = secret_digest(given);
        let matches = || matches(&digest);
        // Repeats are remembered apart for each kind of secret.
        let username: &[u8] = match what {
            Secret::Password => username,
            Secret::AdminToken => b"\0admin-token",
        };
        let now = std::time::Instant::now();
        if server.auth_repeated_failures.seen(peer, username, given, now) {
            self.log_refusal(what, true, server.auth_failures.fetch_add(1, Ordering::Relaxed) + 1);
            return Ok(false);
        }
        let admit = |now| match what {
            Secret::Password => server.auth_allowance.admit(peer, now, matches),
            Secret::AdminToken => server.auth_allowance.admit_token(peer, now, matches),
        };
        let mut admission = admit(now);
        let mut waited = false;
        if let Admission::Wait(turn) = admission {
            // Once: if another address booked that turn meanwhile, the answer is "too many".
            tokio::time::sleep_until(turn.into()).await;
            waited = true;
            admission = match admit(std::time::Instant::now()) {
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
                        secret = what.name(),
                        "too many AUTH attempts from this network: answered without comparing"
                    );
                }
                // Not an answer about the secret, only about the source: a connection that
                // keeps asking is answered later and later (unless it waited already), so
                // that it cannot spin.
                if !waited {
                    tokio::time::sleep(turn_gap(self.session.auth_throttled)).await;
                }
                return Err(too_many_attempts());
            }
        };
        if !matched {
            server.auth_repeated_failures.remember(peer, username, given, std::time::Instant::now());
            self.session.auth_failures = self.session.auth_failures.saturating_add(1);
            self.log_refusal(what, false, server.auth_failures.fetch_add(1, Ordering::Relaxed) + 1);
        }
        Ok(matched)
    }

    fn log_refusal(&self, what: Secret, repeated: bool, total: u64) {
        if let Some(held_back) = self.server.auth_failure_log.allow() {
            tracing::warn!(
                client = self.session.id,
                peer = %self.session.peer,
                on_this_connection = self.session.auth_failures,
                total,
                held_back,
                repeated,
                secret = what.name(),
                "authentication failed: a wrong {}",
                what.name()
            );
        }
    }
}
