//! s3 mode end to end: a real S3 server (moto) and the embedded local directory, one node
//! and three nodes sharing one database, crashes and outages.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Moto, Valthree, wait_until};
use valthree::mode::s3::{S3Mode, S3ModeOptions};
use valthree::object::{ObjectStore, PutCondition, S3, S3Options};
use valthree::store::{SetOptions, Store, run_conformance_suite};

async fn moto_node(moto: &Moto, bucket: &str, batch: bool) -> Arc<dyn Store> {
    let s3 = S3::connect(S3Options {
        endpoint: Some(moto.endpoint()),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        access_key: Some("test".into()),
        secret_key: Some("test".into()),
    })
    .await
    .expect("connect to moto");
    let objects: Arc<dyn ObjectStore> = Arc::new(s3);
    Arc::new(S3Mode::start(objects, S3ModeOptions { batch, ..Default::default() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_one_moto_node() {
    let moto = Moto::start();
    run_conformance_suite(vec![moto_node(&moto, "one", true).await]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_three_nodes_sharing_a_moto_bucket() {
    let moto = Moto::start();
    let nodes = vec![
        moto_node(&moto, "three", true).await,
        moto_node(&moto, "three", false).await,
        moto_node(&moto, "three", true).await,
    ];
    run_conformance_suite(nodes).await;
}

/// Counts of INCR outcomes seen by clients.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    tryagain: u64,
    uncertain: u64,
}

/// `clients` threads each send `per_client` INCRs, spread over `addrs`.
fn incr_from_everywhere(addrs: &[String], clients: usize, per_client: usize) -> Tally {
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("redis://{}/", addrs[c % addrs.len()]);
            thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut tally = Tally::default();
                for _ in 0..per_client {
                    match redis::cmd("INCR").arg("counter").query::<i64>(&mut con) {
                        Ok(_) => tally.ok += 1,
                        Err(e) if e.code() == Some("TRYAGAIN") => tally.tryagain += 1,
                        Err(e) if e.code() == Some("UNCERTAIN") => tally.uncertain += 1,
                        Err(e) => panic!("unexpected INCR failure: {e}"),
                    }
                }
                tally
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).fold(Tally::default(), |a, b| Tally {
        ok: a.ok + b.ok,
        tryagain: a.tryagain + b.tryagain,
        uncertain: a.uncertain + b.uncertain,
    })
}

fn read_counter(addr: &str) -> u64 {
    let mut con = redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().unwrap();
    redis::cmd("GET").arg("counter").query::<Option<u64>>(&mut con).unwrap().unwrap_or(0)
}

fn assert_no_lost_or_doubled_incr(nodes: &[Valthree]) {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    let tally = incr_from_everywhere(&addrs, 12, 40);
    assert!(tally.ok > 0, "{tally:?}");
    assert_eq!(tally.uncertain, 0, "no fault was injected, so no outcome may be unknown: {tally:?}");
    for addr in &addrs {
        assert_eq!(read_counter(addr), tally.ok, "every node reads exactly the acknowledged INCRs: {tally:?}");
    }
}

#[test]
fn three_servers_on_one_moto_bucket_lose_no_incr() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let flags = moto.serve_flags("incr");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Started all at once: their start-up checks of the bucket must not disturb each other.
    let nodes: Vec<Valthree> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..3).map(|_| s.spawn(|| Valthree::start(dir.path(), &flags))).collect();
        starting.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_no_lost_or_doubled_incr(&nodes);
}

#[test]
fn three_servers_on_one_local_directory_lose_no_incr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let data = data.to_str().unwrap();
    let nodes: Vec<Valthree> = [&["--s3-batch", "on"][..], &["--s3-batch", "off"], &[]]
        .iter()
        .map(|extra| {
            let mut args = vec!["--data-dir", data];
            args.extend_from_slice(extra);
            Valthree::start(dir.path(), &args)
        })
        .collect();
    assert_no_lost_or_doubled_incr(&nodes);
}

fn info_field(con: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("valthree").query(con).unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("{field}:"))).expect(field);
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn group_commit_carries_many_writes_per_put_and_off_does_not() {
    let dir = tempfile::tempdir().unwrap();
    for (batch, data) in [("on", "batched"), ("off", "unbatched")] {
        let data = dir.path().join(data);
        let node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap(), "--s3-batch", batch]);
        let tally = incr_from_everywhere(&[node.addr()], 16, 25);
        let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
        let (puts, writes) = (info_field(&mut con, "s3_puts"), info_field(&mut con, "s3_writes_committed"));
        assert_eq!(writes, tally.ok);
        if batch == "on" {
            assert!(
                writes > 2 * puts,
                "group commit should carry several writes per PUT: {writes} writes, {puts} PUTs"
            );
        } else {
            assert!(puts >= writes, "without batching every write has its own PUT: {writes} writes, {puts} PUTs");
        }
    }
}

