//! s3 mode's flags of `valthree serve` (flattened), converted once into [`S3ModeOptions`]
//! and the object store they name.

use std::path::PathBuf;

use super::{DEFAULT_OBJECT_KEY, S3ModeOptions};
use crate::node::{Switch, parse_size};
use crate::object::S3Options;

/// Where an S3 bucket is and how to sign in: s3 mode's flags that `valthree s3-check` shares.
#[derive(Debug, Clone, clap::Args)]
pub struct S3ConnectArgs {
    /// s3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted.
    #[arg(long, help_heading = "s3 mode")]
    pub s3_endpoint: Option<String>,
    /// s3 mode: bucket holding the database (created if missing); without it the embedded
    /// local object store in --data-dir is used.
    #[arg(long, help_heading = "s3 mode")]
    pub s3_bucket: Option<String>,
    /// s3 mode: region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", help_heading = "s3 mode")]
    pub s3_region: String,
    /// s3 mode: access key (default: the usual AWS credential chain).
    #[arg(long, help_heading = "s3 mode", requires = "s3_secret_key")]
    pub s3_access_key: Option<String>,
    /// s3 mode: secret key.
    #[arg(long, help_heading = "s3 mode", requires = "s3_access_key", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
}

impl S3ConnectArgs {
    /// The connection to `bucket` these flags describe.
    pub fn options(&self, bucket: &str) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            bucket: bucket.to_string(),
            region: self.s3_region.clone(),
            access_key: self.s3_access_key.clone(),
            secret_key: self.s3_secret_key.clone(),
        }
    }
}

/// s3 mode's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    #[command(flatten)]
    pub connect: S3ConnectArgs,
    /// s3 mode: directory of the embedded object store, shared by every node of a local
    /// cluster (default: --data-dir).
    #[arg(long, help_heading = "s3 mode", conflicts_with = "s3_bucket")]
    pub s3_dir: Option<PathBuf>,
    /// s3 mode: object key of the database document.
    #[arg(long, default_value = DEFAULT_OBJECT_KEY, help_heading = "s3 mode")]
    pub s3_key: String,
    /// s3 mode: serve on a bucket even if its server fails the start-up check of conditional
    /// PUTs (`valthree s3-check`), trusting it blindly: on a server whose conditional PUT is
    /// not atomic, concurrent writes can be lost and s3 mode is NOT linearizable.
    #[arg(long, help_heading = "s3 mode")]
    pub unsafe_trust_object_store: bool,
    /// s3 mode: group commit (one conditional PUT for all writes queued at once).
    #[arg(long, value_enum, default_value = "on", help_heading = "s3 mode")]
    pub s3_batch: Switch,
    /// s3 mode: values this large or larger are stored once as objects of their own, and the
    /// document holds a reference (0: every value stays in the document).
    #[arg(long, default_value = "64kb", value_parser = parse_size, help_heading = "s3 mode")]
    pub s3_value_objects_from: u64,
    /// s3 mode: the most bytes the keys and values may hold together; a write that would grow
    /// them past it answers -OOM, as Redis does past its maxmemory (0: no limit).
    #[arg(long, default_value = "0", value_parser = parse_size, help_heading = "s3 mode")]
    pub maxmemory: u64,
    /// s3 mode: the most keys the document holds over its snapshot before the whole keyspace
    /// is written as a new one (tests set it low to exercise snapshots on small databases).
    #[arg(long, hide = true, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub s3_snapshot_keys: u64,
    /// Test only: answer some reads from a stale snapshot, so the checker has a bug to catch.
    #[arg(long, hide = true)]
    pub unsafe_stale_reads: bool,
    /// Test only: SET … IFEQ writes without comparing, so the checker has a broken
    /// compare-and-set to catch.
    #[arg(long, hide = true)]
    pub unsafe_blind_cas: bool,
}

impl S3Args {
    /// The mode's options.
    pub fn options(&self) -> S3ModeOptions {
        S3ModeOptions {
            object_key: self.s3_key.clone(),
            batch: self.s3_batch.is_on(),
            unsafe_stale_reads: self.unsafe_stale_reads,
            unsafe_blind_cas: self.unsafe_blind_cas,
            value_objects_from: self.s3_value_objects_from,
            maxmemory: self.maxmemory,
            snapshot_keys: usize::try_from(self.s3_snapshot_keys).unwrap_or(usize::MAX),
        }
    }
}
