//! `DELEX key [IFEQ value | IFNE value | IFDEQ digest | IFDNE digest]` (Redis 8.4) and
//! `DELIFEQ key value` (Valkey 9.0): removes the key when the condition holds, in one atomic
//! write; replies 1 when it was removed, 0 when it was absent or the condition failed.
//! Without a condition DELEX is a DEL of one key.

use bytes::Bytes;

use super::set::value_condition;
use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::ValueCondition;

#[derive(Debug)]
pub struct Delex {
    key: Bytes,
    condition: Option<ValueCondition>,
}

impl Delex {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let key = args.next_bytes()?;
        let condition = if args.name() == "delifeq" {
            Some(ValueCondition::Equal(args.next_bytes()?))
        } else {
            match args.try_next() {
                None => None,
                Some(token) => match value_condition(&lower(&token), args) {
                    Some(test) => Some(test?),
                    None => return Err(errinput!("syntax error")),
                },
            }
        };
        args.finish()?;
        Ok(Self { key, condition })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let reply = ctx.store.remove(self.key, self.condition, false).await?;
        Ok(Reply::Integer(i64::from(reply.written)))
    }
}