/// A pipeline of SETs on one connection is one batch for the committer: a few PUTs, not one
/// each; the SETs apply in the order sent (each `SET … GET` sees the one before it), and every
/// acknowledged one survives a kill -9.
#[test]
fn pipelined_sets_on_one_connection_share_a_put_and_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let puts_before = info_field(&mut con, "s3_puts");
    let mut pipe = redis::pipe();
    for i in 0..60 {
        pipe.cmd("SET").arg("ordered").arg(i).arg("GET");
        pipe.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).unwrap();
    let puts = info_field(&mut con, "s3_puts") - puts_before;
    for (i, pair) in replies.chunks(2).enumerate() {
        let previous = match &pair[0] {
            redis::Value::Nil => None,
            redis::Value::BulkString(v) => Some(String::from_utf8(v.clone()).unwrap()),
            other => panic!("SET ordered {i} GET answered {other:?}"),
        };
        assert_eq!(previous, i.checked_sub(1).map(|p| p.to_string()), "SET {i} saw another SET before it");
        assert_eq!(pair[1], redis::Value::Okay, "SET k{i}");
    }
    assert!(puts <= 12, "120 pipelined SETs took {puts} PUTs: they should share a few");
    node.kill9();
    node.restart();
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    assert_eq!(values, (0..60).map(Some).collect::<Vec<_>>());
    let last: u64 = redis::cmd("GET").arg("ordered").query(&mut con).unwrap();
    assert_eq!(last, 59);
}

/// Writer `w` writes `SET w<w>-<i> <i>` one at a time until the connection fails, counting
/// acknowledgements in `acked_so_far` and returning the acknowledged (key, value) pairs. Each
/// writer has keys of its own, so no other writer's write can stand in for one it lost.
fn write_until_killed(
    addr: String,
    w: usize,
    acked_so_far: Arc<AtomicUsize>,
) -> thread::JoinHandle<Vec<(String, u64)>> {
    thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(mut con) = redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection() else {
            return acked;
        };
        for i in 0u64.. {
            let key = format!("w{w}-{i}");
            match redis::cmd("SET").arg(&key).arg(i).query::<String>(&mut con) {
                Ok(_) => {
                    acked.push((key, i));
                    acked_so_far.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => break,
            }
        }
        acked
    })
}

fn kill_mid_burst_and_check(flags: &[&str], dir: &std::path::Path) {
    let mut node = Valthree::start(dir, flags);
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4).map(|w| write_until_killed(node.addr(), w, acked_so_far.clone())).collect();
    // The kill comes in the middle of the burst: once enough writes were acknowledged.
    wait_until(Duration::from_secs(30), "100 acknowledged writes before the kill", || {
        assert!(!writers.iter().all(|w| w.is_finished()), "every writer stopped before the kill");
        acked_so_far.load(Ordering::SeqCst) >= 100
    });
    node.kill9();
    let acked: Vec<(String, u64)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    node.restart();
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let keys: Vec<&String> = acked.iter().map(|(k, _)| k).collect();
    let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    let lost: Vec<_> =
        acked.iter().zip(&values).filter(|((_, want), got)| **got != Some(*want)).map(|((k, _), _)| k).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged writes lost or changed: {lost:?}", lost.len(), acked.len());
}

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_write_on_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    kill_mid_burst_and_check(&["--data-dir", data.to_str().unwrap()], dir.path());
}

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_write_on_moto() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let flags = moto.serve_flags("crash");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    kill_mid_burst_and_check(&flags, dir.path());
}

