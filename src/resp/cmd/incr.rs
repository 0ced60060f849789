//! `INCR key`, `INCRBY key n`, `DECR key`, `DECRBY key n`: one atomic counter update,
//! spelled four ways.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::UpdateOp;

#[derive(Debug)]
pub struct Incr {
    key: Bytes,
    delta: i64,
}

impl Incr {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let key = args.next_bytes()?;
        let delta = match args.name() {
            "incr" => 1,
            "decr" => -1,
            "incrby" => args.next_i64()?,
            "decrby" => {
                let n = args.next_i64()?;
                n.checked_neg().ok_or_else(|| errinput!("decrement would overflow"))?
            }
            other => unreachable!("{other} is not a counter command"),
        };
        Ok(Self { key, delta })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Integer(ctx.store.update(self.key, UpdateOp::IncrBy(self.delta)).await?))
    }
}
