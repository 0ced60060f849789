//! The types raft mode puts in its log: requests in client sessions, and the commands they
//! carry (a whole mutation, or a large value in chunks).

// openraft's trait methods return its `StorageError`/`RaftError`, which are large by design.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::{Mutation, MutationReply};

pub type NodeId = u64;

/// A client session of the log: (the node that accepted the command from a client, the
/// random id of that node's start, so a node whose data was wiped never reuses one). See
/// [`super::machine`] for how sessions deduplicate and expire.
pub type SessionId = (NodeId, u64);

/// A client write as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session, and the request's sequence number in it (unique, never reused).
    pub session: SessionId,
    pub seq: u64,
    /// The lowest sequence the session still has in flight: all below are answered.
    pub done_below: u64,
    pub command: Command,
}

/// What one log entry asks of the state machine.
///
/// openraft gives every AppendEntries one heartbeat interval (100 ms) to be sent, written
/// and fsync'd, so an entry must stay small: a value larger than [`CHUNK`] travels as
/// consecutive `Chunk` entries (replicated and committed like any other, each deduplicated on
/// its own) and a final `Assemble` entry that applies the mutation with the value put back
/// together. A value is never visible before its `Assemble` entry is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A whole mutation.
    Mutate(Mutation),
    /// Part `part` of a value, staged under `of`: a sequence of the same session that its node
    /// holds in flight (never sent itself) until the value is assembled or given up.
    Chunk { of: u64, part: u32, data: Bytes },
    /// Applies `mutation` with its value made of the `parts` chunks staged under `of`. It has
    /// a sequence of its own, taken when it is sent: one taken when the value began would be
    /// old after minutes of chunks, and might be below the replies the session has dropped.
    Assemble { of: u64, parts: u32, mutation: Mutation },
}

/// The largest value carried in one log entry; larger ones are split.
pub const CHUNK: usize = 1 << 20;

impl Request {
    /// About how many bytes the request adds to a log entry (for cutting batches).
    pub(super) fn weight(&self) -> usize {
        match &self.command {
            Command::Chunk { data, .. } => data.len() + 32,
            Command::Mutate(mutation) | Command::Assemble { mutation, .. } => 32 + mutation_weight(mutation),
        }
    }
}

/// About how many bytes `mutation` adds to a log entry.
fn mutation_weight(mutation: &Mutation) -> usize {
    match mutation {
        Mutation::Set { key, value, options } => {
            let compared = match &options.condition {
                Some(crate::store::SetCondition::IfValue(test)) => compared_len(test),
                _ => 0,
            };
            key.len() + value.len() + compared
        }
        Mutation::Del { keys } => keys.iter().map(|k| k.len() + 2).sum(),
        Mutation::Update { key, op: crate::store::UpdateOp::Append(value) } => key.len() + value.len(),
        Mutation::Update { key, .. } => key.len() + 8,
        Mutation::FlushAll => 0,
        Mutation::Remove { key, condition, .. } => key.len() + condition.as_ref().map_or(0, compared_len),
        Mutation::MultiSet { pairs, .. } => pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum(),
    }
}

/// The most bytes MSET/MSETNX's pairs, or the value IFEQ/IFNE/DELIFEQ compares, may carry:
/// they travel in one entry (only SET's and APPEND's value is sent as chunks), and one
/// append must still replicate within a heartbeat interval. More is refused before anything
/// is sent ([`too_large`]).
pub const MAX_UNSPLIT: usize = 4 * CHUNK;

/// The bytes a value condition carries (IFEQ's value; a digest is 8).
fn compared_len(test: &crate::store::ValueCondition) -> usize {
    match test {
        crate::store::ValueCondition::Equal(v) | crate::store::ValueCondition::NotEqual(v) => v.len(),
        _ => 8,
    }
}

/// Why `mutation` is refused before it is sent, if it is: MSET/MSETNX pairs or a compared
/// value over [`MAX_UNSPLIT`]. Nothing else is capped — a long key, or DEL's many keys,
/// always went in one entry, and refusing them now would break writes that worked.
pub(super) fn too_large(mutation: &Mutation) -> Option<String> {
    let compared = match mutation {
        Mutation::MultiSet { .. } => {
            let carried = mutation_weight(mutation);
            return (carried > MAX_UNSPLIT).then(|| {
                format!(
                    "this MSET carries {carried} bytes of keys and values in one raft log entry, more than \
                     {MAX_UNSPLIT}: send smaller MSETs"
                )
            });
        }
        Mutation::Set { options, .. } => match &options.condition {
            Some(crate::store::SetCondition::IfValue(test)) => test,
            _ => return None,
        },
        Mutation::Remove { condition: Some(test), .. } => test,
        _ => return None,
    };
    let len = compared_len(compared);
    (len > MAX_UNSPLIT).then(|| {
        format!(
            "the value this write compares (IFEQ/IFNE/DELIFEQ) has {len} bytes, more than the {MAX_UNSPLIT} one \
             raft log entry may carry besides the value written: compare with IFDEQ/IFDNE (a digest) instead"
        )
    })
}

/// What one log entry carries: the client writes the leader batched into it, applied in
/// order. One entry costs one append (one fsync) and one replication round however many
/// writes it holds, as etcd batches proposals into one WAL write; its total stays near
/// [`CHUNK`], so an entry still fits its AppendEntries' time.
pub type Proposal = Vec<Request>;

