//! `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: one page of the keyspace.
//!
//! The cursor is a position in a fixed hash order of keys ([`crate::store::scan_hash`]), so
//! it fits the `u64` clients parse, means the same on every node, and survives restarts. MATCH
//! filters a page after it is read (so a page may come back empty before the scan ends, as
//! in Redis); COUNT is a hint. Every key is a string, so `TYPE string` is no filter and any
//! other type matches nothing.

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::{Pattern, ScanPage};

/// Redis' default COUNT.
const DEFAULT_COUNT: usize = 10;

#[derive(Debug)]
pub struct Scan {
    cursor: u64,
    pattern: Option<Pattern>,
    count: usize,
    /// TYPE named a type no key has.
    other_type: bool,
}

impl Scan {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let cursor = args.next_bytes()?;
        // Redis: strtoul over the whole argument, or "invalid cursor".
        let cursor = std::str::from_utf8(&cursor)
            .ok()
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u64>().ok())
            .ok_or_else(|| errinput!("invalid cursor"))?;
        let mut scan = Self { cursor, pattern: None, count: DEFAULT_COUNT, other_type: false };
        while let Some(option) = args.try_next() {
            let value = args.next_bytes()?;
            match lower(&option).as_str() {
                "match" => scan.pattern = Some(Pattern::new(&value)),
                "count" => {
                    let count =
                        crate::store::parse_i64(&value).ok_or_else(|| errinput!("{}", crate::store::NOT_AN_INTEGER))?;
                    if count < 1 {
                        return Err(errinput!("syntax error"));
                    }
                    scan.count = usize::try_from(count).unwrap_or(usize::MAX);
                }
                "type" => scan.other_type = lower(&value) != "string",
                _ => return Err(errinput!("syntax error")),
            }
        }
        Ok(scan)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let ScanPage { keys, cursor } = ctx.store.scan(self.cursor, self.count, self.pattern.as_ref()).await?;
        let keys = if self.other_type { Vec::new() } else { keys };
        Ok(Reply::Array(vec![
            Reply::text(cursor.to_string()),
            Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        ]))
    }
}
