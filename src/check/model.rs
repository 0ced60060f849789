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
    /// Compare-and-set (`SET key new IFEQ expected`): writes `new` only if the value is
    /// `expected`; an absent key compares unequal.
    Cas {
        expected: String,
        new: String,
    },
    /// GETDEL: a read and a delete in one step.
    Getdel,
    /// GETSET: a read and a write in one step.
    Getset(String),
}

impl Input {
    /// The value this operation may write, if it writes one given as its argument (not
    /// APPEND's suffix, which joins the current value).
    pub fn written(&self) -> Option<&str> {
        match self {
            Input::Set(v) | Input::Getset(v) | Input::Cas { new: v, .. } => Some(v),
            _ => None,
        }
    }

    /// The name of the operation, as the history spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Input::Get => "get",
            Input::Set(_) => "set",
            Input::Del => "del",
            Input::Incr => "incr",
            Input::Append(_) => "append",
            Input::Flushall => "flushall",
            Input::Cas { .. } => "cas",
            Input::Getdel => "getdel",
            Input::Getset(_) => "getset",
        }
    }
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
    /// CAS: whether it wrote (`false`: the value was not the one expected).
    Swapped(bool),
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
            Input::Cas { expected, new } => write!(f, "cas {expected:?} -> {new:?}"),
            Input::Getdel => f.write_str("getdel"),
            Input::Getset(v) => write!(f, "getset {v:?}"),
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
            Output::Swapped(swapped) => write!(f, "{swapped}"),
        }
    }
}

/// What INCR reads from the current value: 0 for a missing key, the integer for a value
/// Redis counts as one, `None` (INCR fails) for anything else.
fn as_integer(value: Option<&str>) -> Option<i64> {
    match value {
        None => Some(0),
        Some(s) => parse_integer(s),
    }
}

/// Redis' rule for a string that INCR counts as an integer (`string2ll`): `"0"`, or an
/// optional `-` then decimal digits with no leading zero, and nothing else (no `+`, no
/// spaces, no `-0`), within i64. The checker reads integers itself rather than through the
/// server's parser, so a parsing bug in the server cannot hide from its judge.
pub(crate) fn parse_integer(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if !matches!(digits.as_bytes().first(), Some(b'1'..=b'9')) {
        return None;
    }
    // Accumulated towards the sign, so that i64::MIN, one further from zero than i64::MAX,
    // is reached without overflowing.
    digits.bytes().try_fold(0i64, |n, b| {
        let digit = i64::from(b.checked_sub(b'0').filter(|d| *d <= 9)?);
        let n = n.checked_mul(10)?;
        if negative { n.checked_sub(digit) } else { n.checked_add(digit) }
    })
}

/// Whether an operation with this input and answer leaves every state it can have run on as
/// it was: what it answered says it only read. A GET; a CAS that answered false; a DEL of 0 or
/// a GETDEL of nil (the key was absent); a GETSET that found the value it writes, or a CAS
/// that swapped a value for itself; an APPEND of nothing. (A SET that writes the current value
/// changes nothing here, but would change another state: it is not one of these.)
pub fn only_reads(input: &Input, output: Option<&Output>) -> bool {
    match (input, output) {
        (_, None) => false,
        (Input::Get, _) => true,
        (Input::Cas { .. }, Some(Output::Swapped(false))) => true,
        (Input::Cas { expected, new }, Some(Output::Swapped(true))) => expected == new,
        (Input::Del, Some(Output::Int(0))) | (Input::Getdel, Some(Output::Value(None))) => true,
        (Input::Getset(v), Some(Output::Value(Some(old)))) => old == v,
        (Input::Append(suffix), Some(_)) => suffix.is_empty(),
        _ => false,
    }
}

