//! The history of a test run: Jepsen-style invoke/complete events, one JSON object per line.
//!
//! ```json
//! {"index":0,"process":3,"type":"invoke","f":"set","key":"k1","value":"3-17","time":1203400}
//! {"index":1,"process":3,"type":"ok","f":"set","key":"k1","value":"3-17","time":1988000}
//! {"index":2,"process":5,"type":"info","f":"get","key":"k1","error":"timeout","time":2400100}
//! {"index":3,"process":"nemesis","type":"info","f":"kill","value":"n2","fault":{"kind":"kill","phase":"start"},"time":2500000}
//! ```
//!
//! `time` is monotonic nanoseconds since the run started. On an invoke, `value` is the
//! argument (set: the value, append: the suffix); on an `ok` it is the result (get: the string
//! or null; set: the value written; del: the count deleted; incr: the new integer; append: the
//! new length). A `cas` (`SET key new IFEQ expected`, from the workload's
//! [`Action::Cas`](crate::workload::Action)) has `[expected, new]` as its invoke's value, both
//! strings, and `true` on its `ok` when it swapped, `false` when the current value differed
//! (it ran and saw another value; an absent key differs from every string, as in Redis):
//!
//! ```json
//! {"index":7,"process":2,"type":"invoke","f":"cas","key":"k0","value":["3-2","2-9"],"time":3100000}
//! {"index":8,"process":2,"type":"ok","f":"cas","key":"k0","value":true,"time":3900000}
//! ```
//!
//! `fail` certainly did not happen; `info`, or an invoke that never completed,
//! may or may not have happened. Each event is written whole as it happens, so a run that is
//! killed leaves a valid prefix; a torn last line is ignored by [`read_history`]. A run
//! against dynamo mode records `vget`/`vset`/`vdel`/`local` with contexts and dots instead
//! (their values: [`crate::workload::dynamo`]).
//!
//! A nemesis event names what it did in `f` and the node (or nodes) it acted on in `value`.
//! One that starts or ends a fault also carries `fault`: the fault's kind (`kill`, `pause`,
//! `partition`, `membership`, … — any name) and whether this event starts or ends it, so a
//! reader can shade each fault's interval without knowing which action undoes which:
//!
//! ```json
//! {"index":3,"process":"nemesis","type":"info","f":"add-node","value":"n4","fault":{"kind":"membership","phase":"start"},"time":2500000}
//! {"index":9,"process":"nemesis","type":"info","f":"remove-node","value":"n4","fault":{"kind":"membership","phase":"end"},"time":5000000}
//! ```
//!
//! An end pairs with the open start of the same kind and target; an end whose target is
//! `"all"` ends every open fault of its kind. Histories written before `fault` existed carry
//! none; readers pair their events by name (kill/restart, pause/resume, partition/heal,
//! add-node/remove-node). A nemesis event without `fault` (dynamo's `config`) marks nothing.

use std::fmt;
use std::io::{BufRead, Write};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who issued an event: a client number, or the nemesis that injects faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(n) => s.serialize_u64(*n),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) if n.is_u64() => Ok(Process::Client(n.as_u64().unwrap())),
            Value::String(s) if s == "nemesis" => Ok(Process::Nemesis),
            other => Err(serde::de::Error::custom(format!("process must be a number or \"nemesis\", got {other}"))),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// The kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// The operations a client performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Set,
    Del,
    Incr,
    Append,
    Flushall,
    /// dynamo mode: `VGET key WITHDOTS`.
    Vget,
    /// dynamo mode: `VSET key value context`.
    Vset,
    /// dynamo mode: `VDEL key context`.
    Vdel,
    /// dynamo mode: `DYNAMO.LOCAL key WITHDOTS` on one owner (the settled reads after a run).
    Local,
}

impl Op {
    /// Every operation, in a fixed order.
    pub const ALL: [Op; 10] =
        [Op::Get, Op::Set, Op::Del, Op::Incr, Op::Append, Op::Flushall, Op::Vget, Op::Vset, Op::Vdel, Op::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Del => "del",
            Op::Incr => "incr",
            Op::Append => "append",
            Op::Flushall => "flushall",
            Op::Vget => "vget",
            Op::Vset => "vset",
            Op::Vdel => "vdel",
            Op::Local => "local",
        }
    }

    /// dynamo mode's sibling-aware operations (checked by `--model dynamo` only).
    pub fn is_versioned(self) -> bool {
        matches!(self, Op::Vget | Op::Vset | Op::Vdel | Op::Local)
    }
}

impl FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Op::ALL.into_iter().find(|op| op.as_str() == s).ok_or_else(|| format!("unknown op {s:?}"))
    }
}

/// Whether a nemesis event starts or ends a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultPhase {
    Start,
    End,
}

/// On a nemesis event: the fault it starts or ends (the event's `value` is its target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultMark {
    /// The nemesis kind (`kill`, `pause`, `partition`, `membership`, ...): any name.
    pub kind: String,
    pub phase: FaultPhase,
}

impl FaultMark {
    pub fn start(kind: &str) -> Self {
        Self { kind: kind.into(), phase: FaultPhase::Start }
    }

