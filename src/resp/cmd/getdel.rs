//! `GETDEL key`: removes the key and replies the value it held, or nil, in one atomic write.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Getdel {
    key: Bytes,
}

impl Getdel {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::bulk_or_null(ctx.store.remove(self.key, None, true).await?.previous))
    }
}
