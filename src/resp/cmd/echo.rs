//! `ECHO message`

use bytes::Bytes;

use super::{Args, Ctx};
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Echo {
    message: Bytes,
}

impl Echo {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { message: args.next_bytes()? })
    }

    pub async fn apply(self, _ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(Reply::Bulk(self.message))
    }
}
