//! `VALTHREE.MEMBERS token SHOW | ADD id peer-addr | REMOVE id`: the authenticated admin
//! command behind `valthree cluster add-node|remove-node`. Replies with one line per fact
//! of the resulting configuration.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::MembershipChange;

#[derive(Debug)]
pub struct Members {
    token: Bytes,
    change: MembershipChange,
}

fn node_id(arg: &[u8]) -> Result<u32> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| errinput!("node id must be a positive integer"))
}

impl Members {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let token = args.next_bytes()?;
        let change = match lower(&args.next_bytes()?).as_str() {
            "show" => MembershipChange::Show,
            "add" => {
                let id = node_id(&args.next_bytes()?)?;
                let peer_addr = String::from_utf8_lossy(&args.next_bytes()?).into_owned();
                MembershipChange::Add { id, peer_addr }
            }
            "remove" => MembershipChange::Remove { id: node_id(&args.next_bytes()?)? },
            _ => return Err(errinput!("syntax error: VALTHREE.MEMBERS token SHOW | ADD id peer-addr | REMOVE id")),
        };
        args.finish()?;
        Ok(Self { token, change })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        ctx.check_admin_token(&self.token).await?;
        tracing::warn!(change = ?self.change, "membership change requested");
        let Some(membership) = ctx.store.membership() else {
            return Err(crate::error::Error::Input(format!(
                "{} mode has no membership to change",
                ctx.store.describe().mode
            )));
        };
        let lines = membership.change_membership(self.change).await?;
        Ok(Reply::Array(lines.into_iter().map(Reply::text).collect()))
    }
}
