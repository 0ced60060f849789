//! The consistency modes, each one folder behind the [`Store`] trait, and [`open`], which
//! starts the one a [`ModeConfig`] names. No mode imports another: what two modes share
//! lives in [`crate::node`], [`crate::peer`] or [`crate::store`].

pub mod dynamo;
pub mod paxos;
pub mod raft;
pub mod s3;

use std::sync::Arc;

use clap::ValueEnum;

use crate::error::{Error, Result};
use crate::node::{Faults, NodeOptions};
use crate::object::{CheckOptions, LocalDir, ObjectStore, Partitionable, S3, check_object_store};
use crate::store::Store;

/// What [`open`] needs: the mode, the node, and each mode's flags as `valthree serve` took
/// them (each mode converts its own, once).
#[derive(Debug, Clone)]
pub struct ModeConfig {
    pub mode: ModeName,
    /// The replicated modes' node (paxos, raft, dynamo); s3 mode uses its data directory.
    pub node: NodeOptions,
    pub s3: s3::S3Args,
    pub paxos: paxos::PaxosArgs,
    pub raft: raft::RaftArgs,
    pub dynamo: dynamo::DynamoArgs,
}

/// Races the bucket's conditional PUTs before s3 mode trusts them (see
/// [`crate::object::check_object_store`]); a store that fails is refused unless the operator
/// passed `--unsafe-trust-object-store`. The embedded store is not checked: its compare-and-swap
/// is a file lock and a rename, tested with the code.
async fn check_object_store_at_start(store: &S3, trust: bool) -> Result<()> {
    let report = check_object_store(store, CheckOptions::default()).await;
    if report.passed() {
        tracing::info!("{}: passed the check of conditional PUTs", store.describe());
        return Ok(());
    }
    let lines = report.lines().join("\n  ");
    if !report.failed() && !trust {
        return Err(Error::Config(format!(
            "{} could not be checked (the check of conditional PUTs could not finish); refusing to start:\n  {lines}",
            store.describe()
        )));
    }
    if trust {
        tracing::warn!(
            "{} FAILED the check of conditional PUTs; serving anyway (--unsafe-trust-object-store): this server \
             is NOT linearizable if the store lets two writers win\n  {lines}",
            store.describe()
        );
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} failed the check of conditional PUTs, so s3 mode on it could lose writes; refusing to start \
         (run `valthree s3-check` to see it again; --unsafe-trust-object-store serves anyway, NOT linearizable):\n  {lines}",
        store.describe()
    )))
}

/// Starts the mode `config` names; `faults` are the node's test switches.
pub async fn open(config: &ModeConfig, faults: Arc<Faults>) -> Result<Arc<dyn Store>> {
    if config.s3.maxmemory > 0 && !matches!(config.mode, ModeName::S3) {
        return Err(Error::Config("--maxmemory is supported in s3 mode only".into()));
    }
    match config.mode {
        ModeName::S3 => {
            let s3 = &config.s3;
            let dir = s3.s3_dir.clone().unwrap_or_else(|| config.node.data_dir.clone());
            let objects: Arc<dyn ObjectStore> = match &s3.connect.s3_bucket {
                Some(bucket) => {
                    let store =
                        S3::connect(s3.connect.options(bucket)).await.map_err(|e| Error::Config(e.to_string()))?;
                    check_object_store_at_start(&store, s3.unsafe_trust_object_store).await?;
                    Arc::new(store)
                }
                None if s3.connect.s3_endpoint.is_some() => {
                    return Err(Error::Config("--s3-endpoint needs --s3-bucket".into()));
                }
                None => Arc::new(
                    LocalDir::open_with(&dir, config.node.fs.clone())
                        .map_err(|e| Error::Config(format!("cannot use object directory {}: {e}", dir.display())))?,
                ),
            };
            if s3.connect.s3_bucket.is_none() && !LocalDir::is_valid_key(&s3.s3_key) {
                return Err(Error::Config(format!(
                    "--s3-key {:?}: the embedded object store needs a plain file name (letters, digits, '-', '_', '.', not first)",
                    s3.s3_key
                )));
            }
            let objects = Arc::new(Partitionable::new(objects, faults));
            if s3.unsafe_stale_reads {
                tracing::warn!("--unsafe-stale-reads: some reads will be stale; this server is NOT linearizable");
            }
            if s3.unsafe_blind_cas {
                tracing::warn!(
                    "--unsafe-blind-cas: SET IFEQ writes without comparing; this server is NOT linearizable"
                );
            }
            Ok(Arc::new(s3::S3Mode::open(objects, s3.options()).await?))
        }
        ModeName::Paxos => {
            config.node.check_exposure().map_err(Error::Config)?;
            if let Some(n) = config.paxos.unsafe_accept_quorum {
                tracing::warn!(
                    "--unsafe-accept-quorum {n}: quorums no longer intersect; this server is NOT linearizable"
                );
            }
            Ok(Arc::new(paxos::PaxosMode::start(config.paxos.options(config.node.clone()), faults).await?))
        }
        ModeName::Raft => {
            config.node.check_exposure().map_err(Error::Config)?;
            if config.raft.stale_reads {
                tracing::warn!("--stale-reads: reads are served locally and may be stale (not linearizable)");
            }
            Ok(Arc::new(raft::RaftMode::start(config.raft.options(config.node.clone()), faults).await?))
        }
        ModeName::Dynamo => {
            config.node.check_exposure().map_err(Error::Config)?;
            Ok(Arc::new(dynamo::DynamoMode::start(config.dynamo.options(config.node.clone()), faults).await?))
        }
    }
}

/// The `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// The whole database is one JSON object in S3-compatible storage, replaced by compare-and-swap.
    S3,
    /// CASPaxos: one replicated register per key.
    Paxos,
    /// A Raft log replicated to a majority.
    Raft,
    /// A Dynamo-style ring: N replicas, R/W quorums, dotted version vectors, siblings.
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
