//! `QUIT`: replies OK, then the connection closes.

use super::Ctx;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Quit;

impl Quit {
    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        ctx.session.closing = true;
        Ok(Reply::ok())
    }
}
