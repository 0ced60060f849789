//! The nemesis' faults as the report draws them: each fault an interval from the event that
//! starts it to the one that ends it, or an instant for an event that starts or ends nothing.
//!
//! A history's nemesis events say which fault they start or end (`"fault":{"kind":…,
//! "phase":…}`, see [`crate::history`]), so any kind — today's kill, pause, partition and
//! membership, and any added later — is paired without this module knowing its actions.
//! Histories written before those marks existed are paired by name: kill/restart,
//! pause/resume, partition/heal, add-node/remove-node.

use serde_json::Value;

use super::Fault;
use crate::history::FaultPhase;

/// A fault as drawn: from its start to its end (`end` is `None` when the history never ends
/// it), or an instant (`span` false, `end == Some(start)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The fault's kind (`kill`, `membership`, …); for an instant, the event's action.
    pub kind: String,
    /// The node (or nodes) it acted on, as the history names them.
    pub target: String,
    /// The action that started it (`add-node` for membership) and the one that ended it
    /// (empty while it never ended, and for an instant).
    pub action: String,
    pub undo: String,
    pub start: u64,
    pub end: Option<u64>,
    /// An interval of fault (true) or an instant (false).
    pub span: bool,
    /// Why the start failed, when it did: such an event is drawn as an instant.
    pub error: Option<String>,
}

impl Span {
    /// How the report names it: `kill n2`.
    pub fn name(&self) -> String {
        if self.target.is_empty() { self.kind.clone() } else { format!("{} {}", self.kind, self.target) }
    }

    /// When it ends in a run that ends at `t1`.
    pub fn end_or(&self, t1: u64) -> u64 {
        self.end.unwrap_or(t1).max(self.start)
    }
}

/// The colour of a fault kind; kinds the report does not know share one grey.
pub fn color(kind: &str) -> &'static str {
    match kind {
        "kill" => "#8e44ad",
        "pause" => "#c27c0e",
        "partition" => "#117a65",
        "membership" => "#1d6fa5",
        "power-loss" => "#b03a2e",
        "disk" => "#7b5e3b",
        "clock" => "#2c3e91",
        "packet" => "#5f7d1e",
        _ => OTHER,
    }
}

/// The colour of unknown kinds and of instants.
pub const OTHER: &str = "#6c7a89";

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// What an unmarked event of an older history starts or ends, by its name.
fn legacy_mark(f: &str) -> Option<(&'static str, FaultPhase)> {
    Some(match f {
        "kill" => ("kill", FaultPhase::Start),
        "restart" => ("kill", FaultPhase::End),
        "pause" => ("pause", FaultPhase::Start),
        "resume" => ("pause", FaultPhase::End),
        "partition" => ("partition", FaultPhase::Start),
        "heal" => ("partition", FaultPhase::End),
        "add-node" => ("membership", FaultPhase::Start),
        "remove-node" => ("membership", FaultPhase::End),
        _ => return None,
    })
}

