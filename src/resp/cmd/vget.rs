//! `VGET key [R n] [WITHDOTS]`: a key's causal context and every sibling, from R replicas
//! (dynamo mode). Replies `[context, value-or-nil, ...]`, siblings in dot order; nil is a
//! delete. With `WITHDOTS` each sibling is `[dot, timestamp-ms, value-or-nil]` (the write's
//! unique id and its coordinator's clock): what a checker or a curious operator needs. The
//! context goes back with the next `VSET`/`VDEL` so that the write supersedes exactly what
//! was read.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Vget {
    key: Bytes,
    r: Option<usize>,
    with_dots: bool,
}

/// Reads an optional trailing `R n` / `W n`.
pub(super) fn quorum_option(args: &mut Args, name: &str) -> Result<Option<usize>> {
    let Some(flag) = args.try_next() else { return Ok(None) };
    if lower(&flag) != name.to_ascii_lowercase() {
        return Err(errinput!("syntax error: expected {name} n"));
    }
    let n = args.next_i64()?;
    args.finish()?;
    positive(n, name).map(Some)
}

fn positive(n: i64, name: &str) -> Result<usize> {
    usize::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| errinput!("{name} must be a positive integer"))
}

/// The refusal in a mode without siblings.
pub(super) fn no_siblings(ctx: &Ctx<'_>, command: &str) -> crate::error::Error {
    errinput!("{command} is a dynamo mode command; this server runs in {} mode", ctx.store.describe().mode)
}

impl Vget {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let key = args.next_bytes()?;
        let (mut r, mut with_dots) = (None, false);
        while let Some(flag) = args.try_next() {
            match lower(&flag).as_str() {
                "withdots" if !with_dots => with_dots = true,
                "r" if r.is_none() => r = Some(positive(args.next_i64()?, "R")?),
                _ => return Err(errinput!("syntax error: expected R n or WITHDOTS")),
            }
        }
        Ok(Self { key, r, with_dots })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let Some(siblings) = ctx.store.siblings() else { return Err(no_siblings(ctx, "VGET")) };
        Ok(versioned_reply(siblings.vget(self.key, self.r).await?, self.with_dots))
    }
}

/// `[context, value-or-nil, ...]`, or with dots `[context, [dot, timestamp-ms, value-or-nil], ...]`.
pub(super) fn versioned_reply(versioned: crate::store::Versioned, with_dots: bool) -> Reply {
    let mut items = vec![Reply::text(versioned.context)];
    items.extend(versioned.siblings.into_iter().map(|s| {
        if with_dots {
            Reply::Array(vec![Reply::text(s.dot), Reply::Integer(s.timestamp_ms as i64), Reply::bulk_or_null(s.value)])
        } else {
            Reply::bulk_or_null(s.value)
        }
    }));
    Reply::Array(items)
}
