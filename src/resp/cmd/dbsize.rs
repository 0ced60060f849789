//! `DBSIZE`

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Dbsize;

impl Dbsize {
    pub fn parse(_args: &mut Args) -> Result<Self> {
        Ok(Self)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Integer(ctx.store.dbsize().await? as i64))
    }
}
