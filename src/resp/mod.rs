//! The Redis front: RESP2/RESP3 over TCP, one file per command, nothing mode-specific.
//!
//! Layers, each using only those before it: the leaves `reply`, `codec`, `session`,
//! `state`, `auth` and `eviction`; then `cmd` (the command table and one file per command); then
//! `connection` (one client's request loop); then `server` (the listener).

mod auth;
pub mod cmd;
mod codec;
mod connection;
mod eviction;
mod reply;
mod server;
mod session;
mod state;
mod tls;

pub use auth::MAX_SECRET_LEN;
pub use codec::{CodecError, DEFAULT_PROTO_MAX_BULK_LEN, RespCodec};
pub use reply::Reply;
pub use server::{DRAIN_TIMEOUT, Drained, OutputLimit, ServerConfig, serve};
pub use session::Session;
pub use state::ServerState;
pub use tls::{ClientAuth, TlsOptions, acceptor as tls_acceptor};

/// The Redis version valthree answers to HELLO and INFO, for clients that gate features on it.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";
