//! The cluster tool's own Redis client: blocking, one command per connection, AUTH first
//! when the cluster has a password. The cluster tool and the demos are synchronous command-line
//! code that asks a node one thing at a time (status, INFO, an admin command); the workload's
//! client ([`crate::workload`]) is asynchronous and keeps connections open under load. The
//! two serve different callers, so each stays small rather than one bending to both.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::types::BytesFrame;
use tokio_util::codec::Decoder;

/// The client password of the cluster this process acts on (one per process: a `valthree
/// cluster` or `workload` command acts on one cluster), sent as AUTH before every command.
static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the password (the first non-empty one wins).
pub fn set_password(password: &str) {
    if !password.is_empty() {
        let _ = PASSWORD.set(password.to_string());
    }
}

/// The password, if the cluster has one.
pub fn password() -> Option<&'static str> {
    PASSWORD.get().map(String::as_str)
}

/// Sends one command to `addr` and returns the reply.
pub fn call(addr: &str, args: &[&str]) -> Result<BytesFrame, String> {
    call_with_timeout(addr, args, Duration::from_secs(5))
}

/// Sends one command to `addr` and waits up to `timeout` for the reply.
pub fn call_with_timeout(addr: &str, args: &[&str], timeout: Duration) -> Result<BytesFrame, String> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request += &format!("${}\r\n{a}\r\n", a.len());
    }
    let auth = password().map(|p| format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()));
    if let Some(auth) = &auth {
        stream.write_all(auth.as_bytes()).map_err(|e| format!("{addr}: {e}"))?;
    }
    stream.write_all(request.as_bytes()).map_err(|e| format!("{addr}: {e}"))?;
    let mut codec = redis_protocol::codec::Resp2::default();
    let mut skip_auth_reply = auth.is_some();
    let mut buf = BytesMut::new();
    loop {
        if let Some(frame) = codec.decode(&mut buf).map_err(|e| e.details().to_string())? {
            if skip_auth_reply {
                skip_auth_reply = false;
                if let BytesFrame::Error(e) = frame {
                    return Err(format!("{addr}: AUTH failed: {e}"));
                }
                continue;
            }
            return Ok(frame);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).map_err(|e| format!("{addr}: {e}"))?;
        if n == 0 {
            return Err(format!("{addr} closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
