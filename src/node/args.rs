//! The flags every replicated node takes (`valthree serve`, flattened), and the small value
//! types several modes' flags share. Converted once, into [`NodeOptions`].

use std::path::PathBuf;

use super::{FaultFs, FileSystem, Member, NodeOptions};
use crate::peer::{ClusterSecret, PeerTls};

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

/// Parses `512mb`, `64k`, `1048576`: as in redis.conf, 1k = 1000 bytes and 1kb = 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {text:?}"))?;
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

/// The `--peers` list: an alias, so that clap takes the flag as one value (the whole list),
/// not as a flag repeated once per member.
pub type Members = Vec<Member>;

/// paxos, raft and dynamo modes: who this node is and how it reaches its peers.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
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
    #[arg(long, help_heading = "paxos, raft and dynamo modes", value_parser = super::parse_peers)]
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
    /// Testing only (every mode): `lazy` keeps every write not yet fsync'd inside the process,
    /// so a SIGKILL loses what a power cut would (`valthree cluster up --fault-fs lazy`).
    #[arg(long, hide = true, value_enum, default_value = "off")]
    pub fault_fs: FaultFs,
    /// Testing only, a planted bug (every mode): skip every fsync of the write path. Caught
    /// by the power-loss nemesis with `--fault-fs lazy`.
    #[arg(long, hide = true)]
    pub unsafe_skip_fsync: bool,
}

impl NodeArgs {
    /// The node's options, its data in `data_dir`, showing its peers `secret` (read from
    /// --cluster-secret-file or the environment by the caller), its values at most
    /// `max_value` bytes (`--proto-max-bulk-len`).
    pub fn options(
        &self,
        data_dir: PathBuf,
        secret: Option<ClusterSecret>,
        max_value: u64,
    ) -> Result<NodeOptions, String> {
        Ok(NodeOptions {
            node_id: self.node_id,
            peer_addr: self.peer_addr.clone(),
            peer_listen: self.peer_listen.clone(),
            peers: self.peers.clone().unwrap_or_default(),
            join: self.join,
            data_dir,
            secret,
            peer_tls: PeerTls::from_flags(
                self.peer_tls_cert.as_ref(),
                self.peer_tls_key.as_ref(),
                self.peer_tls_ca.as_ref(),
            )?,
            max_value,
            metrics: crate::metrics::Metrics::new(),
            fs: FileSystem::new(self.fault_fs, self.unsafe_skip_fsync),
        })
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
