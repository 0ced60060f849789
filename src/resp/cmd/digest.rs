//! `DIGEST key` (Redis 8.4): the value's XXH3 64-bit hash as 16 lowercase hexadecimal
//! digits, or nil when the key is absent: what SET and DELEX's IFDEQ / IFDNE compare with.

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;
use crate::store::digest;

#[derive(Debug)]
pub struct Digest {
    key: Bytes,
}

impl Digest {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { key: args.next_bytes()? })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let value = ctx.store.get(&self.key).await?;
        Ok(Reply::bulk_or_null(value.map(|v| Bytes::from(format!("{:016x}", digest(&v))))))
    }
}