#[test]
fn a_dead_object_store_gives_tryagain_not_a_crash() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let flags = moto.serve_flags("outage");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut node = Valthree::start(dir.path(), &flags);
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    drop(moto);
    let started = Instant::now();
    let err = redis::cmd("SET").arg("k").arg("v2").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "refused connection: nothing was sent, so definite: {err}");
    let err = redis::cmd("GET").arg("k").query::<Option<String>>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(node.child.try_wait().unwrap().is_none(), "the server must survive an object-store outage");
}

#[test]
fn an_invalid_document_is_refused_at_start_and_reported_not_served_later() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_flag = ["--data-dir", data.to_str().unwrap()];
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("db.json"), b"{this is not json").unwrap();
    let port = common::free_port().to_string();
    let out = common::valthree(&["serve", "--addr", &format!("127.0.0.1:{port}"), data_flag[0], data_flag[1]]);
    let said = common::text(&out);
    assert!(!out.status.success(), "it started on an invalid document: {said}");
    let file = data.join("db.json").display().to_string();
    assert!(said.contains(&file) && said.contains("is corrupt") && said.contains("valthree restore"), "{said}");

    // Found while serving (a document damaged under a running node): reported, never served,
    // never overwritten.
    std::fs::remove_file(data.join("db.json")).unwrap();
    let node = Valthree::start(dir.path(), &data_flag);
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    std::fs::write(data.join("db.json"), b"{this is not json").unwrap();
    let err = redis::cmd("GET").arg("k").query::<Option<String>>(&mut con).unwrap_err();
    assert!(err.to_string().contains("invalid document"), "{err}");
    let err = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    assert_eq!(std::fs::read(data.join("db.json")).unwrap(), b"{this is not json", "nothing may overwrite it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_document_on_moto_is_refused_at_start() {
    let moto = Moto::start();
    let s3 = S3::connect(S3Options {
        endpoint: Some(moto.endpoint()),
        bucket: "flipped".into(),
        region: "us-east-1".into(),
        access_key: Some("test".into()),
        secret_key: Some("test".into()),
    })
    .await
    .expect("connect to moto");
    let objects: Arc<dyn ObjectStore> = Arc::new(s3);
    let node = S3Mode::open(objects.clone(), S3ModeOptions::default()).await.unwrap();
    let value = Bytes::from_static(b"a value the disk will damage");
    node.set(Bytes::from_static(b"k"), value, SetOptions::default()).await.unwrap();
    drop(node);
    let good = objects.get("db.json").await.unwrap().unwrap();
    let mut bad = good.body.to_vec();
    let at = bad.windows(5).position(|w| w == b"value").unwrap();
    bad[at] ^= 0x01;
    objects.put("db.json", bad.into(), PutCondition::IfMatch(good.etag)).await.unwrap();
    let Err(e) = S3Mode::open(objects.clone(), S3ModeOptions::default()).await else {
        panic!("s3 mode started on a document with a flipped byte")
    };
    let said = e.to_string();
    assert!(said.contains("s3://flipped/db.json") && said.contains("checksum does not match"), "{said}");
}

/// Deletes a bucket and everything in it, through boto3 from the test venv.
fn delete_bucket(moto: &Moto, bucket: &str) {
    let script = format!(
        "import boto3\ns3 = boto3.resource('s3', endpoint_url='{}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\nb = s3.Bucket('{bucket}')\n\
         b.objects.all().delete()\nb.delete()\n",
        moto.endpoint()
    );
    let out = std::process::Command::new(&moto.python).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_missing_bucket_is_reported_not_retried_as_a_conflict() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let flags = moto.serve_flags("vanishing");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = Valthree::start(dir.path(), &flags);
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    delete_bucket(&moto, "vanishing");
    let err = redis::cmd("SET").arg("k").arg("w").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    assert!(err.to_string().contains("NoSuchBucket") && !err.to_string().contains("conflict"), "{err}");
}

/// The value objects (`db.json.value.*`) in a local object directory.
fn value_objects(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db.json.value."))
        .collect();
    names.sort();
    names
}

