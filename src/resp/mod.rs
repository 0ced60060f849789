//! The Redis front: RESP2/RESP3 over TCP, one file per command, nothing mode-specific.

pub mod cmd;
mod codec;
mod connection;
mod reply;
mod server;

pub use codec::{CodecError, DEFAULT_PROTO_MAX_BULK_LEN, RespCodec};
pub use reply::Reply;
pub use server::{ServerConfig, ServerState, serve};

/// The Redis version valthree answers to HELLO and INFO, for clients that gate features on it.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";
