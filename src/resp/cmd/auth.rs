//! `AUTH [username] password`: only the `default` user exists, guarded by `--requirepass`.

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::auth::{credentials_match, wrong_pass};

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
            return Err(wrong_pass());
        }
        ctx.session.authenticated = true;
        Ok(Reply::ok())
    }
}
