//! `QUIT`: replies OK, then the connection closes.

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Quit;

impl Quit {
    /// Arguments are ignored, as in Redis.
    pub fn parse(_args: &mut Args) -> Result<Self> {
        Ok(Self)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        ctx.session.closing = true;
        Ok(Reply::ok())
    }
}