/// Splits a mutation whose value is larger than [`CHUNK`] into the chunks and the mutation
/// without its value; `None` when it fits in one entry.
pub(super) fn split_value(mutation: &Mutation) -> Option<(Vec<Bytes>, Mutation)> {
    let (value, hollow) = match mutation {
        Mutation::Set { key, value, options } if value.len() > CHUNK => {
            (value, Mutation::Set { key: key.clone(), value: Bytes::new(), options: options.clone() })
        }
        Mutation::Update { key, op: crate::store::UpdateOp::Append(value) } if value.len() > CHUNK => {
            (value, Mutation::Update { key: key.clone(), op: crate::store::UpdateOp::Append(Bytes::new()) })
        }
        _ => return None,
    };
    let chunks = (0..value.len()).step_by(CHUNK).map(|at| value.slice(at..(at + CHUNK).min(value.len()))).collect();
    Some((chunks, hollow))
}

/// Puts the assembled value back into a mutation [`split_value`] emptied.
pub(super) fn fill_value(mutation: &Mutation, value: Bytes) -> Mutation {
    match mutation {
        Mutation::Set { key, options, .. } => Mutation::Set { key: key.clone(), value, options: options.clone() },
        Mutation::Update { key, .. } => {
            Mutation::Update { key: key.clone(), op: crate::store::UpdateOp::Append(value) }
        }
        other => other.clone(),
    }
}

/// The state machine's answer to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub result: std::result::Result<MutationReply, String>,
    /// The request's session had expired: it was not applied, and the node must start a new
    /// session and send it again.
    pub session_expired: bool,
    /// The request was not applied now: an earlier attempt may have been, but its reply was
    /// dropped to bound the session's memory (see [`super::machine`]), so its outcome is unknown.
    pub reply_forgotten: bool,
}

impl Response {
    /// An applied entry's reply.
    pub fn of(result: std::result::Result<MutationReply, String>) -> Self {
        Self { result, session_expired: false, reply_forgotten: false }
    }
}

/// A member as the membership records it: where it is reached, and the incarnation of the
/// data directory it joined with — a random number drawn when that directory was first used.
///
/// Raft's safety rests on a voter never forgetting what it voted for and acknowledged. A node
/// whose data directory was lost and that restarts in place has forgotten both: with an empty
/// log it would vote for any candidate, one missing committed entries included. Every raft
/// message is therefore addressed to the incarnation the sender's membership records, and a
/// node refuses messages addressed to another one (see `service`): a node with new data takes
/// no part until it is removed and added again (`cluster remove-node`, `cluster add-node`).
/// Incarnation 0 means unknown (no check).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMember {
    pub addr: String,
    pub incarnation: u64,
}

impl std::fmt::Display for RaftMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (incarnation {:x})", self.addr, self.incarnation)
    }
}

openraft::declare_raft_types!(
    /// valthree's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Response>,
        Node = RaftMember,
        SnapshotData = super::snapshot::SnapshotFile,
);

/// Entries between snapshots.
pub const SNAPSHOT_EVERY: u64 = 2000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SetCondition, SetOptions, ValueCondition};

    #[test]
    fn only_mset_pairs_and_a_compared_value_are_capped() {
        let big = || Bytes::from(vec![b'x'; MAX_UNSPLIT + 1]);
        let small = || Bytes::from_static(b"v");
        let if_equal = |v| SetOptions { condition: Some(SetCondition::IfValue(ValueCondition::Equal(v))), get: false };
        // Writes that went in one entry before the compare-and-set commands still do.
        for fine in [
            Mutation::Set { key: big(), value: small(), options: SetOptions::default() },
            Mutation::Set { key: small(), value: big(), options: SetOptions::default() },
            Mutation::Del { keys: vec![big(), big()] },
            Mutation::Update { key: big(), op: crate::store::UpdateOp::IncrBy(1) },
            Mutation::Remove { key: big(), condition: None, get: true },
            // A digest is 8 bytes whatever the key.
            Mutation::Remove { key: big(), condition: Some(ValueCondition::DigestEqual(1)), get: false },
            // The value compared may be as large as one entry, the value written larger.
            Mutation::Set { key: small(), value: big(), options: if_equal(Bytes::from(vec![b'x'; MAX_UNSPLIT])) },
            Mutation::MultiSet {
                pairs: vec![(small(), Bytes::from(vec![b'x'; MAX_UNSPLIT - 5]))],
                if_none_exist: false,
            },
        ] {
            assert_eq!(too_large(&fine), None, "{:?}", fine.keys());
        }
        let mset = Mutation::MultiSet { pairs: vec![(small(), big())], if_none_exist: true };
        assert!(too_large(&mset).is_some_and(|m| m.contains("smaller MSETs")));
        let ifeq = Mutation::Set { key: small(), value: small(), options: if_equal(big()) };
        assert!(too_large(&ifeq).is_some_and(|m| m.contains("IFDEQ/IFDNE")));
        let delifeq = Mutation::Remove { key: small(), condition: Some(ValueCondition::NotEqual(big())), get: false };
        assert!(too_large(&delifeq).is_some_and(|m| m.contains("IFDEQ/IFDNE")));
    }
}
