//! The keyspace every mode replicates, and the one function that changes it.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::scan::{ScanPage, next_cursor, scan_hash, take_page};
use crate::errinput;
use crate::error::Result;

/// SET's NX / XX condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// NX: write only when the key is absent.
    IfAbsent,
    /// XX: write only when the key exists.
    IfPresent,
}

/// SET's options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOptions {
    /// NX or XX, if given.
    pub condition: Option<SetCondition>,
    /// GET: return the previous value.
    pub get: bool,
}

/// What a SET did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReply {
    /// Whether the value was written (false when NX/XX stopped it).
    pub written: bool,
    /// The value before the SET (only filled in when `SetOptions::get` was asked for).
    pub previous: Option<Bytes>,
}

/// A read-modify-write on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateOp {
    /// INCRBY n (INCR, DECR and DECRBY are spelled with it).
    IncrBy(i64),
    /// APPEND bytes.
    Append(Bytes),
}

/// One write, as a deterministic function of the keyspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    /// SET key value [NX|XX] [GET].
    Set { key: Bytes, value: Bytes, options: SetOptions },
    /// DEL key [key ...].
    Del { keys: Vec<Bytes> },
    /// INCRBY / APPEND.
    Update { key: Bytes, op: UpdateOp },
    /// FLUSHALL.
    FlushAll,
}

/// The outcome of a mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MutationReply {
    /// SET's outcome.
    Set(SetReply),
    /// DEL's count.
    Count(u64),
    /// INCRBY's new value, or APPEND's new length.
    Integer(i64),
    /// FLUSHALL done.
    Done,
}

/// The longest value APPEND may build: Redis' default proto-max-bulk-len, 512 MiB.
pub const MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// Redis' text for an argument or a stored value that is not a 64-bit integer.
pub const NOT_AN_INTEGER: &str = "value is not an integer or out of range";

/// An ordered map of binary keys to binary values: the state every mode agrees on.
///
/// A persistent B-tree: a clone shares every node and costs O(1), and a change copies only
/// the path to the key it touches, so a writer can derive the next version from one that
/// readers still hold without copying the whole keyspace (s3 mode does that on every write).
///
/// Beside the map, an index of the keys in scan order (see [`super::scan`]), kept in step by
/// every change, so a SCAN page costs O(log n + COUNT) however large the keyspace. The index
/// is not serialized: it is rebuilt when a keyspace is decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyspace {
    entries: imbl::OrdMap<Bytes, Bytes>,
    by_hash: imbl::OrdSet<(u64, Bytes)>,
}

impl Serialize for Keyspace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.entries.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Keyspace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let entries = imbl::OrdMap::<Bytes, Bytes>::deserialize(deserializer)?;
        let by_hash = entries.keys().map(|k| (scan_hash(k), k.clone())).collect();
        Ok(Self { entries, by_hash })
    }
}

