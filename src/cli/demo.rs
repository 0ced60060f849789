//! `valthree demo [NAME|list|all]`: narrated, self-checking scenarios on a local cluster.
//!
//! Exit status: 0 every claim held, 1 a claim did not hold (named), 2 the demo could not run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::demo::{self, DEMOS, Failure, Options};

/// Arguments of `valthree demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo to run, `all` for every one, or `list` (the default) to list them.
    #[arg(value_parser = demo_names())]
    pub name: Option<String>,
    /// Leave the cluster running at the end (with the commands to explore and remove it).
    #[arg(long)]
    pub keep: bool,
    /// Where the demo's clusters live [default: a fresh temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Node i listens on base+i (peers on base+1000+i).
    #[arg(long, default_value_t = 6379)]
    pub base_port: u16,
    /// A machine-readable log of the steps and checks instead of the narration.
    #[arg(long)]
    pub json: bool,
    /// Seconds to pause between steps, 0 to 10 [default: 1 on a terminal, 0 otherwise].
    #[arg(long, value_parser = parse_pace)]
    pub pace: Option<f64>,
    /// Extra `valthree serve` flags for every node (e.g. a broken configuration, to see a
    /// claim fail).
    #[arg(long = "serve-flag", allow_hyphen_values = true, hide = true)]
    pub serve_flags: Vec<String>,
}

fn parse_pace(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=10.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a number of seconds from 0 to 10")),
    }
}

fn demo_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(DEMOS.iter().map(|d| d.name).chain(["all", "list"]))
}

/// Runs the command.
pub fn run(args: DemoArgs) -> ExitCode {
    let name = args.name.clone().unwrap_or_else(|| "list".into());
    if name == "list" {
        if args.json {
            let list: Vec<_> =
                DEMOS.iter().map(|d| json!({"name": d.name, "modes": d.modes, "about": d.about})).collect();
            println!("{}", json!(list));
        } else {
            println!("valthree demo NAME runs one (valthree demo all: every one):");
            for d in DEMOS {
                println!("  {:<16} {:<12} {}", d.name, d.modes, d.about);
            }
        }
        return ExitCode::SUCCESS;
    }
    demo::tear_down_on_interrupt();
    let options = Options {
        dir: args.dir.clone(),
        base_port: args.base_port,
        keep: args.keep,
        json: args.json,
        pace: args.pace.unwrap_or(if std::io::stdout().is_terminal() && !args.json { 1.0 } else { 0.0 }),
        extra: args.serve_flags.clone(),
    };
    let chosen: Vec<_> = DEMOS.iter().filter(|d| name == "all" || d.name == name).collect();
    let mut results = Vec::new();
    let mut logs = Vec::new();
    for (i, d) in chosen.iter().enumerate() {
        let mut options = options.clone();
        // `all` keeps only the last demo's cluster, and gives each its own directory.
        options.keep = options.keep && i + 1 == chosen.len();
        options.dir = options.dir.as_ref().map(|dir| if chosen.len() > 1 { dir.join(d.name) } else { dir.clone() });
        if !args.json && i > 0 {
            println!();
        }
        let started = std::time::Instant::now();
        let (outcome, log) = demo::run(d, &options);
        results.push((d.name, outcome, started.elapsed()));
        logs.push(log);
    }
    if args.json {
        println!("{}", if logs.len() == 1 { logs.remove(0) } else { json!(logs) });
    } else if chosen.len() > 1 {
        println!("\n{:<16} {:<8} {:>8}  what did not hold", "demo", "result", "seconds");
        for (name, outcome, took) in &results {
            let (result, why) = match outcome {
                Ok(()) => ("passed", String::new()),
                Err(Failure::Claim { claim, .. }) => ("FAILED", claim.clone()),
                Err(Failure::Error(e)) => ("error", e.clone()),
            };
            println!("{name:<16} {result:<8} {:>8.1}  {why}", took.as_secs_f64());
        }
    }
    let code = results.iter().map(|(_, o, _)| match o {
        Ok(()) => 0,
        Err(Failure::Claim { .. }) => 1,
        Err(Failure::Error(_)) => 2,
    });
    ExitCode::from(code.max().unwrap_or(0))
}
