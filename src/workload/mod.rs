//! `valthree workload`: many clients, a small contended key set, every operation recorded.
//!
//! Each client owns one connection to one address (client i → addrs[i % n]) and runs its
//! seeded stream of operations one at a time. Each operation is written to the history as an
//! invocation before it is sent and as a completion when its fate is known:
//!
//! | what happened | recorded as |
//! |---|---|
//! | a reply (`+OK`, a value, an integer) | `ok` |
//! | `-ERR`, `-TRYAGAIN` or any other error reply | `fail`: it certainly did not happen |
//! | `-UNCERTAIN`, a timeout, a dropped connection | `info`: it may have happened |
//! | no connection could be made, so nothing was sent | `fail` |
//! | a reply the command never gives (SET answered nil) | `info`, and the run fails |
//!
//! A reply the command never gives is no outcome the model knows: what the operation did is
//! unknown, so the history records it as `info` and the checker weighs both; but a server that
//! gives one is broken whatever the history shows, so the run counts it ([`Answer::Unexpected`])
//! and fails.
//!
//! After a timeout or a dropped connection the client reconnects before its next operation,
//! so a late reply can never be taken for the answer to a later request; so it does when the
//! server closed the connection between two operations (a node stopping gracefully), rather
//! than send a request that could only be lost.

pub mod client;
pub mod dynamo;
pub mod generator;
mod summary;

pub use generator::{Action, Generator, Mix, Planned};
pub use summary::{Counts, Summary};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use antithesis_sdk::assert_sometimes;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use serde_json::{Value, json};

use crate::history::{EventType, HistoryWriter, Op, Process, Record};
use client::{CallError, Conn};

/// How long a client waits before retrying after it could not connect.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// When the run ends.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Duration(Duration),
    Ops(u64),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub addrs: Vec<String>,
    pub clients: usize,
    pub keys: u64,
    pub limit: Limit,
    pub seed: u64,
    pub mix: Mix,
    pub timeout: Duration,
    /// Keys are `{key_prefix}k0`...; with a prefix the run starts without FLUSHALL (keys no one
    /// used start absent), so several runs can share one database.
    pub key_prefix: String,
}

/// Progress shared with the progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub completed: AtomicU64,
    issued: AtomicU64,
    /// Set to end the run early (Ctrl-C): clients finish the operation in hand and stop.
    pub stop: std::sync::atomic::AtomicBool,
}

struct Shared {
    options: Options,
    history: Arc<HistoryWriter>,
    progress: Arc<Progress>,
    deadline: Option<Instant>,
}

impl Shared {
    /// Takes the right to issue one more operation.
    fn ticket(&self) -> bool {
        if self.progress.stop.load(Ordering::Relaxed) {
            return false;
        }
        match self.options.limit {
            Limit::Ops(n) => self.progress.issued.fetch_add(1, Ordering::Relaxed) < n,
            Limit::Duration(_) => self.deadline.is_none_or(|d| Instant::now() < d),
        }
    }
}

/// The command a planned operation sends. A `cas` compares with `expected`: the value the
/// client last read of the key, or [`NEVER_WRITTEN`] when it knows none.
fn command(p: &Planned, expected: &str) -> Vec<Bytes> {
    let word = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let op = match p.op {
        Action::Op(op) => op,
        Action::Cas => {
            let (key, new) = (p.key.as_deref().unwrap_or_default(), p.value.as_deref().unwrap_or_default());
            return vec![word("SET"), word(key), word(new), word("IFEQ"), word(expected)];
        }
        Action::Getdel => return vec![word("GETDEL"), word(p.key.as_deref().unwrap_or_default())],
        Action::Getset => {
            let (key, new) = (p.key.as_deref().unwrap_or_default(), p.value.as_deref().unwrap_or_default());
            return vec![word("GETSET"), word(key), word(new)];
        }
    };
    let mut args = vec![word(match op {
        Op::Get => "GET",
        Op::Set => "SET",
        Op::Del => "DEL",
        Op::Incr => "INCR",
        Op::Append => "APPEND",
        Op::Flushall => "FLUSHALL",
        Op::Vget | Op::Vset | Op::Vdel | Op::Local => return dynamo::command(p, ""),
    })];
    args.extend(p.key.as_deref().map(word));
    args.extend(p.value.as_deref().map(word));
    args
}

/// What a `cas` expects when its client has read no value of the key (never read it, or read
/// it absent): a string no operation of the workload writes (values are `<client>-<seq>`,
/// their concatenations and integers), so the comparison fails as IFEQ on a value it never
/// saw should, and the history says so with `ok` false.
pub const NEVER_WRITTEN: &str = "never-written";

