//! The workload against dynamo mode: `VGET key WITHDOTS`, and `VSET`/`VDEL` under the context
//! the client last saw for the key (from its last VGET or VSET of it), so each write
//! supersedes exactly what its client knew. After the run, once every fault is healed, each
//! owner's own replica of each key is read (`DYNAMO.LOCAL`, no quorum, no read repair) until
//! they agree or the patience runs out, and recorded: what `check-history --model dynamo`
//! judges convergence and lost writes by. Nothing the settle does repairs a replica, so what
//! it judges is the convergence anti-entropy and hinted handoff achieve.
//!
//! History values (contexts decoded: `{"<actor hex>": counter, ...}`; dots `actor:counter`):
//!
//! | f | invoke `value` | ok `value` |
//! |---|---|---|
//! | `vget` | — | `{"context": {..}, "siblings": [{"dot": "..", "value": "3-17" or null}, ..]}` |
//! | `vset` | `{"value": "3-17", "context": {..}}` | `{"dot": "..", "context": {..}}` |
//! | `vdel` | `{"context": {..}}` | `{"dot": "..", "context": {..}}` |
//! | `local` | `{"node": 2}` | `{"node": 2, "context": {..}, "siblings": [..]}` |
//!
//! The run starts with a nemesis `info` event `config` holding the cluster's N, R and W (and
//! whether quorums are sloppy).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use serde_json::{Value, json};

use super::Answer;
use super::client::Conn;
use super::generator::{Action, Planned};
use crate::check::dynamo::context::{self, context_json};
use crate::history::{EventType, HistoryWriter, Op, Process, Record};

/// What one node of the cluster says about itself (INFO valthree).
#[derive(Debug, Clone)]
pub struct Config {
    /// Node id → client address (of the nodes that answered).
    pub nodes: BTreeMap<u32, String>,
    /// Every address given.
    pub addrs: Vec<String>,
    pub replicas: usize,
    pub r: usize,
    pub w: usize,
    pub sloppy_quorum: bool,
}

impl Config {
    /// Reads the nodes' INFO (a node that does not answer is left out: it may be down).
    pub async fn read(addrs: &[String], timeout: Duration) -> Result<Config, String> {
        let mut nodes = BTreeMap::new();
        let mut shape = None;
        let mut silent = Vec::new();
        for addr in addrs {
            let info = match info(addr, timeout).await {
                Ok(info) => info,
                Err(e) => {
                    silent.push(e);
                    continue;
                }
            };
            let field = |name: &str| -> Result<usize, String> {
                info.get(name)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{addr}: INFO has no {name}: is it a dynamo mode node?"))
            };
            nodes.insert(field("dynamo_node_id")? as u32, addr.clone());
            let sloppy = info.get("dynamo_sloppy_quorum").is_some_and(|v| v == "on");
            let this = (field("dynamo_replicas")?, field("dynamo_r")?, field("dynamo_w")?, sloppy);
            if shape.is_some_and(|s| s != this) {
                return Err(format!("{addr} has another N, R or W than the other nodes"));
            }
            shape = Some(this);
        }
        let (replicas, r, w, sloppy_quorum) =
            shape.ok_or_else(|| format!("no node answered INFO: {}", silent.join("; ")))?;
        Ok(Config { nodes, addrs: addrs.to_vec(), replicas, r, w, sloppy_quorum })
    }

    /// The history's opening `config` event.
    pub fn record(&self, history: &HistoryWriter) {
        history.append(Record {
            process: Process::Nemesis,
            kind: EventType::Info,
            f: "config".into(),
            key: None,
            value: json!({"mode": "dynamo", "replicas": self.replicas, "r": self.r, "w": self.w, "sloppy_quorum": self.sloppy_quorum,
                          "nodes": self.nodes.iter().map(|(id, a)| (id.to_string(), json!(a))).collect::<serde_json::Map<_, _>>()}),
            error: None,
        });
    }
}

async fn call(addr: &str, args: &[&str], timeout: Duration) -> Result<BytesFrame, String> {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    let attempt = async {
        let mut conn = Conn::connect(addr, timeout).await.map_err(|e| format!("{e:?}"))?;
        conn.call(&args).await.map_err(|e| format!("{e:?}"))
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| format!("{addr}: timed out"))?
}

async fn info(addr: &str, timeout: Duration) -> Result<BTreeMap<String, String>, String> {
    match call(addr, &["INFO", "dynamo"], timeout).await? {
        BytesFrame::BulkString(text) => Ok(String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()),
        other => Err(format!("{addr}: INFO answered {other:?}")),
    }
}

