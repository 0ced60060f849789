//! `valthree backup` and `valthree restore`: the keyspace out to a Redis RDB file and back,
//! over the client protocol, for any mode (and any Redis-protocol server for the key-by-key
//! path).
//!
//! ## What a backup is, per mode
//!
//! * **s3 and raft: one point in time.** The tool sends `VALTHREE.SNAPSHOT BEGIN` to one
//!   node, which takes the whole keyspace as of one linearizable instant ([`Store::snapshot`]:
//!   one version of the s3 document; raft's state machine at one applied index past a read
//!   index) — an O(1) clone of the persistent map, held by that connection — and pages through
//!   it with `NEXT`. Writes during the backup are not in it; every write acknowledged before
//!   it began is.
//! * **paxos and dynamo: key by key.** There is no one instant to read: paxos agrees on each
//!   key alone and dynamo keeps replicas. The tool lists the keys with `SCAN`, asks each
//!   page's lengths (`STRLEN`), and reads the values in groups of about 1 MiB (a larger
//!   value alone) once a byte budget shared by every reader has room for them: memory is
//!   bounded by bytes, not keys, though one value of any size still travels whole. paxos
//!   mode reads a group with pipelined `GET`s (each key linearizable on its own), each sent
//!   to the key's home node (INFO `paxos_members` and each node's `paxos_node_id`, hashed as
//!   the nodes do), so no read is forwarded over the peer plane; dynamo mode with
//!   `VGET key WITHDOTS`, which gives every sibling with its timestamp, so one read yields
//!   the value GET would pick and whether the key had siblings (the report names them). Each
//!   reader holds a connection to every node and sends each its share of a page at once. A
//!   read refused with `-TRYAGAIN` (or `-UNCERTAIN`, `-LOADING`), or whose connection
//!   breaks, is sent again alone — the page's other reads are kept — to the next node in
//!   the key's order (paxos: where the key runs while its home is away), after a growing
//!   pause and in pipelines half as long; a SCAN likewise, on the next node: a SCAN cursor
//!   means the same on every node, so the scan goes on where it was. A key written during
//!   the backup may be in it with its old or new value, or absent if it was created after
//!   `SCAN` passed it; a key deleted meanwhile is left out. SCAN may return a key twice, and
//!   redis-server refuses a file with a duplicate key, so this path remembers the keys it
//!   wrote: its memory grows with the total size of the keys, not of the values.
//!
//! ## Restore
//!
//! The file is read through once first (its checksum, and its longest string, which must
//! not exceed the server's `CONFIG GET proto-max-bulk-len`), then entry by entry
//! ([`crate::rdb::RdbReader`]) and written through several connections at once, as the
//! mode writes many keys cheapest: `MSET`s in s3 mode (one document swap each, joined by
//! the node's group commit; as large as 8 MiB allows, since a swap that changes more than
//! 1,024 keys writes the whole keyspace as a new snapshot) and raft mode (one log entry each, under raft's 4 MiB cap),
//! pipelines of `SET`s over many connections in paxos and dynamo mode, which cannot write
//! several keys as one. paxos mode sends each key's `SET` to its home, as the backup reads it
//! there (each writer holds a connection to every node and sends each its share of a batch
//! at once), so no write is forwarded over the peer plane. Memory stays a few batches
//! whatever the file's size. Strings of database 0 are restored; every other type, key of
//! another database, key whose expiry has passed and function library is skipped and
//! counted in the report (valthree has no expiries: a key with a future one is restored
//! without it, and counted too). A database that already holds keys is refused unless the
//! caller says `replace`; then the file's keys overwrite theirs and other keys stay.
//!
//! A write refused with `-TRYAGAIN`, `-UNCERTAIN` or `-LOADING`, or whose connection breaks,
//! is sent again — an `-UNCERTAIN` one too: a restore writes each key to the file's value,
//! so a write that did apply and is sent again changes nothing — an MSET to the next node,
//! a SET alone (the batch's others are kept) to the next node in its key's order, after
//! pauses that double up to 10 s, for about two minutes of pauses ([`retry::Policy`])
//! before the restore gives up with an error that names the write, the last refusal and
//! the tries; the keys written before it stay, and a restore of the same file with
//! `replace` writes the rest.
//!
//! [`Store::snapshot`]: crate::store::Store::snapshot

mod conn;
mod dump;
mod load;
mod retry;
mod route;

pub use dump::{BackupReport, backup};
pub use load::{FileSummary, RestoreReport, restore, verify};

use tokio::sync::mpsc;

/// The nodes to talk to, and the password to AUTH with.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of each node; connections are spread over them.
    pub addrs: Vec<String>,
    /// The client password, if the cluster has one.
    pub password: Option<String>,
    /// How many connections work at once (restore, and a key-by-key backup); `None`: what
    /// suits the mode.
    pub connections: Option<usize>,
}

/// A bounded queue several workers take from (tokio's mpsc has one receiver): what bounds
/// the memory of a backup or restore to a few batches.
fn work_queue<T: Send + 'static>(capacity: usize) -> (mpsc::Sender<T>, SharedReceiver<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, SharedReceiver(std::sync::Arc::new(tokio::sync::Mutex::new(rx))))
}

/// The receiving end of [`work_queue`], cloned into each reader.
struct SharedReceiver<T>(std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<T>>>);

impl<T> Clone for SharedReceiver<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> SharedReceiver<T> {
    async fn recv(&self) -> Option<T> {
        self.0.lock().await.recv().await
    }
}
