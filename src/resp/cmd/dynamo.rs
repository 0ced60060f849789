//! `DYNAMO.MEMBERS` (each member's address and health as this node's failure detector sees
//! it: ALIVE, SUSPECT or DEAD, with its incarnation) and `DYNAMO.RING [key]` (the ring's
//! shape, or a key's partition and preference list), and `DYNAMO.LOCAL key [WITHDOTS]` (this
//! node's own replica of a key, as VGET shows one, read without a quorum), and
//! `DYNAMO.DIGEST [partition]` (the roots of this node's anti-entropy trees). dynamo mode only.

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
    Digest(Option<u32>),
}

impl DynamoInfo {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let info = match args.name() {
            "dynamo.ring" => DynamoInfo::Ring(args.try_next()),
            "dynamo.digest" => DynamoInfo::Digest(match args.try_next() {
                None => None,
                Some(p) => Some(
                    std::str::from_utf8(&p)
                        .ok()
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| crate::errinput!("the partition must be a number"))?,
                ),
            }),
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
            DynamoInfo::Digest(_) => "DYNAMO.DIGEST",
        };
        let Some(siblings) = ctx.store.siblings() else { return Err(no_siblings(ctx, command)) };
        let lines = match self {
            DynamoInfo::Members => siblings.members(),
            DynamoInfo::Ring(key) => siblings.ring(key.as_deref()),
            DynamoInfo::Digest(partition) => siblings.digest(partition)?,
            DynamoInfo::Local { key, with_dots } => {
                return Ok(super::vget::versioned_reply(siblings.local(key).await?, with_dots));
            }
        };
        Ok(Reply::Array(lines.into_iter().map(Reply::text).collect()))
    }
}