impl Keyspace {
    /// An empty keyspace.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.entries.get(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.entries.iter()
    }

    /// The entries after `after` (all of them for `None`), in key order: a page of a walk
    /// over a snapshot that resumes where the last page ended.
    pub fn entries_after(&self, after: Option<&[u8]>) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries.range::<_, [u8]>((start, Bound::Unbounded))
    }

    /// Inserts without conditions (for decoders and tests).
    pub fn insert(&mut self, key: Bytes, value: Bytes) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.by_hash.insert((scan_hash(&key), key));
        }
    }

    /// Removes without conditions (to undo a mutation); returns the value removed.
    pub fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        let (key, value) = self.entries.remove_with_key(key)?;
        self.by_hash.remove(&(scan_hash(&key), key));
        Some(value)
    }

    /// Up to about `count` keys in scan order from `cursor` (see [`super::scan`]): O(log n +
    /// count).
    pub fn scan(&self, cursor: u64, count: usize) -> ScanPage {
        let items = self.by_hash.range((cursor, Bytes::new())..).map(|(h, k)| (*h, k.clone(), true));
        let listing = take_page(items, count);
        ScanPage { keys: listing.keys.into_iter().map(|(_, k, _)| k).collect(), cursor: next_cursor(listing.through) }
    }

    /// Applies `mutation`. A mutation that fails (INCR of a non-integer) leaves the keyspace
    /// untouched, so a batch of mutations can be applied one after another and each one's
    /// failure stays its own.
    pub fn apply(&mut self, mutation: &Mutation) -> Result<MutationReply> {
        match mutation {
            Mutation::Set { key, value, options } => {
                let exists = self.entries.contains_key(key);
                let allowed = match options.condition {
                    None => true,
                    Some(SetCondition::IfAbsent) => !exists,
                    Some(SetCondition::IfPresent) => exists,
                };
                let previous = if options.get { self.entries.get(key).cloned() } else { None };
                if allowed {
                    self.insert(key.clone(), value.clone());
                }
                Ok(MutationReply::Set(SetReply { written: allowed, previous }))
            }
            Mutation::Del { keys } => {
                let removed = keys.iter().filter(|k| self.remove(k).is_some()).count();
                Ok(MutationReply::Count(removed as u64))
            }
            Mutation::Update { key, op: UpdateOp::IncrBy(delta) } => {
                let current = match self.entries.get(key) {
                    None => 0,
                    Some(v) => parse_i64(v).ok_or_else(|| errinput!("{NOT_AN_INTEGER}"))?,
                };
                let next =
                    current.checked_add(*delta).ok_or_else(|| errinput!("increment or decrement would overflow"))?;
                self.insert(key.clone(), Bytes::from(next.to_string()));
                Ok(MutationReply::Integer(next))
            }
            Mutation::Update { key, op: UpdateOp::Append(suffix) } => {
                let current = self.entries.get(key).map_or(0, |v| v.len());
                if current + suffix.len() > MAX_VALUE_LEN {
                    return Err(errinput!("string exceeds maximum allowed size (proto-max-bulk-len)"));
                }
                let mut joined = BytesMut::new();
                if let Some(v) = self.entries.get(key) {
                    joined.extend_from_slice(v);
                }
                joined.extend_from_slice(suffix);
                let len = joined.len() as i64;
                self.insert(key.clone(), joined.freeze());
                Ok(MutationReply::Integer(len))
            }
            Mutation::FlushAll => {
                self.entries.clear();
                self.by_hash.clear();
                Ok(MutationReply::Done)
            }
        }
    }
}

/// Parses a value the way Redis' `string2ll` does: optional minus, decimal digits, no
/// leading zeros, no plus sign, no spaces, within i64.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn incr_of_a_non_integer_fails_and_changes_nothing() {
        let mut ks = Keyspace::new();
        ks.insert(b("k"), b("abc"));
        let err = ks.apply(&Mutation::Update { key: b("k"), op: UpdateOp::IncrBy(1) }).unwrap_err();
        assert_eq!(err.to_resp(), "ERR value is not an integer or out of range");
        assert_eq!(ks.get(b"k"), Some(&b("abc")));
    }

    #[test]
    fn incr_overflow_is_refused() {
        let mut ks = Keyspace::new();
        ks.insert(b("k"), b(&i64::MAX.to_string()));
        let err = ks.apply(&Mutation::Update { key: b("k"), op: UpdateOp::IncrBy(1) }).unwrap_err();
        assert_eq!(err.to_resp(), "ERR increment or decrement would overflow");
    }

    #[test]
    fn set_nx_writes_only_when_absent_and_get_returns_the_old_value() {
        let mut ks = Keyspace::new();
        let nx = SetOptions { condition: Some(SetCondition::IfAbsent), get: true };
        let first = ks.apply(&Mutation::Set { key: b("k"), value: b("1"), options: nx }).unwrap();
        assert_eq!(first, MutationReply::Set(SetReply { written: true, previous: None }));
        let second = ks.apply(&Mutation::Set { key: b("k"), value: b("2"), options: nx }).unwrap();
        assert_eq!(second, MutationReply::Set(SetReply { written: false, previous: Some(b("1")) }));
        assert_eq!(ks.get(b"k"), Some(&b("1")));
    }

    #[test]
    fn append_refuses_to_grow_a_value_past_the_limit() {
        let mut ks = Keyspace::new();
        ks.insert(b("k"), Bytes::from(vec![b'x'; MAX_VALUE_LEN]));
        let err = ks.apply(&Mutation::Update { key: b("k"), op: UpdateOp::Append(b("y")) }).unwrap_err();
        assert_eq!(err.to_resp(), "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        assert_eq!(ks.get(b"k").map(|v| v.len()), Some(MAX_VALUE_LEN));
    }

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in ["", "-", "+1", " 1", "01", "-0", "1.0", "9223372036854775808"] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
