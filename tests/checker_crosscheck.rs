//! A second opinion on the linearizability checker: stateright's `LinearizabilityTester`
//! (brute force, no memoization, written independently) must reach the same verdict on
//! small histories — linearizable ones, ones with an indeterminate outcome, and ones with
//! one result tampered with; with CAS and crashed writes too, which is where the checker's
//! rewrites of crashed operations (`check/reduce.rs`) are put to the test.

use serde_json::{Value, json};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use valthree::check::{Verdict, check, synth};
use valthree::history::{EventType, Numbered, Process};

/// One register, as stateright sees it.
#[derive(Clone, Debug, Default)]
struct Register(Option<String>);

#[derive(Clone, Debug)]
enum Op {
    Get,
    Set(String),
    Del,
    Incr,
    Append(String),
    Cas(String, String),
}

#[derive(Clone, Debug, PartialEq)]
enum Ret {
    Value(Option<String>),
    Done,
    Int(i64),
    NotAnInteger,
    Swapped(bool),
}

impl SequentialSpec for Register {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match op {
            Op::Get => Ret::Value(self.0.clone()),
            Op::Set(v) => {
                self.0 = Some(v.clone());
                Ret::Done
            }
            Op::Del => Ret::Int(self.0.take().is_some() as i64),
            Op::Incr => {
                match self.0.as_deref().map_or(Some(0), |v| v.parse::<i64>().ok().filter(|n| n.to_string() == v)) {
                    Some(n) => {
                        self.0 = Some((n + 1).to_string());
                        Ret::Int(n + 1)
                    }
                    None => Ret::NotAnInteger,
                }
            }
            Op::Append(s) => {
                let joined = format!("{}{s}", self.0.clone().unwrap_or_default());
                let len = joined.len() as i64;
                self.0 = Some(joined);
                Ret::Int(len)
            }
            Op::Cas(expected, new) => {
                let swapped = self.0.as_ref() == Some(expected);
                if swapped {
                    self.0 = Some(new.clone());
                }
                Ret::Swapped(swapped)
            }
        }
    }
}

fn op_of(f: &str, value: &Value) -> Op {
    let s = || value.as_str().unwrap().to_string();
    match f {
        "get" => Op::Get,
        "set" => Op::Set(s()),
        "del" => Op::Del,
        "incr" => Op::Incr,
        "append" => Op::Append(s()),
        "cas" => Op::Cas(value[0].as_str().unwrap().into(), value[1].as_str().unwrap().into()),
        other => panic!("unexpected op {other}"),
    }
}

fn ret_of(f: &str, value: &Value) -> Ret {
    match f {
        "get" => Ret::Value(value.as_str().map(str::to_string)),
        "set" => Ret::Done,
        "cas" => Ret::Swapped(value.as_bool().unwrap()),
        _ => Ret::Int(value.as_i64().unwrap()),
    }
}

/// Stateright's verdict. Failed operations never happened and are left out; an operation
/// with unknown outcome stays in flight forever on a thread of its own.
fn stateright_verdict(history: &[Numbered]) -> bool {
    let mut tester = LinearizabilityTester::new(Register::default());
    let mut invoked: std::collections::HashMap<u64, (String, Value)> = Default::default();
    let mut spare_thread = 1_000_000u64;
    for (i, n) in history.iter().enumerate() {
        let Process::Client(p) = n.event.process else { continue };
        match n.event.kind {
            EventType::Invoke => {
                let outcome =
                    history[i + 1..].iter().find(|m| m.event.process == n.event.process).map(|m| m.event.kind);
                match outcome {
                    Some(EventType::Fail) => {}
                    Some(EventType::Info) | None => {
                        if n.event.f != "get" {
                            spare_thread += 1;
                            tester.on_invoke(spare_thread, op_of(&n.event.f, &n.event.value)).unwrap();
                        }
                    }
                    _ => {
                        tester.on_invoke(p, op_of(&n.event.f, &n.event.value)).unwrap();
                        invoked.insert(p, (n.event.f.clone(), n.event.value.clone()));
                    }
                }
            }
            EventType::Ok => {
                let (f, _) = invoked.remove(&p).unwrap();
                tester.on_return(p, ret_of(&f, &n.event.value)).unwrap();
            }
            _ => {}
        }
    }
    tester.is_consistent()
}

