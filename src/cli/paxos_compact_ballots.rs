//! `valthree paxos-compact-ballots --data-dir 1=DIR --data-dir 2=DIR ...`: for a stopped paxos
//! cluster, replace every ballot every acceptor holds by its rank, keeping their order, so a
//! cluster whose ballots were pushed towards the limit gets its room back. The method and why
//! it is safe: [`crate::mode::paxos::compact`].
//!
//! Exit status: 0 compacted (or, with `--dry-run`, would compact); 2 refused or failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::mode::paxos::{NodeId, compact};

/// Arguments of `valthree paxos-compact-ballots`.
#[derive(Debug, Args)]
#[command(after_help = "Stop every node first. Give every member's data directory, each as \
ID=DIR (`1=c/n1` or `n1=c/n1`); a member left out is refused. Exit status: 0 done; 2 refused or failed \
(an interrupted run is finished by running it again with the same directories).")]
pub struct PaxosCompactBallotsArgs {
    /// A member's node id and data directory, `ID=DIR`; once per member.
    #[arg(long = "data-dir", value_name = "ID=DIR", required = true, value_parser = parse_member_dir)]
    pub data_dirs: Vec<(NodeId, PathBuf)>,
    /// Report what would be rewritten, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `ID=DIR`, the id with or without its `n`.
fn parse_member_dir(s: &str) -> Result<(NodeId, PathBuf), String> {
    let (id, dir) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected ID=DIR (e.g. 1=c/n1)"))?;
    let id = id.strip_prefix('n').unwrap_or(id);
    let id: NodeId = id.parse().map_err(|_| format!("{s:?}: {id:?} is not a node id"))?;
    if dir.is_empty() {
        return Err(format!("{s:?}: the directory is empty"));
    }
    Ok((id, PathBuf::from(dir)))
}

/// Runs the compaction and prints what it did.
pub fn run(args: PaxosCompactBallotsArgs) -> ExitCode {
    match compact::compact(&args.data_dirs, args.dry_run) {
        Ok(done) => {
            let verb = if args.dry_run { "would rewrite" } else { "rewrote" };
            if done.resumed {
                println!("finished an interrupted compaction");
            }
            println!(
                "{} distinct ballot counters, the highest {}.{}; every node resumes from counter {}",
                done.distinct, done.highest.counter, done.highest.node, done.distinct
            );
            for ((id, dir), slots) in args.data_dirs.iter().zip(&done.slots) {
                if args.dry_run {
                    println!("n{id} ({}): {verb} every slot", dir.display());
                } else {
                    println!("n{id} ({}): {verb} {slots} slots", dir.display());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
