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
    /// A Dynamo-style ring with quorums and version vectors (not built yet: hidden from help).
    #[value(hide = true)]
    Dynamo,
}

impl ModeName {
    /// True when this binary serves the mode.
    pub fn is_available(self) -> bool {
        !matches!(self, ModeName::Dynamo)
    }

    /// The names of the modes this binary serves.
    pub fn available() -> Vec<&'static str> {
        [ModeName::S3, ModeName::Paxos, ModeName::Raft, ModeName::Dynamo]
            .into_iter()
            .filter(|m| m.is_available())
            .map(ModeName::as_str)
            .collect()
    }

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