/// What a reply says about the operation it answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An outcome the protocol allows, recorded as it is: ok, fail or info.
    Recorded { kind: EventType, value: Value, error: Option<String> },
    /// A reply the command never gives (SET answered nil): the server broke the protocol.
    /// Recorded as `info` (what the operation did is unknown), and the run fails.
    Unexpected(String),
}

impl Answer {
    fn ok(value: Value) -> Self {
        Answer::Recorded { kind: EventType::Ok, value, error: None }
    }

    /// An error reply: `-UNCERTAIN` may have happened, any other certainly did not.
    pub fn error(e: &str) -> Self {
        let kind = if e.starts_with("UNCERTAIN") { EventType::Info } else { EventType::Fail };
        Answer::Recorded { kind, value: Value::Null, error: Some(e.to_string()) }
    }

    /// What the history records: (event type, result value, error text).
    pub fn recorded(&self) -> (EventType, Value, Option<String>) {
        match self {
            Answer::Recorded { kind, value, error } => (*kind, value.clone(), error.clone()),
            Answer::Unexpected(why) => (EventType::Info, Value::Null, Some(why.clone())),
        }
    }
}

/// Classifies a reply.
fn interpret(p: &Planned, reply: BytesFrame) -> Answer {
    match (p.op, reply) {
        (_, BytesFrame::Error(e)) => Answer::error(&e),
        (Action::Op(Op::Get) | Action::Getdel | Action::Getset, BytesFrame::BulkString(b)) => {
            Answer::ok(json!(String::from_utf8_lossy(&b)))
        }
        (Action::Op(Op::Get) | Action::Getdel | Action::Getset, BytesFrame::Null) => Answer::ok(Value::Null),
        (Action::Op(Op::Set | Op::Flushall), BytesFrame::SimpleString(s)) if s.as_ref() == b"OK" => {
            Answer::ok(p.value.clone().map_or(Value::Null, Value::String))
        }
        (Action::Op(Op::Del | Op::Incr | Op::Append), BytesFrame::Integer(n)) => Answer::ok(json!(n)),
        // SET IFEQ answers OK when it swapped and nil when the value differed: both happened.
        (Action::Cas, BytesFrame::SimpleString(s)) if s.as_ref() == b"OK" => Answer::ok(json!(true)),
        (Action::Cas, BytesFrame::Null) => Answer::ok(json!(false)),
        (op, other) => Answer::Unexpected(format!("unexpected reply to {}: {other:?}", op.as_str())),
    }
}

