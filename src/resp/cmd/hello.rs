//! `HELLO [protover [AUTH username password] [SETNAME clientname]]`: negotiates RESP2 or
//! RESP3, optionally authenticating and naming the connection in the same round trip.

use bytes::Bytes;

use super::client::check_name;
use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::{Error, Result};
use crate::resp::Reply;

#[derive(Debug)]
pub struct Hello {
    protocol: Option<i64>,
    auth: Option<(Bytes, Bytes)>,
    name: Option<Bytes>,
}

impl Hello {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let mut hello = Self { protocol: None, auth: None, name: None };
        let Some(version) = args.try_next() else {
            return Ok(hello);
        };
        let version = crate::store::parse_i64(&version)
            .ok_or_else(|| errinput!("Protocol version is not an integer or out of range"))?;
        hello.protocol = Some(version);
        while let Some(opt) = args.try_next() {
            match lower(&opt).as_str() {
                "auth" if args.remaining() >= 2 => hello.auth = Some((args.next_bytes()?, args.next_bytes()?)),
                "setname" if args.remaining() >= 1 => hello.name = Some(args.next_bytes()?),
                _ => {
                    return Err(errinput!("Syntax error in HELLO option '{}'", String::from_utf8_lossy(&opt)));
                }
            }
        }
        Ok(hello)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let protocol = match self.protocol {
            None => ctx.session.protocol,
            Some(v @ (2 | 3)) => v as u8,
            Some(_) => {
                return Err(Error::Prefixed { prefix: "NOPROTO", message: "unsupported protocol version".into() });
            }
        };
        if let Some((user, pass)) = &self.auth {
            ctx.authenticate(user, pass).await?;
        }
        if !ctx.session.authenticated {
            return Err(Error::Prefixed {
                prefix: "NOAUTH",
                message: "HELLO must be called with the client already authenticated, otherwise the HELLO \
                          <proto> AUTH <user> <pass> option can be used to authenticate the client and select \
                          the RESP protocol version at the same time"
                    .into(),
            });
        }
        if let Some(name) = self.name {
            check_name(&name)?;
            // A copy: a slice would keep the whole request's buffer alive.
            ctx.session.name = Some(bytes::Bytes::copy_from_slice(&name)).filter(|n| !n.is_empty());
        }
        ctx.session.protocol = protocol;
        let field = |k: &str, v: Reply| (Reply::text(k), v);
        Ok(Reply::Map(vec![
            field("server", Reply::text("valthree")),
            field("version", Reply::text(crate::resp::REDIS_COMPAT_VERSION)),
            field("proto", Reply::Integer(protocol as i64)),
            field("id", Reply::Integer(ctx.session.id as i64)),
            field("mode", Reply::text("standalone")),
            field("role", Reply::text("master")),
            field("modules", Reply::Array(Vec::new())),
        ]))
    }
}
