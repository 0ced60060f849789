//! A polynomial decision for keys that only GET and SET distinct values: Gibbons and
//! Korach's zones ("Testing shared memories", SIAM J. Comput. 26(4), 1997; in the form of
//! Golab, Li and Shah, "Analyzing consistency properties for fun and profit", PODC 2011).
//!
//! The search is exponential in the operations of a key in flight; at 16 of them it may not
//! finish. When every SET of a key writes a value no other SET of it writes, a read names the
//! write it saw, and the question becomes one of intervals. The *cluster* of a value is its
//! write and the reads that returned it (the key's initial absence is a write at the start
//! of time, and reads of nil its cluster). In a linearization a cluster's operations are
//! consecutive: the write, then its reads, with no other write between them. Let `f` be the
//! earliest return in a cluster and `l` its latest call. If `f < l` the cluster spans at
//! least `[f, l]` in every linearization (its *forward zone*); otherwise it fits anywhere in
//! `[l, f]` (its *backward zone*). The key is linearizable exactly when (a) no read returned
//! before its write was called and every value read was written, (b) no two forward zones
//! overlap, and (c) no backward zone lies inside a forward zone. (Necessity: two clusters'
//! segments are disjoint, and a segment spanning a forward zone leaves no room inside it
//! for another segment. Sufficiency is the theorem of Gibbons and Korach: order the clusters
//! by their zones and each cluster's operations within it.) Times are compared strictly,
//! so operations that end and begin at the same instant count as concurrent, as the search
//! counts them.
//!
//! Crashed operations first: with only GET and SET, a crashed SET of a value nobody read is
//! dropped and one of a value somebody read is bounded by its first reader's return, exactly
//! as [`super::reduce`] argues (rules 1 and 3). Any other key is left to the search.

use std::collections::HashMap;

use super::model::{Input, Output};
use super::prepare::Operation;

/// What the zones say of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zones {
    /// The key has operations other than GET and SET, or two SETs of one value.
    NotApplicable,
    Linearizable,
    /// Not linearizable; these operations (indices into the key's) show why: a read and its
    /// write, or the operations bounding two zones that cannot both fit.
    Conflict(Vec<usize>),
}

/// Times as the zones see them: the start of time is -1.
type Time = i128;

struct Cluster {
    /// (earliest return, the operation), (latest call, the operation); `None` for the key's
    /// initial absence.
    first_ret: (Time, Option<usize>),
    last_call: (Time, Option<usize>),
}

impl Cluster {
    fn ops(&self) -> Vec<usize> {
        let mut v: Vec<usize> = [self.first_ret.1, self.last_call.1].into_iter().flatten().collect();
        v.dedup();
        v
    }
}

/// Decides a key by its zones, when it only GETs and SETs distinct values.
pub fn decide(ops: &[Operation]) -> Zones {
    if !ops.iter().all(|o| matches!(o.input, Input::Get | Input::Set(_))) {
        return Zones::NotApplicable;
    }
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        if let Input::Set(v) = &o.input
            && writer.insert(v.as_str(), i).is_some()
        {
            return Zones::NotApplicable;
        }
    }
    // Reads by the value they returned.
    let mut reads: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        if let Some(Output::Value(v)) = &o.output {
            reads.entry(v.as_deref()).or_default().push(i);
        }
    }
    let mut clusters: Vec<Cluster> = Vec::new();
    for (&v, &w) in &writer {
        let readers = reads.get(&Some(v)).map(Vec::as_slice).unwrap_or_default();
        let first_read = readers.iter().map(|&r| (Time::from(ops[r].ret), Some(r))).min();
        let write = &ops[w];
        let ret = match (write.is_determinate(), first_read) {
            (true, _) => (Time::from(write.ret), Some(w)),
            (false, None) => continue,     // crashed and never read: it may not have happened
            (false, Some(first)) => first, // crashed and read: it happened before that read returned
        };
        if let Some(&r) = readers.iter().find(|&&r| ops[r].ret < write.call) {
            return Zones::Conflict(vec![w, r]);
        }
        let mut cluster = Cluster { first_ret: ret, last_call: (Time::from(write.call), Some(w)) };
        for &r in readers {
            cluster.first_ret = cluster.first_ret.min((Time::from(ops[r].ret), Some(r)));
            cluster.last_call = cluster.last_call.max((Time::from(ops[r].call), Some(r)));
        }
        clusters.push(cluster);
    }
    for (value, readers) in &reads {
        match value {
            Some(v) if !writer.contains_key(v) => return Zones::Conflict(vec![readers[0]]),
            Some(_) => {}
            None => {
                let mut cluster = Cluster { first_ret: (-1, None), last_call: (-1, None) };
                for &r in readers {
                    cluster.last_call = cluster.last_call.max((Time::from(ops[r].call), Some(r)));
                }
                clusters.push(cluster);
            }
        }
    }
    let (mut forward, backward): (Vec<&Cluster>, Vec<&Cluster>) =
        clusters.iter().partition(|c| c.first_ret.0 < c.last_call.0);
    forward.sort_by_key(|c| c.first_ret);
    // (b) Sorted by start, a zone overlaps an earlier one iff it starts before the furthest
    // end so far.
    let mut furthest: Option<&Cluster> = None;
    for &z in &forward {
        if let Some(f) = furthest
            && f.last_call.0 > z.first_ret.0
        {
            return Zones::Conflict([f.ops(), z.ops()].concat());
        }
        if furthest.is_none_or(|f| z.last_call.0 > f.last_call.0) {
            furthest = Some(z);
        }
    }
    // (c) The forward zones are disjoint now: the one starting last before a backward zone
    // starts is the only one that can hold it.
    for b in backward {
        let (start, end) = (b.last_call.0, b.first_ret.0);
        let i = forward.partition_point(|z| z.first_ret.0 < start);
        if let Some(z) = i.checked_sub(1).map(|i| forward[i])
            && end < z.last_call.0
        {
            return Zones::Conflict([z.ops(), b.ops()].concat());
        }
    }
    Zones::Linearizable
}
