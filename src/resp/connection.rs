//! One client connection: read requests, run them in order, write replies.
//!
//! Pipelining: replies are queued on the socket's write buffer while more requests are
//! already waiting, and flushed as soon as the next request would have to wait for the
//! network — one write for a whole pipeline, no delay for a lone request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::cmd::{Command, Ctx, allowed_without_auth};
use super::codec::{CodecError, RespCodec};
use super::{Reply, ServerState};
use crate::store::Store;

/// What a connection has said about itself.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub name: Option<Bytes>,
    /// 2 or 3, switched by HELLO.
    pub protocol: u8,
    pub authenticated: bool,
    /// Set by QUIT: close after this reply.
    pub closing: bool,
    pub lib_name: String,
    pub lib_ver: String,
    pub connected: Instant,
}

/// Serves one connection until the client leaves, a protocol error, or shutdown.
pub async fn handle(socket: TcpStream, store: Arc<dyn Store>, server: Arc<ServerState>, shutdown: CancellationToken) {
    let peer = socket.peer_addr().unwrap_or_else(|_| server.local_addr);
    let _ = socket.set_nodelay(true);
    let mut session = Session {
        id: server.next_client_id.fetch_add(1, Ordering::Relaxed) + 1,
        peer,
        local: server.local_addr,
        name: None,
        protocol: 2,
        authenticated: server.requirepass.is_none(),
        closing: false,
        lib_name: String::new(),
        lib_ver: String::new(),
        connected: Instant::now(),
    };
    tracing::debug!(client = session.id, %peer, "connected");
    let mut codec = RespCodec::new(server.proto_max_bulk_len);
    codec.authenticated = session.authenticated;
    let mut framed = Framed::new(socket, codec);
    loop {
        let next = match framed.next().now_or_never() {
            Some(next) if !shutdown.is_cancelled() => next,
            _ => {
                if framed.flush().await.is_err() {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    next = framed.next() => next,
                }
            }
        };
        let request = match next {
            None | Some(Err(CodecError::Io(_))) => break,
            Some(Err(CodecError::Protocol(msg))) => {
                tracing::debug!(client = session.id, %msg, "protocol error");
                let _ = framed.send(Reply::error(format!("ERR Protocol error: {msg}"))).await;
                break;
            }
            Some(Ok(request)) => request,
        };
        server.commands.fetch_add(1, Ordering::Relaxed);
        // As in Redis: unknown commands and wrong arity are reported before NOAUTH.
        let needs_auth = !session.authenticated && !allowed_without_auth(&request[0]);
        let reply = match Command::parse(request) {
            Ok(_) if needs_auth => Reply::error("NOAUTH Authentication required."),
            Ok(command) => {
                let ctx = &mut Ctx { store: store.as_ref(), session: &mut session, server: &server };
                command.apply(ctx).await
            }
            Err(e) => Reply::from(e),
        };
        let codec = framed.codec_mut();
        codec.protocol = session.protocol;
        codec.authenticated = session.authenticated;
        if framed.feed(reply).await.is_err() {
            break;
        }
        if session.closing {
            break;
        }
    }
    let _ = framed.flush().await;
    tracing::debug!(client = session.id, "disconnected");
}