/// Tampers with one result, or makes outcomes unknown, depending on the seed.
fn perturb(mut history: Vec<Numbered>, seed: u64) -> Vec<Numbered> {
    let mut rng = fastrand_like(seed);
    let oks: Vec<usize> = (0..history.len()).filter(|&i| history[i].event.kind == EventType::Ok).collect();
    if oks.is_empty() {
        return history;
    }
    match rng() % 3 {
        0 => {} // untouched
        1 => {
            let e = &mut history[oks[(rng() as usize) % oks.len()]].event;
            e.value = match (e.f.as_str(), &e.value) {
                ("get", Value::Null) => json!("0-1"),
                ("get", _) => Value::Null,
                ("set", v) => v.clone(),
                ("cas", v) => json!(!v.as_bool().unwrap()),
                (_, v) => json!(v.as_i64().unwrap() + 1),
            };
        }
        _ => {
            for _ in 0..2 {
                let e = &mut history[oks[(rng() as usize) % oks.len()]].event;
                e.kind = EventType::Info;
                e.value = Value::Null;
            }
        }
    }
    history
}

fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn both_checkers_agree_on_small_histories() {
    let (mut agreed_yes, mut agreed_no) = (0, 0);
    for seed in 0..400 {
        let history = perturb(synth::linearizable_history(seed, 3, 1, 9), seed);
        let ours = check(&history, None, &|_, _| {}).unwrap().verdict;
        let theirs = stateright_verdict(&history);
        assert_eq!(
            ours == Verdict::Linearizable,
            theirs,
            "seed {seed}: valthree says {ours:?}, stateright says {theirs}"
        );
        if theirs { agreed_yes += 1 } else { agreed_no += 1 }
    }
    assert!(agreed_yes > 100 && agreed_no > 30, "both verdicts must be exercised: {agreed_yes} yes, {agreed_no} no");
}

#[test]
fn both_checkers_agree_on_small_histories_with_cas_and_crashed_writes() {
    let (mut agreed_yes, mut agreed_no) = (0, 0);
    for seed in 0..600 {
        let mix = if seed % 2 == 0 { [3, 2, 1, 0, 0, 3] } else { [3, 2, 1, 1, 1, 2] };
        let shape = synth::Shape {
            clients: 3,
            keys: 1,
            ops: 9,
            mix,
            crashed: 3,
            latency: 50_000,
            think: 2_000,
            ..synth::Shape::contended(seed)
        };
        let history = perturb(synth::crashed_history(&shape), seed);
        let ours = check(&history, None, &|_, _| {}).unwrap().verdict;
        let theirs = stateright_verdict(&history);
        assert_eq!(
            ours == Verdict::Linearizable,
            theirs,
            "seed {seed}: valthree says {ours:?}, stateright says {theirs}"
        );
        if theirs { agreed_yes += 1 } else { agreed_no += 1 }
    }
    assert!(agreed_yes > 150 && agreed_no > 50, "both verdicts must be exercised: {agreed_yes} yes, {agreed_no} no");
}

/// The dynamo checker reads contexts with its own decoder; the server encodes them with its
/// own codec. The two must agree on every context the server can hand out, or one of them
/// misreads the protocol.
#[test]
fn the_checkers_context_decoder_reads_what_the_server_encodes() {
    use rand::{Rng, SeedableRng};
    use valthree::check::dynamo::context;
    use valthree::mode::dynamo::dvv;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(24);
    for i in 0..2000 {
        let key = format!("key{i}");
        // Small and huge actors and counters: varints of every length.
        let entries: Vec<(u64, u64)> = (0..rng.random_range(0..6))
            .map(|_| (rng.random::<u64>() >> rng.random_range(0..64), rng.random::<u64>() >> rng.random_range(0..64)))
            .collect();
        let server: dvv::VersionVector = entries.iter().copied().collect();
        let text = server.encode_for(key.as_bytes(), None);
        let ours = context::decode(key.as_bytes(), text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ours.entries().collect::<Vec<_>>(), server.entries().collect::<Vec<_>>(), "{text}");
        assert!(context::decode(b"another key", text.as_bytes()).is_err(), "{text} is bound to its key");
    }
}
