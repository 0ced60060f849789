//! The register model of [`super::model`] over interned values, for the search.
//!
//! The search steps the model millions of times per key, and on strings every step costs an
//! allocation (a clone of the value kept, a concatenation for APPEND, a formatted number for
//! INCR) and every new state a hash of its text. Here each distinct value is a `u32` —
//! equal strings get equal ids, so comparing values is comparing ids — and an operation's
//! input and answer are compiled to ids once, before the search. A step is then a few
//! integer comparisons; APPEND and INCR look their result up in a table keyed by ids and only
//! build (and intern) a string the first time. [`Values::step`] agrees with
//! [`super::model::step`] on every state and operation (`interned_steps_agree_with_the_model`
//! holds them against each other), so the search explores exactly what it did on strings.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::model::{Input, Output, parse_integer};

/// A value, by id; [`ABSENT`] is the key holding nothing.
pub type Value = u32;

/// The id of "no value": the key is absent.
pub const ABSENT: Value = 0;

const UNKNOWN: Value = Value::MAX;

/// A hash for the search's tables: words are mixed by a rotate and a multiply, bytes eight
/// at a time. It beats the standard library's SipHash several times over on the search's
/// small keys, and has no defence against crafted keys: a history built to collide could
/// only slow its own check (equality still decides every look-up).
#[derive(Default)]
pub struct Fast(u64);

impl Hasher for Fast {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("eight bytes")));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(last) ^ (rest.len() as u64) << 59);
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u128(&mut self, word: u128) {
        self.write_u64(word as u64);
        self.write_u64((word >> 64) as u64);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fast>>;

/// What an operation asked for, with its values as ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Get,
    Set(Value),
    Del,
    Incr,
    /// The suffix, as a value (never [`ABSENT`]).
    Append(Value),
    Flushall,
    Cas {
        expected: Value,
        new: Value,
    },
    Getdel,
    Getset(Value),
}

/// What an operation answered, with its values as ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// A read's answer; [`ABSENT`] for nil.
    Value(Value),
    Int(i64),
    Done,
    Swapped(bool),
}

/// Every value a search has met, interned.
pub struct Values {
    text: Vec<Box<str>>,
    ids: FastMap<Box<str>, Value>,
    /// Per value, what INCR reads from it (`None`: INCR fails), its length, and the value
    /// INCR leaves (`UNKNOWN` until first needed).
    integer: Vec<Option<i64>>,
    len: Vec<usize>,
    incremented: Vec<Value>,
    /// (value, suffix) → the value APPEND leaves.
    appended: FastMap<(Value, Value), Value>,
}

impl Default for Values {
    fn default() -> Self {
        let mut v = Values {
            text: Vec::new(),
            ids: FastMap::default(),
            integer: Vec::new(),
            len: Vec::new(),
            incremented: Vec::new(),
            appended: FastMap::default(),
        };
        // Id 0 is the absent key: INCR reads it as 0, APPEND as "".
        v.text.push("".into());
        v.integer.push(Some(0));
        v.len.push(0);
        v.incremented.push(UNKNOWN);
        v
    }
}

impl Values {
    /// The id of `s`, interning it if it is new.
    pub fn id(&mut self, s: &str) -> Value {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.insert(s.into())
    }

