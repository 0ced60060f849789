//! `SET key value [NX|XX] [GET]`
//!
//! Expiry (`EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`) is refused with a clear error: valthree
//! offers no expiry, and a store that silently ignored a TTL would keep data a client
//! expects to be gone.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::{SetCondition, SetOptions};

#[derive(Debug)]
pub struct Set {
    key: Bytes,
    value: Bytes,
    options: SetOptions,
}

impl Set {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let key = args.next_bytes()?;
        let value = args.next_bytes()?;
        let mut options = SetOptions::default();
        while let Some(arg) = args.try_next() {
            match lower(&arg).as_str() {
                "nx" if options.condition != Some(SetCondition::IfPresent) => {
                    options.condition = Some(SetCondition::IfAbsent)
                }
                "xx" if options.condition != Some(SetCondition::IfAbsent) => {
                    options.condition = Some(SetCondition::IfPresent)
                }
                "get" => options.get = true,
                opt @ ("ex" | "px" | "exat" | "pxat" | "keepttl") => {
                    return Err(errinput!(
                        "SET {} is not supported: valthree keys do not expire",
                        opt.to_ascii_uppercase()
                    ));
                }
                _ => return Err(errinput!("syntax error")),
            }
        }
        Ok(Self { key, value, options })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let get = self.options.get;
        let reply = ctx.store.set(self.key, self.value, self.options).await?;
        Ok(match (get, reply.written) {
            (true, _) => Reply::bulk_or_null(reply.previous),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Null,
        })
    }
}
