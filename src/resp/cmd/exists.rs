//! `EXISTS key [key ...]`: how many of the keys exist (a key named twice counts twice).

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Exists {
    keys: Vec<Bytes>,
}

impl Exists {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { keys: args.rest() })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Integer(ctx.store.exists(&self.keys).await? as i64))
    }
}
