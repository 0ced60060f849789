//! The connection codec: requests in, replies out (replies through redis-protocol's
//! encoders).
//!
//! A multibulk request is decoded by the same pass that checks its headers: it notes where
//! each element is, and once the whole request has arrived cuts it out of the buffer and
//! hands each argument out as a slice of it — one scan, no copy. Besides, decoding has what
//! a server needs and a client library does not:
//!
//! * **inline commands** (`PING\r\n` typed into telnet), which Redis accepts whenever a
//!   request does not start with `*`;
//! * **bounds**: before a multibulk request is handed to the decoder its headers are checked
//!   as they arrive, so a bulk longer than `proto-max-bulk-len`, an absurd element count or
//!   an endless header line is refused at once instead of being buffered;
//! * Redis' own `Protocol error: ...` texts for malformed input;
//! * a **server-wide budget** ([`BufferBudget`], `--maxmemory-clients`): the bytes all
//!   connections hold in their query buffers together; a connection whose next read would
//!   pass it is answered an error and closed, so many clients each sending half of a large
//!   value cannot exhaust the server's memory.
//!
//! Encoding renders a [`Reply`] as RESP2 or RESP3, following the connection's `HELLO`.

use bytes::{Buf, Bytes, BytesMut};
use redis_protocol::codec::{Resp2, Resp3};
use tokio_util::codec::{Decoder, Encoder};

use super::Reply;

/// Redis' limit on the element count of one multibulk request (INT_MAX).
pub const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;
/// Before AUTH, Redis accepts at most this many elements per request...
pub const UNAUTHENTICATED_MULTIBULK_LEN: i64 = 10;
/// ...and bulks of at most this many bytes (the CVE-2021-32675 limits).
pub const UNAUTHENTICATED_BULK_LEN: u64 = 16 * 1024;
/// Redis' default `client-query-buffer-limit`: a request may not grow past 1 GiB.
pub const QUERY_BUFFER_LIMIT: usize = 1 << 30;
/// Redis' limit on one inline request or one header line.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// What one element of a request costs besides its bytes while the request is parsed: its
/// entry in the element table (16 bytes) and, once complete, its argument (32 bytes).
pub const PARSED_ELEMENT_COST: usize = 48;
/// A request larger than this is not left sharing the read buffer's allocation.
const KEPT_READ_BUFFER: usize = 64 << 10;

