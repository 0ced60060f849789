//! `KEYS pattern`: every key matching a Redis glob, read as a whole scan (O(n), as in Redis).

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;
use crate::store::{MAX_SCAN_COUNT, Pattern};

#[derive(Debug)]
pub struct Keys {
    pattern: Pattern,
}

impl Keys {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { pattern: Pattern::new(&args.next_bytes()?) })
    }

    /// A scan from cursor 0 to its end: every key present throughout is listed once (a
    /// mode whose pages union several nodes' lists is deduplicated page by page, and pages
    /// cover disjoint ranges, so no key appears twice).
    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let mut keys = Vec::new();
        let mut cursor = 0;
        loop {
            let page = ctx.store.scan(cursor, MAX_SCAN_COUNT, Some(&self.pattern)).await?;
            keys.extend(page.keys.into_iter().map(Reply::Bulk));
            cursor = page.cursor;
            if cursor == 0 {
                return Ok(Reply::Array(keys));
            }
        }
    }
}
