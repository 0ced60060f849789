//! `valthree completions SHELL`: prints a completion script. The scripts are also committed
//! under `completions/`; a test fails when they no longer match the command line.

use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

/// Arguments of `valthree completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells completions are generated for, and the file each one's script lives in.
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "valthree.bash"),
    (Shell::Zsh, "_valthree"),
    (Shell::Fish, "valthree.fish"),
    (Shell::Elvish, "valthree.elv"),
    (Shell::PowerShell, "_valthree.ps1"),
];

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "valthree", &mut out);
    out
}

/// Prints the script.
pub fn run(args: CompletionsArgs) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().write_all(&script(args.shell)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `UPDATE_COMPLETIONS=1 cargo test completions`.
    #[test]
    fn committed_completion_scripts_match_the_command_line() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
        let update = std::env::var_os("UPDATE_COMPLETIONS").is_some();
        let mut stale = Vec::new();
        for (shell, file) in SHELLS {
            let path = dir.join(file);
            let want = script(*shell);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            } else if std::fs::read(&path).ok().as_ref() != Some(&want) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "stale completion scripts {stale:?}: run UPDATE_COMPLETIONS=1 cargo test completions"
        );
    }

    #[test]
    fn completions_offer_fault_kinds_and_node_names() {
        let bash = String::from_utf8(script(Shell::Bash)).unwrap();
        assert!(
            bash.contains(r#"compgen -W "kill pause partition membership""#),
            "--nemesis completes the fault kinds"
        );
        assert!(bash.contains("n1 n2 n3"), "cluster kill and friends complete node names");
        let fish = String::from_utf8(script(Shell::Fish)).unwrap();
        assert!(fish.contains(r"kill\t'SIGKILL"), "{fish}");
    }
}
