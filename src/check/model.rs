//! The register model: what one key may do, as a function of its current value.

use std::fmt;

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Get,
    Set(String),
    Del,
    Incr,
    Append(String),
    Flushall,
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// GET's value (or null).
    Value(Option<String>),
    /// DEL's count, INCR's new value, APPEND's new length.
    Int(i64),
    /// SET and FLUSHALL: OK.
    Done,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Get => f.write_str("get"),
            Input::Set(v) => write!(f, "set {v:?}"),
            Input::Del => f.write_str("del"),
            Input::Incr => f.write_str("incr"),
            Input::Append(v) => write!(f, "append {v:?}"),
            Input::Flushall => f.write_str("flushall"),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Value(Some(v)) => write!(f, "{v:?}"),
            Output::Value(None) => f.write_str("nil"),
            Output::Int(n) => write!(f, "{n}"),
            Output::Done => f.write_str("OK"),
        }
    }
}

/// Redis' integer parse for INCR: decimal, optional minus, no leading zeros.
fn as_integer(value: Option<&str>) -> Option<i64> {
    match value {
        None => Some(0),
        Some(s) => crate::store::parse_i64(s.as_bytes()),
    }
}

/// Applies `input` to `state`. With `output` known, returns the next state only if the
/// output is what the register would have answered; with `output == None` (unknown
/// outcome) any answer is accepted. An INCR of a non-integer fails in Redis without
/// effect, so an unknown INCR on such a state leaves it unchanged.
pub fn step(state: Option<&str>, input: &Input, output: Option<&Output>) -> Option<Option<String>> {
    let keep = || Some(state.map(str::to_owned));
    match input {
        Input::Get => match output {
            Some(Output::Value(v)) if v.as_deref() == state => keep(),
            None => keep(),
            _ => None,
        },
        Input::Set(v) => Some(Some(v.clone())),
        Input::Del => match output {
            Some(Output::Int(n)) if *n != i64::from(state.is_some()) => None,
            _ => Some(None),
        },
        Input::Flushall => Some(None),
        Input::Incr => {
            let next = as_integer(state).and_then(|n| n.checked_add(1));
            match (next, output) {
                (Some(n), Some(Output::Int(got))) if n == *got => Some(Some(n.to_string())),
                (Some(n), None) => Some(Some(n.to_string())),
                (None, None) => keep(),
                _ => None,
            }
        }
        Input::Append(suffix) => {
            let joined = format!("{}{suffix}", state.unwrap_or(""));
            match output {
                Some(Output::Int(len)) if *len != joined.len() as i64 => None,
                _ => Some(Some(joined)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_must_match_the_state() {
        assert_eq!(step(Some("a"), &Input::Get, Some(&Output::Value(Some("a".into())))), Some(Some("a".into())));
        assert_eq!(step(Some("a"), &Input::Get, Some(&Output::Value(None))), None);
    }

    #[test]
    fn incr_del_and_append_check_their_results() {
        assert_eq!(step(None, &Input::Incr, Some(&Output::Int(1))), Some(Some("1".into())));
        assert_eq!(step(Some("1"), &Input::Incr, Some(&Output::Int(3))), None);
        assert_eq!(step(Some("x"), &Input::Incr, Some(&Output::Int(1))), None);
        assert_eq!(step(Some("x"), &Input::Incr, None), Some(Some("x".into())));
        assert_eq!(step(Some("x"), &Input::Del, Some(&Output::Int(1))), Some(None));
        assert_eq!(step(None, &Input::Del, Some(&Output::Int(1))), None);
        assert_eq!(step(Some("ab"), &Input::Append("c".into()), Some(&Output::Int(3))), Some(Some("abc".into())));
        assert_eq!(step(Some("ab"), &Input::Append("c".into()), Some(&Output::Int(1))), None);
    }
}
