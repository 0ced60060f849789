//! `valthree serve`: the server, in one of the consistency modes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::error::{Error, Result};
use crate::mode::dynamo::dvv::Causality;
use crate::mode::s3::DEFAULT_OBJECT_KEY;
use crate::mode::{DynamoConfig, ModeConfig, ModeName, S3Config};
use crate::node::{Faults, NodeOptions};
use crate::peer::ClusterSecret;
use crate::resp::ServerConfig;

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// dynamo mode's `--read-repair`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadRepair {
    Async,
    Sync,
    /// No read repair: anti-entropy alone converges replicas.
    Off,
}

/// Arguments of `valthree serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// How the cluster keeps itself consistent.
    #[arg(long, value_enum, default_value = "s3")]
    pub mode: ModeName,
    /// Address to serve the Redis protocol on.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Directory for this node's data (in s3 mode without --s3-bucket: the embedded object store).
    #[arg(long, default_value = "./valthree-data")]
    pub data_dir: PathBuf,
    /// Log as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "VALTHREE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Read the password from this file instead (one line).
    #[arg(long, conflicts_with = "requirepass")]
    pub requirepass_file: Option<PathBuf>,
    /// Refuse connections beyond this many.
    #[arg(long, default_value_t = 10_000)]
    pub maxclients: usize,
    /// Enables the VALTHREE.FAULT admin command (partitions for testing) for holders of this token.
    #[arg(long, env = "VALTHREE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Read the admin token from this file instead (one line).
    #[arg(long, conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// Longest bulk string a client may send (bytes; k, kb, m, mb, g, gb suffixes accepted).
    #[arg(long, default_value = "512mb", value_parser = parse_size)]
    pub proto_max_bulk_len: u64,
    /// The bytes all clients' query buffers may hold together; a client whose next read would
    /// pass it gets an error and is closed (0: no limit).
    #[arg(long, default_value = "1gb", value_parser = parse_size)]
    pub maxmemory_clients: u64,
    /// Also serve TLS clients on this address (e.g. 127.0.0.1:6380); needs --tls-cert-file and
    /// --tls-key-file.
    #[arg(long, help_heading = "TLS", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_port: Option<String>,
    /// The server's certificate chain (PEM).
    #[arg(long, help_heading = "TLS")]
    pub tls_cert_file: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, help_heading = "TLS")]
    pub tls_key_file: Option<PathBuf>,
    /// Certificates of the CAs that sign client certificates (PEM).
    #[arg(long, help_heading = "TLS")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether clients must show a certificate signed by --tls-ca-cert-file (default: yes
    /// when a CA file is given, as in Redis; no otherwise).
    #[arg(long, help_heading = "TLS", value_enum)]
    pub tls_auth_clients: Option<crate::resp::ClientAuth>,
    /// Close a client idle for this many seconds (0: never), as Redis' `timeout`.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,

    /// s3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted.
    #[arg(long, help_heading = "s3 mode")]
    pub s3_endpoint: Option<String>,
    /// s3 mode: bucket holding the database (created if missing); without it the embedded
    /// local object store in --data-dir is used.
    #[arg(long, help_heading = "s3 mode")]
    pub s3_bucket: Option<String>,
    /// s3 mode: directory of the embedded object store, shared by every node of a local
    /// cluster (default: --data-dir).
    #[arg(long, help_heading = "s3 mode", conflicts_with = "s3_bucket")]
    pub s3_dir: Option<PathBuf>,
    /// s3 mode: object key of the database document.
    #[arg(long, default_value = DEFAULT_OBJECT_KEY, help_heading = "s3 mode")]
    pub s3_key: String,
    /// s3 mode: region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", help_heading = "s3 mode")]
    pub s3_region: String,
    /// s3 mode: access key (default: the usual AWS credential chain).
    #[arg(long, help_heading = "s3 mode", requires = "s3_secret_key")]
    pub s3_access_key: Option<String>,
    /// s3 mode: secret key.
    #[arg(long, help_heading = "s3 mode", requires = "s3_access_key", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
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
    /// paxos, raft and dynamo modes: this node's id (1, 2, ...).
    #[arg(long, default_value_t = 1, help_heading = "paxos, raft and dynamo modes")]
    pub node_id: u32,
    /// paxos, raft and dynamo modes: where peers reach this node (node-to-node gRPC).
    #[arg(long, default_value = "127.0.0.1:7379", help_heading = "paxos, raft and dynamo modes")]
    pub peer_addr: String,
    /// paxos, raft and dynamo modes: where the peer server listens, when not at --peer-addr (which is
    /// then only what peers are told): e.g. `0.0.0.0:7379` in a container whose name is its
    /// --peer-addr.
    #[arg(long, help_heading = "paxos, raft and dynamo modes")]
    pub peer_listen: Option<String>,
    /// paxos, raft and dynamo modes: the initial members, `1=host:port,2=host:port,...` (this node included);
    /// used only on first start: later the configuration stored in --data-dir wins. Omitted:
    /// a one-node cluster.
    #[arg(long, help_heading = "paxos, raft and dynamo modes", value_parser = crate::node::parse_peers)]
    pub peers: Option<Members>,
    /// paxos, raft and dynamo modes: a file holding the cluster secret every peer call must show (or
    /// set VALTHREE_CLUSTER_SECRET; never on the command line). Required when --peer-addr is
    /// reachable from other hosts.
    #[arg(long, help_heading = "paxos, raft and dynamo modes")]
    pub cluster_secret_file: Option<PathBuf>,
    /// paxos, raft and dynamo modes: mutual TLS on the peer plane: this node's certificate (PEM; it
    /// must name the host or IP of --peer-addr) ...
    #[arg(long, help_heading = "paxos, raft and dynamo modes")]
    pub peer_tls_cert: Option<PathBuf>,
    /// ... its private key ...
    #[arg(long, help_heading = "paxos, raft and dynamo modes")]
    pub peer_tls_key: Option<PathBuf>,
    /// ... and the CA that signs every node's certificate.
    #[arg(long, help_heading = "paxos, raft and dynamo modes")]
    pub peer_tls_ca: Option<PathBuf>,
    /// paxos, raft and dynamo modes: start with no configuration and wait to be added by a member
    /// (`valthree cluster add-node` or `VALTHREE.MEMBERS ADD`).
    #[arg(long, help_heading = "paxos, raft and dynamo modes", conflicts_with = "peers")]
    pub join: bool,
    /// paxos mode: the one-round-trip optimisation (an accept also promises the next ballot).
    #[arg(long, value_enum, default_value = "on", help_heading = "paxos mode")]
    pub paxos_one_rtt: Switch,
    /// paxos mode: how often tombstones of deleted keys are garbage-collected (0s: never).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, help_heading = "paxos mode")]
    pub paxos_gc_interval: std::time::Duration,
    /// raft mode: answer reads from this node's state machine without asking the leader —
    /// faster, but a read may miss recent writes (NOT linearizable).
    #[arg(long, help_heading = "raft mode")]
    pub stale_reads: bool,
    /// raft mode: log entries between snapshots (the log is then purged but for a quarter of that).
    #[arg(long, default_value_t = crate::mode::raft::SNAPSHOT_EVERY, help_heading = "raft mode")]
    pub raft_snapshot_every: u64,
    /// dynamo mode: partitions of the ring (a power of two).
    #[arg(long, default_value_t = crate::mode::dynamo::ring::DEFAULT_PARTITIONS, help_heading = "dynamo mode")]
    pub vnodes: u32,
    /// dynamo mode: copies of every key, N (default: 3, or the number of nodes if fewer).
    #[arg(long, help_heading = "dynamo mode")]
    pub replicas: Option<usize>,
    /// dynamo mode: replicas a read waits for, R (default: 2, or N if smaller).
    #[arg(long = "r", help_heading = "dynamo mode")]
    pub read_quorum: Option<usize>,
    /// dynamo mode: replicas a write waits for, W (default: 2, or N if smaller).
    #[arg(long = "w", help_heading = "dynamo mode")]
    pub write_quorum: Option<usize>,
    /// dynamo mode: read repair in the background (async), before the read answers (sync), or
    /// none (off: anti-entropy alone converges replicas).
    #[arg(long, value_enum, default_value = "async", help_heading = "dynamo mode")]
    pub read_repair: ReadRepair,
    /// dynamo mode: hinted handoff (a write an owner missed is replayed to it when it is back).
    #[arg(long, value_enum, default_value = "on", help_heading = "dynamo mode")]
    pub hinted_handoff: Switch,
    /// dynamo mode: hints kept at most; past it new ones are dropped (and counted in INFO).
    #[arg(long, default_value_t = 1_000_000, help_heading = "dynamo mode")]
    pub max_hints: u64,
    /// dynamo mode: hints older than this are dropped unreplayed.
    #[arg(long, default_value = "3h", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub hint_window: std::time::Duration,
    /// dynamo mode: what GET answers for a key with several siblings: the latest one (pick) or -CONFLICT.
    #[arg(long, value_enum, default_value = "pick", help_heading = "dynamo mode")]
    pub sibling_read: crate::mode::dynamo::SiblingRead,
    /// dynamo mode: how often the failure detector (SWIM) probes a member.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub swim_period: std::time::Duration,
    /// dynamo mode: let live nodes past a key's preference list stand in for its down owners
    /// and count toward W (they hand the write over when the owner is back). Keeps writes
    /// available, but R + W > N no longer promises read-your-writes.
    #[arg(long, help_heading = "dynamo mode")]
    pub sloppy_quorum: bool,
    /// dynamo mode: how often anti-entropy compares every partition with each co-owner's (0: never).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub aae_interval: std::time::Duration,
    /// dynamo mode: keys one anti-entropy exchange repairs at most (the next starts at once if more differ).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..), help_heading = "dynamo mode")]
    pub aae_max_keys: u64,
    /// dynamo mode: how old a tombstone every owner holds must be before it is deleted for good.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub tombstone_grace: std::time::Duration,
    /// dynamo mode: how long a node keeps a partition it no longer holds after a membership change
    /// before it hands it over once more and deletes its copy.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub handoff_grace: std::time::Duration,
    /// dynamo mode: how long a member that failed a probe stays SUSPECT before it is DEAD.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, help_heading = "dynamo mode")]
    pub suspect_timeout: std::time::Duration,
    /// Test only: accept a paxos value after this many acknowledgements (breaks quorum
    /// intersection, so the checker has a bug to catch).
    #[arg(long, hide = true)]
    pub unsafe_accept_quorum: Option<usize>,
    /// Test only: answer some reads from a stale snapshot, so the checker has a bug to catch.
    #[arg(long, hide = true)]
    pub unsafe_stale_reads: bool,
    /// Test only: dynamo mode keeps one value per key, the latest by timestamp (a concurrent
    /// write is silently lost), so the checker has a bug to catch.
    #[arg(long, hide = true, conflicts_with = "unsafe_server_clocks")]
    pub unsafe_lww: bool,
    /// Test only: dynamo mode with per-server plain vector clocks instead of dotted ones.
    #[arg(long, hide = true)]
    pub unsafe_server_clocks: bool,
}

