//! `valthree backup FILE.rdb`: the whole keyspace of a running cluster, any mode, to a Redis
//! RDB file that redis-server (and `valthree restore`) loads. What "the whole keyspace" means
//! per mode — one point in time in s3 and raft mode, key by key in paxos and dynamo mode —
//! is [`crate::backup`]'s module doc.

use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::backup::{self, Target};
use crate::cluster::ClusterState;

/// How many of the dynamo keys with siblings the text report names.
const SIBLINGS_NAMED: usize = 20;

/// Where a backup or restore connects: `--addrs` or `--cluster`, as `workload` takes them.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Comma-separated addresses of the nodes (default: the nodes of --cluster, or
    /// 127.0.0.1:6379). The client password is the cluster's, or $REDISCLI_AUTH.
    #[arg(long, value_delimiter = ',')]
    pub addrs: Vec<String>,
    /// A local cluster's directory (from `valthree cluster up`).
    #[arg(long, conflicts_with = "addrs")]
    pub cluster: Option<PathBuf>,
    /// Connections working at once (a restore's writes; a key-by-key backup's reads).
    /// Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs;
    /// 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a
    /// connection to every node to write each key at its home; backup: 32, 8 in paxos mode,
    /// whose reads are rounds that write the value back).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub connections: Option<u64>,
    /// Print the report as JSON; no progress bar.
    #[arg(long)]
    pub json: bool,
}

impl TargetArgs {
    /// The addresses and password to use.
    pub fn target(&self) -> Result<Target, String> {
        let addrs = match (&self.cluster, self.addrs.is_empty()) {
            (Some(dir), _) => ClusterState::require(dir)?.nodes.iter().map(|n| n.addr.clone()).collect(),
            (None, false) => self.addrs.clone(),
            (None, true) => vec!["127.0.0.1:6379".into()],
        };
        // The cluster's password (read with its state above), or redis-cli's variable.
        let password = crate::cluster::password()
            .map(str::to_string)
            .or_else(|| std::env::var("REDISCLI_AUTH").ok().filter(|p| !p.is_empty()));
        Ok(Target { addrs, password, connections: self.connections.map(|n| n as usize) })
    }

    /// A progress bar on a terminal, a hidden one otherwise.
    pub fn progress(&self, template: &str) -> ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(template).expect("template"));
        // Redrawn on its own too: the spinner and the elapsed time move while a slow batch
        // is written or read.
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        bar
    }
}

/// Arguments of `valthree backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The RDB file to write (written beside it first, then renamed: never half a file).
    pub file: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Runs `valthree backup`.
pub fn run(args: BackupArgs) -> ExitCode {
    let started = Instant::now();
    let result = args.target.target().and_then(|target| {
        let partial = args.file.with_extension("rdb.partial");
        let file = std::fs::File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let progress = args.target.progress("{spinner} {bar:30} {pos}/{len} keys {per_sec} {elapsed}");
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
        let report = runtime.block_on(backup::backup(&target, BufWriter::with_capacity(1 << 20, file), &progress));
        match report {
            Ok(report) => {
                std::fs::rename(&partial, &args.file)
                    .map_err(|e| format!("cannot rename {} to {}: {e}", partial.display(), args.file.display()))?;
                Ok(report)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    });
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if args.target.json {
        let siblings: Vec<String> = report.with_siblings.iter().map(|k| String::from_utf8_lossy(k).into()).collect();
        let out = json!({
            "file": args.file, "mode": report.mode, "read": report.read, "keys": report.keys,
            "bytes": report.bytes, "with_siblings": siblings, "vanished": report.vanished, "seconds": seconds,
        });
        println!("{out}");
        return ExitCode::SUCCESS;
    }
    println!(
        "backup: {} keys ({} bytes of keys and values) from {} mode, {}, to {} in {seconds:.1}s",
        report.keys,
        report.bytes,
        if report.mode.is_empty() { "an unknown" } else { &report.mode },
        report.read,
        args.file.display()
    );
    if report.vanished > 0 {
        println!("  {} keys listed by SCAN were deleted before they were read (left out)", report.vanished);
    }
    if !report.with_siblings.is_empty() {
        println!(
            "  {} keys had siblings; each was written with the value GET picks (VGET shows them all):",
            report.with_siblings.len()
        );
        for key in report.with_siblings.iter().take(SIBLINGS_NAMED) {
            println!("    {}", String::from_utf8_lossy(key));
        }
        if report.with_siblings.len() > SIBLINGS_NAMED {
            println!("    ...");
        }
    }
    ExitCode::SUCCESS
}
