//! The command line: one file per subcommand, each with an `Args` struct and a `run`.

pub mod backup;
pub mod check;
pub mod cluster;
pub mod completions;
pub mod demo;
pub mod paxos_compact_ballots;
pub mod restore;
pub mod s3_check;
pub mod serve;
pub mod template;
pub mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A Redis-protocol key-value store kept consistent four ways: S3 compare-and-swap, CASPaxos, Raft and Dynamo-style quorums.
#[derive(Debug, Parser)]
#[command(name = "valthree", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Redis protocol in one of the consistency modes.
    Serve(Box<serve::ServeArgs>),
    /// Drive many clients against Redis-protocol servers and record the history.
    Workload(Box<workload::WorkloadArgs>),
    /// Run a local cluster and inject faults into it.
    Cluster(cluster::ClusterArgs),
    /// Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos,
    /// dynamo: key by key).
    Backup(backup::BackupArgs),
    /// Load a Redis RDB file's string keys (other types are skipped and counted).
    Restore(restore::RestoreArgs),
    /// Check a recorded history for linearizability.
    CheckHistory(check::CheckArgs),
    /// Run a narrated, self-checking demo of a mechanism on a local cluster.
    Demo(demo::DemoArgs),
    /// Rewrite a stopped paxos cluster's ballots to their ranks (order kept), giving back the
    /// room a forged ballot took.
    PaxosCompactBallots(paxos_compact_ballots::PaxosCompactBallotsArgs),
    /// Check that an S3 server's conditional PUTs hold under a race, as s3 mode needs.
    S3Check(s3_check::S3CheckArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Run one command of the Antithesis test template (as its link in the image does).
    #[command(hide = true)]
    TestTemplate(template::TemplateArgs),
}

/// The clap command tree (for completions and tests).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The command line as the process got it: a link named after a command of the test template
/// (`/opt/antithesis/test/v1/valthree/first_wait_for_cluster`) runs that command.
pub fn parse() -> Cli {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(command) = args.first().and_then(|a| a.to_str()).and_then(template::command_named) {
        args.splice(0..1, ["valthree".into(), "test-template".into(), command.into()]);
    }
    Cli::parse_from(args)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    // Backup and restore write to their servers with vectored writes, which raise SIGPIPE
    // on a connection the server closed (unlike `send`): under SIG_DFL such a server (a
    // metrics port given by mistake, a node killed mid-write) killed the tool without a word,
    // leaving a partial file. They keep SIGPIPE ignored and report the broken connection.
    if !matches!(cli.command, Command::Serve(_) | Command::Backup(_) | Command::Restore(_)) {
        quiet_on_closed_stdout();
    }
    if matches!(cli.command, Command::Serve(_) | Command::Cluster(_) | Command::PaxosCompactBallots(_)) {
        private_files();
    }
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Workload(args) => workload::run(*args),
        Command::Backup(args) => backup::run(args),
        Command::Restore(args) => restore::run(args),
        Command::CheckHistory(args) => check::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::PaxosCompactBallots(args) => paxos_compact_ballots::run(args),
        Command::S3Check(args) => s3_check::run(args),
        Command::Completions(args) => completions::run(args),
        Command::TestTemplate(args) => template::run(args),
    }
}

/// Lets a closed stdout (`valthree cluster status | head -1`) end the process quietly, as it
/// ends any Unix filter, instead of a "Broken pipe" panic from `println!`. The server keeps
/// Rust's default (SIGPIPE ignored): it must outlive any one client's closed socket.
fn quiet_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called before any thread starts; SIG_DFL installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Files and directories a node or a local cluster creates (data, snapshots, logs, the state
/// file with its secrets) are its owner's alone, whatever the umask: 0600 and 0700.
fn private_files() {
    use nix::sys::stat::{Mode, umask};
    umask(Mode::from_bits_truncate(0o077));
}
