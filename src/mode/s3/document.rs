//! The database document: one JSON object, the one compare-and-swap point of s3 mode.
//!
//! ```json
//! {"valthree":2,"crc32c":"5b1e07c4","base":"db.json.base.5e88…-09ab…","keys":{"user:1":"alice","base64:AP8=":"base64:3q2+7w==","video":"object:db.json.value.9f86…-1c2d…","gone":null}}
//! ```
//!
//! `crc32c` is the CRC-32C, in hex, of the whole document with its own eight digits taken as
//! `00000000` (so the version is covered too), and a byte flipped or a tail lost on the object
//! store's disk is found by the reader, which refuses the document rather than serve it:
//! nothing else checks a document's bytes (a local directory's etag is computed from what it
//! reads, and S3 keeps no checksum unless asked). The checksum travels inside the object, so
//! it works on any S3 server. A document without one (written by an older release) is read as
//! before, and an older release reads this field as an unknown one and ignores it. A document
//! with any other field than these (a flipped bit in the checksum's name, say) is refused, as
//! is a version 1 document with a checksum, a base or a deletion. Snapshots, in the same
//! format, carry a checksum too, though their names already hold their SHA-256.
//!
//! `base`, when present, names a snapshot: an immutable object in the same format holding
//! a whole keyspace (and no `base` or `null` of its own). The database is that snapshot with
//! the document's `keys` applied over it, `null` deleting a key. Without `base`, `keys` is the
//! whole database.
//!
//! Keys and values are byte strings. One that is valid UTF-8 and starts with neither
//! `base64:` nor `object:` is stored as itself, so a document of ordinary text stays readable
//! with any JSON tool; anything else (binary data, text that itself starts with one of the
//! prefixes, or text whose JSON escapes would take more room than base64, such as a value
//! padded with NUL bytes: six bytes each as `\u0000`) is stored as `base64:` followed by its
//! standard base64 encoding. A value stored as an object of its own (a large one, see
//! [`super::values`]) is `object:` followed by that object's key. Each string reads back as
//! the bytes it was written from.
//!
//! Version 1 documents (no `object:` references; such text was itself) are still read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;

use crate::node::{crc32c, crc32c_of};
use crate::store::Keyspace;

/// The document format version written in the `valthree` field.
pub const FORMAT_VERSION: u32 = 2;

/// The field holding the document's checksum.
const CHECKSUM_FIELD: &str = "crc32c";
/// The checksum's digits while it is computed.
const UNSUMMED: &str = "00000000";
const BINARY_PREFIX: &str = "base64:";
const OBJECT_PREFIX: &str = "object:";

/// One value of a parsed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Inline(Bytes),
    /// Stored as the object with this key.
    Object(String),
}

/// A parsed document, its stored values not yet fetched.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The snapshot it applies to.
    pub base: Option<String>,
    /// Keys and values in key order (`None`: deleted from the snapshot).
    pub entries: Vec<(Bytes, Option<Value>)>,
}

struct Document {
    valthree: u32,
    /// The CRC-32C of the document (absent from documents of older releases).
    sum: Option<String>,
    base: Option<String>,
    keys: Vec<(String, Option<String>)>,
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing JSON to a vector cannot fail");
}

/// The bytes JSON takes to write `text` (quotes aside): a control character other than
/// `\b \f \n \r \t` is six (`\u0000`), those and `"` `\` two.
fn escaped_len(text: &str) -> usize {
    text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' | b'"' | b'\\' => 1,
                0..0x20 => 5,
                _ => 0,
            })
            .sum::<usize>()
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let base64_len = BINARY_PREFIX.len() + bytes.len().div_ceil(3) * 4;
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text.starts_with(BINARY_PREFIX)
                && !text.starts_with(OBJECT_PREFIX)
                && escaped_len(text) <= base64_len =>
        {
            write_str(out, text)
        }
        _ => {
            let mut text = String::with_capacity(BINARY_PREFIX.len() + bytes.len().div_ceil(3) * 4);
            text.push_str(BINARY_PREFIX);
            STANDARD.encode_string(bytes, &mut text);
            out.push(b'"');
            out.extend_from_slice(text.as_bytes()); // base64 needs no escaping
            out.push(b'"');
        }
    }
}