/// The `--peers` list.
pub type Members = Vec<crate::node::Member>;

/// Parses `512mb`, `64k`, `1048576`.
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {text:?}"))?;
    // As in redis.conf: 1k = 1000 bytes, 1kb = 1024 bytes.
    let scale = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(format!("unknown size unit in {text:?} (use k, kb, m, mb, g or gb)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("size too large: {text:?}"))
}

fn init_logging(json: bool, verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("valthree={level},warn")));
    // Colour only on a terminal: a log file must stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json { builder.json().init() } else { builder.init() }
}

/// `valthree serve`'s flags as the mode configuration.
fn mode_config(args: &ServeArgs) -> Result<ModeConfig> {
    let from_file = args.cluster_secret_file.as_deref().map(read_secret_file).transpose()?;
    let secret = ClusterSecret::configured(from_file.as_deref()).map_err(Error::Config)?;
    Ok(ModeConfig {
        mode: args.mode,
        node: NodeOptions {
            node_id: args.node_id,
            peer_addr: args.peer_addr.clone(),
            peer_listen: args.peer_listen.clone(),
            peers: args.peers.clone().unwrap_or_default(),
            join: args.join,
            data_dir: args.data_dir.clone(),
            secret,
            peer_tls: crate::peer::PeerTls::from_flags(
                args.peer_tls_cert.as_ref(),
                args.peer_tls_key.as_ref(),
                args.peer_tls_ca.as_ref(),
            )
            .map_err(Error::Config)?,
            max_value: args.proto_max_bulk_len,
        },
        s3: S3Config {
            endpoint: args.s3_endpoint.clone(),
            bucket: args.s3_bucket.clone(),
            dir: args.s3_dir.clone().unwrap_or_else(|| args.data_dir.clone()),
            key: args.s3_key.clone(),
            region: args.s3_region.clone(),
            access_key: args.s3_access_key.clone(),
            secret_key: args.s3_secret_key.clone(),
            batch: args.s3_batch == Switch::On,
            unsafe_stale_reads: args.unsafe_stale_reads,
            value_objects_from: args.s3_value_objects_from,
            maxmemory: args.maxmemory,
            snapshot_keys: usize::try_from(args.s3_snapshot_keys).unwrap_or(usize::MAX),
        },
        paxos_one_round_trip: args.paxos_one_rtt == Switch::On,
        paxos_gc_interval: args.paxos_gc_interval,
        unsafe_accept_quorum: args.unsafe_accept_quorum,
        raft_stale_reads: args.stale_reads,
        raft_snapshot_every: args.raft_snapshot_every,
        dynamo: DynamoConfig {
            partitions: args.vnodes,
            replicas: args.replicas,
            r: args.read_quorum,
            w: args.write_quorum,
            sync_read_repair: args.read_repair == ReadRepair::Sync,
            hinted_handoff: args.hinted_handoff == Switch::On,
            max_hints: args.max_hints,
            hint_window: args.hint_window,
            sibling_read: args.sibling_read,
            swim_period: args.swim_period,
            suspect_timeout: args.suspect_timeout,
            sloppy_quorum: args.sloppy_quorum,
            read_repair: args.read_repair != ReadRepair::Off,
            aae_interval: args.aae_interval,
            aae_max_keys: args.aae_max_keys as usize,
            tombstone_grace: args.tombstone_grace,
            handoff_grace: args.handoff_grace,
            causality: if args.unsafe_lww {
                Causality::Lww
            } else if args.unsafe_server_clocks {
                Causality::ServerClock
            } else {
                Causality::Dvv
            },
        },
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Makes an existing data directory its owner's alone (a new one is, by the umask).
fn make_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.is_dir()
        && meta.permissions().mode() & 0o077 != 0
        && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    {
        tracing::warn!("cannot make {} private: {e}", dir.display());
    }
}

/// A secret from its flag (or environment variable), or from its file.
fn secret_flag(value: Option<&String>, file: Option<&Path>) -> Result<Option<String>> {
    match file {
        Some(file) => read_secret_file(file).map(Some),
        None => Ok(value.cloned().filter(|t| !t.is_empty())),
    }
}

/// The secret in `file`: its first line. A file that exists but holds no secret (empty, or a
/// blank first line) is refused: starting without the password or token the operator meant
/// to set would let everyone in, and nothing would say so.
fn read_secret_file(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
    let first = text.lines().next().unwrap_or("");
    if first.trim().is_empty() {
        return Err(Error::Config(format!(
            "{}: the secret file is empty or its first line is blank; refusing to start without the secret",
            file.display()
        )));
    }
    Ok(first.to_string())
}

/// Warns about secrets given on the command line, where every local user's `ps` sees them.
fn warn_about_secrets_in_argv() {
    for flag in ["--requirepass", "--admin-token", "--s3-secret-key"] {
        if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            tracing::warn!(
                "{flag} on the command line is visible to every local user (ps); use {flag}-file or the environment"
            );
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    make_private(&args.data_dir);
    warn_about_secrets_in_argv();
    // Secrets are read before anything listens: a node that refuses its secret never serves.
    let requirepass = secret_flag(args.requirepass.as_ref(), args.requirepass_file.as_deref())?;
    let admin_token = secret_flag(args.admin_token.as_ref(), args.admin_token_file.as_deref())?;
    let faults = Arc::new(Faults::default());
    let store = crate::mode::open(&mode_config(&args)?, faults.clone()).await?;
    // The TLS port is bound first: once the plain port answers, both do.
    let tls = match &args.tls_port {
        None => None,
        Some(addr) => {
            let options = crate::resp::TlsOptions {
                cert_file: args.tls_cert_file.clone().unwrap_or_default(),
                key_file: args.tls_key_file.clone().unwrap_or_default(),
                ca_cert_file: args.tls_ca_cert_file.clone(),
                auth_clients: args.tls_auth_clients.unwrap_or(if args.tls_ca_cert_file.is_some() {
                    crate::resp::ClientAuth::Yes
                } else {
                    crate::resp::ClientAuth::No
                }),
            };
            let acceptor = crate::resp::tls_acceptor(&options).map_err(Error::Config)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Config(format!("cannot listen for TLS clients on {addr}: {e}")))?;
            tracing::info!(addr = %listener.local_addr()?, "serving TLS clients");
            Some((listener, acceptor))
        }
    };
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", args.addr)))?;
    let info = store.describe();
    let backend = info.details.first().map(|(_, v)| v.as_str()).unwrap_or("");
    tracing::info!(
        mode = info.mode,
        addr = %listener.local_addr()?,
        backend,
        version = env!("CARGO_PKG_VERSION"),
        "valthree ready to accept connections"
    );
    let config = ServerConfig {
        requirepass,
        admin_token,
        faults,
        maxclients: args.maxclients,
        proto_max_bulk_len: args.proto_max_bulk_len,
        maxmemory_clients: args.maxmemory_clients,
        idle_timeout: (args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout)),
    };
    crate::resp::serve(listener, tls, store.clone(), config, shutdown_signal()).await?;
    // Clients are drained; now the mode's own background work (peers, replication, GC).
    store.shutdown().await;
    tracing::info!("bye");
    Ok(())
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging(args.json, args.verbose);
    antithesis_sdk::antithesis_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once, on stderr (a node's log file captures it too).
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("64KB"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64_000), "as in redis.conf, k is 1000 and kb 1024");
        assert_eq!(parse_size("2g"), Ok(2_000_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("12qb").is_err());
        assert_eq!(crate::resp::DEFAULT_PROTO_MAX_BULK_LEN, 512 << 20);
    }
}
