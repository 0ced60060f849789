//! The consistency modes, each one folder behind the [`Store`] trait, and [`open`], which
//! starts the one a [`ModeConfig`] names. No mode imports another: what two modes share
//! lives in [`crate::node`], [`crate::peer`] or [`crate::store`].

pub mod dynamo;
pub mod paxos;
pub mod raft;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;

use crate::error::{Error, Result};
use crate::node::{Faults, NodeOptions};
use crate::object::{LocalDir, ObjectStore, Partitionable, S3, S3Options};
use crate::store::Store;

/// Where s3 mode keeps its document.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// An S3-compatible endpoint (AWS when absent); needs `bucket`.
    pub endpoint: Option<String>,
    /// The bucket; absent: the embedded local object store in `dir`.
    pub bucket: Option<String>,
    /// The embedded object store's directory.
    pub dir: PathBuf,
    pub key: String,
    pub region: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Group commit.
    pub batch: bool,
    /// Test only: answer some reads from a stale snapshot.
    pub unsafe_stale_reads: bool,
    /// Values this large or larger are stored as objects of their own (0: never).
    pub value_objects_from: u64,
    /// The most bytes of keys and values (0: no limit).
    pub maxmemory: u64,
    /// Keys the document holds over its snapshot before a new one is written.
    pub snapshot_keys: usize,
}

/// dynamo mode's settings (see [`dynamo::DynamoOptions`]); `None`: the default for the
/// cluster's size.
#[derive(Debug, Clone)]
pub struct DynamoConfig {
    pub partitions: u32,
    pub replicas: Option<usize>,
    pub r: Option<usize>,
    pub w: Option<usize>,
    pub sync_read_repair: bool,
    pub hinted_handoff: bool,
    pub max_hints: u64,
    pub hint_window: Duration,
    pub sibling_read: dynamo::SiblingRead,
    pub swim_period: Duration,
    pub suspect_timeout: Duration,
    /// Test only: a broken reconciliation (`--unsafe-lww`, `--unsafe-server-clocks`).
    pub causality: dynamo::dvv::Causality,
    pub sloppy_quorum: bool,
    pub read_repair: bool,
    pub aae_interval: Duration,
    pub aae_max_keys: usize,
    pub tombstone_grace: Duration,
    pub handoff_grace: Duration,
}

/// What [`open`] needs: the mode and its settings (`valthree serve`'s flags, mapped).
#[derive(Debug, Clone)]
pub struct ModeConfig {
    pub mode: ModeName,
    /// The replicated modes' node (paxos, raft).
    pub node: NodeOptions,
    pub s3: S3Config,
    pub paxos_one_round_trip: bool,
    pub paxos_gc_interval: Duration,
    /// Test only: a paxos accept quorum that breaks quorum intersection.
    pub unsafe_accept_quorum: Option<usize>,
    pub raft_stale_reads: bool,
    pub raft_snapshot_every: u64,
    pub dynamo: DynamoConfig,
}

/// Starts the mode `config` names; `faults` are the node's test switches.
pub async fn open(config: &ModeConfig, faults: Arc<Faults>) -> Result<Arc<dyn Store>> {
    if config.s3.maxmemory > 0 && !matches!(config.mode, ModeName::S3) {
        return Err(Error::Config("--maxmemory is supported in s3 mode only".into()));
    }
    match config.mode {
        ModeName::S3 => {
            let s3 = &config.s3;
            let objects: Arc<dyn ObjectStore> = match &s3.bucket {
                Some(bucket) => Arc::new(
                    S3::connect(S3Options {
                        endpoint: s3.endpoint.clone(),
                        bucket: bucket.clone(),
                        region: s3.region.clone(),
                        access_key: s3.access_key.clone(),
                        secret_key: s3.secret_key.clone(),
                    })
                    .await
                    .map_err(|e| Error::Config(e.to_string()))?,
                ),
                None if s3.endpoint.is_some() => {
                    return Err(Error::Config("--s3-endpoint needs --s3-bucket".into()));
                }
                None => Arc::new(
                    LocalDir::open(&s3.dir)
                        .map_err(|e| Error::Config(format!("cannot use object directory {}: {e}", s3.dir.display())))?,
                ),
            };
            if s3.bucket.is_none() && !LocalDir::is_valid_key(&s3.key) {
                return Err(Error::Config(format!(
                    "--s3-key {:?}: the embedded object store needs a plain file name (letters, digits, '-', '_', '.', not first)",
                    s3.key
                )));
            }
            let objects = Arc::new(Partitionable::new(objects, faults));
            let options = s3::S3ModeOptions {
                object_key: s3.key.clone(),
                batch: s3.batch,
                unsafe_stale_reads: s3.unsafe_stale_reads,
                value_objects_from: s3.value_objects_from,
                maxmemory: s3.maxmemory,
                snapshot_keys: s3.snapshot_keys,
            };
            if s3.unsafe_stale_reads {
                tracing::warn!("--unsafe-stale-reads: some reads will be stale; this server is NOT linearizable");
            }
            Ok(Arc::new(s3::S3Mode::start(objects, options)))
        }
        ModeName::Paxos => {
            config.node.check_exposure().map_err(Error::Config)?;
            if let Some(n) = config.unsafe_accept_quorum {
                tracing::warn!(
                    "--unsafe-accept-quorum {n}: quorums no longer intersect; this server is NOT linearizable"
                );
            }
            let options = paxos::PaxosOptions {
                node: config.node.clone(),
                one_round_trip: config.paxos_one_round_trip,
                unsafe_accept_quorum: config.unsafe_accept_quorum,
                gc_interval: config.paxos_gc_interval,
            };
            Ok(Arc::new(paxos::PaxosMode::start(options, faults).await?))
        }
        ModeName::Raft => {
            config.node.check_exposure().map_err(Error::Config)?;
            if config.raft_stale_reads {
                tracing::warn!("--stale-reads: reads are served locally and may be stale (not linearizable)");
            }
            let options = raft::RaftOptions {
                node: config.node.clone(),
                stale_reads: config.raft_stale_reads,
                snapshot_every: config.raft_snapshot_every,
            };
            Ok(Arc::new(raft::RaftMode::start(options, faults).await?))
        }
        ModeName::Dynamo => {
            config.node.check_exposure().map_err(Error::Config)?;
            let d = &config.dynamo;
            let mut options = dynamo::DynamoOptions::new(config.node.clone());
            options.partitions = d.partitions;
            if let Some(n) = d.replicas {
                options.replicas = n;
                options.r = n.min(2);
                options.w = n.min(2);
            }
            options.r = d.r.unwrap_or(options.r);
            options.w = d.w.unwrap_or(options.w);
            options.sync_read_repair = d.sync_read_repair;
            options.hinted_handoff = d.hinted_handoff;
            options.max_hints = d.max_hints;
            options.hint_window = d.hint_window;
            options.sibling_read = d.sibling_read;
            options.swim_period = d.swim_period;
            options.suspect_timeout = d.suspect_timeout;
            options.causality = d.causality;
            options.sloppy_quorum = d.sloppy_quorum;
            options.read_repair = d.read_repair;
            options.aae_interval = d.aae_interval;
            options.aae_max_keys = d.aae_max_keys;
            options.tombstone_grace = d.tombstone_grace;
            options.handoff_grace = d.handoff_grace;
            Ok(Arc::new(dynamo::DynamoMode::start(options, faults).await?))
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
