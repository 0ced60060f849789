//! `GET key`

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Get {
    key: Bytes,
}

impl Get {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()? })
    }

    pub fn into_key(self) -> Bytes {
        self.key
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::bulk_or_null(ctx.store.get(&self.key).await?))
    }
}
