//! What every connection shares: the server's settings and its counters. The listener
//! ([`serve`](super::serve)) builds it once; commands read it through their
//! [`Ctx`](super::cmd::Ctx) (INFO, AUTH, the admin commands).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Instant;

use crate::node::Faults;

/// The state shared by all connections of one server.
#[derive(Debug)]
pub struct ServerState {
    /// The `default` user's password (`--requirepass`); `None` lets every client in.
    pub requirepass: Option<String>,
    /// The token the admin commands (`VALTHREE.*`) require; `None` disables them.
    pub admin_token: Option<String>,
    /// The node's fault switches, shared with its mode.
    pub faults: Arc<Faults>,
    /// The most connections served at once (`--maxclients`).
    pub maxclients: usize,
    /// The longest bulk string a request may carry.
    pub proto_max_bulk_len: u64,
    /// The bytes all connections' query and output buffers may hold together
    /// (`--maxmemory-clients`).
    pub client_buffers: Arc<super::codec::BufferBudget>,
    /// The part of it connections that have not authenticated may hold together (an eighth),
    /// so that strangers cannot spend what authenticated clients need.
    pub unauthenticated_buffers: Arc<super::codec::BufferBudget>,
    /// What one connection's unsent replies may hold (`--client-output-buffer-limit`).
    pub output_limit: super::OutputLimit,
    /// Every connection's unsent output, and the evictions made to fit `client_buffers`
    /// (INFO's `evicted_clients`).
    pub evictor: Arc<super::eviction::Evictor>,
    /// Connections closed for passing it (INFO's `client_output_buffer_limit_disconnections`).
    pub output_limit_closed: AtomicU64,
    /// Close a connection idle this long (`--timeout`; `None`: never).
    pub idle_timeout: Option<std::time::Duration>,
    /// End a snapshot walk idle this long (`--snapshot-walk-timeout`).
    pub snapshot_walk_timeout: std::time::Duration,
    /// Snapshot walks ended for being idle that long.
    pub snapshot_walks_expired: AtomicU64,
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
    /// When the server started (`uptime_in_seconds`).
    pub started: Instant,
    /// Connections open now.
    pub clients: AtomicUsize,
    /// Connections ever accepted (the last client id).
    pub next_client_id: AtomicU64,
    /// Requests ever received.
    pub commands: AtomicU64,
    /// Wrong passwords ever received (INFO's `acl_access_denied_auth`).
    pub auth_failures: AtomicU64,
    /// Connections refused because `--maxclients` were open (INFO's `rejected_connections`).
    pub rejected_connections: AtomicU64,
    /// Buffer bytes closed connections freed since the allocator last gave memory back.
    pub freed_since_trim: AtomicUsize,
    /// Snapshot walks (`VALTHREE.SNAPSHOT`) held now: each pins one version of the keyspace.
    pub snapshot_walks: Arc<AtomicUsize>,
    /// AUTHs answered without comparing their password: their source had no turn free
    /// (INFO's `auth_attempts_throttled`).
    pub auth_throttled: AtomicU64,
    /// When each source's passwords may be compared.
    pub auth_allowance: super::auth::Allowance,
    /// Wrong passwords already refused, whose repeats are not slowed.
    pub auth_repeated_failures: super::auth::RepeatedFailures,
    /// Throttles the log line about them.
    pub auth_failure_log: crate::node::LogThrottle,
    /// Connections that have not authenticated, by source address.
    pub strangers: Arc<super::auth::Strangers>,
    /// Connections closed because they had not authenticated in time, or refused because
    /// their address had too many such (INFO's `unauthenticated_closed`).
    pub strangers_closed: AtomicU64,
    /// The node's counters: per command, errors by kind, bytes in and out.
    pub metrics: Arc<crate::metrics::Metrics>,
}
