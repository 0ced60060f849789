//! `VSET key value context [W n]` and `VDEL key context [W n]` (dynamo mode): a write that
//! supersedes exactly the siblings `context` (from VGET or an earlier VSET; `""` for none)
//! covers. Replies `[new context, dot]` once W replicas hold it.

use bytes::Bytes;

use super::vget::{no_siblings, quorum_option};
use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Vset {
    key: Bytes,
    /// `None`: VDEL.
    value: Option<Bytes>,
    context: Bytes,
    w: Option<usize>,
}

impl Vset {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let key = args.next_bytes()?;
        let value = if args.name() == "vdel" { None } else { Some(args.next_bytes()?) };
        let context = args.next_bytes()?;
        Ok(Self { key, value, context, w: quorum_option(args, "W")? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let command = if self.value.is_some() { "VSET" } else { "VDEL" };
        let Some(siblings) = ctx.store.siblings() else { return Err(no_siblings(ctx, command)) };
        let written = siblings.vset(self.key, self.value, self.context, self.w).await?;
        Ok(Reply::Array(vec![Reply::text(written.context), Reply::text(written.dot)]))
    }
}