async fn client_loop(id: usize, shared: Arc<Shared>) -> Summary {
    let options = &shared.options;
    let addr = &options.addrs[id % options.addrs.len()];
    let mut generator =
        Generator::new(options.seed, id as u64, options.keys, options.mix.clone()).with_prefix(&options.key_prefix);
    let mut summary = Summary::default();
    let mut conn: Option<Conn> = None;
    // dynamo mode: per key, the context of the client's last VGET or VSET of it.
    let mut contexts: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    // Per key, the value the client last read (a GET, or a cas that swapped in its own
    // value): what its next `cas` of the key expects.
    let mut known: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let record = |kind, p: &Planned, value, error| Record {
        process: Process::Client(id as u64),
        kind,
        f: p.op.as_str().into(),
        key: p.key.clone(),
        value,
        error,
    };
    while shared.ticket() {
        let planned = generator.next_op();
        let context = planned.key.as_ref().and_then(|k| contexts.get(k)).cloned().unwrap_or_default();
        let expected =
            planned.key.as_ref().and_then(|k| known.get(k)).cloned().unwrap_or_else(|| NEVER_WRITTEN.to_string());
        let argument = match planned.op {
            op if op.is_versioned() => dynamo::argument(&planned, &context),
            Action::Cas => json!([expected, planned.value.clone().unwrap_or_default()]),
            Action::Op(_) | Action::Getdel | Action::Getset => planned.value.clone().map_or(Value::Null, Value::String),
        };
        shared.history.append(record(EventType::Invoke, &planned, argument, None));
        let started = Instant::now();
        if conn.as_mut().is_some_and(Conn::closed_by_server) {
            conn = None;
        }
        if conn.is_none() {
            match Conn::connect(addr, options.timeout).await {
                Ok(c) => conn = Some(c),
                Err(CallError::NotSent(m) | CallError::Lost(m)) => {
                    summary.record(planned.op, EventType::Fail, None, Some(&m));
                    shared.history.append(record(EventType::Fail, &planned, Value::Null, Some(m)));
                    shared.progress.completed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    continue;
                }
            }
        }
        let args =
            if planned.op.is_versioned() { dynamo::command(&planned, &context) } else { command(&planned, &expected) };
        let call = conn.as_mut().expect("connected above").call(&args);
        let answer = match tokio::time::timeout(options.timeout, call).await {
            Ok(Ok(reply)) if planned.op.is_versioned() => {
                let (answer, context) = dynamo::interpret(&planned, reply);
                if let (Some(key), Some(context)) = (&planned.key, context) {
                    contexts.insert(key.clone(), context);
                }
                answer
            }
            Ok(Ok(reply)) => interpret(&planned, reply),
            Ok(Err(CallError::NotSent(m))) => {
                Answer::Recorded { kind: EventType::Fail, value: Value::Null, error: Some(m) }
            }
            Ok(Err(CallError::Lost(m))) => {
                Answer::Recorded { kind: EventType::Info, value: Value::Null, error: Some(m) }
            }
            Err(_) => Answer::Recorded { kind: EventType::Info, value: Value::Null, error: Some("timeout".into()) },
        };
        if let Answer::Unexpected(why) = &answer {
            summary.unexpected(planned.op, why);
        }
        let (kind, value, error) = answer.recorded();
        if let (EventType::Ok, Some(key)) = (kind, &planned.key) {
            match (planned.op, &value) {
                (Action::Op(Op::Get), Value::String(read)) => {
                    known.insert(key.clone(), read.clone());
                }
                (Action::Op(Op::Get), _) => {
                    known.remove(key);
                }
                (Action::Cas, Value::Bool(true)) | (Action::Getset, _) => {
                    known.insert(key.clone(), planned.value.clone().unwrap_or_default());
                }
                (Action::Getdel, _) => {
                    known.remove(key);
                }
                _ => {}
            }
        }
        if kind == EventType::Info {
            conn = None; // a late reply must never answer the next request
        }
        let is_read = matches!(planned.op, Action::Op(Op::Get | Op::Vget));
        assert_sometimes!(kind == EventType::Ok && is_read, "workload: a read succeeds", &json!({}));
        assert_sometimes!(kind == EventType::Ok && !is_read, "workload: a write succeeds", &json!({}));
        summary.record(planned.op, kind, Some(started.elapsed()), error.as_deref());
        shared.history.append(record(kind, &planned, value, error));
        shared.progress.completed.fetch_add(1, Ordering::Relaxed);
    }
    summary
}

/// Empties the store through `addr`, recorded in the history as client 0's first operation:
/// the checker assumes every key starts absent, so the run must start from an empty store.
async fn flush_first(addr: &str, timeout: Duration, history: &HistoryWriter) -> Result<(), String> {
    let planned = Planned { op: Op::Flushall.into(), key: None, value: None };
    let record = |kind, error| Record {
        process: Process::Client(0),
        kind,
        f: "flushall".into(),
        key: None,
        value: Value::Null,
        error,
    };
    history.append(record(EventType::Invoke, None));
    let outcome = async {
        let mut conn = Conn::connect(addr, timeout).await.map_err(|e| (EventType::Fail, format!("{e:?}")))?;
        match tokio::time::timeout(timeout, conn.call(&command(&planned, NEVER_WRITTEN))).await {
            Ok(Ok(reply)) => match interpret(&planned, reply).recorded() {
                (EventType::Ok, _, _) => Ok(()),
                (kind, _, error) => Err((kind, error.unwrap_or_default())),
            },
            Ok(Err(CallError::NotSent(m))) => Err((EventType::Fail, m)),
            Ok(Err(CallError::Lost(m))) => Err((EventType::Info, m)),
            Err(_) => Err((EventType::Info, "timeout".into())),
        }
    }
    .await;
    match outcome {
        Ok(()) => {
            history.append(record(EventType::Ok, None));
            Ok(())
        }
        Err((kind, error)) => {
            history.append(record(kind, Some(error.clone())));
            Err(format!("the opening FLUSHALL on {addr} failed: {error}"))
        }
    }
}

