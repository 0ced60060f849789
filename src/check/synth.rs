//! Synthetic histories that are linearizable by construction, for benchmarks and tests.
//!
//! Each client runs operations back to back with random gaps and durations; every
//! operation takes effect at a random instant inside its interval, and its result is what
//! a register would answer when operations are applied in the order of those instants.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::history::{Event, EventType, Numbered, Op, Process};

/// Generates `ops` operations by `clients` clients over `keys` keys.
pub fn linearizable_history(seed: u64, clients: u64, keys: u64, ops: u64) -> Vec<Numbered> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let per_client = ops / clients.max(1);
    // (effect instant, client, op, key, argument, call, ret)
    let mut planned = Vec::with_capacity(ops as usize);
    for c in 0..clients {
        let mut t = rng.u64(0..1_000);
        for seq in 0..per_client {
            let call = t + rng.u64(0..2_000);
            let ret = call + 1 + rng.u64(0..50_000);
            let at = rng.u64(call..=ret);
            let op = [Op::Get, Op::Get, Op::Get, Op::Set, Op::Set, Op::Del, Op::Incr, Op::Append][rng.usize(0..8)];
            let key = format!("k{}", rng.u64(0..keys.max(1)));
            planned.push((at, c, op, key, format!("{c}-{seq}"), call, ret));
            t = ret + 1;
        }
    }
    planned.sort_by_key(|p| (p.0, p.1));
    let mut state: HashMap<String, String> = HashMap::new();
    let mut events = Vec::with_capacity(2 * planned.len());
    for (_, c, op, key, value, call, ret) in planned {
        let current = state.get(&key).cloned();
        let (argument, result, kind) = match op {
            Op::Get => (Value::Null, json!(current), EventType::Ok),
            Op::Set => {
                state.insert(key.clone(), value.clone());
                (json!(value), json!(value), EventType::Ok)
            }
            Op::Del => (Value::Null, json!(state.remove(&key).is_some() as u64), EventType::Ok),
            Op::Incr => match current.as_deref().map_or(Some(0), super::model::parse_integer) {
                Some(n) => {
                    state.insert(key.clone(), (n + 1).to_string());
                    (Value::Null, json!(n + 1), EventType::Ok)
                }
                None => (Value::Null, Value::Null, EventType::Fail),
            },
            Op::Append => {
                let joined = format!("{}{value}", current.unwrap_or_default());
                let len = joined.len();
                state.insert(key.clone(), joined);
                (json!(value), json!(len), EventType::Ok)
            }
            Op::Flushall | Op::Vget | Op::Vset | Op::Vdel | Op::Local => unreachable!("not generated"),
        };
        let event = |kind, value, time| Event {
            index: 0,
            process: Process::Client(c),
            kind,
            f: op.as_str().into(),
            key: Some(key.clone()),
            value,
            error: None,
            time,
        };
        events.push(event(EventType::Invoke, argument, call));
        events.push(event(kind, result, ret));
    }
    crate::history::in_time_order(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Verdict, check};

    #[test]
    fn synthetic_histories_with_every_operation_are_linearizable() {
        for seed in 0..20 {
            let history = linearizable_history(seed, 6, 3, 600);
            let report = check(&history, None, &|_, _| {}).unwrap();
            assert_eq!(report.verdict, Verdict::Linearizable, "seed {seed}");
        }
    }
}
