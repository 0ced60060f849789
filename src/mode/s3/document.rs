//! The database document: the whole keyspace as one JSON object.
//!
//! ```json
//! {"valthree":1,"keys":{"user:1":"alice","base64:AP8=":"base64:3q2+7w=="}}
//! ```
//!
//! Keys and values are byte strings. One that is valid UTF-8 and does not start with
//! `base64:` is stored as itself, so a document of ordinary text stays readable with any
//! JSON tool; anything else (binary data, or text that itself starts with `base64:`) is stored
//! as `base64:` followed by its standard base64 encoding. The mapping is a bijection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::store::Keyspace;

/// The document format version written in the `valthree` field.
pub const FORMAT_VERSION: u32 = 1;

const BINARY_PREFIX: &str = "base64:";

#[derive(Serialize, Deserialize)]
struct Document {
    valthree: u32,
    keys: BTreeMap<String, String>,
}

fn encode_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.starts_with(BINARY_PREFIX) => text.to_owned(),
        _ => format!("{BINARY_PREFIX}{}", STANDARD.encode(bytes)),
    }
}

fn decode_bytes(text: String) -> Result<Bytes, String> {
    match text.strip_prefix(BINARY_PREFIX) {
        Some(b64) => STANDARD.decode(b64).map(Bytes::from).map_err(|e| format!("bad base64 {text:?}: {e}")),
        None => Ok(Bytes::from(text)),
    }
}

/// Serialises a keyspace.
pub fn encode(keyspace: &Keyspace) -> Bytes {
    let doc = Document {
        valthree: FORMAT_VERSION,
        keys: keyspace.iter().map(|(k, v)| (encode_bytes(k), encode_bytes(v))).collect(),
    };
    Bytes::from(serde_json::to_vec(&doc).expect("a map of strings always serialises"))
}

/// Parses a document; an error names what is wrong with it.
pub fn decode(body: &[u8]) -> Result<Keyspace, String> {
    let doc: Document = serde_json::from_slice(body).map_err(|e| format!("invalid JSON document: {e}"))?;
    if doc.valthree != FORMAT_VERSION {
        return Err(format!("unsupported document version {}", doc.valthree));
    }
    let mut keyspace = Keyspace::new();
    for (k, v) in doc.keys {
        keyspace.insert(decode_bytes(k)?, decode_bytes(v)?);
    }
    Ok(keyspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_prefixed_text_round_trip() {
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"plain"), Bytes::from_static(b"hello"));
        ks.insert(Bytes::from_static(b"\x00\xff"), Bytes::from_static(b"\xde\xad\xbe\xef"));
        ks.insert(Bytes::from_static(b"base64:looks-encoded"), Bytes::from_static(b"base64:AAAA"));
        ks.insert(Bytes::new(), Bytes::new());
        assert_eq!(decode(&encode(&ks)).unwrap(), ks);
    }

    #[test]
    fn text_stays_readable() {
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"user:1"), Bytes::from_static(b"alice"));
        assert_eq!(&encode(&ks)[..], br#"{"valthree":1,"keys":{"user:1":"alice"}}"#);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"{not json").is_err());
        assert!(decode(br#"{"valthree":1,"keys":{"k":"base64:!!"}}"#).is_err());
        assert!(decode(br#"{"valthree":9,"keys":{}}"#).is_err());
    }
}
