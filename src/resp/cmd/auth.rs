//! `AUTH [username] password`: only the `default` user exists, guarded by `--requirepass`.

use super::{Args, Ctx};
use crate::errinput;
use crate::error::{Error, Result};
use crate::resp::Reply;
use crate::resp::server::ServerState;

#[derive(Debug)]
pub struct Auth {
    /// `None` for the one-argument form.
    username: Option<Vec<u8>>,
    password: Vec<u8>,
}

/// Redis' reply to a wrong username or password.
pub fn wrong_pass() -> Error {
    Error::Prefixed { prefix: "WRONGPASS", message: "invalid username-password pair or user is disabled.".into() }
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    let diff = expected.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    expected.len() == given.len() && diff == 0
}

/// Checks credentials against `--requirepass`.
pub fn credentials_match(server: &ServerState, username: &[u8], password: &[u8]) -> bool {
    match &server.requirepass {
        None => username == b"default",
        Some(expected) => username == b"default" && same_secret(expected.as_bytes(), password),
    }
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
        if !credentials_match(ctx.server, username, &self.password) {
            return Err(wrong_pass());
        }
        ctx.session.authenticated = true;
        Ok(Reply::ok())
    }
}
