//! `VALTHREE.FAULT token ISOLATE peer [peer ...] | HEAL | STATUS | DISK WRITE|FSYNC
//! EIO|ENOSPC|OFF`: the authenticated admin command behind `valthree cluster partition|heal`
//! and the `disk` nemesis. It only flips the node's fault switches ([`crate::node::Faults`]);
//! the modes consult them on every peer call, the file layer on every write and fsync.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::node::{DiskError, DiskOp};
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
    /// Inject (or with `None` clear) a disk error into writes or fsyncs.
    Disk(DiskOp, Option<DiskError>),
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
            "disk" if args.remaining() == 2 => {
                let op = match lower(&args.next_bytes()?).as_str() {
                    "write" => DiskOp::Write,
                    "fsync" => DiskOp::Fsync,
                    _ => return Err(errinput!("VALTHREE.FAULT DISK: the operation is WRITE or FSYNC")),
                };
                let error = match lower(&args.next_bytes()?).as_str() {
                    "off" => None,
                    other => Some(
                        DiskError::parse(other)
                            .ok_or_else(|| errinput!("VALTHREE.FAULT DISK: the error is EIO, ENOSPC or OFF"))?,
                    ),
                };
                Action::Disk(op, error)
            }
            _ => {
                return Err(errinput!(
                    "syntax error: VALTHREE.FAULT token ISOLATE peer [peer ...] | HEAL | STATUS | DISK WRITE|FSYNC EIO|ENOSPC|OFF"
                ));
            }
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
            Action::Disk(op, error) => {
                tracing::warn!(op = op.name(), error = error.map_or("off", DiskError::name), "disk fault injected");
                faults.fs().inject(op, error);
                return Ok(Reply::Array(faults.fs().injected().into_iter().map(Reply::text).collect()));
            }
        }
        Ok(Reply::Array(faults.isolated().into_iter().map(Reply::text).collect()))
    }
}
