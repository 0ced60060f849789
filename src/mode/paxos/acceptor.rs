//! The acceptor: a pure function from (slot, message) to (slot, reply).
//!
//! One slot per key holds the promise, the last accepted ballot and its value. The driver
//! must make a changed slot durable (fsync) before it sends the reply — a promise or an
//! accept that is forgotten in a crash breaks quorum intersection.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ballot::{Ballot, NodeId};

/// What an acceptor remembers about one register.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Slot {
    /// No prepare or accept below this ballot is taken.
    pub promised: Ballot,
    /// The ballot of the accepted value (`Ballot::ZERO`: nothing accepted yet).
    pub accepted: Ballot,
    /// The accepted value; `None` is an absent key (never written, or deleted).
    pub value: Option<Bytes>,
    /// The last ballot of each proposer accepted here. It lets a refusal say whether the
    /// refused accept had in fact been accepted earlier (its reply lost): ballots of one
    /// proposer only grow, so "not the last one accepted" means "never accepted here".
    pub last_by: BTreeMap<NodeId, Ballot>,
}

/// Whether an accept that is refused now had been accepted here before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Landed {
    /// It was accepted here (and since superseded): it counts toward its quorum.
    Yes,
    /// It was never accepted here.
    No,
    /// This acceptor cannot tell (its history was garbage-collected).
    Unknown,
}

/// A request to an acceptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Phase 1: promise to ignore lower ballots and report what was accepted.
    Prepare { ballot: Ballot },
    /// Phase 2: accept `value` at `ballot`; with `promise_next`, also promise the
    /// proposer's next ballot (the one-round-trip optimisation).
    Accept { ballot: Ballot, value: Option<Bytes>, promise_next: bool },
}

/// An acceptor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The prepare is granted; here is the last accepted value.
    Promised { accepted: Ballot, value: Option<Bytes> },
    /// The accept is taken.
    Accepted,
    /// Refused: this acceptor has seen `seen`, which is at least the ballot asked for;
    /// `accepted` is the ballot of the value it holds; for a refused accept, `landed` says
    /// whether that accept had been taken here before.
    Conflict { seen: Ballot, accepted: Ballot, landed: Landed },
}

/// Handles one request against `slot`. Returns the reply and whether the slot changed
/// (and so must be persisted before the reply is sent).
pub fn handle(slot: &mut Slot, request: &Request) -> (Response, bool) {
    let seen = slot.promised.max(slot.accepted);
    let landed = match request {
        Request::Accept { ballot, .. } => match slot.last_by.get(&ballot.node) {
            Some(last) if last == ballot => Landed::Yes,
            Some(last) if last > ballot => Landed::Unknown,
            _ => Landed::No,
        },
        Request::Prepare { .. } => Landed::No,
    };
    let conflict = Response::Conflict { seen, accepted: slot.accepted, landed };
    match request {
        Request::Prepare { ballot } => {
            // A duplicate of the prepare this slot last promised: promise again, unchanged.
            if *ballot == slot.promised && slot.accepted < *ballot {
                return (Response::Promised { accepted: slot.accepted, value: slot.value.clone() }, false);
            }
            if *ballot <= seen {
                return (conflict, false);
            }
            slot.promised = *ballot;
            (Response::Promised { accepted: slot.accepted, value: slot.value.clone() }, true)
        }
        Request::Accept { ballot, value, promise_next } => {
            // A duplicate of the accept this slot took. A ballot carries one value only, so a
            // different value under the same ballot is a proposer bug and is refused.
            if *ballot == slot.accepted && *ballot != Ballot::ZERO {
                if *value == slot.value {
                    return (Response::Accepted, false);
                }
                // Never "landed": this acceptor holds another value under that ballot.
                return (Response::Conflict { seen, accepted: slot.accepted, landed: Landed::Unknown }, false);
            }
            if *ballot < slot.promised || *ballot <= slot.accepted {
                return (conflict, false);
            }
            slot.accepted = *ballot;
            slot.value = value.clone();
            slot.last_by.insert(ballot.node, *ballot);
            slot.promised = if *promise_next { ballot.successor() } else { *ballot };
            (Response::Accepted, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(counter: u64, node: u32) -> Ballot {
        Ballot::new(counter, node)
    }

    #[test]
    fn prepares_and_accepts_respect_the_promise() {
        let mut slot = Slot::default();
        let (r, changed) = handle(&mut slot, &Request::Prepare { ballot: b(1, 1) });
        assert_eq!((r, changed), (Response::Promised { accepted: Ballot::ZERO, value: None }, true));
        let (r, changed) = handle(&mut slot, &Request::Prepare { ballot: b(1, 1) });
        assert_eq!(
            (r, changed),
            (Response::Promised { accepted: Ballot::ZERO, value: None }, false),
            "duplicates are idempotent"
        );
        let (r, _) = handle(&mut slot, &Request::Prepare { ballot: b(1, 0) });
        assert_eq!(r, Response::Conflict { seen: b(1, 1), accepted: Ballot::ZERO, landed: Landed::No });
        let accept = |ballot, v: &'static str| Request::Accept {
            ballot,
            value: Some(Bytes::from_static(v.as_bytes())),
            promise_next: false,
        };
        assert_eq!(
            handle(&mut slot, &accept(b(0, 9), "old")).0,
            Response::Conflict { seen: b(1, 1), accepted: Ballot::ZERO, landed: Landed::No }
        );
        assert_eq!(handle(&mut slot, &accept(b(1, 1), "x")).0, Response::Accepted);
        assert_eq!(handle(&mut slot, &accept(b(1, 1), "x")), (Response::Accepted, false), "a duplicate accept");
        assert!(
            matches!(handle(&mut slot, &accept(b(1, 1), "y")).0, Response::Conflict { landed: Landed::Unknown, .. }),
            "never two values, and never a claim that the other one landed"
        );
        let (r, _) = handle(&mut slot, &Request::Prepare { ballot: b(2, 0) });
        assert_eq!(r, Response::Promised { accepted: b(1, 1), value: Some(Bytes::from_static(b"x")) });
        // Once (2,0) is accepted, a late duplicate of (1,1) is refused, and the refusal says
        // that (1,1) had been accepted here.
        assert_eq!(handle(&mut slot, &accept(b(2, 0), "w")).0, Response::Accepted);
        let refused = handle(&mut slot, &accept(b(1, 1), "x")).0;
        assert!(matches!(refused, Response::Conflict { landed: Landed::Yes, .. }), "{refused:?}");
        let never = handle(&mut slot, &accept(b(1, 3), "z")).0;
        assert!(matches!(never, Response::Conflict { landed: Landed::No, .. }), "{never:?}");
    }

    #[test]
    fn an_accept_with_promise_next_blocks_ballots_below_the_successor() {
        let mut slot = Slot::default();
        let accept = Request::Accept { ballot: b(3, 1), value: None, promise_next: true };
        assert_eq!(handle(&mut slot, &accept).0, Response::Accepted);
        assert_eq!(slot.promised, b(4, 1));
        // Another proposer's ballot between (3,1) and (4,1) cannot prepare...
        assert!(matches!(handle(&mut slot, &Request::Prepare { ballot: b(3, 2) }).0, Response::Conflict { .. }));
        // ...but the promised successor can be accepted directly.
        let next = Request::Accept { ballot: b(4, 1), value: None, promise_next: true };
        assert_eq!(handle(&mut slot, &next).0, Response::Accepted);
    }
}
