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
    let mut command = completed_command();
    clap_complete::generate(shell, &mut command, "valthree", &mut out);
    let mut text = String::from_utf8(out).expect("clap_complete writes UTF-8");
    for list in comma_lists(&command) {
        text = complete_each_item(shell, &text, &list);
    }
    text.into_bytes()
}

/// The command line as completions offer it: without the hidden subcommands (clap_complete
/// offers them all), which clap cannot remove from a command, so the root is built anew
/// around the shown ones.
fn completed_command() -> clap::Command {
    let full = super::command();
    let shown: Vec<clap::Command> = full.get_subcommands().filter(|c| !c.is_hide_set()).cloned().collect();
    clap::Command::new("valthree")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .propagate_version(full.is_propagate_version_set())
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(shown)
}

/// A flag that takes a comma-separated list of known values (`--nemesis kill,pause`).
struct CommaList {
    long: String,
    value_name: String,
    values: Vec<String>,
    /// Each value's description (empty when it has none).
    helps: Vec<String>,
}

/// Every [`CommaList`] flag of `command` and its subcommands. clap_complete completes only
/// the first item of such a list; [`complete_each_item`] completes each.
fn comma_lists(command: &clap::Command) -> Vec<CommaList> {
    let mut lists: Vec<CommaList> = command
        .get_arguments()
        .filter(|a| a.get_value_delimiter() == Some(',') && !a.get_possible_values().is_empty())
        .filter_map(|a| {
            Some(CommaList {
                long: a.get_long()?.to_string(),
                value_name: a
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map_or_else(|| a.get_id().as_str().to_ascii_uppercase(), |n| n.as_str().to_string()),
                values: a.get_possible_values().iter().map(|v| v.get_name().to_string()).collect(),
                helps: a
                    .get_possible_values()
                    .iter()
                    .map(|v| v.get_help().map(ToString::to_string).unwrap_or_default())
                    .collect(),
            })
        })
        .collect();
    for sub in command.get_subcommands() {
        lists.extend(comma_lists(sub));
    }
    lists
}

/// Rewrites `script`'s completion of `list`'s values to complete the item after the last
/// comma, keeping the items before it.
fn complete_each_item(shell: Shell, script: &str, list: &CommaList) -> String {
    let words = list.values.join(" ");
    match shell {
        // `${cur##*,}` is the item being typed, `${cur%"${cur##*,}"}` what precedes it.
        Shell::Bash => script.replace(
            &format!(r#"compgen -W "{words}" -- "${{cur}}""#),
            &format!(r#"compgen -P "${{cur%"${{cur##*,}}"}}" -W "{words}" -- "${{cur##*,}}""#),
        ),
        // zsh's `_sequence` completes a comma-separated list with the function it is given.
        Shell::Zsh => replace_action(
            script,
            &format!("--{}=[", list.long),
            &format!("]:{}:", list.value_name),
            "'",
            &format!("_sequence compadd - {words}"),
        ),
        // fish's `__fish_complete_list SEP COMMAND` completes the item after the last SEP.
        Shell::Fish => replace_action(
            script,
            &format!("-l {} ", list.long),
            " -a \"",
            "\"",
            &format!(r#"(__fish_complete_list , 'printf \"%s\\t%s\\n\" {}')"#, fish_pairs(list)),
        ),
        // Elvish's and PowerShell's scripts complete no values at all.
        _ => script.to_string(),
    }
}

/// `value "description"` pairs for fish's printf, quoted for the double-quoted `-a` string
/// they sit in, inside the single-quoted command `__fish_complete_list` runs.
fn fish_pairs(list: &CommaList) -> String {
    let quote = |text: &str| text.replace('\\', "").replace(['"', '\''], "").replace('$', "");
    list.values
        .iter()
        .zip(&list.helps)
        .map(|(value, help)| format!(r#"{value} \"{}\""#, quote(help)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// In `script`, from the first `anchor`, replaces what lies between the next `open` and the
/// next `close` after it with `action`.
fn replace_action(script: &str, anchor: &str, open: &str, close: &str, action: &str) -> String {
    let Some(at) = script.find(anchor) else { return script.to_string() };
    let Some(start) = script[at..].find(open).map(|i| at + i + open.len()) else { return script.to_string() };
    let Some(end) = script[start..].find(close).map(|i| start + i) else { return script.to_string() };
    format!("{}{action}{}", &script[..start], &script[end..])
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

    /// What bash's completion offers for `words`, the last one being completed.
    fn bash_offers(words: &[&str]) -> Vec<String> {
        let script = String::from_utf8(script(Shell::Bash)).unwrap();
        let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let run = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD={last}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
             _valthree valthree \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = words.join(" "),
            last = words.len() - 1
        );
        let out = std::process::Command::new("bash").arg("-c").arg(run).output().expect("bash runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    #[test]
    fn a_comma_separated_list_completes_each_of_its_items() {
        let first = bash_offers(&["valthree", "workload", "--nemesis", "pa"]);
        assert_eq!(first, ["pause", "partition", "packet"]);
        let next = bash_offers(&["valthree", "workload", "--nemesis", "kill,"]);
        assert_eq!(
            next,
            [
                "kill,kill",
                "kill,power-loss",
                "kill,pause",
                "kill,partition",
                "kill,packet",
                "kill,membership",
                "kill,disk",
                "kill,clock",
                "kill,all"
            ]
        );
        let third = bash_offers(&["valthree", "workload", "--nemesis", "kill,pause,m"]);
        assert_eq!(third, ["kill,pause,membership"]);
        for shell in [Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            assert!(text.contains("_sequence") || text.contains("__fish_complete_list"), "{shell}: {text}");
        }
    }

    #[test]
    fn hidden_commands_are_not_offered() {
        assert!(!bash_offers(&["valthree", "te"]).contains(&"test-template".to_string()));
        for (shell, _) in SHELLS {
            let text = String::from_utf8(script(*shell)).unwrap();
            assert!(!text.contains("test-template"), "{shell} offers the hidden test-template");
        }
    }

    #[test]
    fn completions_offer_fault_kinds_and_node_names() {
        let bash = String::from_utf8(script(Shell::Bash)).unwrap();
        assert!(
            bash.contains(r#"-W "kill power-loss pause partition packet membership disk clock all""#),
            "--nemesis completes the fault kinds"
        );
        assert!(bash.contains("n1 n2 n3"), "cluster kill and friends complete node names");
        let fish = String::from_utf8(script(Shell::Fish)).unwrap();
        assert!(fish.contains(r#"kill \"SIGKILL nodes"#), "{fish}");
    }
}
