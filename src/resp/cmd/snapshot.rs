//! `VALTHREE.SNAPSHOT BEGIN | NEXT count | END`: the consistent read behind `valthree backup`.
//! `BEGIN` takes the whole keyspace at one point in time ([`Store::snapshot`]: s3 and raft
//! mode) into the connection and replies `[keys, point-in-time]`; each `NEXT` replies the
//! following entries as a flat `[key, value, ...]`, at most `count` of them and about
//! [`PAGE_BYTES`] (at least one), and an empty array once the walk is over. `END`, or closing
//! the connection, lets the snapshot go. Every page comes from the same snapshot, however
//! long the walk takes and whatever is written meanwhile. In paxos and dynamo mode `BEGIN`
//! is refused: they have no such point, and a backup reads key by key.
//!
//! At most [`MAX_WALKS`] walks are held on a node at once (each pins a version of the
//! keyspace, and values overwritten since stay in memory until it ends); a BEGIN past that
//! is refused, a walk on the same connection is replaced. A walk idle longer than
//! `--snapshot-walk-timeout` (60 s) is ended by its connection's loop, whether or not the
//! client ever sends anything again, and counted in INFO's `snapshot_walks_expired`; its
//! next `NEXT` is refused with a message saying so.
//!
//! [`Store::snapshot`]: crate::store::Store::snapshot

use std::time::Instant;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::session::{SnapshotWalk, WalkHeld};

/// About how many bytes of keys and values one `NEXT` carries: pages stay small next to the
/// keyspace, whatever `count` asks for (a single larger value still goes out whole).
pub const PAGE_BYTES: usize = 4 << 20;

/// The most snapshot walks a node holds at once.
pub const MAX_WALKS: usize = 4;

#[derive(Debug)]
pub enum Snapshot {
    Begin,
    Next(usize),
    End,
}

impl Snapshot {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let step = match lower(&args.next_bytes()?).as_str() {
            "begin" => Snapshot::Begin,
            "next" => {
                let count = args.next_i64()?;
                Snapshot::Next(
                    usize::try_from(count)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| errinput!("count must be positive"))?,
                )
            }
            "end" => Snapshot::End,
            _ => return Err(errinput!("syntax error: VALTHREE.SNAPSHOT BEGIN | NEXT count | END")),
        };
        args.finish()?;
        Ok(step)
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        match self {
            Snapshot::Begin => {
                // A walk this connection holds is replaced, so it does not count.
                ctx.session.snapshot = None;
                let Some(held) = WalkHeld::take(&ctx.server.snapshot_walks, MAX_WALKS) else {
                    return Err(errinput!(
                        "{MAX_WALKS} snapshot walks are held on this node already: wait for a backup to end"
                    ));
                };
                let Some(snapshot) = ctx.store.snapshot().await? else {
                    return Err(errinput!(
                        "{} mode has no point-in-time snapshot: read the keys one by one (SCAN, GET)",
                        ctx.store.describe().mode
                    ));
                };
                let reply = Reply::Array(vec![
                    Reply::Integer(snapshot.keyspace.len() as i64),
                    Reply::text(snapshot.taken_at.clone()),
                ]);
                ctx.session.walk_expired = false;
                ctx.session.snapshot = Some(SnapshotWalk { snapshot, after: None, held, last_used: Instant::now() });
                Ok(reply)
            }
            Snapshot::Next(count) => {
                let Some(walk) = &mut ctx.session.snapshot else {
                    if ctx.session.walk_expired {
                        return Err(errinput!(
                            "the snapshot walk on this connection was idle longer than {}s \
                             (--snapshot-walk-timeout) and has ended: send VALTHREE.SNAPSHOT BEGIN again",
                            ctx.server.snapshot_walk_timeout.as_secs()
                        ));
                    }
                    return Err(errinput!("no snapshot on this connection: send VALTHREE.SNAPSHOT BEGIN first"));
                };
                walk.last_used = Instant::now();
                let (mut page, mut bytes) = (Vec::new(), 0usize);
                for (key, value) in walk.snapshot.keyspace.entries_after(walk.after.as_deref()) {
                    if page.len() / 2 >= count || (bytes > 0 && bytes + key.len() + value.len() > PAGE_BYTES) {
                        break;
                    }
                    bytes += key.len() + value.len();
                    page.push(Reply::Bulk(key.clone()));
                    page.push(Reply::Bulk(value.clone()));
                }
                match page.len() {
                    0 => ctx.session.snapshot = None,
                    n => {
                        if let Reply::Bulk(last) = &page[n - 2] {
                            walk.after = Some(last.clone());
                        }
                    }
                }
                Ok(Reply::Array(page))
            }
            Snapshot::End => {
                ctx.session.snapshot = None;
                Ok(Reply::ok())
            }
        }
    }
}
