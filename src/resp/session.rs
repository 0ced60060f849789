//! What one connection has said about itself: its protocol, name, client library, and
//! whether it has authenticated. Commands read and change it through their
//! [`Ctx`](super::cmd::Ctx); the connection loop reads it back after every reply (to switch
//! the codec to RESP3, lift the pre-AUTH limits, or close after QUIT).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

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
    /// Wrong passwords sent on this connection (AUTH, HELLO ... AUTH).
    pub auth_failures: u32,
    /// Set by QUIT: close after this reply.
    pub closing: bool,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: String,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: String,
    /// When the connection was accepted (`age` in `CLIENT INFO`).
    pub connected: Instant,
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
            auth_failures: 0,
            closing: false,
            lib_name: String::new(),
            lib_ver: String::new(),
            connected: Instant::now(),
        }
    }
}