fn text(frame: &BytesFrame) -> Option<String> {
    match frame {
        BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// A server-side version vector as a history records a context: what the dynamo simulator,
/// which writes histories of the server's own objects, records. The checker reads it back
/// with its own model ([`crate::check::dynamo::VersionVector::from_json`]).
pub fn vv_json(vv: &crate::mode::dynamo::dvv::VersionVector) -> Value {
    Value::Object(vv.entries().map(|(a, c)| (format!("{a:016x}"), json!(c))).collect())
}

/// The command for a versioned operation; `context` is the client's last context of the key.
pub fn command(p: &Planned, context: &str) -> Vec<Bytes> {
    let word = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let key = word(p.key.as_deref().unwrap_or_default());
    match p.op {
        Action::Op(Op::Vset) => vec![word("VSET"), key, word(p.value.as_deref().unwrap_or_default()), word(context)],
        Action::Op(Op::Vdel) => vec![word("VDEL"), key, word(context)],
        _ => vec![word("VGET"), key, word("WITHDOTS")],
    }
}

/// The invocation's recorded argument.
pub fn argument(p: &Planned, context: &str) -> Value {
    let key = p.key.as_deref().unwrap_or_default();
    match p.op {
        Action::Op(Op::Vset) => json!({"value": p.value, "context": context_json(key, context)}),
        Action::Op(Op::Vdel) => json!({"context": context_json(key, context)}),
        _ => Value::Null,
    }
}

/// `[context, [dot, timestamp, value-or-nil], ...]` as `(context text, recorded value)`.
fn versioned(key: &str, items: &[BytesFrame]) -> Option<(String, Value)> {
    let (context, siblings) = items.split_first()?;
    let context = text(context)?;
    let siblings = siblings
        .iter()
        .map(|s| match s {
            BytesFrame::Array(parts) if parts.len() == 3 => {
                let value = match &parts[2] {
                    BytesFrame::Null => Value::Null,
                    other => json!(text(other)?),
                };
                Some(json!({"dot": text(&parts[0])?, "value": value}))
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let recorded = json!({"context": context_json(key, &context), "siblings": siblings});
    Some((context, recorded))
}

/// Classifies a reply to a versioned operation, with the key's new context.
pub fn interpret(p: &Planned, reply: BytesFrame) -> (Answer, Option<String>) {
    let key = p.key.as_deref().unwrap_or_default();
    let ok = |value| Answer::Recorded { kind: EventType::Ok, value, error: None };
    let unexpected =
        |what: &dyn std::fmt::Debug| Answer::Unexpected(format!("unexpected reply to {}: {what:?}", p.op.as_str()));
    match (p.op, reply) {
        (_, BytesFrame::Error(e)) => (Answer::error(&e), None),
        (Action::Op(Op::Vget), BytesFrame::Array(items)) => match versioned(key, &items) {
            Some((context, value)) => (ok(value), Some(context)),
            None => (unexpected(&items), None),
        },
        (Action::Op(Op::Vset | Op::Vdel), BytesFrame::Array(items)) if items.len() == 2 => {
            match (text(&items[0]), text(&items[1])) {
                (Some(context), Some(dot)) => {
                    (ok(json!({"dot": dot, "context": context_json(key, &context)})), Some(context))
                }
                _ => (unexpected(&items), None),
            }
        }
        (_, other) => (unexpected(&other), None),
    }
}

/// `DYNAMO.RING key`'s preference list.
async fn owners(addr: &str, key: &str, timeout: Duration) -> Result<Vec<u32>, String> {
    let BytesFrame::Array(lines) = call(addr, &["DYNAMO.RING", key], timeout).await? else {
        return Err(format!("{addr}: DYNAMO.RING answered no lines"));
    };
    let list = lines
        .iter()
        .filter_map(text)
        .find_map(|l| l.strip_prefix("preference list ").map(str::to_owned))
        .ok_or_else(|| format!("{addr}: DYNAMO.RING {key} named no preference list"))?;
    list.split_whitespace()
        .map(|n| n.trim_start_matches('n').parse().map_err(|_| format!("bad node {n:?} in {list:?}")))
        .collect()
}

/// The least time a settle call gets (a run's `--timeout` may be far shorter).
const SETTLE_CALL: Duration = Duration::from_secs(2);

/// Refuses keys that already hold writes: the dynamo check judges every sibling by the
/// writes of its own history, so it needs keys no earlier run wrote.
pub async fn require_fresh(config: &Config, keys: &[String], timeout: Duration) -> Result<(), String> {
    let any = config.nodes.values().next().ok_or("no node to read from")?;
    for key in keys {
        // A node that cannot answer now (a fault at start) proves nothing either way.
        let Ok(reply) = call(any, &["VGET", key], timeout.max(SETTLE_CALL)).await else { continue };
        match reply {
            BytesFrame::Array(items)
                if items.len() == 1
                    && items.first().and_then(text).is_some_and(|c| {
                        context::decode(key.as_bytes(), c.as_bytes()).is_ok_and(|vv| vv.is_empty())
                    }) => {}
            BytesFrame::Array(_) => {
                return Err(format!(
                    "key {key} already holds writes: the dynamo check needs keys no earlier run wrote \
                     (a new --key-prefix, or none: each run then gets fresh keys)"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// After the run: reads each owner's own replica of every key (`DYNAMO.LOCAL`, which
/// repairs nothing) until the replicas agree (or `patience` runs out), and records each —
/// or, for an owner that cannot be read, a failed read, so the checker knows the key's
/// convergence went unchecked. Only anti-entropy and hinted handoff converge the replicas
/// meanwhile, so `patience` should exceed the nodes' `--aae-interval`. Returns the keys
/// whose replicas did not all agree, each with why.
pub async fn settle(
    addrs: &[String],
    keys: &[String],
    history: &HistoryWriter,
    timeout: Duration,
    patience: Duration,
) -> Result<Vec<String>, String> {
    let timeout = timeout.max(SETTLE_CALL);
    // Every fault is healed now: every node should answer (the cluster's nodes as they are
    // now: a membership change during the run may have added or removed some).
    let mut config = Config::read(addrs, timeout).await?;
    let any = config.nodes.values().next().ok_or("no node to read from")?.clone();
    let deadline = Instant::now() + patience;
    let mut unsettled = Vec::new();
    for key in keys {
        let owners = loop {
            match owners(&any, key, timeout).await {
                Ok(owners) => break Some(owners),
                Err(e) if Instant::now() >= deadline => {
                    unsettled.push(format!("{key} (its owners: {e})"));
                    break None;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let Some(owners) = owners else { continue };
        // A fault made by someone else (a nemesis this run does not drive, as the parallel
        // drivers of the container tests have) may still hold an owner down: ask again, up to
        // the patience, before calling its replica unreadable.
        while owners.iter().any(|id| !config.nodes.contains_key(id)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok(again) = Config::read(addrs, timeout).await {
                config = again;
            }
        }
        // An owner that did not answer INFO (or whose address was not given) is recorded as
        // a failed read.
        let record = |id: u32, kind, value, error| {
            let record = |kind, value, error| Record {
                process: Process::Client(0),
                kind,
                f: Op::Local.as_str().into(),
                key: Some(key.clone()),
                value,
                error,
            };
            history.append(record(EventType::Invoke, json!({"node": id}), None));
            history.append(record(kind, value, error));
        };
        for id in owners.iter().filter(|id| !config.nodes.contains_key(id)) {
            let why = format!("n{id}: no address of it given, or it did not answer INFO");
            record(*id, EventType::Fail, Value::Null, Some(why.clone()));
            unsettled.push(format!("{key} ({why})"));
        }
        let addrs: Vec<(u32, &String)> =
            owners.iter().filter_map(|id| config.nodes.get(id).map(|a| (*id, a))).collect();
        if addrs.is_empty() {
            continue;
        }
        let replicas = loop {
            // Each owner's own replica, read without a quorum: DYNAMO.LOCAL never repairs, so
            // only anti-entropy and hinted handoff can make the replicas agree. A quorum read
            // here would repair them itself and hide a broken anti-entropy.
            let mut replicas = Vec::new();
            for (id, addr) in &addrs {
                replicas.push((*id, call(addr, &["DYNAMO.LOCAL", key, "WITHDOTS"], timeout).await));
            }
            let agreed = replicas.iter().all(|(_, r)| r.is_ok() && r.as_ref().ok() == replicas[0].1.as_ref().ok());
            if agreed || Instant::now() >= deadline {
                if !agreed {
                    unsettled.push(format!("{key} (its replicas still differ)"));
                }
                break replicas;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for (id, reply) in replicas {
            let (kind, value, error) = match reply {
                Ok(BytesFrame::Array(items)) => match versioned(key, &items) {
                    Some((_, mut value)) => {
                        value["node"] = json!(id);
                        (EventType::Ok, value, None)
                    }
                    None => (EventType::Fail, Value::Null, Some(format!("unexpected reply {items:?}"))),
                },
                Ok(other) => (EventType::Fail, Value::Null, Some(format!("unexpected reply {other:?}"))),
                Err(e) => (EventType::Fail, Value::Null, Some(e)),
            };
            record(id, kind, value, error);
        }
    }
    Ok(unsettled)
}
