//! The mode's counters and gauges: the fields each mode reports to INFO
//! ([`Store::describe`](crate::store::Store::describe)), typed and named for Prometheus by one
//! table. A field `raft_term` is the metric `valthree_raft_term`; a counter gets `_total`
//! (`valthree_paxos_rounds_total`). Fields that are text become labelled gauges: raft's role
//! (`valthree_raft_role{role="leader"} 1`) and dynamo's failure detector
//! (`valthree_dynamo_members{state="alive"} 3`). A field missing from the table is INFO's alone.

use super::{Kind, Sample};
use crate::store::ModeInfo;

/// A row: the INFO field, the metric's name, its kind, its help.
type Row = (&'static str, &'static str, Kind, &'static str);

macro_rules! rows {
    ($($field:literal $kind:ident $help:literal;)*) => {
        &[$(($field, concat!("valthree_", $field), Kind::$kind, $help)),*]
    };
}

/// Every numeric INFO field of every mode that is also a metric.
pub const FIELDS: &[Row] = rows! {
    "raft_term" Gauge "raft: the current term.";
    "raft_leader" Gauge "raft: the id of the leader this node knows (0: none).";
    "raft_last_log_index" Gauge "raft: the index of the last entry in this node's log.";
    "raft_commit_index" Gauge "raft: the highest index this node knows to be committed.";
    "raft_last_applied" Gauge "raft: the highest index applied to the state machine.";
    "raft_snapshot_index" Gauge "raft: the index of the last snapshot.";
    "raft_log_entries_kept" Gauge "raft: entries kept in the log (not yet purged by a snapshot).";
    "raft_log_bytes_kept" Gauge "raft: bytes of the entries kept in the log.";
    "raft_snapshot_bytes" Gauge "raft: the size of the snapshot on disk, in bytes.";
    "raft_leader_changes" Counter "raft: times this node saw the leader change.";
    "raft_writes_retried" Counter "raft: writes forwarded to a leader again after a leader change.";
    "raft_forwarded_writes" Counter "raft: writes this node forwarded to the leader.";
    "raft_forward_calls" Counter "raft: peer calls those writes went in (forwarded writes / calls: writes per call).";
    "raft_snapshots_installed" Counter "raft: snapshots installed from the leader.";
    "raft_snapshots_built" Counter "raft: snapshots this node built of its state machine.";
    "raft_proposals" Counter "raft: client writes proposed to the log.";
    "raft_proposal_batches" Counter "raft: log appends the proposals went in (proposals / batches: writes per append).";
    "raft_read_index_rounds" Counter "raft: read-index rounds (a leader confirming its leadership for linearizable reads).";
    "raft_replies_remembered" Gauge "raft: client-session replies remembered for retried writes.";
    "paxos_config_version" Gauge "paxos: the membership configuration's version.";
    "paxos_joint" Gauge "paxos: 1 while a membership change runs under joint consensus.";
    "paxos_slots" Gauge "paxos: registers this acceptor holds.";
    "paxos_rounds" Counter "paxos: CASPaxos rounds this node proposed.";
    "paxos_commands" Counter "paxos: commands carried by those rounds.";
    "paxos_one_round_trip_rounds" Counter "paxos: rounds that skipped the prepare phase (one round trip).";
    "paxos_retries" Counter "paxos: rounds retried after a conflicting ballot.";
    "paxos_out_of_reach_rounds" Counter "paxos: rounds refused at once, their key promised a ballot this node does not follow yet (a duel at the ceiling).";
    "paxos_forwarded" Counter "paxos: commands forwarded to the key's home node.";
    "paxos_served_for_peers" Counter "paxos: commands run here for other nodes.";
    "paxos_local_fallbacks" Counter "paxos: commands run here because the key's home did not answer.";
    "paxos_forwards_hedged" Counter "paxos: forwards given up on because their home answered neither them nor a ping (hung).";
    "paxos_tombstones_collected" Counter "paxos: deleted registers garbage-collected.";
    "dynamo_replicas" Gauge "dynamo: N, the replicas of each key.";
    "dynamo_r" Gauge "dynamo: R, the replies a read waits for.";
    "dynamo_w" Gauge "dynamo: W, the acks a write waits for.";
    "dynamo_partitions" Gauge "dynamo: partitions of the ring.";
    "dynamo_ring_version" Gauge "dynamo: the ring's version (each membership change adds one).";
    "dynamo_ring_changing" Gauge "dynamo: 1 while a membership change moves partitions.";
    "dynamo_partitions_pending" Gauge "dynamo: partitions still moving to a new owner.";
    "dynamo_objects" Gauge "dynamo: objects stored on this node.";
    "dynamo_puts" Counter "dynamo: writes this node coordinated.";
    "dynamo_gets" Counter "dynamo: reads this node coordinated.";
    "dynamo_sibling_reads" Counter "dynamo: reads that found siblings.";
    "dynamo_max_siblings" Gauge "dynamo: --max-siblings, the most siblings a write may leave a key with.";
    "dynamo_sibling_limit_refusals" Counter "dynamo: writes refused for leaving a key with more than --max-siblings siblings.";
    "dynamo_read_repairs" Counter "dynamo: stale replicas repaired by reads.";
    "dynamo_quorum_failures" Counter "dynamo: reads and writes that did not reach their quorum.";
    "dynamo_forwarded" Counter "dynamo: requests forwarded to an owner.";
    "dynamo_hints_pending" Gauge "dynamo: hinted writes waiting for their owner.";
    "dynamo_hints_recorded" Counter "dynamo: hints recorded for an unreachable owner.";
    "dynamo_hints_replayed" Counter "dynamo: hints delivered to their owner.";
    "dynamo_hints_expired" Counter "dynamo: hints dropped after --hint-ttl.";
    "dynamo_hints_dropped" Counter "dynamo: hints dropped because the hint store was full.";
    "dynamo_membership_changes" Counter "dynamo: member state changes the failure detector saw.";
    "dynamo_aae_exchanges" Counter "dynamo: anti-entropy exchanges (hash-tree comparisons with a peer).";
    "dynamo_aae_partitions_differing" Counter "dynamo: partitions found different by anti-entropy.";
    "dynamo_aae_keys_repaired" Counter "dynamo: keys repaired by anti-entropy.";
    "dynamo_aae_bytes" Counter "dynamo: bytes anti-entropy moved.";
    "dynamo_tombstones" Gauge "dynamo: deletion markers kept.";
    "dynamo_tombstones_reaped" Counter "dynamo: deletion markers removed once every replica had them.";
    "s3_puts" Counter "s3: conditional PUTs of the document.";
    "s3_writes_committed" Counter "s3: writes committed by those PUTs (writes / PUTs: the group-commit batch).";
    "s3_gets" Counter "s3: reads of the document from the object store.";
    "s3_gets_unchanged" Counter "s3: reads answered 304 Not Modified (the cached document was current).";
    "s3_reads_served" Counter "s3: client reads served.";
    "s3_occ_conflicts" Counter "s3: compare-and-swap conflicts (another writer replaced the document first).";
    "s3_snapshots_written" Counter "s3: snapshot objects written.";
    "s3_put_bytes" Counter "s3: bytes of the document's PUTs.";
    "s3_snapshot_bytes" Counter "s3: bytes of the snapshot objects written.";
    "s3_value_objects" Gauge "s3: values stored as objects of their own.";
    "used_memory_dataset" Gauge "s3: bytes the keyspace holds.";
    "maxmemory" Gauge "s3: --maxmemory (0: no limit).";
};

/// The mode's samples, from what it reports to INFO.
pub fn samples(info: &ModeInfo, out: &mut Vec<Sample>) {
    out.push(
        Sample::new("valthree_build_info", "The version and mode this node runs (always 1).", Kind::Gauge, 1.0)
            .label("version", env!("CARGO_PKG_VERSION"))
            .label("mode", info.mode),
    );
    for (field, value) in &info.details {
        if let Some((_, name, kind, help)) = FIELDS.iter().find(|row| row.0 == field) {
            // A field that says why it has no number (a storage error) is left out.
            if let Ok(value) = value.trim().parse::<f64>() {
                out.push(Sample::new(name, help, *kind, value));
            } else if *field == "raft_leader" && value == "none" {
                out.push(Sample::new(name, help, *kind, 0.0));
            }
            continue;
        }
        match field.as_str() {
            "raft_role" => {
                for role in ["leader", "follower", "candidate", "learner", "shutdown"] {
                    out.push(
                        Sample::new(
                            "valthree_raft_role",
                            "raft: this node's role (1 for the role it has).",
                            Kind::Gauge,
                            f64::from(u8::from(value == role)),
                        )
                        .label("role", role),
                    );
                }
            }
            "dynamo_members" => {
                // `1=addr:ALIVE,2=addr:SUSPECT,...`: what this node's failure detector sees.
                let members: Vec<(&str, String)> = value
                    .split(',')
                    .filter_map(|m| Some((m.split('=').next()?, m.rsplit(':').next()?.to_ascii_lowercase())))
                    .collect();
                for state in ["alive", "suspect", "dead"] {
                    let n = members.iter().filter(|(_, s)| s == state).count();
                    out.push(
                        Sample::new(
                            "valthree_dynamo_members",
                            "dynamo: members by the state this node's failure detector (SWIM) gives them.",
                            Kind::Gauge,
                            n as f64,
                        )
                        .label("state", state),
                    );
                    for (id, seen) in &members {
                        out.push(
                            Sample::new(
                                "valthree_dynamo_member_state",
                                "dynamo: each member's state as this node's failure detector (SWIM) sees it \
                                 (1 for the state it has).",
                                Kind::Gauge,
                                f64::from(u8::from(seen == state)),
                            )
                            .label("peer", format!("n{id}"))
                            .label("state", state),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_typed_samples() {
        let info = ModeInfo {
            mode: "dynamo",
            details: vec![
                ("dynamo_members".into(), "1=127.0.0.1:7001:ALIVE,2=127.0.0.1:7002:DEAD,3=h:7003:ALIVE".into()),
                ("dynamo_read_repairs".into(), "12".into()),
                ("dynamo_objects".into(), "storage: broken".into()),
                ("dynamo_actor".into(), "00ff".into()),
            ],
        };
        let mut out = Vec::new();
        samples(&info, &mut out);
        let find = |name: &str, label: Option<&str>| {
            out.iter().find(|s| s.name == name && label.is_none_or(|l| s.labels.iter().any(|(_, v)| v == l))).cloned()
        };
        assert_eq!(find("valthree_dynamo_members", Some("alive")).unwrap().value, 2.0);
        assert_eq!(find("valthree_dynamo_members", Some("dead")).unwrap().value, 1.0);
        let member = |peer: &str, state: &str| {
            let labels = vec![("peer", peer.to_string()), ("state", state.to_string())];
            out.iter().find(|s| s.name == "valthree_dynamo_member_state" && s.labels == labels).map(|s| s.value)
        };
        assert_eq!(member("n2", "dead"), Some(1.0));
        assert_eq!(member("n2", "alive"), Some(0.0));
        assert_eq!(member("n3", "alive"), Some(1.0));
        let repairs = find("valthree_dynamo_read_repairs", None).unwrap();
        assert_eq!((repairs.kind, repairs.value), (Kind::Counter, 12.0));
        assert!(find("valthree_dynamo_objects", None).is_none(), "an error text is no number");
        assert!(out.iter().all(|s| s.name != "valthree_dynamo_actor"));
        assert!(FIELDS.iter().all(|row| row.1.starts_with("valthree_") && !row.1.ends_with("_total")));
    }

    /// Every metric the Grafana dashboard (`docker/grafana/valthree.json`) queries exists.
    #[test]
    fn the_dashboard_queries_only_metrics_that_exist() {
        let metrics = crate::metrics::Metrics::new();
        metrics.command_done("get", std::time::Duration::from_millis(1), Some("ERR"));
        metrics.peer("n2", "Prepare").record(std::time::Duration::from_millis(1), None);
        let mut details: Vec<(String, String)> = FIELDS.iter().map(|row| (row.0.to_string(), "1".into())).collect();
        details.push(("raft_role".into(), "leader".into()));
        details.push(("dynamo_members".into(), "1=a:1:alive".into()));
        metrics.add_source(Box::new(move |out| samples(&ModeInfo { mode: "raft", details: details.clone() }, out)));
        let text = metrics.encode();
        // The server's gauges (resp/server.rs) and Prometheus' own `up`.
        let mut known: Vec<String> = ["valthree_connected_clients", "valthree_client_query_buffers_bytes", "up"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        known.extend(text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(String::from)));
        let dashboard = include_str!("../../docker/grafana/valthree.json");
        let value: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
        let mut exprs = Vec::new();
        for panel in value["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                exprs.push(target["expr"].as_str().unwrap().to_string());
            }
        }
        assert!(exprs.len() > 20);
        for expr in &exprs {
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("valthree_") {
                    continue;
                }
                let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| word.strip_suffix(s)).unwrap_or(word);
                assert!(
                    known.iter().any(|k| k == family),
                    "the dashboard queries {word}, which no node serves: {expr}"
                );
            }
        }
    }
}
