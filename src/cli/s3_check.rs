//! `valthree s3-check --s3-endpoint URL --s3-bucket B`: does this object store's conditional
//! PUT hold under a race, as s3 mode needs? The check is [`crate::object::check_object_store`];
//! `serve --mode s3` runs the same one at start-up.
//!
//! Exit status: 0 the store passed; 1 it failed (s3 mode on it could lose writes); 2 the
//! check could not run or finish (no connection, no such bucket — it is never created —,
//! access denied, a network error midway), so it proves nothing either way.

use std::process::ExitCode;

use clap::Args;

use crate::mode::s3::S3ConnectArgs;
use crate::object::{CheckOptions, ObjectStore, S3, check_object_store};

/// Arguments of `valthree s3-check`.
#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 the store passed; 1 it failed (s3 mode on it could lose writes, and \
`serve --mode s3` refuses it); 2 the check could not run or finish (no connection, no such bucket: it is never \
created, access denied), so it proves nothing.")]
pub struct S3CheckArgs {
    #[command(flatten)]
    pub connect: S3ConnectArgs,
    /// Rounds of each race.
    #[arg(long, default_value_t = CheckOptions::default().rounds as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rounds: u64,
    /// Concurrent writers in each round.
    #[arg(long, default_value_t = CheckOptions::default().writers as u64, value_parser = clap::value_parser!(u64).range(2..=256))]
    pub writers: u64,
}

/// Runs the check and prints what it saw.
pub fn run(args: S3CheckArgs) -> ExitCode {
    let Some(bucket) = args.connect.s3_bucket.clone() else {
        eprintln!("error: s3-check needs --s3-bucket");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let options = CheckOptions {
        rounds: usize::try_from(args.rounds).unwrap_or(usize::MAX),
        writers: usize::try_from(args.writers).unwrap_or(usize::MAX),
    };
    runtime.block_on(async {
        let store = match S3::connect_existing(args.connect.options(&bucket)).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        println!("checking the conditional PUTs of {}", store.describe());
        let report = check_object_store(&store, options).await;
        for line in report.lines() {
            println!("{line}");
        }
        if report.passed() {
            println!("PASSED: s3 mode can trust this object store");
            ExitCode::SUCCESS
        } else if !report.failed() {
            eprintln!(
                "error: INCONCLUSIVE: the check could not finish ({}); nothing is known of this store's conditional PUTs",
                report.inconclusive.as_deref().unwrap_or("no step ran")
            );
            ExitCode::from(2)
        } else {
            println!(
                "FAILED: s3 mode on this object store could lose writes; `serve --mode s3` refuses it \
                 (unless --unsafe-trust-object-store)"
            );
            ExitCode::from(1)
        }
    })
}
