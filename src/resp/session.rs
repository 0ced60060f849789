//! What one connection has said about itself: its protocol, name, client library, and
//! whether it has authenticated. Commands read and change it through their
//! [`Ctx`](super::cmd::Ctx); the connection loop reads it back after every reply (to switch
//! the codec to RESP3, lift the pre-AUTH limits, or close after QUIT). A backup's walk over
//! a snapshot lives here too, so it ends with the connection.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::store::Snapshot;

/// The per-connection state, owned by the connection's task.
#[derive(Debug)]
pub struct Session {
    /// The client id (`CLIENT ID`), unique for the life of the server, counting from 1.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
    /// Set by `CLIENT SETNAME` or `HELLO ... SETNAME`; never empty.
    pub name: Option<Bytes>,
    /// 2 or 3, switched by HELLO.
    pub protocol: u8,
    /// True once AUTH or HELLO succeeded, or from the start without `--requirepass`.
    pub authenticated: bool,
    /// Until when it may stay without authenticating (with `--requirepass`).
    pub auth_deadline: Option<std::time::Instant>,
    /// Wrong passwords sent on this connection (AUTH, HELLO ... AUTH).
    pub auth_failures: u32,
    /// AUTHs on this connection answered without comparing (too many from its network).
    pub auth_throttled: u32,
    /// Set by QUIT: close after this reply.
    pub closing: bool,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: String,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: String,
    /// When the connection was accepted (`age` in `CLIENT INFO`).
    pub connected: Instant,
    /// The snapshot `VALTHREE.SNAPSHOT BEGIN` took, while `NEXT` pages through it.
    pub snapshot: Option<SnapshotWalk>,
    /// Set when this connection's walk was ended for being idle, so the next `NEXT` says so.
    pub walk_expired: bool,
}

/// A walk over a snapshot, page by page: the connection holds the O(1) clone, the client
/// holds one page at a time, so neither side's memory grows with the keyspace.
pub struct SnapshotWalk {
    /// The keyspace as it was.
    pub snapshot: Snapshot,
    /// The last key sent (`None` before the first page).
    pub after: Option<Bytes>,
    /// Counts this walk among the server's while it lives.
    pub held: WalkHeld,
    /// When BEGIN or the last NEXT ran: a walk idle longer than `--snapshot-walk-timeout`
    /// is ended by the connection loop.
    pub last_used: Instant,
}

/// One walk counted in the server's [`ServerState::snapshot_walks`](super::ServerState)
/// until it is dropped (END, the last page, or the connection closing).
#[derive(Debug)]
pub struct WalkHeld(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl WalkHeld {
    /// Counts a walk in `walks` unless `limit` are held already.
    pub fn take(walks: &std::sync::Arc<std::sync::atomic::AtomicUsize>, limit: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        walks.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(Self(walks.clone()))
    }
}

impl Drop for WalkHeld {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl std::fmt::Debug for SnapshotWalk {
    /// The position, not the keyspace (a session is logged, a keyspace can be gigabytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWalk").field("keys", &self.snapshot.keyspace.len()).field("after", &self.after).finish()
    }
}

impl Session {
    /// A fresh RESP2 session, unnamed, authenticated only when no password is required.
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr, authenticated: bool) -> Self {
        Self {
            id,
            peer,
            local,
            name: None,
            protocol: 2,
            authenticated,
            auth_deadline: None,
            auth_failures: 0,
            auth_throttled: 0,
            closing: false,
            lib_name: String::new(),
            lib_ver: String::new(),
            connected: Instant::now(),
            snapshot: None,
            walk_expired: false,
        }
    }
}