/// An element table larger than this many entries is given back once its request is done.
const KEPT_ELEMENT_TABLE: usize = 1024;
/// Redis' default `proto-max-bulk-len`: 512 MiB.
pub const DEFAULT_PROTO_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// The bytes every connection's query buffer holds, together, and their limit.
#[derive(Debug)]
pub struct BufferBudget {
    used: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl BufferBudget {
    /// A budget of `limit` bytes (0: no limit).
    pub fn new(limit: usize) -> Self {
        Self { used: std::sync::atomic::AtomicUsize::new(0), limit }
    }

    /// Bytes held by all connections now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The most bytes all connections may hold together (0: no limit).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` more, unless that passes the limit.
    pub fn reserve(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let mut used = self.used.load(Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if self.limit != 0 && next > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(used, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Takes `bytes` more whatever the limit: for bytes already held.
    pub fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many bytes past the limit `bytes` more would take (0: they fit, or no limit).
    pub fn shortfall(&self, bytes: usize) -> usize {
        match self.limit {
            0 => 0,
            limit => self.used().saturating_add(bytes).saturating_sub(limit),
        }
    }

    /// Gives back `bytes` taken by [`Self::reserve`].
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A malformed request: the connection answers `-ERR Protocol error: ...` and closes.
#[derive(Debug)]
pub enum CodecError {
    /// The server-wide budget for query buffers is spent: answered with an error, closed.
    OverBudget,
    /// Malformed input, with Redis' text for it (after `Protocol error: `).
    Protocol(String),
    /// The socket failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        CodecError::Io(e)
    }
}

/// One request: the command name and its arguments.
pub type Request = Vec<Bytes>;

/// The server side of a RESP connection.
#[derive(Debug)]
pub struct RespCodec {
    /// 2 or 3, as negotiated by HELLO.
    pub protocol: u8,
    /// Whether the connection has authenticated (stricter limits apply before).
    pub authenticated: bool,
    max_bulk_len: u64,
    /// How far the headers of the request at the front of the buffer have been checked,
    /// so a request arriving in many reads is scanned once: (elements checked, offset).
    scanned: (i64, usize),
    /// Where each checked element's bytes are: (offset, length) in the request.
    bulks: Vec<(usize, usize)>,
    resp2: Resp2,
    resp3: Resp3,
    /// The server-wide budget, and how much of it this connection's buffer holds.
    budget: Option<std::sync::Arc<BufferBudget>>,
    held: usize,
    /// The most the connection's buffer ever cost.
    peak: usize,
    /// What the last refused reservation asked for ([`CodecError::OverBudget`]).
    wanted: usize,
}

impl RespCodec {
    /// A RESP2 codec that refuses bulks longer than `max_bulk_len`.
    pub fn new(max_bulk_len: u64) -> Self {
        Self {
            protocol: 2,
            authenticated: true,
            max_bulk_len,
            scanned: (0, 0),
            bulks: Vec::new(),
            resp2: Resp2::default(),
            resp3: Resp3::default(),
            budget: None,
            held: 0,
            peak: 0,
            wanted: 0,
        }
    }

    /// Counts this connection's buffered bytes against `budget`.
    pub fn with_budget(mut self, budget: std::sync::Arc<BufferBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Moves this connection's share to `budget` (a connection that authenticated leaves the
    /// small budget of connections that have not). The share moves whatever the new budget
    /// holds: it was already counted, and is a few kilobytes before AUTH.
    pub fn move_to_budget(&mut self, budget: &std::sync::Arc<BufferBudget>) {
        if let Some(old) = &self.budget {
            if std::sync::Arc::ptr_eq(old, budget) {
                return;
            }
            old.release(self.held);
        }
        budget.charge(self.held);
        self.budget = Some(budget.clone());
    }

    /// What this connection's query buffer costs: its bytes, plus the table of the elements
    /// of a request still arriving (a `$0` element is 4 bytes on the wire but a table entry
    /// now and an argument once the request is complete).
    fn cost(&self, buffered: usize) -> usize {
        buffered.saturating_add(self.bulks.capacity().saturating_mul(PARSED_ELEMENT_COST))
    }

    /// Brings this connection's share of the budget to `buffered` bytes.
    fn account(&mut self, buffered: usize) -> Result<(), CodecError> {
        let Some(budget) = &self.budget else { return Ok(()) };
        if buffered > self.held {
            if !budget.reserve(buffered - self.held) {
                self.wanted = buffered - self.held;
                return Err(CodecError::OverBudget);
            }
        } else {
            budget.release(self.held - buffered);
        }
        self.held = buffered;
        self.peak = self.peak.max(buffered);
        Ok(())
    }

    /// The bytes the last [`CodecError::OverBudget`] could not get.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// The most this connection's query buffer ever cost.
    pub fn peak(&self) -> usize {
        self.peak
    }
}

impl Drop for RespCodec {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.held);
        }
    }
}

fn protocol_error(msg: impl Into<String>) -> CodecError {
    CodecError::Protocol(msg.into())
}

/// Reads one `<prefix><integer>\r\n` header at `at`; `Ok(None)` when it has not fully arrived.
fn header(buf: &[u8], at: usize, prefix: u8, what: &str) -> Result<Option<(i64, usize)>, CodecError> {
    let Some(&first) = buf.get(at) else { return Ok(None) };
    if first != prefix {
        return Err(protocol_error(format!("expected '{}', got '{}'", prefix as char, first as char)));
    }
    let rest = &buf[at + 1..];
    let Some(end) = rest.iter().position(|&c| c == b'\r') else {
        if rest.len() > MAX_INLINE_LEN {
            return Err(protocol_error(format!("too big {what} count string")));
        }
        return Ok(None);
    };
    let n = std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| protocol_error(format!("invalid {what} length")))?;
    match rest.get(end + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((n, at + 1 + end + 2))),
        Some(_) => Err(protocol_error(format!("invalid {what} length"))),
    }
}