fn decode_bytes(text: String, version: u32) -> Result<Bytes, String> {
    match text.strip_prefix(BINARY_PREFIX) {
        Some(b64) => STANDARD.decode(b64).map(Bytes::from).map_err(|e| format!("bad base64 {text:?}: {e}")),
        None if version >= 2 && text.starts_with(OBJECT_PREFIX) => Err(format!("a key cannot be an object: {text:?}")),
        None => Ok(Bytes::from(text)),
    }
}

/// Serialises a keyspace as a whole (a snapshot, or a document without a base).
pub fn encode(keyspace: &Keyspace, stored_as: impl FnMut(&Bytes) -> Option<String>) -> Bytes {
    encode_over(None, keyspace.iter().map(|(k, v)| (k, Some(v))), stored_as)
}

/// Serialises a document over snapshot `base`, written straight into one buffer; `entries`
/// in key order. `stored_as` names the object a value is stored in, or `None` to write the
/// value itself.
pub fn encode_over<'a>(
    base: Option<&str>,
    entries: impl Iterator<Item = (&'a Bytes, Option<&'a Bytes>)>,
    mut stored_as: impl FnMut(&Bytes) -> Option<String>,
) -> Bytes {
    let mut out = Vec::with_capacity(4096);
    // The checksum goes first, a placeholder until the rest is written.
    out.extend_from_slice(checksum_prefix(FORMAT_VERSION, UNSUMMED).as_bytes());
    let sum_at = out.len() - 10;
    if let Some(base) = base {
        out.extend_from_slice(b"\"base\":");
        write_str(&mut out, base);
        out.push(b',');
    }
    out.extend_from_slice(b"\"keys\":{");
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_bytes(&mut out, key);
        out.push(b':');
        match value.map(|v| (stored_as(v), v)) {
            None => out.extend_from_slice(b"null"),
            Some((Some(object), _)) => write_str(&mut out, &format!("{OBJECT_PREFIX}{object}")),
            Some((None, value)) => write_bytes(&mut out, value),
        }
    }
    out.extend_from_slice(b"}}");
    let sum = format!("{:08x}", crc32c(&out));
    out[sum_at..sum_at + 8].copy_from_slice(sum.as_bytes());
    Bytes::from(out)
}

/// What a document with checksum `sum` starts with.
fn checksum_prefix(version: u32, sum: &str) -> String {
    format!("{{\"valthree\":{version},\"{CHECKSUM_FIELD}\":\"{sum}\",")
}

/// Checks the checksum `sum` a document carries against its bytes.
fn check_sum(body: &[u8], version: u32, sum: &str) -> Result<(), String> {
    let prefix = checksum_prefix(version, sum);
    let Some(rest) = body.strip_prefix(prefix.as_bytes()) else {
        return Err(format!("its {CHECKSUM_FIELD} field is not where valthree writes it"));
    };
    let unsummed = checksum_prefix(version, UNSUMMED);
    if *sum != format!("{:08x}", crc32c_of([unsummed.as_bytes(), rest])) {
        return Err("its checksum does not match its bytes".into());
    }
    Ok(())
}

/// Parses a document; an error names what is wrong with it.
pub fn decode(body: &[u8]) -> Result<Parsed, String> {
    let doc: Document = parse(body)?;
    if doc.valthree == 0 || doc.valthree > FORMAT_VERSION {
        return Err(format!("unsupported document version {}", doc.valthree));
    }
    if let Some(sum) = &doc.sum {
        check_sum(body, doc.valthree, sum)?;
    }
    if doc.valthree < 2 && (doc.sum.is_some() || doc.base.is_some() || doc.keys.iter().any(|(_, v)| v.is_none())) {
        return Err("a version 1 document has no checksum, base or deleted keys".into());
    }
    let mut entries = Vec::with_capacity(doc.keys.len());
    for (k, v) in doc.keys {
        let key = decode_bytes(k, doc.valthree)?;
        let value = match v {
            None => None,
            Some(v) => Some(match v.strip_prefix(OBJECT_PREFIX) {
                Some(object) if doc.valthree >= 2 => Value::Object(object.to_owned()),
                _ => Value::Inline(decode_bytes(v, 1)?),
            }),
        };
        entries.push((key, value));
    }
    Ok(Parsed { base: doc.base, entries })
}