/// Applies `input` to `state`. With `output` known, returns the next state only if the
/// output is what the register would have answered; with `output == None` (unknown
/// outcome) any answer is accepted. An INCR of a non-integer fails in Redis without
/// effect, so an unknown INCR on such a state leaves it unchanged; so does an unknown CAS
/// that finds another value (it happened, but wrote nothing).
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
        Input::Cas { expected, new } => {
            let equal = state == Some(expected.as_str());
            match output {
                Some(Output::Swapped(swapped)) if *swapped != equal => None,
                _ if equal => Some(Some(new.clone())),
                _ => keep(),
            }
        }
        Input::Getdel => match output {
            Some(Output::Value(v)) if v.as_deref() != state => None,
            _ => Some(None),
        },
        Input::Getset(v) => match output {
            Some(Output::Value(old)) if old.as_deref() != state => None,
            _ => Some(Some(v.clone())),
        },
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

    #[test]
    fn cas_swaps_only_the_expected_value_and_its_answer_must_say_so() {
        let cas = Input::Cas { expected: "a".into(), new: "b".into() };
        let yes = Some(&Output::Swapped(true));
        let no = Some(&Output::Swapped(false));
        assert_eq!(step(Some("a"), &cas, yes), Some(Some("b".into())));
        assert_eq!(step(Some("a"), &cas, no), None, "it found a, so it must have swapped");
        assert_eq!(step(Some("c"), &cas, no), Some(Some("c".into())));
        assert_eq!(step(Some("c"), &cas, yes), None);
        assert_eq!(step(None, &cas, no), Some(None), "an absent key compares unequal");
        assert_eq!(step(None, &cas, yes), None);
        assert_eq!(step(Some("a"), &cas, None), Some(Some("b".into())), "unknown: swapped if it ran");
        assert_eq!(step(Some("c"), &cas, None), Some(Some("c".into())));
    }

    #[test]
    fn getdel_and_getset_read_then_write_in_one_step() {
        let got = |v: Option<&str>| Output::Value(v.map(str::to_owned));
        assert_eq!(step(Some("a"), &Input::Getdel, Some(&got(Some("a")))), Some(None));
        assert_eq!(step(Some("a"), &Input::Getdel, Some(&got(None))), None);
        assert_eq!(step(None, &Input::Getdel, Some(&got(None))), Some(None));
        let getset = Input::Getset("b".into());
        assert_eq!(step(Some("a"), &getset, Some(&got(Some("a")))), Some(Some("b".into())));
        assert_eq!(step(None, &getset, Some(&got(Some("a")))), None);
        assert_eq!(step(None, &getset, None), Some(Some("b".into())));
    }

    #[test]
    fn integers_are_read_by_redis_rules() {
        for (text, value) in [
            ("0", 0),
            ("1", 1),
            ("-1", -1),
            ("10", 10),
            ("-907", -907),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(parse_integer(text), Some(value), "{text:?}");
        }
        for text in [
            "",
            "-",
            "+1",
            "-0",
            "00",
            "01",
            "-01",
            " 1",
            "1 ",
            "1\n",
            "--1",
            "1-",
            "1.0",
            "1e3",
            "0x10",
            "abc",
            "\u{0661}",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
        ] {
            assert_eq!(parse_integer(text), None, "{text:?} is no integer to Redis");
        }
    }

    #[test]
    fn every_integer_reads_back_from_its_decimal_text_and_only_from_it() {
        let mut n = 1i64;
        let samples = (0..63).flat_map(|shift| [1i64 << shift, (1i64 << shift) - 1, -(1i64 << shift)]);
        for value in samples.chain([i64::MAX, i64::MIN, 0]) {
            assert_eq!(parse_integer(&value.to_string()), Some(value), "{value}");
            assert_eq!(parse_integer(&format!("0{value}")), None, "0{value}");
            assert_eq!(parse_integer(&format!("+{value}")), None, "+{value}");
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            assert_eq!(parse_integer(&n.to_string()), Some(n), "{n}");
        }
    }

    #[test]
    fn incr_of_a_value_redis_does_not_count_fails_without_effect() {
        for state in ["01", "+1", " 1", "-0", "9223372036854775808"] {
            assert_eq!(step(Some(state), &Input::Incr, Some(&Output::Int(2))), None, "{state:?}");
            assert_eq!(step(Some(state), &Input::Incr, None), Some(Some(state.into())), "{state:?}");
        }
        assert_eq!(step(Some("9223372036854775807"), &Input::Incr, None), Some(Some("9223372036854775807".into())));
        assert_eq!(
            step(Some("-9223372036854775808"), &Input::Incr, Some(&Output::Int(i64::MIN + 1))),
            Some(Some((i64::MIN + 1).to_string()))
        );
    }
}
