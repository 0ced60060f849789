//! Dotted version vectors: the causality of one key, kept on the servers.
//!
//! Every write gets a *dot* — the actor (node data directory) that coordinated it and a
//! counter from that actor's node-wide sequence — so no two writes ever share one. An
//! [`Object`] is a causal *context* (a version vector: per actor, the highest counter seen)
//! plus its *siblings*: the writes none of the others supersede, each with its dot, a wall
//! clock timestamp (only for display and GET's pick) and a value or a tombstone.
//!
//! * A PUT with context `C` (what its client read) drops exactly the siblings `C` covers,
//!   adds one sibling under a fresh dot, and joins `C` and the dot into the context. Writes
//!   the client had not seen survive as siblings: nothing is lost to a clock.
//! * Two replicas merge by the DVV join: a sibling survives unless the other replica's
//!   context covers its dot and the other replica no longer holds it (it was superseded
//!   there); contexts join pointwise. The join is commutative, associative and idempotent,
//!   so replicas that have exchanged the same objects hold the same object, in any order.
//!
//! Why it is exact: an actor writes a key only on its own local copy, after every write it
//! made before, so a context that covers one of its dots learned it from a copy that held
//! (or superseded) every earlier dot of that actor for that key. Counters skipped because
//! they went to other keys are never siblings of this one. (Preguiça et al., "Dotted
//! Version Vectors: Logical Clocks for Optimistic Replication", 2010; Riak's DVV.)

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Who coordinated a write: a random id born with a node's data directory, so a node whose
/// data was wiped comes back as another actor and never reuses a counter (Riak's KV679).
pub type Actor = u64;

/// The longest context a client may hand back (base64 text): a context holds one entry per
/// actor that ever wrote the key, so this is thousands of actors.
pub const MAX_CONTEXT_TEXT: usize = 64 << 10;

/// One write's identity: its actor and that actor's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// A version vector: per actor, the highest counter known. A dot is *covered* when its
/// counter is at most its actor's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<Actor, u64>);

impl VersionVector {
    /// The empty context: covers nothing (a blind write).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `dot` happened before (or is) what this context has seen.
    pub fn covers(&self, dot: Dot) -> bool {
        self.0.get(&dot.actor).is_some_and(|c| *c >= dot.counter)
    }

    /// Adds `dot` (and, implicitly, its actor's earlier counters).
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

    /// True when this context has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(&actor, &counter)| self.covers(Dot { actor, counter }))
    }

    /// The highest counter of `actor` seen (0: none).
    pub fn get(&self, actor: Actor) -> u64 {
        self.0.get(&actor).copied().unwrap_or(0)
    }

    /// Every (actor, highest counter), by actor.
    pub fn entries(&self) -> impl Iterator<Item = (Actor, u64)> + '_ {
        self.0.iter().map(|(a, c)| (*a, *c))
    }

    /// How many actors it names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The opaque text clients carry between VGET and VSET for `key`: base64url of the
    /// context's binary form and a tag of the key (a context is about one key: the dot
    /// counters are node-wide, so one key's context would silently supersede another's
    /// siblings), then, with a `signer`, a [`SIGNATURE_LEN`]-byte signature of both.
    pub fn encode_for(&self, key: &[u8], signer: Option<&ContextKey>) -> String {
        let mut bytes = postcard::to_stdvec(&(key_tag(key), self)).expect("a version vector always serializes");
        if let Some(signer) = signer {
            let signature = signer.sign(key, &bytes);
            bytes.extend_from_slice(&signature);
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a context a client handed back for `key`; the empty string is the empty context.
    /// Anything but exactly what [`Self::encode_for`] made for this key (with this `signer`)
    /// is refused.
    pub fn decode_for(key: &[u8], text: &[u8], signer: Option<&ContextKey>) -> Result<Self, String> {
        if text.len() > MAX_CONTEXT_TEXT {
            return Err(format!("the context is longer than {MAX_CONTEXT_TEXT} bytes"));
        }
        if text.is_empty() {
            return Ok(Self::new());
        }
        let not_ours = |why: &str| format!("the context is not one VGET or VSET returned ({why})");
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| not_ours("not base64url"))?;
        let (body, signature) = match signer {
            None => (&bytes[..], None),
            Some(_) => {
                let Some(split) = bytes.len().checked_sub(SIGNATURE_LEN) else { return Err(not_ours("unsigned")) };
                let (body, signature) = bytes.split_at(split);
                (body, Some(signature))
            }
        };
        let (tag, vv): (u32, VersionVector) = match postcard::take_from_bytes(body) {
            Ok((decoded, [])) => decoded,
            _ => return Err(not_ours("malformed")),
        };
        // The tag first, for the error that helps a client that mixed up its keys; the
        // signature (over the whole key) is what decides.
        if tag != key_tag(key) {
            return Err("the context is for another key: read this key with VGET".into());
        }
        if let (Some(signer), Some(signature)) = (signer, signature)
            && !signer.verify(key, body, signature)
        {
            return Err(not_ours("its signature does not match"));
        }
        // One text per context: a decoded context encodes back to what was given.
        if vv.encode_for(key, signer).as_bytes() != text {
            return Err(not_ours("malformed"));
        }
        Ok(vv)
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

/// The bytes of a context's signature.
pub const SIGNATURE_LEN: usize = 16;

/// The key a cluster signs the contexts it hands to clients with (HMAC-SHA256, cut to
/// [`SIGNATURE_LEN`] bytes), derived from the cluster secret. Without it a client could hand
/// back a context naming writes no node made (an actor at a counter it never reached):
/// every later write of that actor would then look already seen, and replicas would drop it.
#[derive(Clone)]
pub struct ContextKey([u8; 32]);

impl fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContextKey(..)")
    }
}

