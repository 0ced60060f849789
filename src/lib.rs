//! valthree: a Redis-protocol key-value store kept consistent four ways.
//!
//! A request flows one way: socket → [`resp`] (decode, parse the command) → [`store::Store`]
//! → a mode in [`mode`] (which talks to its peers or to an [`object`] store) → back through
//! `resp` as a reply. Modes never see RESP frames; the RESP layer never sees a peer.
//!
//! * [`cli`] — one file per subcommand; `main.rs` only parses and dispatches.
//! * [`error`] — the one error enum, and whether a failure is definite or indeterminate.
//! * [`resp`] — the Redis front: codec, connection loop, one file per command.
//! * [`rdb`] — Redis' RDB file format: the writer of backups and the reader of restores.
//! * [`store`] — the `Store` trait, the keyspace state machine, the conformance suite.
//! * [`object`] — compare-and-swap object storage: S3 and the embedded local directory.
//! * [`mode`] — the consistency modes, one folder each (s3, paxos, raft, dynamo).
//! * [`node`] — what every replicated node shares: ids and members, its flags and options,
//!   group commit, fault switches, the lifecycle of its background tasks.
//! * [`peer`] — the node-to-node plane: gRPC (tonic), the cluster secret, peer TLS, admission
//!   of connections, partitions applied in one layer, typed call outcomes.
//! * [`metrics`] — the node's counters (one source for INFO and Prometheus) and the HTTP
//!   admin endpoint (`--metrics-addr`: `/metrics`, `/livez`, `/readyz`).
//! * [`backup`] — `valthree backup` and `restore`: the keyspace to an RDB file and back.
//! * [`cluster`] — a local cluster of `valthree serve` processes, and the nemesis that hurts it.
//! * [`history`] — the JSONL history of a test run.
//! * [`workload`] — many clients against any Redis-protocol endpoint, recording a history.
//! * [`check`] — the linearizability and dynamo checkers (their own models: they import
//!   nothing of the server) and the HTML report.
//! * [`demo`] — narrated, self-checking demonstrations built on `cluster` and `workload`.
//!
//! The contributor's map is `docs/architecture.md`.

pub mod backup;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod error;
pub mod history;
pub mod metrics;
pub mod mode;
pub mod node;
pub mod object;
pub mod peer;
pub mod rdb;
pub mod resp;
pub mod store;
pub mod workload;
