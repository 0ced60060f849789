//! A minimal RESP client on redis-protocol's codec: one request, one reply, and a precise
//! account of whether a failed request could have reached the server.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Why a call produced no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Nothing reached the server (no connection could be made).
    NotSent(String),
    /// The request may have reached the server; the reply was lost (timeout, reset).
    Lost(String),
}

/// The password every connection AUTHs with (one per process; a workload drives one cluster).
static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every connection start with `AUTH password`.
pub fn set_password(password: &str) {
    if !password.is_empty() {
        let _ = PASSWORD.set(password.to_string());
    }
}

/// One connection to a Redis-protocol server.
pub struct Conn {
    framed: Framed<TcpStream, Resp2>,
}

impl Conn {
    /// Connects within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, CallError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {addr} timed out")))?
            .map_err(|e| CallError::NotSent(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn { framed: Framed::new(stream, Resp2::default()) };
        if let Some(password) = PASSWORD.get() {
            let auth = [Bytes::from_static(b"AUTH"), Bytes::from(password.clone())];
            match tokio::time::timeout(timeout, conn.call(&auth)).await {
                Ok(Ok(BytesFrame::SimpleString(ok))) if ok.as_ref() == b"OK" => {}
                // The command itself was never sent: a definite failure.
                other => return Err(CallError::NotSent(format!("AUTH with {addr} failed: {other:?}"))),
            }
        }
        Ok(conn)
    }

    /// True when the server has closed this connection already (a node that is stopping
    /// closes its connections once it has answered what they sent): a request sent on it
    /// would be lost with an unknown outcome, while a new connection tells for certain
    /// whether it could be sent at all.
    pub fn closed_by_server(&mut self) -> bool {
        // Nothing is due between requests: anything readable now is the end of the stream
        // (or an error, or a frame no request asked for — as good a reason to start afresh).
        self.framed.next().now_or_never().is_some()
    }

    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, args: &[Bytes]) -> Result<BytesFrame, CallError> {
        let request = BytesFrame::Array(args.iter().cloned().map(BytesFrame::BulkString).collect());
        self.framed.send(request).await.map_err(|e| CallError::Lost(format!("send: {}", e.details())))?;
        match self.framed.next().await {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(e)) => Err(CallError::Lost(format!("bad reply: {}", e.details()))),
            None => Err(CallError::Lost("connection closed".into())),
        }
    }
}

/// Sends PING until `addr` answers PONG or `deadline` passes.
pub async fn wait_until_ready(addr: &str, deadline: tokio::time::Instant) -> Result<(), String> {
    loop {
        let attempt = async {
            let mut conn = Conn::connect(addr, Duration::from_secs(1)).await?;
            conn.call(&[Bytes::from_static(b"PING")]).await
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(BytesFrame::SimpleString(s))) if s.as_ref() == b"PONG" => return Ok(()),
            other if tokio::time::Instant::now() >= deadline => {
                let why = match other {
                    Err(_) => "no answer within 2s".to_string(),
                    Ok(Err(CallError::NotSent(m) | CallError::Lost(m))) => m,
                    Ok(Ok(BytesFrame::Error(e))) => e.to_string(),
                    Ok(Ok(frame)) => format!("it answered {frame:?}"),
                };
                return Err(format!("{addr} did not answer PING: {why}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The `mode:` a valthree server reports in `INFO valthree` (`None`: not valthree, or no answer).
pub async fn server_mode(addr: &str, timeout: Duration) -> Option<String> {
    let attempt = async {
        let mut conn = Conn::connect(addr, timeout).await.ok()?;
        let info = [Bytes::from_static(b"INFO"), Bytes::from_static(b"valthree")];
        match conn.call(&info).await.ok()? {
            BytesFrame::BulkString(text) => String::from_utf8_lossy(&text)
                .lines()
                .find_map(|l| l.strip_prefix("mode:").map(|m| m.trim().to_string())),
            _ => None,
        }
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}
