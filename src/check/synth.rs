//! Synthetic histories that are linearizable by construction, for benchmarks and tests.
//!
//! Each client runs operations back to back with random gaps and durations; every
//! operation takes effect at a random instant inside its interval, and its result is what
//! a register would answer when operations are applied in the order of those instants.
//! [`crashed_history`] adds clients that give up on writes (`info`) which then take effect
//! later or never, and can plant one stale read.

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
            fault: None,
            time,
        };
        events.push(event(EventType::Invoke, argument, call));
        events.push(event(kind, result, ret));
    }
    crate::history::in_time_order(events)
}

/// An acknowledged write: call, return, the value after it, and whether that value is
/// written by no other operation.
type Written = (u64, u64, Option<String>, bool);

/// The shape of a history from [`crashed_history`].
#[derive(Debug, Clone)]
pub struct Shape {
    pub seed: u64,
    pub clients: u64,
    pub keys: u64,
    pub ops: u64,
    /// Relative weights of get, set, del, incr, append and cas.
    pub mix: [u32; 6],
    /// About how many writes (set, append, incr, del, cas) crash: the client gives up
    /// (`info`) and the write takes effect at some later instant, possibly after the client
    /// moved on, or never.
    pub crashed: u64,
    /// Plant one stale read near the middle: a GET that returns a value overwritten by an
    /// acknowledged write that ended before the GET began.
    pub stale_read: bool,
    /// The longest an operation takes (ns); each takes 1 to this.
    pub latency: u64,
    /// The longest a client waits between operations (ns).
    pub think: u64,
}

impl Shape {
    /// 64 clients on 4 keys, 100k operations, about 240 crashed writes (the shape of issue
    /// 28), with the mix get=3,set=2,cas=2,del=1; about 5 operations of each key in flight.
    pub fn contended(seed: u64) -> Self {
        Shape {
            seed,
            clients: 64,
            keys: 4,
            ops: 100_000,
            mix: [3, 2, 1, 0, 0, 2],
            crashed: 240,
            stale_read: false,
            latency: 5_000,
            think: 10_000,
        }
    }
}