#[test]
fn large_values_live_in_objects_of_their_own_and_go_when_unreferenced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let flags = ["--data-dir", data.to_str().unwrap(), "--s3-value-objects-from", "1kb"];
    let mut a = Valthree::start(dir.path(), &flags);
    let b = Valthree::start(dir.path(), &flags);
    let mut ca = redis::Client::open(a.url()).unwrap().get_connection().unwrap();
    let mut cb = redis::Client::open(b.url()).unwrap().get_connection().unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let _: () = redis::cmd("SET").arg("big").arg(&big).query(&mut ca).unwrap();
    let _: () = redis::cmd("SET").arg("small").arg("hello").query(&mut ca).unwrap();
    assert_eq!(value_objects(&data).len(), 1, "one object for the one large value");
    let document = std::fs::metadata(data.join("db.json")).unwrap().len();
    assert!(document < 1000, "the document holds a reference, not 300 kB: {document} bytes");
    // Another node reads the value through the reference, byte for byte.
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut cb).unwrap();
    assert_eq!(got, big);
    // Overwritten from the other node: the old object goes, the new one stays.
    let before = value_objects(&data);
    let bigger: Vec<u8> = big.iter().rev().copied().collect();
    let _: () = redis::cmd("SET").arg("big").arg(&bigger).query(&mut cb).unwrap();
    wait_until(Duration::from_secs(5), "the overwritten value's object is deleted", || {
        let now = value_objects(&data);
        now.len() == 1 && now != before
    });
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut ca).unwrap();
    assert_eq!(got, bigger, "the first node reads the new version");
    // A restart reads it back from its object.
    a.restart();
    let mut ca = redis::Client::open(a.url()).unwrap().get_connection().unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut ca).unwrap();
    assert_eq!(got, bigger);
    // Deleted: no object is left, and the small key is untouched.
    let removed: u64 = redis::cmd("DEL").arg("big").query(&mut ca).unwrap();
    assert_eq!(removed, 1);
    wait_until(Duration::from_secs(5), "the deleted value's object is gone", || value_objects(&data).is_empty());
    let small: String = redis::cmd("GET").arg("small").query(&mut cb).unwrap();
    assert_eq!(small, "hello");
}

#[test]
fn large_values_on_moto_are_objects_read_by_every_node() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut flags = moto.serve_flags("values");
    flags.extend(["--s3-value-objects-from".to_string(), "1kb".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (a, b) = (Valthree::start(dir.path(), &flags), Valthree::start(dir.path(), &flags));
    let mut ca = redis::Client::open(a.url()).unwrap().get_connection().unwrap();
    let mut cb = redis::Client::open(b.url()).unwrap().get_connection().unwrap();
    for round in 0..3u8 {
        let value = vec![b'a' + round; 50_000];
        let _: () = redis::cmd("SET").arg("big").arg(&value).query(&mut ca).unwrap();
        let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut cb).unwrap();
        assert_eq!(got, value, "round {round}");
        assert_eq!(info_field(&mut cb, "s3_value_objects"), 1, "the reader holds one value's object");
    }
}

#[test]
fn maxmemory_refuses_growing_writes_with_oom_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Valthree::start(dir.path(), &["--data-dir", data.to_str().unwrap(), "--maxmemory", "1kb"]);
    let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("small").query(&mut con).unwrap();
    let refused = redis::cmd("SET").arg("k").arg(vec![b'x'; 2000]).query::<()>(&mut con).unwrap_err();
    assert_eq!(refused.code(), Some("OOM"), "{refused}");
    assert!(refused.to_string().contains("command not allowed when used memory > 'maxmemory'"), "{refused}");
    let appended = redis::cmd("APPEND").arg("k").arg(vec![b'y'; 2000]).query::<u64>(&mut con).unwrap_err();
    assert_eq!(appended.code(), Some("OOM"));
    let kept: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(kept, "small", "a refused write leaves the old value");
    assert!(info_field(&mut con, "used_memory_dataset") <= 1024);
    assert_eq!(info_field(&mut con, "maxmemory"), 1024);
    // Shrinking always works, and then the larger write fits.
    let _: u64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg(vec![b'x'; 900]).query(&mut con).unwrap();
    let len: u64 = redis::cmd("STRLEN").arg("k").query(&mut con).unwrap();
    assert_eq!(len, 900);
}

/// The snapshots (`db.json.base.*`) in a local object directory.
fn snapshots(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db.json.base."))
        .collect()
}

