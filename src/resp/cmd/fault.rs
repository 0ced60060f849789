//! `VALTHREE.FAULT token ISOLATE peer [peer ...] | HEAL | STATUS`: the authenticated admin
//! command behind `valthree cluster partition|heal`. It only flips the node's fault switches
//! ([`crate::node::Faults`]); the modes consult them on every peer call.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::auth::check_admin_token;

#[derive(Debug)]
pub struct Fault {
    token: Bytes,
    action: Action,
}

#[derive(Debug)]
enum Action {
    Isolate(Vec<String>),
    Heal,
    Status,
}

impl Fault {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let token = args.next_bytes()?;
        let action = match lower(&args.next_bytes()?).as_str() {
            "isolate" if args.remaining() > 0 => {
                Action::Isolate(args.rest().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect())
            }
            "heal" => Action::Heal,
            "status" => Action::Status,
            _ => return Err(errinput!("syntax error: VALTHREE.FAULT token ISOLATE peer [peer ...] | HEAL | STATUS")),
        };
        args.finish()?;
        Ok(Self { token, action })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        check_admin_token(ctx.server.admin_token.as_deref(), &self.token)?;
        let faults = &ctx.server.faults;
        match self.action {
            Action::Isolate(peers) => {
                tracing::warn!(?peers, "fault injected: isolated from peers");
                faults.isolate(peers);
            }
            Action::Heal => {
                tracing::warn!("fault healed: all peers reachable");
                faults.heal();
            }
            Action::Status => {}
        }
        Ok(Reply::Array(faults.isolated().into_iter().map(Reply::text).collect()))
    }
}
