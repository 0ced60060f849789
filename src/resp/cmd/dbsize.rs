//! `DBSIZE`

use super::Ctx;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Dbsize;

impl Dbsize {
    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Integer(ctx.store.dbsize().await? as i64))
    }
}
