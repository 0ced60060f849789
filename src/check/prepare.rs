//! From events to operations: validate the history's assumptions, pair invocations with
//! completions, and split the operations by key.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::model::{Input, Output};
use super::plots::Sample;
use crate::history::{Event, EventType, FaultMark, Numbered, Process};

/// The end of time: when an operation with unknown outcome "returned".
pub const NEVER: u64 = u64::MAX;

/// One operation, paired from its invocation and completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub process: u64,
    pub input: Input,
    /// `None` when the outcome is unknown (info, or never completed).
    pub output: Option<Output>,
    pub call: u64,
    /// `NEVER` when the outcome is unknown.
    pub ret: u64,
    /// History line numbers of the invocation and completion.
    pub lines: (usize, Option<usize>),
}

impl Operation {
    /// True when the outcome is known.
    pub fn is_determinate(&self) -> bool {
        self.output.is_some()
    }
}

/// A nemesis event (a fault injected or healed), for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub f: String,
    pub value: Value,
    pub time: u64,
    /// The fault it starts or ends (`None` in histories written before marks existed).
    pub mark: Option<FaultMark>,
    /// Why the action failed, when it did.
    pub error: Option<String>,
}

impl Fault {
    /// The nemesis event `e` as the report keeps it.
    pub fn of(e: &Event) -> Self {
        Fault { f: e.f.clone(), value: e.value.clone(), time: e.time, mark: e.fault.clone(), error: e.error.clone() }
    }
}

/// A validated history, split by key.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Per key, its operations (FLUSHALL appears in every key's list).
    pub keys: BTreeMap<String, Vec<Operation>>,
    pub faults: Vec<Fault>,
    /// Operations in the history (FLUSHALL counted once), before failed ones are dropped.
    pub total_ops: usize,
    /// Operations that certainly did not happen (`fail`): left out of the check.
    pub failed: usize,
    /// Reads whose result is unknown (`info`, or never completed): left out of the check,
    /// since they change nothing and tell nothing.
    pub unknown_reads: usize,
    /// Every client operation's timing and outcome, failed and unknown ones too (the plots).
    pub samples: Vec<Sample>,
}

fn err(line: usize, msg: impl Into<String>) -> String {
    format!("line {line}: {}", msg.into())
}

fn string_value(v: &Value, line: usize, what: &str) -> Result<String, String> {
    v.as_str().map(str::to_owned).ok_or_else(|| err(line, format!("{what} must be a string, got {v}")))
}

/// The operations of the register model, read from `f` by the checker itself: the judge
/// keeps its own list of what a history may say, apart from the workload's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Set,
    Del,
    Incr,
    Append,
    Flushall,
    Cas,
    Getdel,
    Getset,
}

fn kind_of(f: &str, line: usize) -> Result<Kind, String> {
    Ok(match f {
        "get" => Kind::Get,
        "set" => Kind::Set,
        "del" => Kind::Del,
        "incr" => Kind::Incr,
        "append" => Kind::Append,
        "flushall" => Kind::Flushall,
        "cas" => Kind::Cas,
        "getdel" => Kind::Getdel,
        "getset" => Kind::Getset,
        "vget" | "vset" | "vdel" | "local" => {
            return Err(err(line, format!("{f} is a dynamo mode operation: check this history with --model dynamo")));
        }
        other => return Err(err(line, format!("unknown op {other:?}"))),
    })
}

fn input_of(kind: Kind, e: &Event, line: usize) -> Result<Input, String> {
    Ok(match kind {
        Kind::Get => Input::Get,
        Kind::Set => Input::Set(string_value(&e.value, line, "set's value")?),
        Kind::Del => Input::Del,
        Kind::Incr => Input::Incr,
        Kind::Append => Input::Append(string_value(&e.value, line, "append's value")?),
        Kind::Flushall => Input::Flushall,
        Kind::Getdel => Input::Getdel,
        Kind::Getset => Input::Getset(string_value(&e.value, line, "getset's value")?),
        Kind::Cas => match e.value.as_array().map(Vec::as_slice) {
            Some([expected, new]) => Input::Cas {
                expected: string_value(expected, line, "cas's expected value")?,
                new: string_value(new, line, "cas's new value")?,
            },
            _ => return Err(err(line, format!("cas's value must be [expected, new], got {}", e.value))),
        },
    })
}