impl RespCodec {
    /// Checks the headers of the multibulk request at the front of `buf` as far as it has
    /// arrived, resuming where the last call stopped, and notes where each element is.
    /// `Ok(Some(end))` means the whole request is there, `end` bytes of it.
    fn check_multibulk(&mut self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        let Some((count, first)) = header(buf, 0, b'*', "multibulk")? else {
            return Ok(None);
        };
        let (max_count, max_bulk) = if self.authenticated {
            (MAX_MULTIBULK_LEN, self.max_bulk_len)
        } else {
            (UNAUTHENTICATED_MULTIBULK_LEN, self.max_bulk_len.min(UNAUTHENTICATED_BULK_LEN))
        };
        if count > max_count {
            let what = if self.authenticated { "invalid" } else { "unauthenticated" };
            return Err(protocol_error(format!("{what} multibulk length")));
        }
        let (mut done, mut at) = if self.scanned.1 == 0 {
            self.bulks.clear();
            (0, first)
        } else {
            self.scanned
        };
        while done < count {
            let Some((len, data)) = header(buf, at, b'$', "bulk")? else {
                break;
            };
            if len < 0 || len as u64 > max_bulk {
                let what = if len >= 0 && !self.authenticated { "unauthenticated" } else { "invalid" };
                return Err(protocol_error(format!("{what} bulk length")));
            }
            let end = data + len as usize;
            if buf.len() < end + 2 {
                break;
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(protocol_error("expected '\\r\\n' after a bulk"));
            }
            self.bulks.push((data, len as usize));
            at = end + 2;
            done += 1;
        }
        if done < count.max(0) {
            if buf.len() > QUERY_BUFFER_LIMIT {
                return Err(protocol_error("query buffer limit exceeded"));
            }
            self.scanned = (done, at);
            return Ok(None);
        }
        self.scanned = (0, 0);
        Ok(Some(at))
    }

    fn decode_inline(&self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        let Some(end) = src.iter().position(|&c| c == b'\n') else {
            if src.len() > MAX_INLINE_LEN {
                return Err(protocol_error("too big inline request"));
            }
            return Ok(None);
        };
        let line = src.split_to(end + 1);
        let line = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n")).unwrap_or(&line);
        // Before AUTH an inline request gets the multibulk bound on its arguments, checked
        // while splitting: a line of thousands of words is refused, not parsed.
        let max_args = if self.authenticated { usize::MAX } else { UNAUTHENTICATED_MULTIBULK_LEN as usize };
        split_inline(line, max_args).map(Some)
    }
}

/// Splits an inline request into arguments as Redis' `sdssplitargs` does: whitespace-separated
/// words, where a word may be wrapped in double quotes (with `\xHH`, `\n`, `\r`, `\t`, `\b`,
/// `\a` and `\<any>` escapes) or in single quotes (with `\'`). More than `max_args` words
/// are refused (the pre-AUTH limit).
fn split_inline(line: &[u8], max_args: usize) -> Result<Request, CodecError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if args.len() == max_args {
            return Err(protocol_error("unauthenticated inline request"));
        }
        let mut word = Vec::new();
        match line[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let Some(&c) = line.get(i) else {
                        return Err(protocol_error("unbalanced quotes in request"));
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == b'\\' && quote == b'"' && i < line.len() {
                        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
                        match (line[i], line.get(i + 1).copied().and_then(hex), line.get(i + 2).copied().and_then(hex))
                        {
                            (b'x', Some(hi), Some(lo)) => {
                                word.push(hi << 4 | lo);
                                i += 3;
                            }
                            (other, _, _) => {
                                word.push(match other {
                                    b'n' => b'\n',
                                    b'r' => b'\r',
                                    b't' => b'\t',
                                    b'b' => 0x08,
                                    b'a' => 0x07,
                                    other => other,
                                });
                                i += 1;
                            }
                        }
                    } else if c == b'\\' && quote == b'\'' && line.get(i) == Some(&b'\'') {
                        word.push(b'\'');
                        i += 1;
                    } else {
                        word.push(c);
                    }
                }
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return Err(protocol_error("unbalanced quotes in request"));
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    word.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(word));
    }
    Ok(args)
}

impl Decoder for RespCodec {
    type Item = Request;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        self.account(self.cost(src.len()))?;
        let before = src.len();
        let decoded = self.decode_one(src);
        if self.bulks.is_empty() && self.bulks.capacity() > KEPT_ELEMENT_TABLE {
            self.bulks = Vec::new();
        }
        // A request is cut out of the read buffer, and the buffer keeps the rest of its
        // allocation: after a large request the connection would hold that allocation for as
        // long as it lives, uncounted (ten idle connections each held the 200 MiB of one
        // discarded argument). What is left is moved to a buffer of its own instead.
        if before.saturating_sub(src.len()) > KEPT_READ_BUFFER {
            *src = BytesMut::from(&src[..]);
        }
        self.account(self.cost(src.len()))?;
        decoded
    }
}

