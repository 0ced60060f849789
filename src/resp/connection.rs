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

use super::auth::{AUTH_DEADLINE, allowed_without_auth, auth_required};
use super::cmd::{Command, Ctx};
use super::codec::{CodecError, RespCodec};
use super::eviction::{Acknowledged, ReadMeter};
use super::{Reply, ServerState, Session};
use crate::store::Store;

/// The longest a reply waits in the write buffer for the rest of its pipeline.
pub const MAX_REPLY_DELAY: Duration = Duration::from_millis(2);
/// Consecutive GETs and STRLENs of a pipeline run as one read at most this many at a time.
pub const MAX_GET_RUN: usize = 128;
/// Consecutive SETs of a pipeline are handed to a store that groups writes (s3 mode) as one
/// batch, at most this many at a time.
pub const MAX_SET_RUN: usize = 128;

/// What the loop works on next: a frame from the client, or a command already parsed while
/// looking ahead for the end of a run of GETs.
enum Input {
    Frame(Option<Result<Vec<bytes::Bytes>, CodecError>>),
    Parsed(crate::error::Result<Command>),
}

/// Serves one connection until the client leaves, a protocol error, or shutdown.
/// `stranger` is its count against its address while it has not authenticated, and when it
/// must have done so ([`super::server`] takes it when it accepts the connection, before a TLS
/// handshake).
pub async fn handle<S>(
    socket: S,
    peer: std::net::SocketAddr,
    store: Arc<dyn Store>,
    server: Arc<ServerState>,
    shutdown: CancellationToken,
    stranger: Option<(super::auth::Stranger, Instant)>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Acknowledged + Unpin,
{
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
    let mut session = Session::new(id, peer, server.local_addr, server.requirepass.is_none());
    tracing::debug!(client = session.id, %peer, "connected");
    // Until it authenticates, a connection counts against its address's strangers, and has
    // until the deadline to do so.
    let (mut stranger, auth_deadline) = match stranger {
        Some((stranger, deadline)) if !session.authenticated => (Some(stranger), deadline),
        _ => (None, Instant::now()),
    };
    session.auth_deadline = stranger.is_some().then_some(auth_deadline);
    let budget = if session.authenticated { &server.client_buffers } else { &server.unauthenticated_buffers };
    let mut codec = RespCodec::new(server.proto_max_bulk_len).with_budget(budget.clone());
    codec.authenticated = session.authenticated;
    let mut framed = Framed::new(socket, codec);
    framed.set_backpressure_boundary(WRITE_BACKPRESSURE);
    let mut output = OutputShare {
        budget: server.client_buffers.clone(),
        held: 0,
        peak: 0,
        cut: false,
        entry: server.evictor.register(id),
    };
    let mut queued_since: Option<Instant> = None;
    let mut ahead: Option<Input> = None;
    loop {
        if stranger.is_some() {
            if session.authenticated {
                stranger = None;
            } else if Instant::now() >= auth_deadline {
                break;
            }
        }
        if queued_since.is_some_and(|t| t.elapsed() >= MAX_REPLY_DELAY) {
            if !flush(&mut framed, &mut output, &session, &server).await {
                break;
            }
            output.settle(framed.write_buffer().len());
            queued_since = None;
        }
        // Requests already received are answered, also during shutdown; only waiting for
        // more stops when the server is stopping.
        let next = match ahead.take() {
            Some(Input::Parsed(parsed)) => {
                let read_only = is_read_only(&parsed);
                let reply = run(parsed, store.as_ref(), &mut session, &server).await;
                if !send(&mut framed, &mut output, &session, &server, reply, read_only, &mut queued_since).await {
                    break;
                }
                continue;
            }
            Some(Input::Frame(next)) => Some(next),
            None => framed.next().now_or_never(),
        };
        let next = match next {
            Some(next) => next,
            None => {
                if !flush(&mut framed, &mut output, &session, &server).await || shutdown.is_cancelled() {
                    break;
                }
                output.settle(framed.write_buffer().len());
                queued_since = None;
                // A connection that has not authenticated is closed at its deadline at the latest.
                let unauthenticated = stranger.is_some() && !session.authenticated;
                let idle_until = server.idle_timeout.map(|limit| Instant::now() + limit);
                let idle_until = if unauthenticated {
                    Some(idle_until.map_or(auth_deadline, |t| t.min(auth_deadline)))
                } else {
                    idle_until
                };
                let idle = async {
                    match idle_until {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                // A snapshot walk left idle pins a keyspace version: it ends on its own.
                let walk_deadline = session.snapshot.as_ref().map(|w| w.last_used + server.snapshot_walk_timeout);
                let walk_idle = async {
                    match walk_deadline {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    next = framed.next() => next,
                    _ = walk_idle => {
                        tracing::info!(client = session.id, "a snapshot walk idle for longer than --snapshot-walk-timeout ended");
                        session.snapshot = None;
                        session.walk_expired = true;
                        server.snapshot_walks_expired.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    _ = idle => {
                        if unauthenticated && Instant::now() >= auth_deadline {
                            break;
                        }
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
                // Client eviction: an authenticated client's request makes room by closing
                // the connections that hold the most output and are not reading it.
                let wanted = framed.codec().wanted();
                if session.authenticated && server.evictor.make_room(&server.client_buffers, wanted, session.id).await {
                    // The decoder stopped at its error: start it again on what already arrived.
                    framed = Framed::from_parts(framed.into_parts());
                    continue;
                }
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
        let parsed = Command::parse(request);
        let first = match parsed {
            Ok(Command::Get(get)) => (get.into_key(), false),
            Ok(Command::Strlen(strlen)) => (strlen.into_key(), true),
            Ok(Command::Set(set)) if session.authenticated && store.groups_writes() => {
                // A run of SETs already received is one batch of writes for the store, in
                // order: one commit for all of them where the mode groups writes (s3).
                let mut sets = vec![set.into_mutation()];
                while sets.len() < MAX_SET_RUN {
                    match framed.next().now_or_never() {
                        None => break,
                        Some(Some(Ok(request))) => {
                            server.commands.fetch_add(1, Ordering::Relaxed);
                            match Command::parse(request) {
                                Ok(Command::Set(set)) => sets.push(set.into_mutation()),
                                other => {
                                    ahead = Some(Input::Parsed(other));
                                    break;
                                }
                            }
                        }
                        Some(other) => {
                            ahead = Some(Input::Frame(other));
                            break;
                        }
                    }
                }
                let (mutations, gets): (Vec<_>, Vec<bool>) = sets.into_iter().unzip();
                let started = Instant::now();
                let written = store.set_each(mutations).await;
                let took = started.elapsed();
                let mut sent = true;
                for (result, get) in written.into_iter().zip(gets) {
                    server.metrics.command_done("set", took, result.as_ref().err().map(crate::error::Error::kind));
                    let reply = result.map_or_else(Reply::from, |r| super::cmd::Set::reply(get, r));
                    sent &= send(&mut framed, &mut output, &session, &server, reply, false, &mut queued_since).await;
                }
                if !sent {
                    break;
                }
                continue;
            }
            parsed => {
                let read_only = is_read_only(&parsed);
                let reply = run(parsed, store.as_ref(), &mut session, &server).await;
                if !send(&mut framed, &mut output, &session, &server, reply, read_only, &mut queued_since).await {
                    break;
                }
                continue;
            }
        };
        // A run of GETs and STRLENs already received (a pipeline) is one read: each is
        // answered as if alone, in order, and none waits for the read of the one before it.
        // (`valthree backup` pipelines STRLENs of a SCAN page before reading the values.)
        let mut keys = vec![first.0];
        let mut lengths = vec![first.1];
        while session.authenticated && keys.len() < MAX_GET_RUN {
            match framed.next().now_or_never() {
                None => break,
                Some(Some(Ok(request))) => {
                    server.commands.fetch_add(1, Ordering::Relaxed);
                    match Command::parse(request) {
                        Ok(Command::Get(get)) => {
                            keys.push(get.into_key());
                            lengths.push(false);
                        }
                        Ok(Command::Strlen(strlen)) => {
                            keys.push(strlen.into_key());
                            lengths.push(true);
                        }
                        other => {
                            ahead = Some(Input::Parsed(other));
                            break;
                        }
                    }
                }
                Some(other) => {
                    ahead = Some(Input::Frame(other));
                    break;
                }
            }
        }
        let replies: Vec<Reply> = if session.authenticated {
            let started = Instant::now();
            let values = store.get_each(&keys).await.into_iter().zip(lengths);
            let took = started.elapsed();
            values
                .map(|(read, length)| {
                    let name = if length { "strlen" } else { "get" };
                    server.metrics.command_done(name, took, read.as_ref().err().map(crate::error::Error::kind));
                    match (read, length) {
                        (Err(e), _) => Reply::from(e),
                        (Ok(value), false) => Reply::bulk_or_null(value),
                        (Ok(value), true) => Reply::Integer(value.map_or(0, |v| v.len() as i64)),
                    }
                })
                .collect()
        } else {
            server.metrics.command_error("get", auth_required().kind());
            vec![Reply::from(auth_required())]
        };
        let mut sent = true;
        for reply in replies {
            sent &= send(&mut framed, &mut output, &session, &server, reply, true, &mut queued_since).await;
        }
        if !sent {
            break;
        }
    }
    let _ = flush(&mut framed, &mut output, &session, &server).await;
    if stranger.is_some() && !session.authenticated && Instant::now() >= auth_deadline {
        server.strangers_closed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client = session.id, "not authenticated within {AUTH_DEADLINE:?}; closed");
    }
    tracing::debug!(client = session.id, "disconnected");
    let held = framed.codec().peak() + output.peak;
    drop(framed);
    drop(output);
    let freed = server.freed_since_trim.fetch_add(held, Ordering::Relaxed) + held;
    if freed > TRIM_AFTER {
        server.freed_since_trim.store(0, Ordering::Relaxed);
        return_freed_memory();
    }
}

/// Once closed connections have freed this much buffer memory, it is given back to the system.
const TRIM_AFTER: usize = 32 << 20;

/// Asks the allocator to give freed memory back to the system: glibc keeps large freed
/// buffers in its heap otherwise, and a burst of large requests would stay resident after
/// their connections closed.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it touches no live allocation.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// True for a request that changes nothing (a malformed one included): its reply may be
/// replaced by an error without misleading the client.
fn is_read_only(parsed: &crate::error::Result<Command>) -> bool {
    parsed.as_ref().map_or(true, |c| !c.spec().flags.contains(&"write"))
}

/// Runs one parsed command. As in Redis, unknown commands and wrong arity are reported
/// before NOAUTH (and here, so are the command's own syntax errors: it is parsed before the
/// check).
async fn run(
    parsed: crate::error::Result<Command>,
    store: &dyn Store,
    session: &mut Session,
    server: &ServerState,
) -> Reply {
    match parsed {
        Err(e) => {
            server.metrics.command_error(crate::metrics::UNKNOWN_COMMAND, e.kind());
            Reply::from(e)
        }
        Ok(command) if !session.authenticated && !allowed_without_auth(command.spec().flags) => {
            server.metrics.command_error(command.spec().name, auth_required().kind());
            Reply::from(auth_required())
        }
        Ok(command) => command.apply(&mut Ctx { store, session, server }).await,
    }
}

/// Queues `reply` on the connection's write buffer; false when the client is gone or the
/// session is closing.
///
/// The write buffer counts against `--maxmemory-clients` with the query buffers: a reply
/// that would pass it is not encoded (an MGET of large values for a client that never reads
/// would otherwise hold them all). A read is answered an error instead and the connection
/// goes on; after a write (or a reply that may follow one, such as SET ... GET) the client
/// is told the outcome is uncertain and the connection closes, since an error would claim
/// that nothing happened.
async fn send<S>(
    framed: &mut Framed<S, RespCodec>,
    output: &mut OutputShare,
    session: &Session,
    server: &ServerState,
    reply: Reply,
    read_only: bool,
    queued_since: &mut Option<Instant>,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Acknowledged + Unpin,
{
    let codec = framed.codec_mut();
    codec.protocol = session.protocol;
    codec.authenticated = session.authenticated;
    if session.authenticated {
        codec.move_to_budget(&server.client_buffers);
    }
    let size = reply.wire_len();
    let mut closing = session.closing;
    // A client that leaves more than the soft limit unread is waited for only so long.
    if server.output_limit.over_soft(framed.write_buffer().len()) && !flush(framed, output, session, server).await {
        return false;
    }
    let pending = framed.write_buffer().len().saturating_add(size);
    let reply = if server.output_limit.over_hard(pending) {
        let unsent = pending - size;
        if read_only {
            tracing::warn!(
                client = session.id,
                size,
                unsent,
                "a reply would pass --client-output-buffer-limit; answered with an error"
            );
            Reply::error(format!(
                "ERR the reply ({size} bytes) would pass client-output-buffer-limit with the {unsent} bytes the client \
                 has not read yet; nothing was sent (read less at once)"
            ))
        } else {
            tracing::warn!(
                client = session.id,
                size,
                unsent,
                "a reply would pass --client-output-buffer-limit; closing"
            );
            server.output_limit_closed.fetch_add(1, Ordering::Relaxed);
            closing = true;
            Reply::error(format!(
                "UNCERTAIN the reply ({size} bytes) would pass client-output-buffer-limit; the command ran, its reply \
                 is dropped, and the connection closes"
            ))
        }
    } else if output.settle_within_budget(pending)
        || (server.evictor.make_room(&output.budget, pending.saturating_sub(output.held), session.id).await
            && output.settle_within_budget(pending))
    {
        reply
    } else if read_only {
        tracing::warn!(client = session.id, size, "a reply would pass --maxmemory-clients; answered with an error");
        Reply::error(format!(
            "ERR the reply ({size} bytes) would pass maxmemory-clients with what clients already hold; nothing was \
             sent (read less at once)"
        ))
    } else {
        tracing::warn!(client = session.id, size, "a reply would pass --maxmemory-clients; closing");
        closing = true;
        Reply::error(format!(
            "UNCERTAIN the reply ({size} bytes) would pass maxmemory-clients; the command ran, its reply is dropped, \
             and the connection closes"
        ))
    };
    // What `feed` would wait for (it flushes a buffer past the backpressure boundary first),
    // waited for here, where an eviction or the soft limit can end it.
    if framed.write_buffer().len() >= WRITE_BACKPRESSURE && !flush(framed, output, session, server).await {
        return false;
    }
    if framed.feed(reply).await.is_err() {
        return false;
    }
    output.settle(framed.write_buffer().len());
    queued_since.get_or_insert_with(Instant::now);
    !closing
}

/// Sends what the write buffer holds; false when the client is gone, when the connection was
/// evicted (see [`super::eviction`]: its client received less than 64 KiB of its output, or
/// a thirtieth of what waits, in the last 2 s while the clients' budget was full), or when it holds more than
/// `--client-output-buffer-limit`'s soft limit unsent and has read none of it for the
/// limit's seconds (then it is closed). Unlike Redis, which closes a client that stays above
/// the soft limit that long even while it reads, a client that keeps reading is never closed
/// here: a slow reader of a large value is not a client that stopped reading.
async fn flush<S>(
    framed: &mut Framed<S, RespCodec>,
    output: &mut OutputShare,
    session: &Session,
    server: &ServerState,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Acknowledged + Unpin,
{
    if output.cut {
        return false;
    }
    let limit = server.output_limit;
    let entry = output.entry.holding.clone();
    // Since when the client has read nothing, and what was unsent when last looked.
    let mut since = Instant::now();
    let mut before = framed.write_buffer().len();
    // For eviction: whether the client takes its output, by what its socket shows.
    let mut reading = ReadMeter::start(since, framed.get_ref().acknowledged(), before);
    let flushed = loop {
        let unsent = framed.write_buffer().len();
        if unsent < before {
            // The client read some: its time starts again.
            since = Instant::now();
        }
        before = unsent;
        output.settle(unsent);
        entry.set_reading(reading.observe(Instant::now(), framed.get_ref().acknowledged(), unsent));
        let mut wait = SOFT_CHECK;
        // A connection that has not authenticated is closed at its deadline, also while its
        // client reads none of its replies.
        if !session.authenticated
            && let Some(deadline) = session.auth_deadline
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            wait = wait.min(left);
        }
        if limit.over_soft(unsent) {
            let left = limit.soft_for.saturating_sub(since.elapsed());
            if left.is_zero() {
                tracing::warn!(
                    client = session.id,
                    unsent,
                    "a client read none of its replies for --client-output-buffer-limit's time, with more than its \
                     soft limit unsent; closing"
                );
                server.output_limit_closed.fetch_add(1, Ordering::Relaxed);
                break false;
            }
            wait = wait.min(left);
        }
        // Flushing is cancel-safe: what was written is gone from the buffer. Look again at
        // least every SOFT_CHECK whether the client read any.
        tokio::select! {
            biased;
            _ = entry.evicted() => break false,
            flushed = tokio::time::timeout(wait, framed.flush()) => match flushed {
                Ok(flushed) => break flushed.is_ok(),
                Err(_) => continue,
            },
        }
    };
    entry.set_stalled(false);
    if !flushed {
        output.cut = true;
    }
    flushed
}

/// How often a blocked flush looks whether the client has read any of its unsent output.
const SOFT_CHECK: Duration = Duration::from_millis(250);

/// A write buffer this large is flushed before another reply is queued (what `Framed::feed`
/// would otherwise do, out of reach of evictions).
const WRITE_BACKPRESSURE: usize = 8 << 10;

/// The part of the shared client budget one connection's write buffer holds.
struct OutputShare {
    budget: Arc<super::codec::BufferBudget>,
    held: usize,
    /// The most it ever held.
    peak: usize,
    /// Closed for leaving too much unread, or evicted: nothing more is sent.
    cut: bool,
    /// What the evictor sees of this connection.
    entry: super::eviction::Registration,
}

impl OutputShare {
    /// Holds exactly `bytes` (what the write buffer holds now; already there, so counted
    /// even past the limit, and the books stay true).
    fn settle(&mut self, bytes: usize) {
        if bytes > self.held {
            self.budget.charge(bytes - self.held);
        } else {
            self.budget.release(self.held - bytes);
        }
        self.held = bytes;
        self.peak = self.peak.max(bytes);
        self.entry.holding.set_unsent(bytes);
    }

    /// Holds `bytes`, unless more than what is held now would pass the limit.
    fn settle_within_budget(&mut self, bytes: usize) -> bool {
        if bytes > self.held {
            if !self.budget.reserve(bytes - self.held) {
                return false;
            }
        } else {
            self.budget.release(self.held - bytes);
        }
        self.held = bytes;
        self.peak = self.peak.max(bytes);
        self.entry.holding.set_unsent(bytes);
        true
    }
}

impl Drop for OutputShare {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}
