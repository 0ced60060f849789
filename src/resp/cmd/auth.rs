//! `AUTH [username] password`: only the `default` user exists, guarded by `--requirepass`.

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::auth::{credentials_match, failure_delay, wrong_pass};

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
        if !credentials_match(ctx.server.requirepass.as_deref(), username, &self.password) {
            return Err(ctx.refuse_credentials(username, &self.password).await);
        }
        ctx.session.authenticated = true;
        Ok(Reply::ok())
    }
}

impl Ctx<'_> {
    /// Answers a wrong username or password (AUTH, HELLO ... AUTH): counted, logged now and
    /// then, and past the free failures of this connection or its network answered late —
    /// unless the same address already tried it (see [`crate::resp::auth`]).
    pub(super) async fn refuse_credentials(&mut self, username: &[u8], password: &[u8]) -> crate::error::Error {
        use std::sync::atomic::Ordering;
        let now = std::time::Instant::now();
        let total = self.server.auth_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = self.session.peer.ip();
        let repeated = self.server.auth_repeated_failures.repeated(peer, username, password, now);
        let from_source = if repeated {
            0
        } else {
            self.session.auth_failures = self.session.auth_failures.saturating_add(1);
            self.server.auth_failures_by_source.record(peer, now)
        };
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
        if !repeated {
            let delay = failure_delay(self.session.auth_failures.max(from_source));
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        wrong_pass()
    }
}