/// Reads the document's `keys` object as pairs in document order (no map is built).
fn parse(body: &[u8]) -> Result<Document, String> {
    use serde::de::{MapAccess, Visitor};
    struct Pairs(Vec<(String, Option<String>)>);
    impl<'de> Deserialize<'de> for Pairs {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of strings")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                    let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                    while let Some(pair) = map.next_entry::<String, Option<String>>()? {
                        pairs.push(pair);
                    }
                    Ok(Pairs(pairs))
                }
            }
            d.deserialize_map(V)
        }
    }
    // Any other field is damage (a bit flipped in a name, which would hide what it holds).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        valthree: u32,
        #[serde(default, rename = "crc32c")]
        sum: Option<String>,
        #[serde(default)]
        base: Option<String>,
        keys: Pairs,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("invalid JSON document: {e}"))?;
    Ok(Document { valthree: raw.valthree, sum: raw.sum, base: raw.base, keys: raw.keys.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document's checksum and the bytes after it.
    fn checked(doc: &[u8]) -> (String, &[u8]) {
        let rest = doc.strip_prefix(br#"{"valthree":2,"crc32c":""#).expect("the checksum comes first");
        let (sum, rest) = rest.split_at(8);
        (String::from_utf8(sum.to_vec()).unwrap(), rest.strip_prefix(b"\",").unwrap())
    }

    fn inline(parsed: Parsed) -> Keyspace {
        let mut ks = Keyspace::new();
        for (k, v) in parsed.entries {
            match v {
                Some(Value::Inline(v)) => ks.insert(k, v),
                other => panic!("unexpected {other:?}"),
            }
        }
        ks
    }

    #[test]
    fn binary_and_prefixed_text_round_trip() {
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"plain"), Bytes::from_static(b"hello"));
        ks.insert(Bytes::from_static(b"\x00\xff"), Bytes::from_static(b"\xde\xad\xbe\xef"));
        ks.insert(Bytes::from_static(b"base64:looks-encoded"), Bytes::from_static(b"base64:AAAA"));
        ks.insert(Bytes::from_static(b"object:looks-stored"), Bytes::from_static(b"object:db.json.value.x"));
        ks.insert(Bytes::from_static(b"quote\"and\\slash\n"), Bytes::from_static("ünïcode".as_bytes()));
        ks.insert(Bytes::new(), Bytes::new());
        assert_eq!(inline(decode(&encode(&ks, |_| None)).unwrap()), ks);
    }

    /// Text whose escapes would outgrow base64 (a value padded with NULs, as
    /// `DEBUG POPULATE` writes them: `\u0000` each) is stored as base64; text with a few
    /// escapes stays text. Before, a snapshot of 100-byte NUL-padded values took about 540
    /// bytes a key.
    #[test]
    fn text_that_escapes_longer_than_base64_is_stored_as_base64() {
        let mut padded = b"value:5".to_vec();
        padded.resize(100, 0);
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"key:5"), Bytes::from(padded));
        ks.insert(Bytes::from_static(b"line"), Bytes::from_static(b"one\ttwo\n"));
        ks.insert(Bytes::from_static(b"\x01\x02\x03"), Bytes::from_static(b"\x00"));
        let doc = encode(&ks, |_| None);
        let text = String::from_utf8(doc.to_vec()).unwrap();
        assert!(text.contains(r#""key:5":"base64:dmFsdWU6NQAA"#), "{text}");
        assert!(text.contains(r#""line":"one\ttwo\n""#), "{text}");
        assert!(text.contains(r#""base64:AQID":"\u0000""#), "{text}");
        assert!(doc.len() < 250, "{} bytes: {text}", doc.len());
        assert_eq!(inline(decode(&doc).unwrap()), ks);
    }

    #[test]
    fn text_stays_readable_and_stored_values_are_named() {
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"user:1"), Bytes::from_static(b"alice"));
        ks.insert(Bytes::from_static(b"video"), Bytes::from_static(b"a large value"));
        let doc = encode(&ks, |v| (v.len() > 5).then(|| "db.json.value.abc-1".to_string()));
        let (sum, rest) = checked(&doc);
        assert_eq!(rest, br#""keys":{"user:1":"alice","video":"object:db.json.value.abc-1"}}"#);
        let unsummed = [br#"{"valthree":2,"crc32c":"00000000","#.as_slice(), rest].concat();
        assert_eq!(sum, format!("{:08x}", crc32c(&unsummed)));
        let parsed = decode(&doc).unwrap();
        assert_eq!(
            parsed.entries[1],
            (Bytes::from_static(b"video"), Some(Value::Object("db.json.value.abc-1".into())))
        );
    }

    #[test]
    fn a_document_over_a_base_names_it_and_its_deletions() {
        let (k, gone) = (Bytes::from_static(b"k"), Bytes::from_static(b"gone"));
        let v = Bytes::from_static(b"v");
        let doc = encode_over(Some("db.json.base.x-1"), [(&gone, None), (&k, Some(&v))].into_iter(), |_| None);
        assert_eq!(checked(&doc).1, br#""base":"db.json.base.x-1","keys":{"gone":null,"k":"v"}}"#);
        let parsed = decode(&doc).unwrap();
        assert_eq!(parsed.base.as_deref(), Some("db.json.base.x-1"));
        assert_eq!(parsed.entries, vec![(gone, None), (k, Some(Value::Inline(v)))]);
        assert!(decode(br#"{"valthree":1,"keys":{"k":null}}"#).is_err());
    }

    #[test]
    fn version_1_documents_are_read_with_object_text_as_itself() {
        let parsed = decode(br#"{"valthree":1,"keys":{"k":"object:not-a-reference"}}"#).unwrap();
        assert_eq!(parsed.entries[0].1, Some(Value::Inline(Bytes::from_static(b"object:not-a-reference"))));
    }

    #[test]
    fn a_flipped_byte_or_a_lost_tail_is_found() {
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"user:1"), Bytes::from_static(b"alice"));
        ks.insert(Bytes::from_static(b"user:2"), Bytes::from_static(b"bob"));
        let good = encode(&ks, |_| None).to_vec();
        let at = good.windows(5).position(|w| w == b"alice").unwrap();
        let mut flipped = good.clone();
        flipped[at + 2] ^= 0x01;
        let e = decode(&flipped).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
        // Every single flipped bit is found, wherever it is.
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "byte {i} bit {bit} went unnoticed");
            }
        }
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "cut to {len} bytes");
        }
    }

    /// A document of inline and stored values.
    fn with_references() -> Vec<u8> {
        let mut ks = Keyspace::new();
        ks.insert(Bytes::from_static(b"user:1"), Bytes::from_static(b"alice"));
        ks.insert(Bytes::from_static(b"video"), Bytes::from_static(b"a large value"));
        encode(&ks, |v| (v.len() > 5).then(|| "db.json.value.abc-1".to_string())).to_vec()
    }

    #[test]
    fn the_checksum_covers_the_version() {
        // '2' to '1' would make the stored value's reference a literal value of version 1.
        let doc = with_references();
        let mut old = doc.clone();
        old[br#"{"valthree":"#.len()] = b'1';
        let e = decode(&old).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn a_renamed_checksum_field_is_refused() {
        // `crc32b`, one bit from `crc32c`, would be an unknown field and the document unchecked.
        let doc = with_references();
        let at = br#"{"valthree":2,"crc32"#.len();
        for bit in 0..8 {
            let mut renamed = doc.clone();
            renamed[at] ^= 1 << bit;
            assert!(decode(&renamed).is_err(), "{}", String::from_utf8_lossy(&renamed));
        }
        assert!(decode(br#"{"valthree":2,"other":"00000000","keys":{"k":"v"}}"#).is_err());
        assert!(decode(br#"{"valthree":1,"crc32c":"00000000","keys":{"k":"v"}}"#).is_err());
    }

    #[test]
    fn documents_without_a_checksum_are_still_read() {
        let parsed = decode(br#"{"valthree":2,"keys":{"k":"v"}}"#).unwrap();
        assert_eq!(parsed.entries, vec![(Bytes::from_static(b"k"), Some(Value::Inline(Bytes::from_static(b"v"))))]);
        let parsed = decode(br#"{"valthree":2,"base":"db.json.base.x-1","keys":{"k":null}}"#).unwrap();
        assert_eq!(parsed.base.as_deref(), Some("db.json.base.x-1"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"{not json").is_err());
        assert!(decode(br#"{"valthree":1,"keys":{"k":"base64:!!"}}"#).is_err());
        assert!(decode(br#"{"valthree":9,"keys":{}}"#).is_err());
        assert!(decode(br#"{"valthree":2,"keys":{"object:k":"v"}}"#).is_err());
        assert!(decode(br#"{"valthree":2,"keys":{"k":7}}"#).is_err());
    }
}