/// A history of the given shape: linearizable unless `shape.stale_read`, in which case
/// exactly one read makes it not (the function panics if it finds no read to plant it in).
/// CAS expects the value its client last saw on the key (read or wrote), or a value never
/// written when it saw none.
pub fn crashed_history(shape: &Shape) -> Vec<Numbered> {
    const KINDS: [&str; 6] = ["get", "set", "del", "incr", "append", "cas"];
    let mut rng = fastrand::Rng::with_seed(shape.seed);
    let total: u32 = shape.mix.iter().sum();
    let per_client = shape.ops / shape.clients.max(1);
    let writes_share = 1.0 - f64::from(shape.mix[0]) / f64::from(total.max(1));
    let crash_chance = shape.crashed as f64 / (shape.ops as f64 * writes_share).max(1.0);
    struct Planned {
        at: u64,
        client: u64,
        kind: &'static str,
        key: String,
        value: String,
        call: u64,
        ret: u64,
        crashed: bool,
        happens: bool,
    }
    let mut planned = Vec::with_capacity(shape.ops as usize);
    for c in 0..shape.clients {
        let mut t = rng.u64(0..1_000);
        for seq in 0..per_client {
            let call = t + rng.u64(0..shape.think.max(1));
            let ret = call + 1 + rng.u64(0..shape.latency.max(1));
            let mut pick = rng.u32(0..total.max(1));
            let kind = KINDS[shape
                .mix
                .iter()
                .position(|&w| {
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0)];
            let crashed = kind != "get" && rng.f64() < crash_chance;
            let happens = !crashed || rng.bool();
            // A crashed write may take effect long after its client gave up.
            let at = if crashed { call + rng.u64(0..(ret - call) * 20) } else { rng.u64(call..=ret) };
            let key = format!("k{}", rng.u64(0..shape.keys.max(1)));
            planned.push(Planned {
                at,
                client: c,
                kind,
                key,
                value: format!("{c}-{seq}"),
                call,
                ret,
                crashed,
                happens,
            });
            t = ret + 1;
        }
    }
    planned.sort_by_key(|p| (p.at, p.client));
    let mut state: HashMap<String, String> = HashMap::new();
    let mut seen: HashMap<(u64, String), String> = HashMap::new();
    let mut events = Vec::with_capacity(2 * planned.len());
    // Acknowledged writes per key (call, ret, value written or none, whether that value is
    // written by this operation alone: SET's and CAS's), for the stale read.
    let mut acknowledged: HashMap<String, Vec<Written>> = HashMap::new();
    for p in planned {
        let current = state.get(&p.key).cloned();
        let (argument, mut result, mut kind) = match p.kind {
            "get" => (Value::Null, json!(current), EventType::Ok),
            "set" => (json!(p.value), json!(p.value), EventType::Ok),
            "del" => (Value::Null, json!(current.is_some() as u64), EventType::Ok),
            "incr" => match current.as_deref().map_or(Some(0), super::model::parse_integer) {
                Some(n) => (Value::Null, json!(n + 1), EventType::Ok),
                None => (Value::Null, Value::Null, EventType::Fail),
            },
            "append" => (json!(p.value), json!(current.as_deref().unwrap_or("").len() + p.value.len()), EventType::Ok),
            _ => {
                let expected =
                    seen.get(&(p.client, p.key.clone())).cloned().unwrap_or_else(|| format!("{}-none", p.client));
                (json!([expected, p.value]), json!(current.as_deref() == Some(expected.as_str())), EventType::Ok)
            }
        };
        if p.happens && kind == EventType::Ok {
            let next = match p.kind {
                "set" => Some(p.value.clone()),
                "del" => None,
                "incr" => Some(result.as_i64().unwrap_or_default().to_string()),
                "append" => Some(format!("{}{}", current.as_deref().unwrap_or(""), p.value)),
                "cas" if result == json!(true) => Some(p.value.clone()),
                _ => current.clone(),
            };
            if p.kind != "get" && (p.kind != "cas" || result == json!(true)) {
                if !p.crashed {
                    let unique = matches!(p.kind, "set" | "cas");
                    acknowledged.entry(p.key.clone()).or_default().push((p.call, p.ret, next.clone(), unique));
                }
                match &next {
                    Some(v) => state.insert(p.key.clone(), v.clone()),
                    None => state.remove(&p.key),
                };
            }
            if !p.crashed
                && let Some(v) = match p.kind {
                    "get" => current.clone(),
                    "cas" if result == json!(true) => Some(p.value.clone()),
                    "set" => Some(p.value.clone()),
                    _ => None,
                }
            {
                seen.insert((p.client, p.key.clone()), v);
            }
        }
        if p.crashed {
            (result, kind) = (Value::Null, EventType::Info);
        }
        let event = |kind, value, time| Event {
            index: 0,
            process: Process::Client(p.client),
            kind,
            f: p.kind.into(),
            key: Some(p.key.clone()),
            value,
            error: None,
            fault: None,
            time,
        };
        events.push(event(EventType::Invoke, argument, p.call));
        events.push(event(kind, result, p.ret));
    }
    let mut history = crate::history::in_time_order(events);
    if shape.stale_read {
        plant_stale_read(&mut history, &acknowledged);
    }
    history
}

/// Makes one GET past the middle of `history` return a value an acknowledged write X wrote,
/// where X ended before an acknowledged write W of another value began, and W ended before
/// the GET began: in every linearization X, W and the GET come in that order, and only X
/// writes X's value, so the GET cannot see it.
fn plant_stale_read(history: &mut [Numbered], acknowledged: &HashMap<String, Vec<Written>>) {
    let mut open: HashMap<Process, (usize, u64)> = HashMap::new();
    for i in 0..history.len() {
        let e = &history[i].event;
        if e.kind == EventType::Invoke {
            open.insert(e.process, (i, e.time));
            continue;
        }
        let Some((_, call)) = open.remove(&e.process) else { continue };
        if i < history.len() / 2 || e.f != "get" || e.kind != EventType::Ok {
            continue;
        }
        let key = e.key.clone().unwrap_or_default();
        let writes = &acknowledged[&key];
        let Some(w) = writes.iter().filter(|w| w.1 < call).max_by_key(|w| w.1) else { continue };
        let stale = writes.iter().rev().find_map(|x| {
            (x.1 < w.0 && x.3 && x.2 != w.2 && json!(x.2) != history[i].event.value).then(|| x.2.clone())
        });
        if let Some(stale) = stale {
            history[i].event.value = json!(stale);
            return;
        }
    }
    panic!("no read to plant a stale value in");
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
