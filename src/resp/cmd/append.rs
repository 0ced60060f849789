//! `APPEND key value`: atomic read-modify-write; replies the new length.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;
use crate::store::UpdateOp;

#[derive(Debug)]
pub struct Append {
    key: Bytes,
    suffix: Bytes,
}

impl Append {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()?, suffix: args.next_bytes()? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Integer(ctx.store.update(self.key, UpdateOp::Append(self.suffix)).await?))
    }
}
