//! `MGET key [key ...]`: every value from one consistent view.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Mget {
    keys: Vec<Bytes>,
}

impl Mget {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { keys: args.rest() })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let values = ctx.store.mget(&self.keys).await?;
        Ok(Reply::Array(values.into_iter().map(Reply::bulk_or_null).collect()))
    }
}
