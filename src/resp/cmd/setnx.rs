//! `SETNX key value`: SET NX, answered with an integer (1: written, 0: the key existed).

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;
use crate::store::{SetCondition, SetOptions};

#[derive(Debug)]
pub struct Setnx {
    key: Bytes,
    value: Bytes,
}

impl Setnx {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()?, value: args.next_bytes()? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let options = SetOptions { condition: Some(SetCondition::IfAbsent), get: false };
        let reply = ctx.store.set(self.key, self.value, options).await?;
        Ok(Reply::Integer(i64::from(reply.written)))
    }
}