    pub fn end(kind: &str) -> Self {
        Self { kind: kind.into(), phase: FaultPhase::End }
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub index: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation; a nemesis event names its fault here (`kill`, `partition`, ...).
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// On a nemesis event: the fault it starts or ends, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultMark>,
    pub time: u64,
}

/// Appends events to a history file as they happen, stamping index and time under one lock
/// so that file order, index order and time order agree.
pub struct HistoryWriter {
    inner: Mutex<WriterState>,
    started: Instant,
}

struct WriterState {
    out: Box<dyn Write + Send>,
    next_index: u64,
    failed: Option<std::io::Error>,
}

/// An event before the writer stamps it.
#[derive(Debug, Clone)]
pub struct Record {
    pub process: Process,
    pub kind: EventType,
    pub f: String,
    pub key: Option<String>,
    pub value: Value,
    pub error: Option<String>,
}

impl HistoryWriter {
    /// Writes to `out`; each event is one `write_all` of a whole line.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { inner: Mutex::new(WriterState { out, next_index: 0, failed: None }), started: Instant::now() }
    }

    /// Stamps and writes `record`, returning the event as written.
    pub fn append(&self, record: Record) -> Event {
        self.append_marked(record, None)
    }

    /// Stamps and writes a nemesis event that starts or ends a fault (`mark`).
    pub fn append_marked(&self, record: Record, mark: Option<FaultMark>) -> Event {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let event = Event {
            index: state.next_index,
            process: record.process,
            kind: record.kind,
            f: record.f,
            key: record.key,
            value: record.value,
            error: record.error,
            fault: mark,
            time: self.started.elapsed().as_nanos() as u64,
        };
        state.next_index += 1;
        let mut line = serde_json::to_vec(&event).expect("events always serialise");
        line.push(b'\n');
        if state.failed.is_none()
            && let Err(e) = state.out.write_all(&line).and_then(|_| state.out.flush())
        {
            state.failed = Some(e);
        }
        event
    }

    /// The first write error, if any write failed.
    pub fn error(&self) -> Option<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).failed.as_ref().map(|e| e.to_string())
    }
}

/// A history that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// An event and the line it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Numbered {
    pub line: usize,
    pub event: Event,
}

/// Orders events built in memory (tests, synthetic histories) as a writer would have
/// written them — by time, invocations before completions at equal times — and numbers
/// them as if read from a file.
pub fn in_time_order(mut events: Vec<Event>) -> Vec<Numbered> {
    events.sort_by_key(|e| (e.time, e.kind != EventType::Invoke));
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            event.index = i as u64;
            Numbered { line: i + 1, event }
        })
        .collect()
}

/// Reads a JSONL history. A final line without a newline (a writer killed mid-line) is
/// ignored; any other bad line is an error naming its line number.
pub fn read_history(input: impl BufRead) -> Result<Vec<Numbered>, ParseError> {
    HistoryReader::new(input).collect()
}

/// Reads a JSONL history one event at a time (the rules of [`read_history`]).
pub struct HistoryReader<R> {
    input: R,
    line: usize,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> HistoryReader<R> {
    pub fn new(input: R) -> Self {
        Self { input, line: 0, buf: Vec::new(), done: false }
    }
}

impl<R: BufRead> Iterator for HistoryReader<R> {
    type Item = Result<Numbered, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line += 1;
            self.buf.clear();
            let line = self.line;
            match self.input.read_until(b'\n', &mut self.buf) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(ParseError { line, message: e.to_string() }));
                }
                Ok(0) => self.done = true,
                Ok(_) => {
                    let complete = self.buf.ends_with(b"\n");
                    if self.buf.iter().all(|c| c.is_ascii_whitespace()) {
                        continue;
                    }
                    match serde_json::from_slice::<Event>(&self.buf) {
                        Ok(event) => return Some(Ok(Numbered { line, event })),
                        // Only the last line, cut off before its newline, is a torn write.
                        Err(e) if e.is_eof() && !complete => self.done = true,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(ParseError { line, message: e.to_string() }));
                        }
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_in_the_documented_format() {
        let line = r#"{"index":0,"process":3,"type":"invoke","f":"set","key":"k1","value":"3-17","time":1203400}"#;
        let event: Event = serde_json::from_str(line).unwrap();
        assert_eq!(event.process, Process::Client(3));
        assert_eq!(event.kind, EventType::Invoke);
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
        let nemesis = r#"{"index":3,"process":"nemesis","type":"info","f":"kill","value":"n2","time":5}"#;
        assert_eq!(serde_json::from_str::<Event>(nemesis).unwrap().process, Process::Nemesis);
    }

    #[test]
    fn a_fault_mark_round_trips_and_older_nemesis_events_still_parse() {
        let marked = r#"{"index":3,"process":"nemesis","type":"info","f":"add-node","value":"n4","fault":{"kind":"membership","phase":"start"},"time":5}"#;
        let event: Event = serde_json::from_str(marked).unwrap();
        assert_eq!(event.fault, Some(FaultMark::start("membership")));
        assert_eq!(serde_json::to_string(&event).unwrap(), marked);
        let older = r#"{"index":3,"process":"nemesis","type":"info","f":"kill","value":"n2","time":5}"#;
        let event: Event = serde_json::from_str(older).unwrap();
        assert_eq!(event.fault, None);
        assert_eq!(serde_json::to_string(&event).unwrap(), older, "an unmarked event is written as before");
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_garbage_is_reported() {
        let text = "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"time\":1}\n{\"index\":1,\"proc";
        assert_eq!(read_history(text.as_bytes()).unwrap().len(), 1);
        let bad = "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"time\":1}\nnot json\n";
        assert_eq!(read_history(bad.as_bytes()).unwrap_err().line, 2);
        let torn_in_the_middle = "{\"index\":0,\"proc\n{\"index\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"time\":1}\n";
        assert_eq!(read_history(torn_in_the_middle.as_bytes()).unwrap_err().line, 1);
    }
}