#[test]
fn three_nodes_writing_over_snapshots_lose_nothing_and_keep_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let flags = ["--data-dir", data.to_str().unwrap(), "--s3-snapshot-keys", "8"];
    let nodes: Vec<Valthree> = (0..3).map(|_| Valthree::start(dir.path(), &flags)).collect();
    let addrs: Vec<String> = nodes.iter().map(Valthree::addr).collect();
    // 6 writers, 40 keys each, over all three nodes; every other key is deleted again.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let url = format!("redis://{}/", addrs[w % 3]);
            thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                // A write that lost too many races answers TRYAGAIN (it certainly did not
                // happen): a client retries it.
                let mut applied = |cmd: &redis::Cmd| {
                    for _ in 0..20 {
                        match cmd.query::<redis::Value>(&mut con) {
                            Err(e) if e.code() == Some("TRYAGAIN") => continue,
                            other => return other.unwrap(),
                        }
                    }
                    panic!("{cmd:?}: TRYAGAIN 20 times in a row");
                };
                for i in 0..40 {
                    applied(redis::cmd("SET").arg(format!("w{w}-{i}")).arg(i));
                    if i % 2 == 1 {
                        applied(redis::cmd("DEL").arg(format!("w{w}-{}", i - 1)));
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    for node in &nodes {
        let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
        let size: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(size, 6 * 20, "every node sees every surviving key");
        for w in 0..6 {
            for i in 0..40 {
                let got: Option<u64> = redis::cmd("GET").arg(format!("w{w}-{i}")).query(&mut con).unwrap();
                assert_eq!(got, (i % 2 == 1).then_some(i), "w{w}-{i}");
            }
        }
    }
    let mut con = redis::Client::open(nodes[0].url()).unwrap().get_connection().unwrap();
    let written: u64 = (0..3)
        .map(|n| {
            let mut con = redis::Client::open(nodes[n].url()).unwrap().get_connection().unwrap();
            info_field(&mut con, "s3_snapshots_written")
        })
        .sum();
    assert!(written >= 3, "the documents started over from new snapshots: {written}");
    wait_until(Duration::from_secs(5), "replaced snapshots are deleted", || snapshots(&data).len() == 1);
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    wait_until(Duration::from_secs(5), "FLUSHALL leaves no snapshot", || snapshots(&data).is_empty());
}

/// A large value that lives in the snapshot, then is deleted, or set again to the same bytes,
/// must leave a database every new or restarted node can load: the snapshot's objects stay
/// as long as the snapshot does.
#[test]
fn large_values_changed_after_their_snapshot_stay_loadable_by_fresh_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let flags = ["--data-dir", data.to_str().unwrap(), "--s3-value-objects-from", "1kb", "--s3-snapshot-keys", "8"];
    let mut a = Valthree::start(dir.path(), &flags);
    let mut con = redis::Client::open(a.url()).unwrap().get_connection().unwrap();
    let (same, gone) = (vec![b'Z'; 5000], vec![b'B'; 5000]);
    let _: () = redis::cmd("SET").arg("same").arg(&same).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("gone").arg(&gone).query(&mut con).unwrap();
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut con).unwrap();
    }
    assert_eq!(snapshots(&data).len(), 1, "a snapshot holds both values");
    let _: u64 = redis::cmd("DEL").arg("gone").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("same").arg("small").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("same").arg(&same).query(&mut con).unwrap();
    let fresh = Valthree::start(dir.path(), &flags);
    for node in [&fresh, &a] {
        let mut con = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
        let k1: String = redis::cmd("GET").arg("k1").query(&mut con).unwrap();
        assert_eq!(k1, "1");
        let got: Vec<u8> = redis::cmd("GET").arg("same").query(&mut con).unwrap();
        assert_eq!(got, same);
        let got: Option<Vec<u8>> = redis::cmd("GET").arg("gone").query(&mut con).unwrap();
        assert_eq!(got, None);
    }
    a.restart();
    let mut con = redis::Client::open(a.url()).unwrap().get_connection().unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("same").query(&mut con).unwrap();
    assert_eq!(got, same, "a restarted node loads it too");
    // Once a new snapshot replaces the old one, the objects only the old one named go.
    for i in 20..40 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut con).unwrap();
    }
    wait_until(Duration::from_secs(5), "only the live value's object is left", || value_objects(&data).len() == 1);
}

