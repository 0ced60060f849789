//! `VGET key [R n]`: a key's causal context and every sibling, from R replicas (dynamo mode).
//! Replies `[context, value-or-nil, ...]`, siblings in dot order; nil is a delete. The context
//! goes back with the next `VSET`/`VDEL` so that the write supersedes exactly what was read.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Vget {
    key: Bytes,
    r: Option<usize>,
}

/// Reads an optional trailing `R n` / `W n`.
pub(super) fn quorum_option(args: &mut Args, name: &str) -> Result<Option<usize>> {
    let Some(flag) = args.try_next() else { return Ok(None) };
    if lower(&flag) != name.to_ascii_lowercase() {
        return Err(errinput!("syntax error: expected {name} n"));
    }
    let n = args.next_i64()?;
    args.finish()?;
    usize::try_from(n).ok().filter(|n| *n > 0).map(Some).ok_or_else(|| errinput!("{name} must be a positive integer"))
}

/// The refusal in a mode without siblings.
pub(super) fn no_siblings(ctx: &Ctx<'_>, command: &str) -> crate::error::Error {
    errinput!("{command} is a dynamo mode command; this server runs in {} mode", ctx.store.describe().mode)
}

impl Vget {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let key = args.next_bytes()?;
        Ok(Self { key, r: quorum_option(args, "R")? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let Some(siblings) = ctx.store.siblings() else { return Err(no_siblings(ctx, "VGET")) };
        Ok(versioned_reply(siblings.vget(self.key, self.r).await?))
    }
}

/// `[context, value-or-nil, ...]`.
pub(super) fn versioned_reply(versioned: crate::store::Versioned) -> Reply {
    let mut items = vec![Reply::text(versioned.context)];
    items.extend(versioned.siblings.into_iter().map(|s| Reply::bulk_or_null(s.value)));
    Reply::Array(items)
}