impl ContextKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The MAC of a context `body` for `key`: the whole key is signed (its length first), not
    /// only the short tag the body carries, so a context cannot be moved to another key whose
    /// tag collides.
    fn mac(&self, key: &[u8], body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&(key.len() as u64).to_be_bytes());
        mac.update(key);
        mac.update(body);
        mac
    }

    fn sign(&self, key: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
        use hmac::Mac;
        let full = self.mac(key, body).finalize().into_bytes();
        full[..SIGNATURE_LEN].try_into().expect("a SHA-256 MAC is longer")
    }

    /// True when `signature` is `body`'s for `key` (compared in constant time).
    fn verify(&self, key: &[u8], body: &[u8], signature: &[u8]) -> bool {
        use hmac::Mac;
        self.mac(key, body).verify_truncated_left(signature).is_ok()
    }
}

/// A short tag of a key, carried in its contexts.
fn key_tag(key: &[u8]) -> u32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key);
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"))
}

/// How writes and replicas are reconciled. Only [`Causality::Dvv`] is correct; the other two
/// are the classic mistakes, behind hidden test switches so that `check-history --model
/// dynamo` has real bugs to catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Causality {
    /// Dotted version vectors (this module).
    #[default]
    Dvv,
    /// Last writer wins (`--unsafe-lww`): one sibling, the latest timestamp; a concurrent
    /// write is silently dropped.
    Lww,
    /// Per-server plain version vectors (`--unsafe-server-clocks`): a write's counter is its
    /// coordinator's entry in the client's context plus one, so two clients writing through
    /// one node with one context get the same "dot" and one write replaces the other, and a
    /// replica whose clock is ahead drops a write it never saw.
    ServerClock,
}

impl Causality {
    /// The dot of a write under `context` by `actor`; `fresh` takes the next counter of the
    /// actor's node-wide sequence (not taken by the broken per-server clocks, whose counter
    /// comes from the client's context).
    pub fn dot(self, actor: Actor, context: &VersionVector, fresh: impl FnOnce() -> u64) -> Dot {
        match self {
            Causality::ServerClock => Dot { actor, counter: context.get(actor) + 1 },
            Causality::Dvv | Causality::Lww => Dot { actor, counter: fresh() },
        }
    }
}

/// One write that nothing known supersedes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    pub dot: Dot,
    /// Milliseconds since the Unix epoch at the coordinator: for display, and for which
    /// sibling a plain GET answers with. Never for causality.
    pub timestamp_ms: u64,
    /// The value written; `None` is a delete (a tombstone).
    pub value: Option<Bytes>,
}

/// A key's replicated state: its causal context and its siblings (sorted by dot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    context: VersionVector,
    siblings: Vec<Sibling>,
}