/// `valthree s3-check` against `endpoint`, bucket `check`.
fn s3_check(endpoint: &str) -> std::process::Output {
    s3_check_bucket(endpoint, "check")
}

/// `valthree s3-check` against `endpoint` and `bucket`.
fn s3_check_bucket(endpoint: &str, bucket: &str) -> std::process::Output {
    common::valthree(&[
        "s3-check",
        "--s3-endpoint",
        endpoint,
        "--s3-bucket",
        bucket,
        "--s3-access-key",
        "test",
        "--s3-secret-key",
        "test",
    ])
}

/// Runs a boto3 `script` against moto, with `s3` the client; returns what it printed.
fn boto3(moto: &Moto, script: &str) -> String {
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n{script}\n",
        moto.endpoint()
    );
    let out = std::process::Command::new(&moto.python).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The buckets on moto.
fn buckets(moto: &Moto) -> Vec<String> {
    boto3(moto, "print('\\n'.join(b['Name'] for b in s3.list_buckets()['Buckets']))")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The keys in `bucket` on moto.
fn bucket_keys(moto: &Moto, bucket: &str) -> Vec<String> {
    let script = format!(
        "import boto3\ns3 = boto3.resource('s3', endpoint_url='{}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n\
         print('\\n'.join(o.key for o in s3.Bucket('{bucket}').objects.all()))\n",
        moto.endpoint()
    );
    let out = std::process::Command::new(&moto.python).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn s3_check_passes_on_moto_and_leaves_no_scratch_key() {
    let moto = Moto::start();
    boto3(&moto, "s3.create_bucket(Bucket='check')");
    let out = s3_check(&moto.endpoint());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "s3-check on moto: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PASSED") && !stdout.contains("FAIL "), "{stdout}");
    assert!(stdout.contains("concurrent If-Match PUTs on one ETag: none with more than one winner"), "{stdout}");
    assert_eq!(bucket_keys(&moto, "check"), Vec::<String>::new(), "scratch keys left behind");
}

/// A check that cannot run proves nothing either way: a misspelt bucket (which is never
/// created: before, s3-check created it and ran its check there) and an endpoint nothing
/// listens on both exit 2 with a message, not 1 (failed) or 0.
#[test]
fn s3_check_is_inconclusive_without_its_bucket_or_endpoint_and_creates_no_bucket() {
    let moto = Moto::start();
    boto3(&moto, "s3.create_bucket(Bucket='check')");
    let out = s3_check_bucket(&moto.endpoint(), "chekc");
    let all = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "a misspelt bucket: {all}");
    assert!(all.contains("bucket chekc does not exist") && all.contains("not created"), "{all}");
    assert_eq!(buckets(&moto), ["check"], "s3-check created a bucket");

    let nothing = format!("http://127.0.0.1:{}", common::free_port());
    let out = s3_check(&nothing);
    let all = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "no server at the endpoint: {all}");
    assert!(all.contains("error:") && !all.contains("PASSED") && !all.contains("FAILED"), "{all}");
}

#[test]
fn s3_check_fails_on_s3s_fs_and_serve_refuses_it_without_the_override() {
    let s3s = common::S3sFs::start();
    s3s.create_bucket("check");
    let out = s3_check(&s3s.endpoint());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "s3-check on s3s-fs: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("FAIL") && stdout.contains("FAILED: s3 mode on this object store could lose writes"),
        "{stdout}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let flags = [
        "--mode",
        "s3",
        "--s3-endpoint",
        &s3s.endpoint(),
        "--s3-bucket",
        "database",
        "--s3-access-key",
        "test",
        "--s3-secret-key",
        "test",
        "--data-dir",
        tmp.path().to_str().unwrap(),
    ];
    let port = common::free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let refused = common::valthree(&[&["serve", "--addr", &addr][..], &flags[..]].concat());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "serve started on a store that failed the check: {stderr}");
    assert!(stderr.contains("failed the check of conditional PUTs"), "{stderr}");
    assert!(stderr.contains("--unsafe-trust-object-store"), "the refusal names the override: {stderr}");

    let trusted = Valthree::start(tmp.path(), &[&flags[..], &["--unsafe-trust-object-store"]].concat());
    let mut con = common::redis(&trusted.addr());
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "v");
    assert!(trusted.log_text().contains("FAILED the check of conditional PUTs"), "the override is logged");
}
