//! The checker's own model of dynamo causality: dots, version vectors, and the context text
//! clients carry between `VGET` and `VSET`.
//!
//! The judge does not borrow the server's types: a bug in the server's `covers`, `join` or
//! context codec would otherwise be shared by the accused and its judge, and every verdict
//! would agree with it. What is written here is the protocol as documented, read from the
//! bytes on the wire:
//!
//! * A dot is `actor:counter`, the actor as 16 hexadecimal digits, the counter in decimal.
//! * A version vector maps each actor to the highest counter seen; it covers a dot when the
//!   dot's counter is at most its actor's entry.
//! * A context is the base64url text (no padding) of a key tag followed by the vector: the
//!   tag is the first 4 bytes of SHA-256 of the key, big-endian, as an unsigned LEB128
//!   varint; then the number of entries, and per entry the actor and its counter, each an
//!   unsigned LEB128 varint, actors strictly ascending. The empty text is the empty context.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

/// Who coordinated a write (a node's data directory).
pub type Actor = u64;

/// One write's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    pub actor: Actor,
    pub counter: u64,
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.actor, self.counter)
    }
}

impl std::str::FromStr for Dot {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (actor, counter) = s.split_once(':').ok_or_else(|| format!("{s:?} is not a dot (actor:counter)"))?;
        let actor = u64::from_str_radix(actor, 16).map_err(|_| format!("{s:?}: the actor is not hexadecimal"))?;
        let counter = counter.parse().map_err(|_| format!("{s:?}: the counter is not a number"))?;
        Ok(Dot { actor, counter })
    }
}

/// Per actor, the highest counter seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionVector(BTreeMap<Actor, u64>);

impl VersionVector {
    /// The empty vector: covers nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `dot`'s counter is at most its actor's entry.
    pub fn covers(&self, dot: Dot) -> bool {
        self.0.get(&dot.actor).is_some_and(|c| *c >= dot.counter)
    }

    /// Raises `dot`'s actor's entry to its counter.
    pub fn add(&mut self, dot: Dot) {
        let entry = self.0.entry(dot.actor).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// The pointwise maximum of the two.
    pub fn join(&mut self, other: &VersionVector) {
        for (&actor, &counter) in &other.0 {
            self.add(Dot { actor, counter });
        }
    }

    /// `actor`'s entry (0: none).
    pub fn get(&self, actor: Actor) -> u64 {
        self.0.get(&actor).copied().unwrap_or(0)
    }

    /// Every (actor, counter), by actor.
    pub fn entries(&self) -> impl Iterator<Item = (Actor, u64)> + '_ {
        self.0.iter().map(|(a, c)| (*a, *c))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As the history records it: `{"<actor hex>": counter}`.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(a, c)| (format!("{a:016x}"), json!(c))).collect())
    }

    /// Reads a recorded context back.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or_else(|| format!("a context must be an object, got {value}"))?;
        map.iter()
            .map(|(actor, counter)| {
                let actor =
                    u64::from_str_radix(actor, 16).map_err(|_| format!("actor {actor:?} is not hexadecimal"))?;
                let counter = counter.as_u64().ok_or_else(|| format!("counter {counter} is not a number"))?;
                Ok((actor, counter))
            })
            .collect()
    }
}

impl FromIterator<(Actor, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (Actor, u64)>>(entries: I) -> Self {
        let mut vv = VersionVector::new();
        for (actor, counter) in entries {
            vv.add(Dot { actor, counter });
        }
        vv
    }
}

/// The tag a context for `key` carries.
fn key_tag(key: &[u8]) -> u32 {
    let digest = sha2::Sha256::digest(key);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The length of the signature a cluster with a secret appends to a context.
const SIGNATURE_LEN: usize = 16;

/// Reads the context text a server handed out for `key`.
pub fn decode(key: &[u8], text: &[u8]) -> Result<VersionVector, String> {
    if text.is_empty() {
        return Ok(VersionVector::new());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "the context is not base64url without padding".to_string())?;
    let mut input = bytes.as_slice();
    let tag = varint(&mut input)?;
    if tag != u64::from(key_tag(key)) {
        return Err(format!("the context carries the tag {tag:#x}, not the key's {:#x}", key_tag(key)));
    }
    let entries = varint(&mut input)?;
    let mut vv = BTreeMap::new();
    for _ in 0..entries {
        let (actor, counter) = (varint(&mut input)?, varint(&mut input)?);
        if vv.last_key_value().is_some_and(|(last, _)| *last >= actor) {
            return Err(format!("the context's actors are not strictly ascending at {actor:016x}"));
        }
        vv.insert(actor, counter);
    }
    // A cluster with a secret signs its contexts: the signature follows the entries. The
    // checker holds no key to verify it, and needs none: it judges what the contexts say.
    if !input.is_empty() && input.len() != SIGNATURE_LEN {
        return Err(format!("{} bytes follow the context's entries", input.len()));
    }
    Ok(VersionVector(vv))
}

/// Takes one unsigned LEB128 varint of at most 64 bits off the front of `input`.
fn varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or("the context ends inside a number")?;
        *input = rest;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err("a number in the context overflows 64 bits".into());
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a number in the context overflows 64 bits".into())
}

