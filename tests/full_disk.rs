//! A real full disk: node n1's data directory (s3 mode: the shared object directory) on a
//! 6 MB tmpfs, filled with 100 kB SETs until writes fail, then grown to 256 MB. Every mode
//! must say so and stop (a node whose storage failed exits with status 3 so that a
//! supervisor restarts it; it never lingers answering as if healthy), never acknowledge a
//! write it did not make durable, and serve every acknowledged write once restarted on the
//! grown disk.
//!
//! Mounting needs root (the CI runs tests as root); elsewhere the test says it is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Down, addrs, cluster, redis, text, valthree, wait_until};

/// A tmpfs mounted at a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output();
        match out {
            Ok(out) if out.status.success() => Ok(Self(at.to_path_buf())),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).output().unwrap();
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn value(i: usize) -> String {
    format!("{i:06}").repeat(100_000 / 6)
}

/// n1 (its process) is down.
fn n1_down(dir: &Path) -> bool {
    cluster(dir, &["status"])["nodes"][0]["state"] == "down"
}

/// The run of one mode; `Err` when the tmpfs cannot be mounted here.
fn full_disk(mode: &str) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // The directory `cluster up` gives n1 (s3: the object directory every node shares).
    let small = dir.join(if mode == "s3" { "objects" } else { "n1" });
    let disk = Tmpfs::mount(&small, "6m")?;
    let base = common::free_base().to_string();
    let status = cluster(&dir, &["up", "--mode", mode, "--nodes", "3", "--base-port", &base]);
    let _down = Down(&dir);
    let addrs = addrs(&status);
    let log = PathBuf::from(status["nodes"][0]["log"].as_str().unwrap());
    wait_until(Duration::from_secs(30), "a first write", || {
        redis::cmd("SET").arg("first").arg("1").query::<String>(&mut redis(&addrs[0])).is_ok()
    });

    // Fill it: 100 kB SETs through n1 until one fails (6 MB: well before 200 of them).
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let key = format!("big{i}");
        let reply = redis::Client::open(format!("redis://{}/", addrs[0]))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .and_then(|mut con| redis::cmd("SET").arg(&key).arg(value(i)).query::<String>(&mut con));
        match reply {
            Ok(_) => acked.push((i, key)),
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
        if n1_down(&dir) {
            refused = Some("n1 exited".into());
            break;
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("{mode}: 200 SETs of 100 kB all acknowledged on a 6 MB disk"));
    eprintln!("{mode}: {} SETs acknowledged, then: {refused}", acked.len());

    // It says so and stops: n1 exits (no zombie answering as if healthy), its log says why.
    wait_until(Duration::from_secs(30), "n1 to exit after its disk filled up", || n1_down(&dir));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("storage failed"), "{mode}: n1's log does not say its storage failed: {said}");

    // Room again: restarted, n1 serves every acknowledged write.
    disk.grow("256m");
    let out = valthree(&["cluster", "--dir", dir.to_str().unwrap(), "restart", "n1"]);
    assert!(out.status.success(), "{mode}: n1 does not restart on the grown disk: {}", text(&out));
    for node in ["n2", "n3"] {
        // s3 mode: the other nodes share the disk and may have stopped too.
        let listed = cluster(&dir, &["status"]);
        if listed["nodes"].as_array().unwrap().iter().any(|n| n["name"] == node && n["state"] == "down") {
            cluster(&dir, &["restart", node]);
        }
    }
    let mut con = redis(&addrs[0]);
    let health: redis::RedisResult<String> = redis::cmd("VALTHREE.HEALTH").query(&mut con);
    assert!(health.is_ok(), "{mode}: n1 restarted on the grown disk is not healthy: {health:?}");
    for (i, key) in &acked {
        let mut got = None;
        wait_until(Duration::from_secs(30), "an acknowledged write to be read", || {
            got = redis::cmd("GET").arg(key).query::<Option<String>>(&mut redis(&addrs[0])).ok();
            got.is_some()
        });
        assert_eq!(got.flatten().as_deref(), Some(value(*i).as_str()), "{mode}: acknowledged {key} was lost");
    }
    Ok(())
}

#[test]
fn a_full_disk_stops_the_node_and_loses_no_acknowledged_write_in_every_mode() {
    for mode in ["s3", "paxos", "raft", "dynamo"] {
        match full_disk(mode) {
            Ok(()) => {}
            Err(why) => {
                eprintln!("skipped: cannot mount a tmpfs here ({why}); run the tests as root");
                return;
            }
        }
    }
}
