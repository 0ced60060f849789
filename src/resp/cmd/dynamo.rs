//! `DYNAMO.MEMBERS` (each member's address and health as this node's failure detector sees
//! it: ALIVE, SUSPECT or DEAD, with its incarnation) and `DYNAMO.RING [key]` (the ring's
//! shape, or a key's partition and preference list). dynamo mode only.

use bytes::Bytes;

use super::vget::no_siblings;
use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct DynamoInfo {
    /// `None`: DYNAMO.MEMBERS; `Some(key)`: DYNAMO.RING [key].
    ring: Option<Option<Bytes>>,
}

impl DynamoInfo {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let ring = if args.name() == "dynamo.ring" { Some(args.try_next()) } else { None };
        args.finish()?;
        Ok(Self { ring })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let command = if self.ring.is_some() { "DYNAMO.RING" } else { "DYNAMO.MEMBERS" };
        let Some(siblings) = ctx.store.siblings() else { return Err(no_siblings(ctx, command)) };
        let lines = match &self.ring {
            None => siblings.members(),
            Some(key) => siblings.ring(key.as_deref()),
        };
        Ok(Reply::Array(lines.into_iter().map(Reply::text).collect()))
    }
}
