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
use crate::store::{Mutation, SetCondition, SetOptions, SetReply, ValueCondition};

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

/// Redis' error for an IFDEQ/IFDNE digest that is not 16 hexadecimal characters (Redis 8.4,
/// redis/redis#14502).
const BAD_DIGEST: &str = "must be exactly 16 hexadecimal characters";

/// A digest as DIGEST prints it: exactly 16 hexadecimal characters, of either case (Redis 8.4
/// compares them with `strcasecmp`). Fewer digits are refused rather than read as a number
/// with its leading zeros dropped: Redis 8.4.0 did that and a client's `0000…` digest then
/// never matched (redis/redis#14496).
fn parse_digest(arg: &[u8]) -> Result<u64> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|t| t.len() == 16 && t.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .ok_or_else(|| errinput!("{BAD_DIGEST}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_exactly_16_hexadecimal_characters_of_either_case() {
        assert_eq!(parse_digest(b"00006c38adf31777").unwrap(), 0x6c38adf31777);
        assert_eq!(parse_digest(b"B6ACB9D84A38FF74").unwrap(), 0xb6acb9d84a38ff74);
        assert_eq!(parse_digest(b"b6AcB9d84a38fF74").unwrap(), 0xb6acb9d84a38ff74);
        for bad in [&b"6c38adf31777"[..], b"", b"0", b"000006c38adf31777", b"b6acb9d84a38ff7g", b"+6acb9d84a38ff74"] {
            let err = parse_digest(bad).unwrap_err();
            assert_eq!(err.to_resp(), format!("ERR {BAD_DIGEST}"), "{:?}", String::from_utf8_lossy(bad));
        }
    }
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
        Ok(Self::reply(get, reply))
    }

    /// The write this SET asks for, and whether it asked for the old value (`GET`): a run of
    /// pipelined SETs is handed to the store as one batch of mutations (see
    /// [`Store::mutate_each`](crate::store::Store::mutate_each)).
    pub fn into_mutation(self) -> (Mutation, bool) {
        let get = self.options.get;
        (Mutation::Set { key: self.key, value: self.value, options: self.options }, get)
    }

    /// The reply to a SET (with `GET` when `get`) whose write answered `reply`.
    pub fn reply(get: bool, reply: SetReply) -> Reply {
        match (get, reply.written) {
            (true, _) => Reply::bulk_or_null(reply.previous),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Null,
        }
    }
}
