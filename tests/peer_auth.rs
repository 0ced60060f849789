//! The peer port, tried as a stranger would: a raw gRPC client built from the project's own
//! proto, on a `cluster up` cluster, with no credentials. Every call fails — the connection
//! fails the secret handshake before a byte of HTTP/2 is read — and the cluster is unchanged.
//! With the secret, absurd ballots and terms are refused too.

mod common;

use common::{Down, addrs, redis, text, up, valthree};
use tonic::Code;
use tonic::transport::Channel;
use valthree::peer::proto::raft_peer_client::RaftPeerClient;
use valthree::peer::{ClusterSecret, PeerClient, proto};

fn peer_addr(status: &serde_json::Value, i: usize) -> String {
    status["nodes"][i]["peer_addr"].as_str().unwrap().to_string()
}

/// A stranger's channel: plain gRPC, no handshake.
fn channel(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy()
}

/// A member's channel: its connections prove `secret`, as a node's do.
fn member_channel(addr: &str, secret: &ClusterSecret) -> Channel {
    valthree::peer::channel(addr, None, Some(secret)).unwrap()
}

/// The secret `cluster up` gave the nodes (cluster.json is readable by its owner only).
fn cluster_secret(dir: &std::path::Path) -> ClusterSecret {
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("cluster.json")).unwrap()).unwrap();
    ClusterSecret::new(state["cluster_secret"].as_str().unwrap()).unwrap()
}

fn get(addr: &str, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut redis(addr)).unwrap()
}

