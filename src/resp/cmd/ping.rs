//! `PING [message]`

use bytes::Bytes;

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Ping {
    message: Option<Bytes>,
}

impl Ping {
    pub fn parse(args: &mut Args) -> Result<Self> {
        if args.remaining() > 1 {
            return Err(errinput!("wrong number of arguments for 'ping' command"));
        }
        Ok(Self { message: args.try_next() })
    }

    pub async fn apply(self, _ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(match self.message {
            None => Reply::Simple("PONG".into()),
            Some(m) => Reply::Bulk(m),
        })
    }
}