    fn insert(&mut self, s: Box<str>) -> Value {
        let id = self.text.len() as Value;
        self.integer.push(parse_integer(&s));
        self.len.push(s.len());
        self.incremented.push(UNKNOWN);
        self.text.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    /// The value as text (`None`: absent).
    #[cfg(test)]
    pub fn text(&self, v: Value) -> Option<&str> {
        (v != ABSENT).then(|| &*self.text[v as usize])
    }

    /// Compiles an operation's input and answer.
    pub fn compile(&mut self, input: &Input, output: Option<&Output>) -> (In, Option<Out>) {
        let input = match input {
            Input::Get => In::Get,
            Input::Set(v) => In::Set(self.id(v)),
            Input::Del => In::Del,
            Input::Incr => In::Incr,
            Input::Append(s) => In::Append(self.id(s)),
            Input::Flushall => In::Flushall,
            Input::Cas { expected, new } => In::Cas { expected: self.id(expected), new: self.id(new) },
            Input::Getdel => In::Getdel,
            Input::Getset(v) => In::Getset(self.id(v)),
        };
        let output = output.map(|o| match o {
            Output::Value(v) => Out::Value(v.as_deref().map_or(ABSENT, |v| self.id(v))),
            Output::Int(n) => Out::Int(*n),
            Output::Done => Out::Done,
            Output::Swapped(s) => Out::Swapped(*s),
        });
        (input, output)
    }

    /// [`super::model::step`] over ids: the value `input` leaves in `state` if the register
    /// can answer `output` there (any answer when `None`), or `None` if it cannot.
    pub fn step(&mut self, state: Value, input: In, output: Option<Out>) -> Option<Value> {
        match input {
            In::Get => match output {
                Some(Out::Value(v)) if v == state => Some(state),
                None => Some(state),
                _ => None,
            },
            In::Set(v) => Some(v),
            In::Del => match output {
                Some(Out::Int(n)) if n != i64::from(state != ABSENT) => None,
                _ => Some(ABSENT),
            },
            In::Flushall => Some(ABSENT),
            In::Incr => {
                let next = self.integer[state as usize].and_then(|n| n.checked_add(1));
                match (next, output) {
                    (Some(n), Some(Out::Int(got))) if n == got => Some(self.incremented(state, n)),
                    (Some(n), None) => Some(self.incremented(state, n)),
                    (None, None) => Some(state),
                    _ => None,
                }
            }
            In::Append(suffix) => {
                let len = self.len[state as usize] + self.len[suffix as usize];
                match output {
                    Some(Out::Int(n)) if n != len as i64 => None,
                    _ => Some(self.appended(state, suffix)),
                }
            }
            In::Cas { expected, new } => {
                let equal = state == expected;
                match output {
                    Some(Out::Swapped(swapped)) if swapped != equal => None,
                    _ if equal => Some(new),
                    _ => Some(state),
                }
            }
            In::Getdel => match output {
                Some(Out::Value(v)) if v != state => None,
                _ => Some(ABSENT),
            },
            In::Getset(v) => match output {
                Some(Out::Value(old)) if old != state => None,
                _ => Some(v),
            },
        }
    }

    fn incremented(&mut self, state: Value, n: i64) -> Value {
        let known = self.incremented[state as usize];
        if known != UNKNOWN {
            return known;
        }
        let id = self.id(&n.to_string());
        self.incremented[state as usize] = id;
        id
    }

    fn appended(&mut self, state: Value, suffix: Value) -> Value {
        if self.len[suffix as usize] == 0 {
            return if state == ABSENT { suffix } else { state };
        }
        if let Some(&id) = self.appended.get(&(state, suffix)) {
            return id;
        }
        let joined = format!("{}{}", self.text[state as usize], self.text[suffix as usize]);
        let id = self.id(&joined);
        self.appended.insert((state, suffix), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::step;
    use super::*;

    /// Every operation on every state, strings against ids: the same verdict, the same value.
    #[test]
    fn interned_steps_agree_with_the_model() {
        let texts = ["", "a", "b", "ab", "0", "1", "9", "10", "-1", "01", "9223372036854775807", "x1"];
        let mut states: Vec<Option<String>> = vec![None];
        states.extend(texts.iter().map(|t| Some(t.to_string())));
        let mut inputs = vec![Input::Get, Input::Del, Input::Incr, Input::Flushall, Input::Getdel];
        for t in texts {
            inputs.push(Input::Set(t.into()));
            inputs.push(Input::Append(t.into()));
            inputs.push(Input::Getset(t.into()));
            for u in ["a", "1", ""] {
                inputs.push(Input::Cas { expected: t.into(), new: u.into() });
            }
        }
        let mut outputs: Vec<Option<Output>> = vec![None, Some(Output::Done)];
        outputs.extend([true, false].map(|b| Some(Output::Swapped(b))));
        outputs.extend((-1..12).map(|n| Some(Output::Int(n))));
        outputs.push(Some(Output::Int(i64::MIN)));
        outputs.push(Some(Output::Value(None)));
        outputs.extend(texts.iter().map(|t| Some(Output::Value(Some(t.to_string())))));
        let mut values = Values::default();
        let mut checked = 0;
        for state in &states {
            for input in &inputs {
                for output in &outputs {
                    let want = step(state.as_deref(), input, output.as_ref());
                    let s = state.as_deref().map_or(ABSENT, |t| values.id(t));
                    let (i, o) = values.compile(input, output.as_ref());
                    let got = values.step(s, i, o);
                    let got = got.map(|v| values.text(v).map(str::to_owned));
                    assert_eq!(got, want, "{state:?} {input} {output:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