/// Runs the workload, writing every event to `history`. Without a key prefix it starts with
/// FLUSHALL: point it at a database meant for testing.
pub async fn run(options: Options, history: Arc<HistoryWriter>, progress: Arc<Progress>) -> Result<Summary, String> {
    if options.key_prefix.is_empty() {
        flush_first(&options.addrs[0], options.timeout, &history).await?;
    } else if options.mix.has(Op::Flushall) {
        return Err("a run with a key prefix shares the database: its mix cannot have flushall".into());
    }
    let started = Instant::now();
    let deadline = match options.limit {
        Limit::Duration(d) => Some(started + d),
        Limit::Ops(_) => None,
    };
    let clients = options.clients;
    let shared = Arc::new(Shared { options, history, progress, deadline });
    let tasks: Vec<_> = (0..clients).map(|id| tokio::spawn(client_loop(id, shared.clone()))).collect();
    let mut total = Summary::default();
    for task in tasks {
        total.merge(task.await.expect("a workload client panicked"));
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(op: impl Into<Action>) -> Planned {
        let op = op.into();
        let value = matches!(op, Action::Op(Op::Set) | Action::Cas).then(|| "1-1".into());
        Planned { op, key: Some("k0".into()), value }
    }

    #[test]
    fn replies_are_classified_by_what_they_prove() {
        let err = |s: &str| BytesFrame::Error(s.into());
        let kind = |op: Op, reply| interpret(&planned(op), reply).recorded().0;
        assert_eq!(kind(Op::Set, err("TRYAGAIN conflict")), EventType::Fail);
        assert_eq!(kind(Op::Set, err("ERR syntax")), EventType::Fail);
        assert_eq!(kind(Op::Set, err("UNCERTAIN timeout")), EventType::Info);
        let ok = interpret(&planned(Op::Set), BytesFrame::SimpleString("OK".into())).recorded();
        assert_eq!((ok.0, ok.1), (EventType::Ok, json!("1-1")));
        assert_eq!(interpret(&planned(Op::Get), BytesFrame::Null).recorded().1, Value::Null);
        assert_eq!(interpret(&planned(Op::Incr), BytesFrame::Integer(4)).recorded().1, json!(4));
    }

    #[test]
    fn a_cas_is_ok_whether_it_swapped_or_saw_another_value_and_fails_only_when_it_did_not_run() {
        let cas = planned(Action::Cas);
        let swapped = interpret(&cas, BytesFrame::SimpleString("OK".into())).recorded();
        assert_eq!((swapped.0, swapped.1), (EventType::Ok, json!(true)));
        let differed = interpret(&cas, BytesFrame::Null).recorded();
        assert_eq!((differed.0, differed.1), (EventType::Ok, json!(false)));
        assert_eq!(interpret(&cas, BytesFrame::Error("TRYAGAIN no quorum".into())).recorded().0, EventType::Fail);
        assert_eq!(interpret(&cas, BytesFrame::Error("UNCERTAIN timeout".into())).recorded().0, EventType::Info);
        assert!(matches!(interpret(&cas, BytesFrame::Integer(1)), Answer::Unexpected(_)));
        let sent: Vec<Bytes> = command(&cas, "0-0");
        assert_eq!(sent, ["SET", "k0", "1-1", "IFEQ", "0-0"].map(|w| Bytes::from_static(w.as_bytes())));
    }

    #[test]
    fn getdel_and_getset_send_their_commands_and_record_the_value_they_found() {
        let word = |w: &'static str| Bytes::from_static(w.as_bytes());
        let getdel = planned(Action::Getdel);
        assert_eq!(command(&getdel, "x"), [word("GETDEL"), word("k0")]);
        let getset = Planned { value: Some("1-1".into()), ..planned(Action::Getset) };
        assert_eq!(command(&getset, "x"), [word("GETSET"), word("k0"), word("1-1")]);
        for p in [&getdel, &getset] {
            let found = interpret(p, BytesFrame::BulkString(Bytes::from_static(b"0-3"))).recorded();
            assert_eq!((found.0, found.1), (EventType::Ok, json!("0-3")));
            assert_eq!(interpret(p, BytesFrame::Null).recorded().1, Value::Null);
            assert!(matches!(interpret(p, BytesFrame::SimpleString("OK".into())), Answer::Unexpected(_)));
        }
    }

    #[test]
    fn a_reply_the_command_never_gives_is_unexpected_and_recorded_as_unknown() {
        for (op, reply) in [
            (Op::Set, BytesFrame::Null),
            (Op::Incr, BytesFrame::SimpleString("OK".into())),
            (Op::Get, BytesFrame::Integer(3)),
        ] {
            let answer = interpret(&planned(op), reply);
            assert!(matches!(answer, Answer::Unexpected(_)), "{op:?}: {answer:?}");
            assert_eq!(answer.recorded().0, EventType::Info, "what it did is unknown");
        }
    }
}