impl Object {
    /// A key never written.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// True when nothing was ever written (or everything known was merged away).
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty() && self.context.is_empty()
    }

    /// The siblings that hold a value (not tombstones).
    pub fn live(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(|s| s.value.is_some())
    }

    /// The bytes of every sibling's value.
    pub fn value_bytes(&self) -> usize {
        self.siblings.iter().filter_map(|s| s.value.as_ref()).map(Bytes::len).sum()
    }

    /// What a plain GET answers: nothing when no sibling holds a value, else the value of the
    /// latest (timestamp, then dot) sibling that does. Every sibling stays stored.
    pub fn pick(&self) -> Option<&Bytes> {
        self.live().max_by_key(|s| (s.timestamp_ms, s.dot)).and_then(|s| s.value.as_ref())
    }

    /// A write under context `context` with the fresh dot `dot`: drops the siblings the
    /// context covers, adds the new one, and joins the context and the dot in.
    pub fn put(&mut self, context: &VersionVector, dot: Dot, timestamp_ms: u64, value: Option<Bytes>) {
        debug_assert!(!self.context.covers(dot), "dot {dot} is not fresh");
        self.siblings.retain(|s| !context.covers(s.dot) && s.dot != dot);
        let at = self.siblings.partition_point(|s| s.dot < dot);
        self.siblings.insert(at, Sibling { dot, timestamp_ms, value });
        self.context.join(context);
        self.context.add(dot);
    }

    /// [`Self::put`] under `causality`: a broken one is for the checker's tests only.
    pub fn put_as(
        &mut self,
        causality: Causality,
        context: &VersionVector,
        dot: Dot,
        timestamp_ms: u64,
        value: Option<Bytes>,
    ) {
        match causality {
            Causality::Dvv => self.put(context, dot, timestamp_ms, value),
            Causality::Lww => {
                self.siblings = vec![Sibling { dot, timestamp_ms, value }];
                self.context.join(context);
                self.context.add(dot);
            }
            Causality::ServerClock => {
                // The "dot" may be one this replica has seen: no freshness to assert.
                self.siblings.retain(|s| !context.covers(s.dot) && s.dot != dot);
                let at = self.siblings.partition_point(|s| s.dot < dot);
                self.siblings.insert(at, Sibling { dot, timestamp_ms, value });
                self.context.join(context);
                self.context.add(dot);
            }
        }
    }

    /// [`Self::merge`] under `causality`.
    pub fn merge_as(&mut self, causality: Causality, other: &Object) {
        match causality {
            Causality::Dvv | Causality::ServerClock => self.merge(other),
            Causality::Lww => {
                let latest =
                    self.siblings.iter().chain(&other.siblings).max_by_key(|s| (s.timestamp_ms, s.dot)).cloned();
                self.siblings = latest.into_iter().collect();
                self.context.join(&other.context);
            }
        }
    }

    /// The DVV join with another replica's object.
    pub fn merge(&mut self, other: &Object) {
        let (mine, theirs) = (&self.siblings, &other.siblings);
        let mut merged = Vec::with_capacity(mine.len().max(theirs.len()));
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < theirs.len() {
            let next = match (mine.get(i), theirs.get(j)) {
                (Some(a), Some(b)) if a.dot == b.dot => {
                    i += 1;
                    j += 1;
                    Some(a)
                }
                (Some(a), b) if b.is_none_or(|b| a.dot < b.dot) => {
                    i += 1;
                    (!other.context.covers(a.dot)).then_some(a)
                }
                (_, Some(b)) => {
                    j += 1;
                    (!self.context.covers(b.dot)).then_some(b)
                }
                (None, None) => unreachable!("the loop runs while either side has siblings"),
                (Some(_), None) => unreachable!("handled by the arm above"),
            };
            if let Some(s) = next {
                merged.push(s.clone());
            }
        }
        self.siblings = merged;
        self.context.join(&other.context);
    }

    /// The merge of `self` and `other` as a new object.
    pub fn merged(&self, other: &Object) -> Object {
        self.merged_as(Causality::Dvv, other)
    }

    /// [`Self::merged`] under `causality`.
    pub fn merged_as(&self, causality: Causality, other: &Object) -> Object {
        let mut out = self.clone();
        out.merge_as(causality, other);
        out
    }

    /// Checks what the type promises, for an object that came from a peer or the disk:
    /// siblings sorted by dot, no dot twice, every dot covered by the context.
    pub fn validate(&self) -> Result<(), String> {
        if self.siblings.windows(2).any(|w| w[0].dot >= w[1].dot) {
            return Err("siblings are not sorted by distinct dots".into());
        }
        if let Some(s) = self.siblings.iter().find(|s| !self.context.covers(s.dot)) {
            return Err(format!("sibling {} is not covered by its context", s.dot));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Randomized property tests: the join's laws, what a PUT drops, and equality with a
    //! naive model that keeps every write and its causal past as explicit sets.

    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn dot(actor: Actor, counter: u64) -> Dot {
        Dot { actor, counter }
    }

    fn value(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A replica in the simulation: the DVV object and the model's explicit set of the writes
    /// it received.
    #[derive(Clone, Default)]
    struct Replica {
        object: Object,
        known: BTreeSet<Dot>,
    }

    /// Random puts (with contexts read from any replica, possibly stale) and merges among
    /// three replicas, each the actor of its own writes, counters with gaps (a node-wide
    /// sequence shared with other keys).
    fn simulate(rng: &mut fastrand::Rng, steps: usize) -> (Vec<Replica>, HashMap<Dot, BTreeSet<Dot>>) {
        let mut replicas = vec![Replica::default(); 3];
        let mut counters = [0u64; 3];
        let mut past: HashMap<Dot, BTreeSet<Dot>> = HashMap::new();
        let mut reads: Vec<(VersionVector, BTreeSet<Dot>)> = vec![(VersionVector::new(), BTreeSet::new())];
        for _ in 0..steps {
            match rng.u8(0..10) {
                0..=3 => {
                    let at = rng.usize(0..3);
                    counters[at] += rng.u64(1..4);
                    let d = dot(at as Actor + 1, counters[at]);
                    let (context, seen) = reads[rng.usize(0..reads.len())].clone();
                    let v = if rng.u8(0..5) == 0 { None } else { value(&d.to_string()) };
                    replicas[at].object.put(&context, d, rng.u64(0..100), v);
                    replicas[at].known.insert(d);
                    // Happened-before is transitive: what the read saw, and everything before it.
                    let mut closed = seen.clone();
                    for w in &seen {
                        closed.extend(past[w].iter().copied());
                    }
                    past.insert(d, closed);
                }
                4..=7 => {
                    let (a, b) = (rng.usize(0..3), rng.usize(0..3));
                    let from = replicas[b].clone();
                    replicas[a].object.merge(&from.object);
                    replicas[a].known.extend(from.known);
                }
                _ => {
                    let r = &replicas[rng.usize(0..3)];
                    reads.push((r.object.context().clone(), r.known.clone()));
                }
            }
        }
        (replicas, past)
    }

    /// The model's siblings: the known writes no known write has in its (transitively closed)
    /// past.
    fn maximal(known: &BTreeSet<Dot>, past: &HashMap<Dot, BTreeSet<Dot>>) -> BTreeSet<Dot> {
        known.iter().copied().filter(|d| !known.iter().any(|w| past[w].contains(d))).collect()
    }

    #[test]
    fn siblings_equal_the_writes_no_known_write_supersedes() {
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let (replicas, past) = simulate(&mut rng, 60);
            for r in &replicas {
                r.object.validate().unwrap();
                let dots: BTreeSet<Dot> = r.object.siblings().iter().map(|s| s.dot).collect();
                assert_eq!(dots, maximal(&r.known, &past), "seed {seed}");
            }
        }
    }

    #[test]
    fn the_join_is_commutative_associative_and_idempotent() {
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let (replicas, _) = simulate(&mut rng, 40);
            let [a, b, c] = [&replicas[0].object, &replicas[1].object, &replicas[2].object];
            assert_eq!(a.merged(b), b.merged(a), "seed {seed}");
            assert_eq!(a.merged(b).merged(c), a.merged(&b.merged(c)), "seed {seed}");
            assert_eq!(a.merged(a), *a, "seed {seed}");
            assert_eq!(a.merged(b).merged(b), a.merged(b), "seed {seed}");
        }
    }

    #[test]
    fn a_put_drops_exactly_the_siblings_its_context_covers() {
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let (replicas, _) = simulate(&mut rng, 40);
            let (target, reader) = (&replicas[0].object, &replicas[rng.usize(0..3)].object);
            let fresh = dot(1, target.context().get(1) + 1);
            let mut after = target.clone();
            after.put(reader.context(), fresh, 0, value("new"));
            let kept: Vec<Dot> =
                target.siblings().iter().map(|s| s.dot).filter(|d| !reader.context().covers(*d)).collect();
            let mut expected = kept;
            expected.push(fresh);
            expected.sort();
            assert_eq!(after.siblings().iter().map(|s| s.dot).collect::<Vec<_>>(), expected, "seed {seed}");
            assert!(after.context().descends(reader.context()) && after.context().descends(target.context()));
        }
    }

    #[test]
    fn concurrent_writes_become_siblings_and_a_merged_context_resolves_them() {
        let mut a = Object::new();
        a.put(&VersionVector::new(), dot(1, 1), 10, value("x"));
        let read = a.context().clone();
        let mut b = a.clone();
        a.put(&read, dot(1, 2), 20, value("a"));
        b.put(&read, dot(2, 1), 30, value("b"));
        let mut both = a.merged(&b);
        assert_eq!(both.siblings().len(), 2);
        assert_eq!(both.pick(), value("b").as_ref(), "the later timestamp");
        let context = both.context().clone();
        both.put(&context, dot(1, 3), 40, value("ab"));
        assert_eq!(both.siblings().len(), 1);
        assert_eq!(both.pick(), value("ab").as_ref());
    }

    #[test]
    fn a_tombstone_hides_the_key_but_not_a_concurrent_value() {
        let mut a = Object::new();
        a.put(&VersionVector::new(), dot(1, 1), 10, value("x"));
        let read = a.context().clone();
        let mut deleted = a.clone();
        deleted.put(&read, dot(1, 2), 20, None);
        assert_eq!(deleted.pick(), None);
        let mut other = a.clone();
        other.put(&read, dot(2, 1), 15, value("y"));
        assert_eq!(deleted.merged(&other).pick(), value("y").as_ref());
    }

    #[test]
    fn a_signed_context_is_accepted_only_as_it_was_made_and_only_with_its_key() {
        let (key, other) = (ContextKey::new([7; 32]), ContextKey::new([8; 32]));
        let mut vv = VersionVector::new();
        vv.add(dot(0xabcdef, 7));
        let text = vv.encode_for(b"k", Some(&key));
        assert_eq!(VersionVector::decode_for(b"k", text.as_bytes(), Some(&key)).unwrap(), vv);
        assert_eq!(VersionVector::decode_for(b"k", b"", Some(&key)).unwrap(), VersionVector::new());
        let refused = |t: &str, k: &ContextKey| VersionVector::decode_for(b"k", t.as_bytes(), Some(k)).unwrap_err();
        assert!(refused(&text, &other).contains("signature"), "another cluster's key");
        let unsigned = vv.encode_for(b"k", None);
        assert!(refused(&unsigned, &key).contains("not one VGET or VSET returned"), "unsigned");
        // A forged context (a counter raised) under the old signature.
        let mut forged = VersionVector::new();
        forged.add(dot(0xabcdef, u64::MAX));
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text).unwrap();
        let signature = bytes.split_off(bytes.len() - SIGNATURE_LEN);
        let mut forged_bytes = postcard::to_stdvec(&(key_tag(b"k"), &forged)).unwrap();
        forged_bytes.extend_from_slice(&signature);
        let forged_text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_bytes);
        assert!(refused(&forged_text, &key).contains("signature"));
        assert!(refused("AAAA", &key).contains("unsigned"));
        // The signature binds the whole key, not only the short tag the body carries: the
        // same body signed for one key does not verify for another.
        let body = b"the same body";
        assert!(key.verify(b"a", body, &key.sign(b"a", body)));
        assert!(!key.verify(b"b", body, &key.sign(b"a", body)));
    }

    #[test]
    fn contexts_and_dots_round_trip_as_text_and_garbage_is_refused() {
        let mut vv = VersionVector::new();
        vv.add(dot(0xabcdef, 7));
        vv.add(dot(3, 1));
        let text = vv.encode_for(b"k", None);
        assert_eq!(VersionVector::decode_for(b"k", text.as_bytes(), None).unwrap(), vv);
        assert_eq!(VersionVector::decode_for(b"k", b"", None).unwrap(), VersionVector::new());
        assert!(VersionVector::decode_for(b"k", b"not base64!", None).is_err());
        assert!(VersionVector::decode_for(b"k", &vec![b'A'; MAX_CONTEXT_TEXT + 1], None).is_err());
        assert!(VersionVector::decode_for(b"other", text.as_bytes(), None).unwrap_err().contains("another key"));
        for junk in ["A", "AA", "AAAA", "AQ"] {
            let longer = format!("{text}{junk}");
            assert!(VersionVector::decode_for(b"k", longer.as_bytes(), None).is_err(), "{longer} was accepted");
        }
        assert!(VersionVector::decode_for(b"k", b"AAA", None).is_err());
        let d = dot(0xabcdef, 7);
        assert_eq!(d.to_string().parse::<Dot>().unwrap(), d);
        assert!("nope".parse::<Dot>().is_err());
    }

    #[test]
    fn an_object_from_a_peer_is_checked() {
        let mut o = Object::new();
        o.put(&VersionVector::new(), dot(1, 1), 0, value("x"));
        assert!(o.validate().is_ok());
        let bad = Object { context: VersionVector::new(), siblings: o.siblings.clone() };
        assert!(bad.validate().is_err());
    }
}
