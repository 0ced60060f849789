//! `SET key value [NX | XX | IFEQ value | IFNE value | IFDEQ digest | IFDNE digest] [GET]`
//!
//! NX and XX are Redis 7's; IFEQ, IFNE, IFDEQ and IFDNE are Redis 8.4's compare-and-set
//! (Valkey has IFEQ since 8.1): the write happens only when the key's current value, or its
//! [`digest`](crate::store::digest), passes the test; IFEQ and IFDEQ never create a key, IFNE
//! and IFDNE write over an absent one. The test runs inside the replicated mutation, so it is
//! linearizable like the write itself. One condition at most: two are a syntax error.
//!
//! Expiry (`EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`) is refused with a clear error: valthree
//! offers no expiry, and a store that silently ignored a TTL would keep data a client
//! expects to be gone.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::{SetCondition, SetOptions, ValueCondition};

/// Parses the value condition `token` names (IFEQ, IFNE, IFDEQ, IFDNE, lowercase) with its
/// argument; `None` when `token` is not one. SET and DELEX share it.
pub(super) fn value_condition(token: &str, args: &mut Args) -> Option<Result<ValueCondition>> {
    let make: fn(Bytes) -> Result<ValueCondition> = match token {
        "ifeq" => |v| Ok(ValueCondition::Equal(v)),
        "ifne" => |v| Ok(ValueCondition::NotEqual(v)),
        "ifdeq" => |d| parse_digest(&d).map(ValueCondition::DigestEqual),
        "ifdne" => |d| parse_digest(&d).map(ValueCondition::DigestNotEqual),
        _ => return None,
    };
    Some(match args.try_next() {
        Some(arg) => make(arg),
        None => Err(errinput!("syntax error")),
    })
}

/// A digest as DIGEST prints it: hexadecimal, 1 to 16 digits, either case.
fn parse_digest(arg: &[u8]) -> Result<u64> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|t| (1..=16).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .ok_or_else(|| errinput!("digest must be a hexadecimal number of at most 16 digits, as DIGEST returns"))
}

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
            let token = lower(&arg);
            // NX twice (or XX twice) is allowed, as in Redis; any other pair of conditions is not.
            let free_for = |same: SetCondition| options.condition.as_ref().is_none_or(|c| *c == same);
            match token.as_str() {
                "nx" if free_for(SetCondition::IfAbsent) => options.condition = Some(SetCondition::IfAbsent),
                "xx" if free_for(SetCondition::IfPresent) => options.condition = Some(SetCondition::IfPresent),
                "ifeq" | "ifne" | "ifdeq" | "ifdne" if options.condition.is_none() => {
                    let Some(test) = value_condition(&token, args) else { return Err(errinput!("syntax error")) };
                    options.condition = Some(SetCondition::IfValue(test?));
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