impl RespCodec {
    fn decode_one(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        loop {
            if src.is_empty() {
                return Ok(None);
            }
            if src[0] != b'*' {
                match self.decode_inline(src)? {
                    Some(args) if args.is_empty() => continue, // blank line: ignored, as by Redis
                    other => return Ok(other),
                }
            }
            // The check found every element: the request is cut out of the buffer once and
            // each argument is a slice of it (no second parse, no copy).
            let Some(end) = self.check_multibulk(src)? else {
                return Ok(None);
            };
            let request = src.split_to(end).freeze();
            let args: Request = self.bulks.drain(..).map(|(at, len)| request.slice(at..at + len)).collect();
            if !args.is_empty() {
                return Ok(Some(args));
            }
            // `*0` and `*-1` (any count below 1) are no-ops in Redis; go on with the next request.
            if src.has_remaining() {
                continue;
            }
            return Ok(None);
        }
    }
}

/// Writes `n` in decimal.
fn put_decimal(dst: &mut BytesMut, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        dst.extend_from_slice(b"-");
    }
    dst.extend_from_slice(&digits[at..]);
}

impl Encoder<Reply> for RespCodec {
    type Error = CodecError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), CodecError> {
        // The replies of the hot commands, written straight into the buffer.
        match &reply {
            Reply::Bulk(b) => {
                dst.reserve(b.len() + 24);
                dst.extend_from_slice(b"$");
                put_decimal(dst, b.len() as i64);
                dst.extend_from_slice(b"\r\n");
                dst.extend_from_slice(b);
                dst.extend_from_slice(b"\r\n");
                return Ok(());
            }
            Reply::Null => {
                dst.extend_from_slice(if self.protocol >= 3 { b"_\r\n" } else { b"$-1\r\n" });
                return Ok(());
            }
            Reply::Integer(n) => {
                dst.extend_from_slice(b":");
                put_decimal(dst, *n);
                dst.extend_from_slice(b"\r\n");
                return Ok(());
            }
            Reply::Simple(text) if !text.bytes().any(|c| c == b'\r' || c == b'\n') => {
                dst.extend_from_slice(b"+");
                dst.extend_from_slice(text.as_bytes());
                dst.extend_from_slice(b"\r\n");
                return Ok(());
            }
            _ => {}
        }
        let encoded = if self.protocol >= 3 {
            self.resp3.encode(reply.into_resp3(), dst)
        } else {
            self.resp2.encode(reply.into_resp2(), dst)
        };
        encoded.map_err(|e| protocol_error(format!("encode: {}", e.details())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut RespCodec, input: &[u8]) -> Result<Vec<Request>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = codec.decode(&mut buf)? {
            out.push(req);
        }
        Ok(out)
    }

    fn words(req: &Request) -> Vec<&[u8]> {
        req.iter().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn the_hot_replies_are_encoded_as_redis_protocol_encodes_them() {
        let replies = || {
            vec![
                Reply::Bulk(Bytes::from_static(b"hello")),
                Reply::Bulk(Bytes::new()),
                Reply::Null,
                Reply::Integer(0),
                Reply::Integer(-42),
                Reply::Integer(i64::MIN),
                Reply::Integer(i64::MAX),
                Reply::ok(),
            ]
        };
        for protocol in [2, 3] {
            let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
            codec.protocol = protocol;
            for reply in replies() {
                let mut fast = BytesMut::new();
                codec.encode(reply.clone(), &mut fast).unwrap();
                let mut general = BytesMut::new();
                if protocol >= 3 {
                    codec.resp3.encode(reply.into_resp3(), &mut general).unwrap();
                } else {
                    codec.resp2.encode(reply.into_resp2(), &mut general).unwrap();
                }
                assert_eq!(fast, general, "RESP{protocol}");
            }
        }
    }

    #[test]
    fn a_negative_count_is_a_no_op_and_a_bulk_without_its_crlf_is_refused() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let got = decode_all(&mut codec, b"*-5\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![vec![Bytes::from_static(b"PING")]]);
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        assert!(matches!(decode_all(&mut codec, b"*1\r\n$4\r\nPINGxx"), Err(CodecError::Protocol(_))));
        // Arriving a byte at a time, a request still comes out whole and once.
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(req) = codec.decode(&mut buf).unwrap() {
                out.push(req);
            }
        }
        assert_eq!(out, vec![vec![Bytes::from_static(b"SET"), Bytes::from_static(b"k"), Bytes::from_static(b"hello")]]);
        assert!(buf.is_empty());
    }

    #[test]
    fn multibulk_and_inline_requests_decode_alike() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let reqs = decode_all(&mut codec, b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n\r\nSET k \"a b\\n\"\r\n").unwrap();
        assert_eq!(words(&reqs[0]), vec![&b"ECHO"[..], b"hi"]);
        assert_eq!(words(&reqs[1]), vec![&b"PING"[..]]);
        assert_eq!(words(&reqs[2]), vec![&b"SET"[..], b"k", b"a b\n"]);
        assert_eq!(reqs.len(), 3);
    }

    #[test]
    fn partial_requests_wait_for_more_bytes() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nhel"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"lo\r\n");
        assert_eq!(words(&codec.decode(&mut buf).unwrap().unwrap()), vec![&b"GET"[..], b"hello"]);
    }

    #[test]
    fn an_oversized_bulk_is_refused_before_it_arrives() {
        let mut codec = RespCodec::new(1024);
        let err = decode_all(&mut codec, b"*2\r\n$3\r\nSET\r\n$4096\r\n").unwrap_err();
        assert!(matches!(err, CodecError::Protocol(m) if m == "invalid bulk length"));
    }

    #[test]
    fn malformed_input_gets_redis_protocol_errors() {
        let cases: [(&[u8], &str); 5] = [
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\r\n:5\r\n", "expected '$', got ':'"),
            (b"*3000000000\r\n", "invalid multibulk length"),
            (b"*1\r\n$1\rx", "invalid bulk length"),
            (b"GET \"unterminated\r\n", "unbalanced quotes in request"),
        ];
        for (input, want) in cases {
            let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
            match decode_all(&mut codec, input) {
                Err(CodecError::Protocol(m)) => assert_eq!(m, want, "{input:?}"),
                other => panic!("{input:?}: expected a protocol error, got {other:?}"),
            }
        }
    }

    #[test]
    fn unauthenticated_connections_get_redis_pre_auth_limits() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        codec.authenticated = false;
        let err = decode_all(&mut codec, b"*11\r\n").unwrap_err();
        assert!(matches!(err, CodecError::Protocol(m) if m == "unauthenticated multibulk length"));
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        codec.authenticated = false;
        let err = decode_all(&mut codec, b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").unwrap_err();
        assert!(matches!(err, CodecError::Protocol(m) if m == "unauthenticated bulk length"));
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        codec.authenticated = false;
        let ten = decode_all(&mut codec, b"AUTH a b c d e f g h i\r\n").unwrap();
        assert_eq!(ten[0].len(), 10);
        let err = decode_all(&mut codec, b"AUTH a b c d e f g h i j\r\n").unwrap_err();
        assert!(matches!(err, CodecError::Protocol(m) if m == "unauthenticated inline request"));
    }

    #[test]
    fn a_request_arriving_byte_by_byte_decodes_once_complete() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let got = codec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == wire.len() - 1, "after byte {i}");
        }
    }

    #[test]
    fn an_endless_inline_line_is_bounded() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let err = decode_all(&mut codec, &vec![b'a'; MAX_INLINE_LEN + 1]).unwrap_err();
        assert!(matches!(err, CodecError::Protocol(m) if m == "too big inline request"));
    }

    #[test]
    fn replies_follow_the_negotiated_protocol() {
        let mut codec = RespCodec::new(DEFAULT_PROTO_MAX_BULK_LEN);
        let mut out = BytesMut::new();
        codec.encode(Reply::Null, &mut out).unwrap();
        codec.protocol = 3;
        codec.encode(Reply::Null, &mut out).unwrap();
        codec.encode(Reply::Map(vec![(Reply::text("a"), Reply::Integer(1))]), &mut out).unwrap();
        assert_eq!(&out[..], b"$-1\r\n_\r\n%1\r\n$1\r\na\r\n:1\r\n");
    }
}
