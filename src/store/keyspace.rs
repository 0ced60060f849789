//! The keyspace every mode replicates, and the one function that changes it.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::scan::{ScanPage, next_cursor, scan_hash, take_page};
use crate::errinput;
use crate::error::Result;

/// SET's condition: NX, XX, or one on the current value (IFEQ, IFNE, IFDEQ, IFDNE).
///
/// Replicated logs and peers carry this enum encoded with postcard, which numbers variants
/// by position: new variants are appended, never inserted, so old entries still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// NX: write only when the key is absent.
    IfAbsent,
    /// XX: write only when the key exists.
    IfPresent,
    /// IFEQ / IFNE / IFDEQ / IFDNE (Redis 8.4): write only when the current value passes.
    IfValue(ValueCondition),
}

/// A test of a key's current value (Redis 8.4's SET and DELEX conditions, Valkey's
/// DELIFEQ). An absent key equals nothing: `Equal` and `DigestEqual` fail on it, `NotEqual`
/// and `DigestNotEqual` pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueCondition {
    /// IFEQ: the value is exactly these bytes.
    Equal(Bytes),
    /// IFNE: the key is absent or its value is not these bytes.
    NotEqual(Bytes),
    /// IFDEQ: the value's [`digest`] is this one.
    DigestEqual(u64),
    /// IFDNE: the key is absent or its value's [`digest`] is not this one.
    DigestNotEqual(u64),
}

impl ValueCondition {
    /// Whether `current` (the key's value, `None` when absent) passes.
    pub fn holds(&self, current: Option<&Bytes>) -> bool {
        match (self, current) {
            (ValueCondition::Equal(v), Some(c)) => v == c,
            (ValueCondition::DigestEqual(d), Some(c)) => *d == digest(c),
            (ValueCondition::NotEqual(v), Some(c)) => v != c,
            (ValueCondition::DigestNotEqual(d), Some(c)) => *d != digest(c),
            (ValueCondition::Equal(_) | ValueCondition::DigestEqual(_), None) => false,
            (ValueCondition::NotEqual(_) | ValueCondition::DigestNotEqual(_), None) => true,
        }
    }
}

/// Redis 8.4's digest of a value (`DIGEST`, `IFDEQ`, `IFDNE`): its XXH3 64-bit hash, seed 0.
pub fn digest(value: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value)
}

/// SET's options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOptions {
    /// NX, XX or a value condition, if given.
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
    /// DELEX / DELIFEQ / GETDEL: removes `key` when `condition` (if any) holds; returns the
    /// value it held when `get`.
    Remove { key: Bytes, condition: Option<ValueCondition>, get: bool },
    /// MSET / MSETNX: writes every pair in order (a key named twice keeps its last value),
    /// or, with `if_none_exist`, nothing at all unless every key is absent.
    MultiSet { pairs: Vec<(Bytes, Bytes)>, if_none_exist: bool },
}

