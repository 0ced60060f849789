//! Seeded operation generators: the same seed gives every client the same sequence.

use std::fmt;
use std::str::FromStr;

use crate::history::Op;

/// What a workload client does: one of the history's operations, or `cas`, `getdel`, `getset`.
///
/// `cas` is `SET key new IFEQ expected`, recorded as `f: "cas"` with `value: [expected, new]`
/// (docs/verification.md). It is the workload's own until the checker's register model reads
/// it, so that the history's [`Op`] (which the checker matches exhaustively) names only what
/// the checker can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// An operation of the history's model.
    Op(Op),
    /// A compare-and-set: SET IFEQ with the value the client last read of the key.
    Cas,
    /// GETDEL: read the value and delete the key in one step (recorded `f: "getdel"`, the
    /// value read as its result).
    Getdel,
    /// GETSET: read the value and write a new one in one step (recorded `f: "getset"`, the
    /// new value as its argument, the value read as its result).
    Getset,
}

impl Action {
    /// The name the history records (`f`) and the mix spells.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Op(op) => op.as_str(),
            Action::Cas => "cas",
            Action::Getdel => "getdel",
            Action::Getset => "getset",
        }
    }

    /// dynamo mode's sibling-aware operations.
    pub fn is_versioned(self) -> bool {
        matches!(self, Action::Op(op) if op.is_versioned())
    }
}

impl From<Op> for Action {
    fn from(op: Op) -> Self {
        Action::Op(op)
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cas" => Ok(Action::Cas),
            "getdel" => Ok(Action::Getdel),
            "getset" => Ok(Action::Getset),
            other => other.parse().map(Action::Op),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Relative weights of the operations (`get=3,set=2,del=1,incr=1,append=1`: the default for a
/// server of unknown kind; `valthree workload` adds `cas=2,getdel=1,getset=1` against
/// valthree's linearizable modes).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<(Action, u32)>,
    total: u32,
}

impl Default for Mix {
    fn default() -> Self {
        "get=3,set=2,del=1,incr=1,append=1".parse().expect("the default mix parses")
    }
}

impl FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| format!("expected op=weight, got {part:?}"))?;
            let op: Action = name.trim().parse()?;
            let weight: u32 = weight.trim().parse().map_err(|_| format!("bad weight in {part:?}"))?;
            if weight > 0 {
                weights.push((op, weight));
            }
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("the mix needs at least one operation with a positive weight".into());
        }
        Ok(Self { weights, total })
    }
}

impl Mix {
    /// True when `op` has a positive weight.
    pub fn has(&self, op: impl Into<Action>) -> bool {
        let op = op.into();
        self.weights.iter().any(|(o, _)| *o == op)
    }
}

/// One generated operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub op: Action,
    /// `None` for FLUSHALL.
    pub key: Option<String>,
    /// SET's, CAS's or VSET's value or APPEND's suffix: `<client>-<seq>`, unique in the run.
    pub value: Option<String>,
}

/// The operation stream of one client.
pub struct Generator {
    rng: fastrand::Rng,
    client: u64,
    seq: u64,
    keys: u64,
    mix: Mix,
    prefix: String,
}

impl Generator {
    pub fn new(seed: u64, client: u64, keys: u64, mix: Mix) -> Self {
        let stream = seed ^ client.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self { rng: fastrand::Rng::with_seed(stream), client, seq: 0, keys: keys.max(1), mix, prefix: String::new() }
    }

    /// Keys are `{prefix}k0`, `{prefix}k1`, ...
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Planned {
        self.seq += 1;
        let mut pick = self.rng.u32(0..self.mix.total);
        let op = self
            .mix
            .weights
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map(|(op, _)| *op)
            .expect("pick is below the total weight");
        let key = (op != Action::Op(Op::Flushall)).then(|| format!("{}k{}", self.prefix, self.rng.u64(0..self.keys)));
        let value = matches!(op, Action::Op(Op::Set | Op::Append | Op::Vset) | Action::Cas | Action::Getset)
            .then(|| format!("{}-{}", self.client, self.seq));
        Planned { op, key, value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_values_are_unique() {
        let run = |seed| {
            let mut g = Generator::new(seed, 3, 4, Mix::default());
            (0..200).map(|_| g.next_op()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let values: Vec<_> = run(7).into_iter().filter_map(|p| p.value).collect();
        let mut unique = values.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(values.len(), unique.len());
    }

    #[test]
    fn mixes_parse_and_reject_nonsense() {
        assert!("get=1,incr=2".parse::<Mix>().is_ok());
        assert!("get=0".parse::<Mix>().is_err());
        assert!("get=1,cas=2".parse::<Mix>().unwrap().has(Action::Cas));
        assert!("nope=1".parse::<Mix>().is_err());
        assert!("get".parse::<Mix>().is_err());
    }
}
