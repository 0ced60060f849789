//! `VALTHREE.HEALTH`: a readiness check that tells. PING answers as long as the process
//! runs; this one does what a data command does — a linearizable read through the mode (the
//! object store's document in s3 mode, a quorum round in paxos, the leader's read index in
//! raft) — and answers `+OK` only if that works, else the error a read would get (a corrupt
//! document, no quorum, no leader). Container health checks and load balancers use it. A
//! node whose storage failed answers an error naming the failure (it exits soon after).

use super::{Args, Ctx};
use crate::error::{Error, Result};
use crate::resp::Reply;

use crate::store::PROBE_KEY;

#[derive(Debug)]
pub struct Health;

impl Health {
    pub fn parse(args: &mut Args) -> Result<Self> {
        args.finish()?;
        Ok(Self)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        if let Some(why) = ctx.server.faults.fs().failure() {
            return Err(Error::Io(format!("storage failed: {why}; the node is stopping")));
        }
        ctx.store.get(PROBE_KEY).await?;
        Ok(Reply::ok())
    }
}