impl Mutation {
    /// The keys the mutation may change; `None` for FLUSHALL, which changes every key.
    pub fn keys(&self) -> Option<Vec<&Bytes>> {
        match self {
            Mutation::Set { key, .. } | Mutation::Update { key, .. } | Mutation::Remove { key, .. } => Some(vec![key]),
            Mutation::Del { keys } => Some(keys.iter().collect()),
            Mutation::MultiSet { pairs, .. } => Some(pairs.iter().map(|(k, _)| k).collect()),
            Mutation::FlushAll => None,
        }
    }
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
    /// What a `Remove` did: whether the key was removed, and (when asked) its value before.
    Removed(SetReply),
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
                let allowed = match &options.condition {
                    None => true,
                    Some(SetCondition::IfAbsent) => !exists,
                    Some(SetCondition::IfPresent) => exists,
                    Some(SetCondition::IfValue(test)) => test.holds(self.entries.get(key)),
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
            Mutation::Remove { key, condition, get } => {
                let current = self.entries.get(key);
                let removed = current.is_some() && condition.as_ref().is_none_or(|test| test.holds(current));
                let previous = if *get { current.cloned() } else { None };
                if removed {
                    self.remove(key);
                }
                Ok(MutationReply::Removed(SetReply { written: removed, previous }))
            }
            Mutation::MultiSet { pairs, if_none_exist } => {
                if *if_none_exist && pairs.iter().any(|(k, _)| self.entries.contains_key(k)) {
                    return Ok(MutationReply::Set(SetReply { written: false, previous: None }));
                }
                for (key, value) in pairs {
                    self.insert(key.clone(), value.clone());
                }
                Ok(MutationReply::Set(SetReply { written: true, previous: None }))
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
        let first = ks.apply(&Mutation::Set { key: b("k"), value: b("1"), options: nx.clone() }).unwrap();
        assert_eq!(first, MutationReply::Set(SetReply { written: true, previous: None }));
        let second = ks.apply(&Mutation::Set { key: b("k"), value: b("2"), options: nx }).unwrap();
        assert_eq!(second, MutationReply::Set(SetReply { written: false, previous: Some(b("1")) }));
        assert_eq!(ks.get(b"k"), Some(&b("1")));
    }

    fn set_if(value: &str, test: ValueCondition, get: bool) -> Mutation {
        Mutation::Set {
            key: b("k"),
            value: b(value),
            options: SetOptions { condition: Some(SetCondition::IfValue(test)), get },
        }
    }

    fn written(written: bool, previous: Option<&str>) -> MutationReply {
        MutationReply::Set(SetReply { written, previous: previous.map(b) })
    }

    /// A value whose digest is `00006c38adf31777` (redis/redis#14496).
    const LEADING_ZEROS: &[u8] =
        b"v8lf0c11xh8ymlqztfd3eeq16kfn4sspw7fqmnuuq3k3t75em5wdizgcdw7uc26nnf961u2jkfzkjytls2kwlj7626sd";

    #[test]
    fn the_digest_is_xxh3_as_redis_documents_it() {
        // The example of Redis 8.4's DIGEST page: SET key1 "Hello world"; DIGEST key1.
        assert_eq!(format!("{:016x}", digest(b"Hello world")), "b6acb9d84a38ff74");
        // redis/redis#14496's value, whose digest begins with four zeros: DIGEST prints all 16
        // digits (Redis 8.4.0 dropped the zeros, and a client's 16-digit digest never matched).
        assert_eq!(format!("{:016x}", digest(LEADING_ZEROS)), "00006c38adf31777");
    }

    #[test]
    fn ifeq_and_ifdeq_write_only_over_an_equal_value_and_never_create_the_key() {
        let mut ks = Keyspace::new();
        assert_eq!(ks.apply(&set_if("x", ValueCondition::Equal(b("")), false)).unwrap(), written(false, None));
        assert_eq!(
            ks.apply(&set_if("x", ValueCondition::DigestEqual(digest(b"")), false)).unwrap(),
            written(false, None)
        );
        assert_eq!(ks.get(b"k"), None, "IFEQ/IFDEQ never create a key");
        ks.insert(b("k"), b("a"));
        assert_eq!(ks.apply(&set_if("b", ValueCondition::Equal(b("z")), true)).unwrap(), written(false, Some("a")));
        assert_eq!(ks.apply(&set_if("b", ValueCondition::Equal(b("a")), true)).unwrap(), written(true, Some("a")));
        assert_eq!(
            ks.apply(&set_if("c", ValueCondition::DigestEqual(digest(b"a")), false)).unwrap(),
            written(false, None)
        );
        assert_eq!(
            ks.apply(&set_if("c", ValueCondition::DigestEqual(digest(b"b")), false)).unwrap(),
            written(true, None)
        );
        assert_eq!(ks.get(b"k"), Some(&b("c")));
    }

    #[test]
    fn ifne_and_ifdne_write_over_a_different_value_or_an_absent_key() {
        let mut ks = Keyspace::new();
        assert_eq!(ks.apply(&set_if("a", ValueCondition::NotEqual(b("a")), false)).unwrap(), written(true, None));
        assert_eq!(ks.apply(&set_if("b", ValueCondition::NotEqual(b("a")), false)).unwrap(), written(false, None));
        assert_eq!(
            ks.apply(&set_if("b", ValueCondition::DigestNotEqual(digest(b"a")), false)).unwrap(),
            written(false, None)
        );
        assert_eq!(
            ks.apply(&set_if("b", ValueCondition::DigestNotEqual(digest(b"z")), false)).unwrap(),
            written(true, None)
        );
        ks.remove(b"k");
        assert_eq!(ks.apply(&set_if("c", ValueCondition::DigestNotEqual(0), false)).unwrap(), written(true, None));
        assert_eq!(ks.get(b"k"), Some(&b("c")));
    }

    #[test]
    fn remove_deletes_only_when_its_condition_holds() {
        let mut ks = Keyspace::new();
        let remove = |condition, get| Mutation::Remove { key: b("k"), condition, get };
        let removed = |r: bool, p: Option<&str>| MutationReply::Removed(SetReply { written: r, previous: p.map(b) });
        assert_eq!(ks.apply(&remove(None, true)).unwrap(), removed(false, None));
        assert_eq!(ks.apply(&remove(Some(ValueCondition::NotEqual(b("x"))), false)).unwrap(), removed(false, None));
        ks.insert(b("k"), b("v"));
        assert_eq!(ks.apply(&remove(Some(ValueCondition::Equal(b("w"))), true)).unwrap(), removed(false, Some("v")));
        assert_eq!(ks.apply(&remove(Some(ValueCondition::NotEqual(b("v"))), false)).unwrap(), removed(false, None));
        assert_eq!(ks.get(b"k"), Some(&b("v")));
        assert_eq!(
            ks.apply(&remove(Some(ValueCondition::DigestEqual(digest(b"v"))), true)).unwrap(),
            removed(true, Some("v"))
        );
        assert_eq!(ks.get(b"k"), None);
    }

    #[test]
    fn every_mutation_keeps_the_scan_index_in_step_with_the_keys() {
        let mut ks = Keyspace::new();
        let set = |k: &str| Mutation::Set { key: b(k), value: b("1"), options: SetOptions::default() };
        let mutations = vec![
            set("a"),
            set("b"),
            Mutation::MultiSet { pairs: vec![(b("c"), b("1")), (b("d"), b("2"))], if_none_exist: false },
            Mutation::Remove { key: b("a"), condition: None, get: true },
            Mutation::Remove { key: b("c"), condition: Some(ValueCondition::Equal(b("1"))), get: false },
            Mutation::Update { key: b("e"), op: UpdateOp::IncrBy(1) },
            Mutation::Update { key: b("f"), op: UpdateOp::Append(b("x")) },
            Mutation::Del { keys: vec![b("b")] },
        ];
        for m in &mutations {
            ks.apply(m).unwrap();
            let mut scanned = ks.scan(0, 1000).keys;
            scanned.sort();
            let keys: Vec<Bytes> = ks.iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(scanned, keys, "after {m:?}");
        }
        ks.apply(&Mutation::FlushAll).unwrap();
        assert!(ks.scan(0, 1000).keys.is_empty());
    }

    #[test]
    fn multi_set_writes_every_pair_or_with_nx_none() {
        let mut ks = Keyspace::new();
        let pairs = vec![(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))];
        let nx = Mutation::MultiSet { pairs: pairs.clone(), if_none_exist: true };
        assert_eq!(ks.apply(&nx).unwrap(), written(true, None));
        assert_eq!((ks.get(b"a"), ks.get(b"b")), (Some(&b("3")), Some(&b("2"))), "the last of a repeated key wins");
        let nx = Mutation::MultiSet { pairs: vec![(b("c"), b("1")), (b("b"), b("9"))], if_none_exist: true };
        assert_eq!(ks.apply(&nx).unwrap(), written(false, None));
        assert_eq!((ks.get(b"c"), ks.get(b"b")), (None, Some(&b("2"))), "MSETNX writes nothing when one key exists");
        let all = Mutation::MultiSet { pairs: vec![(b("c"), b("1")), (b("b"), b("9"))], if_none_exist: false };
        assert_eq!(ks.apply(&all).unwrap(), written(true, None));
        assert_eq!((ks.get(b"c"), ks.get(b"b")), (Some(&b("1")), Some(&b("9"))));
    }

    #[test]
    fn mutations_logged_before_the_value_conditions_still_decode() {
        // postcard numbers enum variants by position; the bytes below are what the binary
        // wrote before conditions on values existed (SET k v NX GET, DEL k, INCRBY k 1,
        // FLUSHALL), so appended variants must leave them readable.
        let old: [(&[u8], Mutation); 4] = [
            (
                &[0, 1, b'k', 1, b'v', 1, 0, 1],
                Mutation::Set {
                    key: b("k"),
                    value: b("v"),
                    options: SetOptions { condition: Some(SetCondition::IfAbsent), get: true },
                },
            ),
            (&[1, 1, 1, b'k'], Mutation::Del { keys: vec![b("k")] }),
            (&[2, 1, b'k', 0, 2], Mutation::Update { key: b("k"), op: UpdateOp::IncrBy(1) }),
            (&[3], Mutation::FlushAll),
        ];
        for (bytes, mutation) in old {
            assert_eq!(postcard::from_bytes::<Mutation>(bytes).unwrap(), mutation);
            assert_eq!(postcard::to_allocvec(&mutation).unwrap(), bytes);
        }
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
