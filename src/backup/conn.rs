//! A pipelining RESP connection: a batch of requests goes out in one write and the replies
//! come back in order. Backup and restore move many small values, so a round trip per key
//! would cost more than the keys; the workload's client (one request at a time, with a
//! precise account of lost requests) and the cluster tool's (blocking, one command per
//! connection) are made for other callers.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a batch may wait for its replies: generous, as a batch may carry large values
/// to a mode that replicates each one before it answers.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// What an error says when the server's reply is not RESP: sending it again cannot help
/// (an address of some other service, e.g. a node's metrics port), so callers give up at once.
const NOT_RESP: &str = "answered in something other than the Redis protocol (is it a valthree or Redis client port?)";

/// Whether `error` (from this module) says the server does not speak the Redis protocol.
pub fn not_resp(error: &str) -> bool {
    error.contains(NOT_RESP)
}

/// Connects to the first of `addrs` that takes a connection.
pub async fn connect_any(addrs: &[String], password: Option<&str>) -> Result<Conn, String> {
    let mut last_error = String::from("no address given");
    for addr in addrs {
        match Conn::connect(addr, password).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// One connection to a node.
pub struct Conn {
    framed: Framed<TcpStream, Resp2>,
    addr: String,
}

impl Conn {
    /// Connects to `addr`, and AUTHs when there is a password.
    pub async fn connect(addr: &str, password: Option<&str>) -> Result<Conn, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn { framed: Framed::new(stream, Resp2::default()), addr: addr.to_string() };
        if let Some(password) = password {
            match conn.call(vec![Bytes::from_static(b"AUTH"), Bytes::from(password.to_string())]).await? {
                BytesFrame::SimpleString(ok) if ok.as_ref() == b"OK" => {}
                other => return Err(format!("AUTH with {addr} failed: {}", describe(&other))),
            }
        }
        Ok(conn)
    }

    /// The address it is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The `mode:` line of `INFO valthree` ("" for a server that is not valthree).
    pub async fn server_mode(&mut self) -> String {
        match self.call(vec![Bytes::from_static(b"INFO"), Bytes::from_static(b"valthree")]).await {
            Ok(BytesFrame::BulkString(text)) => String::from_utf8_lossy(&text)
                .lines()
                .find_map(|l| l.strip_prefix("mode:").map(|m| m.trim().to_string()))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, request: Vec<Bytes>) -> Result<BytesFrame, String> {
        let mut replies = self.pipeline(vec![request]).await?;
        Ok(replies.pop().expect("one reply for one request"))
    }

    /// Sends every request, then reads one reply each, in order.
    pub async fn pipeline(&mut self, requests: Vec<Vec<Bytes>>) -> Result<Vec<BytesFrame>, String> {
        self.pipeline_until(requests, |_| false, Duration::ZERO).await
    }

    /// As [`Self::pipeline`], but once a reply `stop` picks has come, reads the replies
    /// after it for at most `grace` more, and answers those that came (fewer than the
    /// requests if the grace ran out): a node that refuses one request of a pipeline may
    /// refuse the rest, each after its own wait, so its caller moves on soon, while replies
    /// already on their way (a pipeline's reads that a node ran at once) are kept. With
    /// fewer replies than requests the connection must be dropped (the others are still to
    /// come).
    pub async fn pipeline_until(
        &mut self,
        requests: Vec<Vec<Bytes>>,
        stop: impl Fn(&BytesFrame) -> bool,
        grace: Duration,
    ) -> Result<Vec<BytesFrame>, String> {
        let n = requests.len();
        let addr = self.addr.clone();
        let exchange = async {
            for request in requests {
                let frame = BytesFrame::Array(request.into_iter().map(BytesFrame::BulkString).collect());
                self.framed.feed(frame).await.map_err(|e| format!("{addr}: send: {}", e.details()))?;
            }
            SinkExt::<BytesFrame>::flush(&mut self.framed)
                .await
                .map_err(|e| format!("{addr}: send: {}", e.details()))?;
            let mut replies = Vec::with_capacity(n);
            let mut until: Option<tokio::time::Instant> = None;
            while replies.len() < n {
                let next = match until {
                    None => self.framed.next().await,
                    Some(until) => match tokio::time::timeout_at(until, self.framed.next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    },
                };
                match next {
                    Some(Ok(frame)) => {
                        if until.is_none() && stop(&frame) {
                            until = Some(tokio::time::Instant::now() + grace);
                        }
                        replies.push(frame);
                    }
                    Some(Err(e)) => {
                        return Err(match e.kind() {
                            // The connection broke (a node killed mid-batch): worth another try.
                            redis_protocol::error::RedisProtocolErrorKind::IO(io) => {
                                format!("{addr}: connection failed: {io}")
                            }
                            _ => format!("{addr}: {NOT_RESP} ({})", e.details()),
                        });
                    }
                    None if until.is_some() => break,
                    None => return Err(format!("{addr} closed the connection")),
                }
            }
            Ok(replies)
        };
        tokio::time::timeout(BATCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{}: no reply within {BATCH_TIMEOUT:?}", self.addr))?
    }
}

/// A reply in one line, for error messages.
pub fn describe(frame: &BytesFrame) -> String {
    match frame {
        BytesFrame::Error(e) => format!("-{e}"),
        BytesFrame::SimpleString(s) => format!("+{}", String::from_utf8_lossy(s)),
        BytesFrame::BulkString(b) => format!("{} bytes", b.len()),
        BytesFrame::Integer(i) => format!(":{i}"),
        BytesFrame::Null => "nil".into(),
        BytesFrame::Array(a) => format!("an array of {}", a.len()),
    }
}
