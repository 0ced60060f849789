//! What every replicated node shares, whatever its mode: its id and members, the options it
//! starts with, its fault switches, the one file layer every durable byte goes through, and
//! the lifecycle of its background tasks. The peer plane they talk over is [`crate::peer`].

mod args;
mod batcher;
pub mod clock;
pub mod codec;
mod faults;
mod fs;
mod lock;
mod log_throttle;
mod member;
pub mod metered;
mod options;
mod tasks;

pub use args::{NodeArgs, Switch, parse_size};
pub use batcher::{
    BatchJob, BatchReply, Pipeline, PipelineLimits, PipelineQueue, exit_on_writer_panic, pipeline, spawn_batcher,
};
pub use clock::now_ms;
pub use faults::{Cut, Direction, Faults, Link, OBJECT_STORE, Packets};
pub use fs::{
    DiskError, DiskOp, FAILURE_EXIT_DELAY, FaultFs, File, FileIdentity, FileSystem, STORAGE_FAILED_EXIT, corrupt,
    crc32c, crc32c_digest, crc32c_of,
};
pub use lock::{lock, read_lock, write_lock};
pub use log_throttle::{LogThrottle, REPEAT_TARGET, REPEAT_WINDOW, RepeatLimit};
pub use member::{Member, NodeId, list, parse_peers};
pub use options::NodeOptions;
pub use tasks::{Admitted, PeerCommands, Tasks, backoff};

/// The name a node goes by in faults, logs and `valthree cluster`: `n1`, `n2`, ...
pub fn peer_name(id: impl std::fmt::Display) -> String {
    format!("n{id}")
}
