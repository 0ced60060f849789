use clap::Parser;

fn main() -> std::process::ExitCode {
    valthree::cli::run(valthree::cli::Cli::parse())
}
