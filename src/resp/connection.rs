//! One client connection: read requests, run them in order, write replies.
//!
//! Pipelining: replies are queued on the socket's write buffer while more requests are
//! already waiting, and flushed as soon as the next request would have to wait for the
//! network — one write for a whole pipeline, no delay for a lone request.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::auth::{allowed_without_auth, auth_required};
use super::cmd::{Command, Ctx};
use super::codec::{CodecError, RespCodec};
use super::{Reply, ServerState, Session};
use crate::store::Store;

/// Serves one connection until the client leaves, a protocol error, or shutdown.
pub async fn handle(socket: TcpStream, store: Arc<dyn Store>, server: Arc<ServerState>, shutdown: CancellationToken) {
    let peer = socket.peer_addr().unwrap_or_else(|_| server.local_addr);
    let _ = socket.set_nodelay(true);
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
    let mut session = Session::new(id, peer, server.local_addr, server.requirepass.is_none());
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
        // As in Redis, unknown commands and wrong arity are reported before NOAUTH (and here,
        // so are the command's own syntax errors: it is parsed before the check).
        let reply = match Command::parse(request) {
            Err(e) => Reply::from(e),
            Ok(command) if !session.authenticated && !allowed_without_auth(command.spec().flags) => {
                Reply::from(auth_required())
            }
            Ok(command) => {
                let ctx = &mut Ctx { store: store.as_ref(), session: &mut session, server: &server };
                command.apply(ctx).await
            }
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
