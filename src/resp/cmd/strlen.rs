//! `STRLEN key`

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Strlen {
    key: Bytes,
}

impl Strlen {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()? })
    }

    pub fn into_key(self) -> Bytes {
        self.key
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let len = ctx.store.get(&self.key).await?.map_or(0, |v| v.len());
        Ok(Reply::Integer(len as i64))
    }
}