/// Pairs each fault's start with its end: the next end of the same kind and target (an end
/// whose target is `all`, or empty, ends every open fault of its kind). A start that failed,
/// an end with nothing open, and any other nemesis event are instants.
pub fn spans(faults: &[Fault]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for f in faults {
        let target = value_text(&f.value);
        let mark = match &f.mark {
            Some(m) => Some((m.kind.as_str(), m.phase)),
            None => legacy_mark(&f.f),
        };
        let instant = |kind: &str| Span {
            kind: kind.to_string(),
            target: target.clone(),
            action: f.f.clone(),
            undo: String::new(),
            start: f.time,
            end: Some(f.time),
            span: false,
            error: f.error.clone(),
        };
        match mark {
            Some((kind, FaultPhase::Start)) if f.error.is_none() => out.push(Span {
                kind: kind.to_string(),
                target: target.clone(),
                action: f.f.clone(),
                undo: String::new(),
                start: f.time,
                end: None,
                span: true,
                error: None,
            }),
            Some((_, FaultPhase::Start)) => out.push(instant(&f.f)),
            Some((kind, FaultPhase::End)) => {
                let everything = target == "all" || target.is_empty();
                let mut closed = false;
                for s in out.iter_mut().filter(|s| s.span && s.end.is_none() && s.kind == kind) {
                    if everything || s.target == target {
                        s.end = Some(f.time);
                        s.undo = f.f.clone();
                        closed = true;
                        if !everything {
                            break;
                        }
                    }
                }
                if !closed {
                    out.push(instant(&f.f));
                }
            }
            None => out.push(instant(&f.f)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::FaultMark;

    fn event(f: &str, node: &str, time: u64) -> Fault {
        Fault { f: f.into(), value: json!(node), time, mark: None, error: None }
    }

    fn marked(f: &str, node: &str, time: u64, mark: FaultMark) -> Fault {
        Fault { mark: Some(mark), ..event(f, node, time) }
    }

    fn drawn(faults: &[Fault]) -> Vec<(String, u64, Option<u64>, bool)> {
        spans(faults).into_iter().map(|s| (s.name(), s.start, s.end, s.span)).collect()
    }

    #[test]
    fn an_older_history_is_paired_by_name() {
        let faults = [
            event("kill", "n1", 10),
            event("partition", "n2", 15),
            event("restart", "n1", 20),
            event("heal", "all", 25),
            event("pause", "n3", 30),
            event("heal", "all", 40),
            event("add-node", "n4", 50),
            event("remove-node", "n4", 60),
        ];
        let want = [
            ("kill n1", 10, Some(20), true),
            ("partition n2", 15, Some(25), true),
            ("pause n3", 30, None, true),
            ("heal all", 40, Some(40), false),
            ("membership n4", 50, Some(60), true),
        ];
        assert_eq!(drawn(&faults), want.map(|(k, a, b, s)| (k.to_string(), a, b, s)));
    }

    #[test]
    fn marked_events_pair_any_kind_by_its_mark() {
        let faults = [
            marked("power-loss", "n2", 10, FaultMark::start("power-loss")),
            marked("bump", "n1", 12, FaultMark::start("clock")),
            marked("bump", "n3", 13, FaultMark::start("clock")),
            marked("restart", "n2", 20, FaultMark::end("power-loss")),
            marked("reset", "all", 30, FaultMark::end("clock")),
            marked("config", "", 31, FaultMark::end("nothing-open")),
        ];
        let want = [
            ("power-loss n2", 10, Some(20), true),
            ("clock n1", 12, Some(30), true),
            ("clock n3", 13, Some(30), true),
            ("config", 31, Some(31), false),
        ];
        assert_eq!(drawn(&faults), want.map(|(k, a, b, s)| (k.to_string(), a, b, s)));
        let s = spans(&faults);
        assert_eq!((s[0].action.as_str(), s[0].undo.as_str()), ("power-loss", "restart"));
    }

    #[test]
    fn a_start_that_failed_is_an_instant() {
        let failed = Fault { error: Some("no such node".into()), ..marked("kill", "n9", 5, FaultMark::start("kill")) };
        let got = spans(&[failed, marked("restart", "n9", 9, FaultMark::end("kill"))]);
        assert_eq!(got.iter().map(|s| (s.span, s.end)).collect::<Vec<_>>(), [(false, Some(5)), (false, Some(9))]);
        assert_eq!(got[0].error.as_deref(), Some("no such node"));
    }

    #[test]
    fn unknown_kinds_share_one_colour_and_known_ones_differ() {
        assert_eq!(color("meteor"), OTHER);
        let known = ["kill", "pause", "partition", "membership", "power-loss", "disk", "clock", "packet"];
        let colours: std::collections::HashSet<_> = known.iter().map(|k| color(k)).collect();
        assert_eq!(colours.len(), known.len());
        assert!(!colours.contains(OTHER));
    }
}
