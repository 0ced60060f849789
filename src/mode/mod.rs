//! The consistency modes, each one folder behind the [`Store`](crate::store::Store) trait.

pub mod paxos;
pub mod raft;
pub mod s3;

use clap::ValueEnum;

/// The `--mode` values. Every name is accepted by the parser so that a mode not built into
/// this binary is refused with a clear message rather than an "invalid value" puzzle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// The whole database is one JSON object in S3-compatible storage, replaced by compare-and-swap.
    S3,
    /// CASPaxos: one replicated register per key.
    Paxos,
    /// A Raft log replicated to a majority.
    Raft,
    /// A Dynamo-style ring with quorums and version vectors.
    Dynamo,
}

impl ModeName {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::S3 => "s3",
            ModeName::Paxos => "paxos",
            ModeName::Raft => "raft",
            ModeName::Dynamo => "dynamo",
        }
    }
}