fn prepare(key: &str, counter: u64) -> proto::PaxosBatch {
    proto::PaxosBatch {
        from: 9,
        to: 0,
        messages: vec![proto::PaxosMessage {
            key: key.as_bytes().to_vec().into(),
            round: 1,
            request: Some(proto::paxos_message::Request::Prepare(proto::Prepare {
                ballot: Some(proto::Ballot { counter, node: 9 }),
            })),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_on_the_paxos_peer_port_gets_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = tokio::task::block_in_place(|| up(&dir, "paxos", &[]));
    let _down = Down(&dir);
    let client_addr = addrs(&status)[0].clone();
    let _: () =
        tokio::task::block_in_place(|| redis::cmd("SET").arg("k").arg("mine").query(&mut redis(&client_addr))).unwrap();
    let mut stranger = PeerClient::new(channel(&peer_addr(&status, 1)));

    let forward = proto::ForwardRequest {
        from: 9,
        key: b"k".to_vec().into(),
        command: Some(proto::forward_request::Command::Set(proto::Set {
            value: b"stolen".to_vec().into(),
            condition: 0,
            get: false,
            if_value: None,
        })),
    };
    let refusals = [
        stranger.forward(forward.clone()).await.map(|_| ()),
        stranger.list_keys(proto::ListKeysRequest { from: 9, tombstones: true }).await.map(|_| ()),
        stranger.paxos(prepare("k", u64::MAX)).await.map(|_| ()),
        stranger
            .configure(proto::Config {
                version: u64::MAX,
                members: vec![],
                previous: vec![],
                joint: false,
                highest_id: 9,
            })
            .await
            .map(|_| ()),
        stranger.ping(proto::PingRequest { from: 9 }).await.map(|_| ()),
    ];
    for (i, refused) in refusals.into_iter().enumerate() {
        refused.expect_err(&format!("call {i}: a stranger's call must fail"));
    }
    // A wrong secret is no better than none.
    let wrong = ClusterSecret::new("a wrong secret, long enough").unwrap();
    let refused = PeerClient::new(member_channel(&peer_addr(&status, 1), &wrong)).forward(forward).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "the handshake fails: {refused:?}");

    // Nothing changed: the value, the key count, and writes still work.
    let value = tokio::task::block_in_place(|| get(&client_addr, "k"));
    assert_eq!(value.as_deref(), Some("mine"));

    // With the secret, an absurd ballot is still refused, and never persisted.
    let mut member = PeerClient::new(member_channel(&peer_addr(&status, 1), &cluster_secret(&dir)));
    let refused = member.paxos(prepare("k", u64::MAX)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let _: () = tokio::task::block_in_place(|| redis::cmd("SET").arg("k").arg("after").query(&mut redis(&client_addr)))
        .unwrap();
    assert_eq!(tokio::task::block_in_place(|| get(&client_addr, "k")).as_deref(), Some("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_on_the_raft_peer_port_cannot_vote_write_or_brick_the_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let status = tokio::task::block_in_place(|| up(&dir, "raft", &[]));
    let _down = Down(&dir);
    let client_addr = addrs(&status)[0].clone();
    let _: () =
        tokio::task::block_in_place(|| redis::cmd("SET").arg("k").arg("mine").query(&mut redis(&client_addr))).unwrap();
    let payload = |body: Vec<u8>| proto::RaftPayload { from: 9, body: body.into() };
    let mut stranger = RaftPeerClient::new(channel(&peer_addr(&status, 1)));
    let refusals = [
        stranger.vote(payload(vec![0; 16])).await.map(|_| ()),
        stranger.append_entries(payload(vec![0; 16])).await.map(|_| ()),
        stranger.install_snapshot(payload(vec![0; 16])).await.map(|_| ()),
        stranger.forward(payload(vec![0; 16])).await.map(|_| ()),
        stranger.read_index(payload(vec![])).await.map(|_| ()),
        stranger.probe(payload(vec![])).await.map(|_| ()),
    ];
    for (i, refused) in refusals.into_iter().enumerate() {
        refused.expect_err(&format!("call {i}: a stranger's call must fail"));
    }

    // A member's vote at term u64::MAX (it would be persisted and brick the cluster).
    let vote = openraft::raft::VoteRequest::<u64> { vote: openraft::Vote::new(u64::MAX, 9), last_log_id: None };
    let body = postcard::to_stdvec(&vote).unwrap();
    let mut member = RaftPeerClient::new(member_channel(&peer_addr(&status, 1), &cluster_secret(&dir)));
    let refused = member.vote(payload(body)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // The cluster still has its leader and its data, and takes writes.
    let _: () = tokio::task::block_in_place(|| redis::cmd("SET").arg("k").arg("after").query(&mut redis(&client_addr)))
        .unwrap();
    for addr in addrs(&status_after(&dir)) {
        assert_eq!(tokio::task::block_in_place(|| get(&addr, "k")).as_deref(), Some("after"), "via {addr}");
    }
}

fn status_after(dir: &std::path::Path) -> serde_json::Value {
    tokio::task::block_in_place(|| common::cluster(dir, &["status"]))
}

#[test]
fn a_node_reachable_from_other_hosts_refuses_to_start_without_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let port = common::free_port().to_string();
    for mode in ["paxos", "raft"] {
        let out = std::process::Command::new(common::BIN)
            .args(["serve", "--mode", mode, "--addr", &format!("127.0.0.1:{port}")])
            .args(["--peer-addr", "0.0.0.0:0", "--data-dir", data.to_str().unwrap()])
            .env_remove(valthree::peer::SECRET_ENV)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{mode}: {}", text(&out));
        assert!(text(&out).contains("peers are not authenticated"), "{mode}: {}", text(&out));
    }
    let short = valthree(&["serve", "--mode", "paxos", "--cluster-secret-file", "/nonexistent/secret"]);
    assert_eq!(short.status.code(), Some(2));
    assert!(text(&short).contains("/nonexistent/secret"), "{}", text(&short));
}

/// Data at rest is its owner's alone whatever the umask: directories 0700, files 0600 (the
/// paxos acceptor, raft's log and snapshot with every value, s3's document, logs, the state
/// file with the cluster's secrets).
#[test]
fn data_directories_and_files_are_private_under_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    for mode in ["s3", "paxos", "raft"] {
        let dir = tmp.path().join(mode);
        let base = common::free_base().to_string();
        let script = format!(
            "umask 000; exec \"$V\" cluster --dir {} up --mode {mode} --nodes 1 --base-port {base}",
            dir.display()
        );
        let out = std::process::Command::new("bash").arg("-c").arg(&script).env("V", common::BIN).output().unwrap();
        let _down = Down(&dir);
        assert!(out.status.success(), "{mode}: {}", text(&out));
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("secret value")
            .query(&mut redis(&format!("127.0.0.1:{}", base.parse::<u16>().unwrap() + 1)))
            .unwrap();
        let mut checked = 0;
        let mut walk = vec![dir.clone()];
        while let Some(path) = walk.pop() {
            let meta = std::fs::metadata(&path).unwrap();
            let bits = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(bits, 0o700, "{mode}: directory {}", path.display());
                walk.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(bits & 0o077, 0, "{mode}: {} is {bits:o}", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 4, "{mode}: only {checked} paths");
    }
}

/// `cluster up -- --requirepass P` hands the password to the nodes in their environment:
/// `ps` (their command lines) never shows it, clients must AUTH, and every cluster command
/// and a checked workload still work.
#[test]
fn a_cluster_password_never_appears_in_a_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let password = "correct-horse-battery-staple";
    let status = up(&dir, "paxos", &["--requirepass", password]);
    let _down = Down(&dir);
    for node in status["nodes"].as_array().unwrap() {
        let pid = node["pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(password), "the password is in {pid}'s argv");
    }
    let addr = addrs(&status)[0].clone();
    let refused = redis::cmd("GET").arg("k").query::<Option<String>>(&mut redis(&addr)).unwrap_err();
    assert_eq!(refused.code(), Some("NOAUTH"), "{refused}");
    let status = common::cluster(&dir, &["status"]);
    assert_eq!(status["nodes"][0]["info"]["mode"], "paxos", "cluster status authenticates: {status}");
    let history = tmp.path().join("h.jsonl");
    let out = common::workload(&dir, &history, &["--duration", "2s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).lines().any(|l| l.starts_with("linearizable:")), "{}", text(&out));
}

/// Mutual TLS on the peer plane: a raft cluster replicates over it, and a caller without a
/// certificate from the cluster's CA cannot even complete a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_over_mutual_tls_replicate_and_refuse_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    common::certificates(d);
    let p = |f: &str| d.join(f).display().to_string();
    let (cert, key, ca) = (p("server.crt"), p("server.key"), p("ca.crt"));
    let dir = d.join("c");
    let status = tokio::task::block_in_place(|| {
        up(&dir, "raft", &["--peer-tls-cert", &cert, "--peer-tls-key", &key, "--peer-tls-ca", &ca])
    });
    let _down = Down(&dir);
    let nodes = addrs(&status);
    for (i, addr) in nodes.iter().enumerate() {
        let _: () = tokio::task::block_in_place(|| redis::cmd("SET").arg("k").arg(i).query(&mut redis(addr))).unwrap();
    }
    for addr in &nodes {
        assert_eq!(tokio::task::block_in_place(|| get(addr, "k")).as_deref(), Some("2"), "via {addr}");
    }
    // A plain-text stranger, and a TLS one without a client certificate: no call completes.
    let peer = peer_addr(&status, 1);
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{peer}")).unwrap().connect().await;
    if let Ok(channel) = plain {
        let refused = RaftPeerClient::new(channel).probe(proto::RaftPayload { from: 9, body: vec![].into() }).await;
        assert!(refused.is_err(), "a plain-text call to a TLS peer port succeeded");
    }
    let ca_only = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(d.join("ca.crt")).unwrap()));
    let tls = tonic::transport::Endpoint::from_shared(format!("https://{peer}")).unwrap().tls_config(ca_only).unwrap();
    if let Ok(channel) = tls.connect().await {
        let refused = RaftPeerClient::new(channel).probe(proto::RaftPayload { from: 9, body: vec![].into() }).await;
        assert!(refused.is_err(), "a call without a client certificate succeeded");
    }
}
