//! `GETSET key value`: SET GET under its older name; replies the value before, or nil.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;
use crate::store::SetOptions;

#[derive(Debug)]
pub struct Getset {
    key: Bytes,
    value: Bytes,
}

impl Getset {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()?, value: args.next_bytes()? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let options = SetOptions { condition: None, get: true };
        Ok(Reply::bulk_or_null(ctx.store.set(self.key, self.value, options).await?.previous))
    }
}
