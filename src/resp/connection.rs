//! One client connection: read requests, run them in order, write replies.
//!
//! Pipelining: replies are queued on the socket's write buffer while more requests are
//! already waiting, and flushed as soon as the next request would have to wait for the
//! network — one write for a whole pipeline, no delay for a lone request — or once the
//! oldest queued reply has waited [`MAX_REPLY_DELAY`], so a pipeline of slow commands
//! (cluster-wide DBSIZEs, writes waiting for a quorum) streams its replies instead of
//! holding them back until a buffer fills.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::auth::{allowed_without_auth, auth_required};
use super::cmd::{Command, Ctx};
use super::codec::{CodecError, RespCodec};
use super::{Reply, ServerState, Session};
use crate::store::Store;

/// The longest a reply waits in the write buffer for the rest of its pipeline.
pub const MAX_REPLY_DELAY: Duration = Duration::from_millis(2);

/// Serves one connection until the client leaves, a protocol error, or shutdown.
pub async fn handle<S>(
    socket: S,
    peer: std::net::SocketAddr,
    store: Arc<dyn Store>,
    server: Arc<ServerState>,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
    let mut session = Session::new(id, peer, server.local_addr, server.requirepass.is_none());
    tracing::debug!(client = session.id, %peer, "connected");
    let mut codec = RespCodec::new(server.proto_max_bulk_len).with_budget(server.client_buffers.clone());
    codec.authenticated = session.authenticated;
    let mut framed = Framed::new(socket, codec);
    let mut queued_since: Option<Instant> = None;
    loop {
        if queued_since.is_some_and(|t| t.elapsed() >= MAX_REPLY_DELAY) {
            if framed.flush().await.is_err() {
                break;
            }
            queued_since = None;
        }
        // Requests already received are answered, also during shutdown; only waiting for
        // more stops when the server is stopping.
        let next = match framed.next().now_or_never() {
            Some(next) => next,
            None => {
                if framed.flush().await.is_err() || shutdown.is_cancelled() {
                    break;
                }
                queued_since = None;
                let idle = async {
                    match server.idle_timeout {
                        Some(limit) => tokio::time::sleep(limit).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    next = framed.next() => next,
                    _ = idle => {
                        // As Redis' `timeout`: an idle client is closed without a word.
                        tracing::debug!(client = session.id, "idle for longer than --timeout; closing");
                        break;
                    }
                }
            }
        };
        let request = match next {
            None | Some(Err(CodecError::Io(_))) => break,
            Some(Err(CodecError::OverBudget)) => {
                tracing::warn!(client = session.id, "query buffers of all clients exceed --maxmemory-clients; closing");
                let _ = framed
                    .send(Reply::error("ERR client query buffers exceed maxmemory-clients; closing the connection"))
                    .await;
                break;
            }
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
        queued_since.get_or_insert_with(Instant::now);
        if session.closing {
            break;
        }
    }
    let _ = framed.flush().await;
    tracing::debug!(client = session.id, "disconnected");
}