fn output_of(kind: Kind, name: &str, v: &Value, line: usize) -> Result<Output, String> {
    let int = || v.as_i64().ok_or_else(|| err(line, format!("{name} must return an integer, got {v}")));
    Ok(match kind {
        Kind::Get | Kind::Getdel | Kind::Getset => match v {
            Value::Null => Output::Value(None),
            Value::String(s) => Output::Value(Some(s.clone())),
            other => return Err(err(line, format!("{name} must return a string or null, got {other}"))),
        },
        Kind::Set | Kind::Flushall => Output::Done,
        Kind::Del | Kind::Incr | Kind::Append => Output::Int(int()?),
        Kind::Cas => match v {
            Value::Bool(b) => Output::Swapped(*b),
            other => return Err(err(line, format!("cas must return true or false, got {other}"))),
        },
    })
}

/// Validates `events` and pairs them into operations.
pub fn prepare(events: &[Numbered]) -> Result<Prepared, String> {
    prepare_stream(events.iter().cloned().map(Ok))
}

/// Validates and pairs events as they are read, so a history never has to be held whole.
pub fn prepare_stream(events: impl Iterator<Item = Result<Numbered, String>>) -> Result<Prepared, String> {
    let mut pending: HashMap<u64, (usize, Kind, Option<String>, Input, u64)> = HashMap::new();
    let mut last_time: HashMap<Process, u64> = HashMap::new();
    let mut ops: Vec<(Option<String>, Operation)> = Vec::new();
    let mut prepared = Prepared::default();
    for numbered in events {
        let Numbered { line, event: e } = numbered?;
        let e = &e;
        let last = last_time.entry(e.process).or_insert(0);
        if e.time < *last {
            return Err(err(line, format!("time goes backwards for process {}", e.process)));
        }
        *last = e.time;
        let process = match e.process {
            Process::Nemesis => {
                prepared.faults.push(Fault::of(e));
                continue;
            }
            Process::Client(p) => p,
        };
        let op = kind_of(&e.f, line)?;
        if op != Kind::Flushall && e.key.is_none() {
            return Err(err(line, format!("{} without a key", e.f)));
        }
        match e.kind {
            EventType::Invoke => {
                if let Some((other, ..)) = pending.get(&process) {
                    return Err(err(
                        line,
                        format!("process {process} invokes while its operation from line {other} is still open"),
                    ));
                }
                let input = input_of(op, e, line)?;
                pending.insert(process, (line, op, e.key.clone(), input, e.time));
                prepared.total_ops += 1;
            }
            kind => {
                let Some((call_line, call_op, key, input, call)) = pending.remove(&process) else {
                    return Err(err(line, format!("process {process} completes an operation it never invoked")));
                };
                if call_op != op || key != e.key {
                    return Err(err(line, format!("completion does not match the invocation on line {call_line}")));
                }
                prepared.samples.push(Sample { call, ret: e.time, outcome: kind });
                let (output, ret) = match kind {
                    EventType::Ok => (Some(output_of(op, &e.f, &e.value, line)?), e.time),
                    EventType::Info => (None, NEVER),
                    EventType::Fail => {
                        prepared.failed += 1; // certainly did not happen
                        continue;
                    }
                    EventType::Invoke => unreachable!(),
                };
                if op == Kind::Get && output.is_none() {
                    prepared.unknown_reads += 1; // a read with unknown result changes nothing and tells nothing
                    continue;
                }
                let operation = Operation { process, input, output, call, ret, lines: (call_line, Some(line)) };
                ops.push((key, operation));
            }
        }
    }
    // Invocations that never completed may have happened.
    for (process, (line, op, key, input, call)) in pending {
        prepared.samples.push(Sample { call, ret: NEVER, outcome: EventType::Info });
        if op != Kind::Get {
            ops.push((key, Operation { process, input, output: None, call, ret: NEVER, lines: (line, None) }));
        } else {
            prepared.unknown_reads += 1;
        }
    }
    let all_keys: Vec<String> = {
        let mut k: Vec<String> = ops.iter().filter_map(|(k, _)| k.clone()).collect();
        k.sort();
        k.dedup();
        k
    };
    for (key, op) in ops {
        match key {
            Some(k) => prepared.keys.entry(k).or_default().push(op),
            None => {
                for k in &all_keys {
                    prepared.keys.entry(k.clone()).or_default().push(op.clone());
                }
            }
        }
    }
    Ok(prepared)
}
