//! `valthree restore FILE.rdb`: loads a Redis RDB file (redis-server's dump, `redis-cli
//! --rdb`, or `valthree backup`) into a running cluster of any mode: strings are restored,
//! everything else is skipped and counted ([`crate::backup`] says what and why).

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::backup::TargetArgs;
use crate::backup;

/// Arguments of `valthree restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The RDB file to load.
    pub file: PathBuf,
    /// Restore into a database that already holds keys: the file's keys overwrite theirs,
    /// other keys stay.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Runs `valthree restore`.
pub fn run(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    let result = args.target.target().and_then(|target| {
        let open = || std::fs::File::open(&args.file).map_err(|e| format!("cannot open {}: {e}", args.file.display()));
        let summary = backup::verify(BufReader::with_capacity(1 << 20, open()?))
            .map_err(|e| format!("{}: {e}; nothing was restored", args.file.display()))?;
        let file = open()?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let progress =
            args.target.progress("{spinner} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}");
        progress.set_length(size);
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
        runtime.block_on(backup::restore(
            &target,
            BufReader::with_capacity(1 << 20, file),
            &summary,
            args.replace,
            &progress,
        ))
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
        let out = json!({
            "file": args.file, "rdb_version": report.version, "restored": report.restored,
            "skipped": report.skipped(), "skipped_types": report.skipped_types,
            "skipped_other_db": report.skipped_other_db, "skipped_expired": report.skipped_expired,
            "expiry_dropped": report.expiry_dropped, "skipped_functions": report.skipped_functions,
            "seconds": seconds,
        });
        println!("{out}");
        return ExitCode::SUCCESS;
    }
    println!(
        "restore: {} string keys from {} (RDB version {}) in {seconds:.1}s",
        report.restored,
        args.file.display(),
        report.version
    );
    if report.skipped() + report.skipped_functions > 0 {
        println!("skipped (valthree stores strings only, in database 0, without expiries):");
        for (kind, n) in &report.skipped_types {
            println!("  {n} {kind} keys");
        }
        let others = [
            (report.skipped_other_db, "keys of databases other than 0"),
            (report.skipped_expired, "keys whose expiry had passed"),
            (report.skipped_functions, "function libraries"),
        ];
        for (n, what) in others.into_iter().filter(|(n, _)| *n > 0) {
            println!("  {n} {what}");
        }
    }
    if report.expiry_dropped > 0 {
        println!("  {} keys were restored without their expiry", report.expiry_dropped);
    }
    ExitCode::SUCCESS
}
