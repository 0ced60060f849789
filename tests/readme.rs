//! The documentation cannot drift from the command line: every `valthree` command shown in a
//! shell block of README.md, CONTRIBUTING.md, docker/README.md or docs/*.md must be accepted
//! by the binary's own argument parser. Parsing starts nothing: no server, no cluster.

use std::path::{Path, PathBuf};

use clap::Parser;
use clap::error::ErrorKind;
use valthree::cli::Cli;

/// One command found in a document: where it is and the words after the program name.
#[derive(Debug)]
struct ShownCommand {
    place: String,
    args: Vec<String>,
}

/// One word or operator of a shell line.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// `&&`, `||`, `|`, `;` or `&`: the end of one command.
    Separator,
}

/// Splits one shell line into words and command separators, as far as the docs need: quotes,
/// backslash escapes, `$(...)` kept inside its word, and a `#` comment at the start of a word.
fn shell_tokens(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word(&mut word, &mut in_word, &mut tokens),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '$' if chars.peek() == Some(&'(') => {
                in_word = true;
                word.push('$');
                let mut depth = 0;
                for q in chars.by_ref() {
                    word.push(q);
                    match q {
                        '(' => depth += 1,
                        ')' if depth == 1 => break,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            '&' | '|' | ';' => {
                end_word(&mut word, &mut in_word, &mut tokens);
                if matches!(chars.peek(), Some(&n) if n == c && c != ';') {
                    chars.next();
                }
                tokens.push(Token::Separator);
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// The arguments of a command that runs the valthree binary, or `None` for any other command:
/// `valthree ARGS`, a path ending in `/valthree` (`./target/release/valthree ARGS`), or
/// `cargo run [OPTIONS] -- ARGS` (but not `cargo run --example`, which runs an example).
fn valthree_args(words: &[String]) -> Option<Vec<String>> {
    // Leading environment assignments (`VALTHREE_URL=... cargo run ...`) are not the program.
    let start = words.iter().position(|w| !is_assignment(w))?;
    let words = &words[start..];
    let program = words.first()?;
    if program == "valthree" || program.ends_with("/valthree") {
        return Some(words[1..].to_vec());
    }
    if program == "cargo" && words.get(1).is_some_and(|w| w == "run") {
        if words.iter().any(|w| w == "--example") {
            return None;
        }
        let dashes = words.iter().position(|w| w == "--")?;
        return Some(words[dashes + 1..].to_vec());
    }
    None
}

/// `NAME=value`, as a shell reads an assignment before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// Every valthree command in the shell blocks (```sh, ```bash, ```shell) of one Markdown file,
/// with backslash-continued lines joined.
fn shown_commands(path: &Path) -> Vec<ShownCommand> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display().to_string();
    let mut commands = Vec::new();
    let mut in_shell_block = false;
    let mut in_other_block = false;
    let mut pending = String::new();
    let mut pending_line = 0;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_shell_block || in_other_block {
                in_shell_block = false;
                in_other_block = false;
            } else if matches!(info.trim(), "sh" | "bash" | "shell") {
                in_shell_block = true;
            } else {
                in_other_block = true;
            }
            continue;
        }
        if !in_shell_block {
            continue;
        }
        if pending.is_empty() {
            pending_line = number + 1;
        }
        match line.strip_suffix('\\') {
            Some(continued) => {
                pending.push_str(continued);
                pending.push(' ');
                continue;
            }
            None => pending.push_str(line),
        }
        let tokens = shell_tokens(&std::mem::take(&mut pending));
        for command in tokens.split(|t| *t == Token::Separator) {
            let words: Vec<String> = command
                .iter()
                .map(|t| match t {
                    Token::Word(w) => w.clone(),
                    Token::Separator => unreachable!("split on separators"),
                })
                .collect();
            if let Some(args) = valthree_args(&words) {
                commands.push(ShownCommand { place: format!("{name}:{pending_line}"), args });
            }
        }
    }
    commands
}

/// The commands of `files` that valthree's parser refuses, each with clap's reason.
fn refused(files: &[PathBuf]) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut refusals = Vec::new();
    for file in files {
        for shown in shown_commands(file) {
            checked += 1;
            let argv = std::iter::once("valthree".to_string()).chain(shown.args.iter().cloned());
            if let Err(e) = Cli::try_parse_from(argv) {
                // `valthree --help` and `--version` are commands a reader may type, too.
                if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    refusals.push(format!("{}: valthree {}\n{}", shown.place, shown.args.join(" "), e.render()));
                }
            }
        }
    }
    (checked, refusals)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_valthree_command_in_the_readme_parses() {
    let (checked, refusals) = refused(&[root().join("README.md")]);
    assert!(
        checked >= 5,
        "only {checked} valthree commands found in README.md's shell blocks: is the extraction broken?"
    );
    assert!(refusals.is_empty(), "README.md shows commands valthree refuses:\n\n{}", refusals.join("\n"));
}

#[test]
fn every_valthree_command_in_the_docs_parses() {
    let mut files = vec![root().join("CONTRIBUTING.md"), root().join("docker/README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "md")).collect()
        })
        .unwrap_or_default();
    pages.sort();
    files.extend(pages);
    files.retain(|f| f.exists());
    let (checked, refusals) = refused(&files);
    assert!(checked >= 1, "no valthree commands found in {files:?}: is the extraction broken?");
    assert!(refusals.is_empty(), "the docs show commands valthree refuses:\n\n{}", refusals.join("\n"));
}

#[test]
fn the_extraction_finds_commands_in_every_form_the_docs_use() {
    let words = |line: &str| -> Vec<Vec<String>> {
        shell_tokens(line)
            .split(|t| *t == Token::Separator)
            .filter_map(|c| {
                let w: Vec<String> =
                    c.iter().map(|t| if let Token::Word(w) = t { w.clone() } else { unreachable!() }).collect();
                valthree_args(&w)
            })
            .collect()
    };
    assert_eq!(
        words("valthree cluster kill n2 && valthree cluster restart n2   # comment"),
        [["cluster", "kill", "n2"], ["cluster", "restart", "n2"]]
    );
    assert_eq!(
        words(r#"valthree cluster partition "n1 | n2,n3" && valthree cluster heal"#),
        [vec!["cluster", "partition", "n1 | n2,n3"], vec!["cluster", "heal"]]
    );
    assert_eq!(words("cargo run --release -- serve --mode raft &"), [["serve", "--mode", "raft"]]);
    assert_eq!(words("./target/release/valthree demo repair"), [["demo", "repair"]]);
    assert_eq!(words("RUST_LOG=debug valthree serve"), [["serve"]]);
    assert!(words("VALTHREE_URL=redis://127.0.0.1:6380/ cargo run --release --example hello").is_empty());
    assert!(words("export S=$(head -c 24 /dev/urandom | base64); redis-cli -p 6380 ping").is_empty());
}

#[test]
fn a_flag_the_binary_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("page.md");
    std::fs::write(&page, "```sh\nvalthree serve --mode raft --no-such-flag 1\nvalthree serve --mode raft\n```\n")
        .unwrap();
    let (checked, refusals) = refused(&[page]);
    assert_eq!(checked, 2);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].contains("page.md:2"), "the refusal names the line: {}", refusals[0]);
}
