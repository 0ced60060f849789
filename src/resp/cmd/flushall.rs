//! `FLUSHALL [ASYNC|SYNC]` and `FLUSHDB [ASYNC|SYNC]` (there is one database, so they agree).

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Flushall;

impl Flushall {
    pub fn parse(args: &mut Args) -> Result<Self> {
        if let Some(mode) = args.try_next() {
            if !matches!(lower(&mode).as_str(), "async" | "sync") {
                return Err(errinput!("syntax error"));
            }
            args.finish()?;
        }
        Ok(Self)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        ctx.store.flushall().await?;
        Ok(Reply::ok())
    }
}
