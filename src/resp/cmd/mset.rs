//! `MSET key value [key value ...]` and `MSETNX key value [key value ...]`: every pair in one
//! atomic write (MSETNX: none unless every key is absent; it replies 1 or 0).
//!
//! Atomic where the mode can make it so: s3 mode swaps one document, raft mode appends one
//! log entry. paxos mode keeps each key in its own register and refuses both commands rather
//! than write some keys and not others; dynamo mode refuses them too.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Mset {
    pairs: Vec<(Bytes, Bytes)>,
    if_none_exist: bool,
}

impl Mset {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let name = args.name();
        let rest = args.rest();
        if !rest.len().is_multiple_of(2) {
            return Err(errinput!("wrong number of arguments for '{name}' command"));
        }
        let mut pairs = Vec::with_capacity(rest.len() / 2);
        let mut rest = rest.into_iter();
        while let (Some(key), Some(value)) = (rest.next(), rest.next()) {
            pairs.push((key, value));
        }
        Ok(Self { pairs, if_none_exist: name == "msetnx" })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let written = ctx.store.multi_set(self.pairs, self.if_none_exist).await?;
        Ok(if self.if_none_exist { Reply::Integer(i64::from(written)) } else { Reply::ok() })
    }
}
