//! Corruption: a byte flipped, or a file cut short, in a stopped node's data directory. The
//! node must find it when it starts and refuse to start with a message naming the file — or
//! start and serve exactly what was written. It never serves wrong data.
//!
//! Each durable file kind of each mode is damaged three ways in turn: every stored copy of
//! one value gets a byte flipped, one byte in the middle of the file is flipped, and the file
//! loses its second half. In s3 mode the files are the objects of the shared object directory
//! (the document, snapshots, value objects): nothing else holds the database, so every damage
//! must be refused.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Down, addrs, cluster, redis, up, valthree, wait_until};

const KEYS: usize = 12;

/// A value that is easy to find in a file: 2.4 kB of its own text.
fn value(i: usize) -> String {
    format!("value-{i:02}-").repeat(200)
}

/// The files of `dir` whose bytes must survive: databases, snapshots and, in s3 mode, every
/// object (not logs, lock files, or hidden temporaries).
fn durable_files(dir: &Path, mode: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && (mode == "s3" || name.ends_with(".redb") || name.ends_with(".bin"))
        })
        .collect();
    files.sort();
    files
}

/// What a node must do when it finds one of its files damaged.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Refuse to start, naming the file, or start and serve exactly what was written.
    RefusalOrHarmless,
    /// Refuse to start, naming the file and saying how to recover (nothing else holds a copy).
    Refusal,
}

/// Flips one byte in the middle of every copy of `needle` in `bytes`; how many it found.
fn flip_every_copy(bytes: &mut [u8], needle: &[u8]) -> usize {
    let mut found = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let hit = at + i;
        bytes[hit + needle.len() / 2] ^= 0x01;
        found += 1;
        at = hit + needle.len();
    }
    found
}

fn corruption_is_refused_or_harmless(mode: &str, extra: &[&str]) {
    corruption_is_found(mode, extra, Expect::RefusalOrHarmless);
}

fn corruption_is_found(mode: &str, extra: &[&str], expect: Expect) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = up(&dir, mode, extra);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    // s3 mode's nodes share the cluster's object directory: the database is there.
    let data_dir = PathBuf::from(status["nodes"][0]["data_dir"].as_str().unwrap());
    let data_dir = if mode == "s3" { data_dir.parent().unwrap().join("objects") } else { data_dir };
    let log = PathBuf::from(status["nodes"][0]["log"].as_str().unwrap());
    let mut con = redis(&addrs[0]);
    for i in 0..KEYS {
        wait_until(Duration::from_secs(30), "a write", || {
            redis::cmd("SET").arg(format!("k{i}")).arg(value(i)).query::<String>(&mut con).is_ok()
        });
    }
    if mode == "s3" {
        // Objects a write replaced are deleted right after it, in the background.
        std::thread::sleep(Duration::from_secs(1));
    }
    let files = durable_files(&data_dir, mode);
    if mode == "raft" {
        wait_until(Duration::from_secs(30), "n1's first snapshot", || data_dir.join("raft-snapshot.bin").exists());
    }
    let files = if mode == "raft" { durable_files(&data_dir, mode) } else { files };
    assert!(!files.is_empty(), "{mode}: no durable file in {}", data_dir.display());
    cluster(&dir, &["kill", "n1"]);

    for file in &files {
        let good = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut in_value = good.clone();
        let copies = flip_every_copy(&mut in_value, value(7).as_bytes());
        let mut middle = good.clone();
        middle[good.len() / 2] ^= 0x20;
        let cut = good[..good.len() / 2].to_vec();
        let mut damages = vec![("a flipped byte in the middle", middle), ("its second half lost", cut)];
        if copies > 0 {
            damages.insert(0, ("a flipped byte in every copy of a value", in_value));
        }
        for (damage, bytes) in damages {
            let context = format!("{mode}: {name} with {damage}");
            std::fs::write(file, &bytes).unwrap();
            let before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let out = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "restart", "n1"]);
            if out.status.success() {
                assert!(expect != Expect::Refusal, "{context}: n1 started");
                // It started: then it serves what was written, or nothing it cannot vouch for.
                let mut con = redis(&addrs[0]);
                for i in 0..KEYS {
                    let got: redis::RedisResult<Option<String>> =
                        redis::cmd("GET").arg(format!("k{i}")).query(&mut con);
                    if let Ok(Some(got)) = got {
                        assert!(got == value(i), "{context}: n1 served a wrong value for k{i}");
                    }
                }
                cluster(&dir, &["kill", "n1"]);
            } else {
                let text = std::fs::read_to_string(&log).unwrap();
                let said = &text[before as usize..];
                assert!(
                    said.contains(&file.display().to_string()) && said.contains("corrupt"),
                    "{context}: refused to start without naming the file as corrupt: {said}"
                );
                if expect == Expect::Refusal {
                    assert!(said.contains("restore"), "{context}: the refusal does not say how to recover: {said}");
                    // Emptying a replicated node's data and starting it under its old name
                    // loses acknowledged writes (a paxos acceptor forgets what it promised):
                    // the advice is to replace the node.
                    assert!(
                        mode == "s3"
                            || (said.contains("remove-node") && said.contains("add-node") && !said.contains("rejoin")),
                        "{context}: the refusal must advise replacing the node, not emptying it: {said}"
                    );
                }
            }
            std::fs::write(file, &good).unwrap();
            let _ = std::fs::remove_file(file.with_extension("corrupt"));
        }
    }
    // Restored, the node starts and serves every value.
    cluster(&dir, &["restart", "n1"]);
    let mut con = redis(&addrs[0]);
    for i in 0..KEYS {
        let got: Option<String> = redis::cmd("GET").arg(format!("k{i}")).query(&mut con).unwrap();
        assert_eq!(got.as_deref(), Some(value(i).as_str()), "{mode}: k{i} after the file was restored");
    }
}

#[test]
fn a_corrupt_acceptor_database_is_refused_in_paxos_mode() {
    corruption_is_refused_or_harmless("paxos", &[]);
}

#[test]
fn a_corrupt_log_or_snapshot_is_refused_in_raft_mode() {
    corruption_is_refused_or_harmless("raft", &["--raft-snapshot-every", "4"]);
}

#[test]
fn a_corrupt_replica_database_is_refused_in_dynamo_mode() {
    corruption_is_refused_or_harmless("dynamo", &[]);
}

#[test]
fn a_corrupt_document_is_refused_in_s3_mode() {
    corruption_is_found("s3", &[], Expect::Refusal);
}

#[test]
fn a_corrupt_snapshot_or_value_object_is_refused_in_s3_mode() {
    // Values of 2.4 kB become objects of their own, and a snapshot is written every few keys.
    corruption_is_found("s3", &["--s3-value-objects-from", "2kb", "--s3-snapshot-keys", "4"], Expect::Refusal);
}
