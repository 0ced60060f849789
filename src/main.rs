fn main() -> std::process::ExitCode {
    valthree::cli::run(valthree::cli::parse())
}
