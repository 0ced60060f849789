//! `DEL key [key ...]`: deletes the keys in one atomic write; replies how many existed.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Del {
    keys: Vec<Bytes>,
}

impl Del {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { keys: args.rest() })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Integer(ctx.store.del(self.keys).await? as i64))
    }
}