/// A context text as the history records it (or why it could not be read).
pub fn context_json(key: &str, text: &str) -> Value {
    match decode(key.as_bytes(), text.as_bytes()) {
        Ok(vv) => vv.to_json(),
        Err(e) => json!({ "undecodable": e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built by hand from the documented layout: base64url of
    /// `9ad9968d0d` (tag 0xd1a5ac9a of "k0"), `02` (two entries),
    /// `88ef99abc5e88c9111` `03` (actor 1122334455667788, counter 3),
    /// `90e4d0b287d3aeeefe01` `ac02` (actor fedcba9876543210, counter 300).
    const K0_CONTEXT: &str = "mtmWjQ0CiO-Zq8XojJERA5Dk0LKH067u_gGsAg";

    #[test]
    fn a_context_decodes_to_the_vector_its_bytes_spell() {
        let vv = decode(b"k0", K0_CONTEXT.as_bytes()).unwrap();
        let expected = [(0x1122_3344_5566_7788, 3), (0xfedc_ba98_7654_3210, 300)];
        assert_eq!(vv.entries().collect::<Vec<_>>(), expected);
        assert!(vv.covers(Dot { actor: 0x1122_3344_5566_7788, counter: 3 }));
        assert!(!vv.covers(Dot { actor: 0x1122_3344_5566_7788, counter: 4 }));
        assert!(!vv.covers(Dot { actor: 7, counter: 1 }));
        assert_eq!(decode(b"k0", b"").unwrap(), VersionVector::new());
        // A signed context: the same entries, then a signature the checker does not verify.
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(K0_CONTEXT).unwrap();
        bytes.extend_from_slice(&[0xa5; SIGNATURE_LEN]);
        let signed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode(b"k0", signed.as_bytes()).unwrap(), vv);
    }

    #[test]
    fn a_context_for_another_key_or_with_stray_bytes_is_refused() {
        assert!(decode(b"k1", K0_CONTEXT.as_bytes()).unwrap_err().contains("tag"));
        assert!(decode(b"k0", b"not base64!").is_err());
        // One entry announced, none present; a number cut short; bytes after the entries.
        let encode = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let tag = [0x9a, 0xd9, 0x96, 0x8d, 0x0d];
        for tail in [&[0x01][..], &[0x01, 0x80], &[0x00, 0x00], &[0x02, 0x05, 0x01, 0x03, 0x01]] {
            let text = encode(&[&tag[..], tail].concat());
            assert!(decode(b"k0", text.as_bytes()).is_err(), "{tail:?}");
        }
        // Eleven continuation bytes overflow 64 bits.
        let text = encode(&[&tag[..], &[0x01], &[0xff; 10], &[0x01, 0x01]].concat());
        assert!(decode(b"k0", text.as_bytes()).unwrap_err().contains("overflows"));
    }

    #[test]
    fn covers_and_join_follow_the_pointwise_order() {
        let a: VersionVector = [(1, 5), (2, 1)].into_iter().collect();
        let b: VersionVector = [(2, 4), (3, 2)].into_iter().collect();
        let mut joined = a.clone();
        joined.join(&b);
        assert_eq!(joined.entries().collect::<Vec<_>>(), [(1, 5), (2, 4), (3, 2)]);
        assert!(joined.covers(Dot { actor: 1, counter: 5 }) && !a.covers(Dot { actor: 2, counter: 2 }));
        assert_eq!(VersionVector::from_json(&joined.to_json()).unwrap(), joined);
        assert_eq!("00000000000000ff:9".parse::<Dot>().unwrap(), Dot { actor: 255, counter: 9 });
    }
}
