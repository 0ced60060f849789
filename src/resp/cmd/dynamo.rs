//! `DYNAMO.MEMBERS` (each member's address and health as this node's failure detector sees
//! it: ALIVE, SUSPECT or DEAD, with its incarnation) and `DYNAMO.RING [key]` (the ring's
//! shape, or a key's partition and preference list), and `DYNAMO.LOCAL key [WITHDOTS]` (this
//! node's own replica of a key, as VGET shows one, read without a quorum). dynamo mode only.

use bytes::Bytes;

use super::vget::no_siblings;
use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub enum DynamoInfo {
    Members,
    Ring(Option<Bytes>),
    Local { key: Bytes, with_dots: bool },
}

impl DynamoInfo {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let info = match args.name() {
            "dynamo.ring" => DynamoInfo::Ring(args.try_next()),
            "dynamo.local" => {
                let key = args.next_bytes()?;
                let with_dots = match args.try_next() {
                    None => false,
                    Some(flag) if super::lower(&flag) == "withdots" => true,
                    Some(_) => return Err(crate::errinput!("syntax error: expected WITHDOTS")),
                };
                DynamoInfo::Local { key, with_dots }
            }
            _ => DynamoInfo::Members,
        };
        args.finish()?;
        Ok(info)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let command = match self {
            DynamoInfo::Members => "DYNAMO.MEMBERS",
            DynamoInfo::Ring(_) => "DYNAMO.RING",
            DynamoInfo::Local { .. } => "DYNAMO.LOCAL",
        };
        let Some(siblings) = ctx.store.siblings() else { return Err(no_siblings(ctx, command)) };
        let lines = match self {
            DynamoInfo::Members => siblings.members(),
            DynamoInfo::Ring(key) => siblings.ring(key.as_deref()),
            DynamoInfo::Local { key, with_dots } => {
                return Ok(super::vget::versioned_reply(siblings.local(key).await?, with_dots));
            }
        };
        Ok(Reply::Array(lines.into_iter().map(Reply::text).collect()))
    }
}
