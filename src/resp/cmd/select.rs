//! `SELECT index`: only database 0 exists.

use super::{Args, Ctx};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub struct Select {
    index: i64,
}

impl Select {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { index: args.next_i64()? })
    }

    pub async fn apply(self, _ctx: &mut Ctx<'_>) -> Result<Reply> {
        match self.index {
            0 => Ok(Reply::ok()),
            _ => Err(errinput!("DB index is out of range")),
        }
    }
}
