//! Replies, independent of the protocol version the connection speaks.

use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use redis_protocol::resp3::types::{BytesFrame as Resp3Frame, FrameMap, VerbatimStringFormat};

use crate::error::Error;

/// A reply to one command. The codec renders it as RESP2 or RESP3, whichever the
/// connection negotiated with HELLO.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-PREFIX message` (the text without the dash).
    Error(String),
    /// `:n`.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A map in RESP3; a flat array of key, value, key, value in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// Human-readable text (INFO): verbatim `txt` in RESP3, a bulk string in RESP2.
    Verbatim(String),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Bulk(Bytes::from(s.into()))
    }

    /// A bulk string, or null for `None`.
    pub fn bulk_or_null(value: Option<Bytes>) -> Self {
        value.map_or(Reply::Null, Reply::Bulk)
    }

    /// About how many bytes the reply takes encoded (at least that many, in either
    /// protocol): what a connection's output buffer is charged before it is encoded.
    pub fn wire_len(&self) -> usize {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.len() + 3,
            Reply::Integer(_) | Reply::Null => 24,
            Reply::Bulk(b) => b.len() + 16,
            Reply::Verbatim(s) => s.len() + 24,
            Reply::Array(items) => items.iter().fold(16, |n, r| n.saturating_add(r.wire_len())),
            Reply::Map(pairs) => {
                pairs.iter().fold(16, |n, (k, v)| n.saturating_add(k.wire_len()).saturating_add(v.wire_len()))
            }
        }
    }

    /// Renders as a RESP2 frame.
    pub fn into_resp2(self) -> Resp2Frame {
        match self {
            Reply::Simple(s) => Resp2Frame::SimpleString(s.into()),
            Reply::Error(e) => Resp2Frame::Error(e.into()),
            Reply::Integer(n) => Resp2Frame::Integer(n),
            Reply::Bulk(b) => Resp2Frame::BulkString(b),
            Reply::Null => Resp2Frame::Null,
            Reply::Array(items) => Resp2Frame::Array(items.into_iter().map(Reply::into_resp2).collect()),
            Reply::Map(pairs) => {
                Resp2Frame::Array(pairs.into_iter().flat_map(|(k, v)| [k.into_resp2(), v.into_resp2()]).collect())
            }
            Reply::Verbatim(text) => Resp2Frame::BulkString(text.into()),
        }
    }

    /// Renders as a RESP3 frame.
    pub fn into_resp3(self) -> Resp3Frame {
        match self {
            Reply::Simple(s) => Resp3Frame::SimpleString { data: s.into(), attributes: None },
            Reply::Error(e) => Resp3Frame::SimpleError { data: e.into(), attributes: None },
            Reply::Integer(n) => Resp3Frame::Number { data: n, attributes: None },
            Reply::Bulk(b) => Resp3Frame::BlobString { data: b, attributes: None },
            Reply::Null => Resp3Frame::Null,
            Reply::Array(items) => {
                Resp3Frame::Array { data: items.into_iter().map(Reply::into_resp3).collect(), attributes: None }
            }
            Reply::Map(pairs) => {
                let data: FrameMap<_, _> = pairs.into_iter().map(|(k, v)| (k.into_resp3(), v.into_resp3())).collect();
                Resp3Frame::Map { data, attributes: None }
            }
            Reply::Verbatim(text) => {
                Resp3Frame::VerbatimString { data: text.into(), format: VerbatimStringFormat::Text, attributes: None }
            }
        }
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        Reply::error(e.to_resp())
    }
}

impl Reply {
    /// An error reply. Line breaks in the text (which may quote client input) become
    /// spaces, as in Redis, so an error can never smuggle a second reply onto the wire.
    pub fn error(text: impl Into<String>) -> Self {
        let text: String = text.into();
        Reply::Error(text.replace(['\r', '\n'], " "))
    }
}
