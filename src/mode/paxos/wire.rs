//! Conversions between the CASPaxos types and the peer plane's protobuf messages.

use bytes::Bytes;

use super::acceptor::{Landed, Request, Response};
use super::ballot::Ballot;
use super::proposer::{Command, Outcome};
use super::storage::{AcceptorMessage, AcceptorReply, Config, Member};
use crate::error::{Error, Result};
use crate::peer::proto;
use crate::store::{Mutation, MutationReply, SetCondition, SetOptions, SetReply, UpdateOp, ValueCondition};

pub fn ballot_to(b: Ballot) -> proto::Ballot {
    proto::Ballot { counter: b.counter, node: b.node }
}

/// A ballot from the wire. Every message that carries one sends it (zero included), so an
/// absent ballot is a malformed message, refused — never read as zero, which would let it
/// pass for "nothing accepted" or the lowest ballot.
pub fn ballot_from(b: Option<proto::Ballot>) -> Result<Ballot> {
    let b = b.ok_or_else(|| Error::Input("a paxos message without its ballot".into()))?;
    if b.counter > Ballot::MAX_COUNTER {
        return Err(Error::Input(format!("a ballot counter beyond {} refused", Ballot::MAX_COUNTER)));
    }
    Ok(Ballot { counter: b.counter, node: b.node })
}

pub fn message_to(key: Bytes, round: u64, message: &AcceptorMessage) -> proto::PaxosMessage {
    use proto::paxos_message::Request as R;
    let request = match message {
        AcceptorMessage::Paxos(Request::Prepare { ballot }) => {
            R::Prepare(proto::Prepare { ballot: Some(ballot_to(*ballot)) })
        }
        AcceptorMessage::Paxos(Request::Accept { ballot, value, promise_next }) => R::Accept(proto::Accept {
            ballot: Some(ballot_to(*ballot)),
            value: value.clone(),
            promise_next: *promise_next,
        }),
        AcceptorMessage::Remove { ballot, config_version } => {
            R::Remove(proto::Remove { ballot: Some(ballot_to(*ballot)), config_version: *config_version })
        }
    };
    proto::PaxosMessage { key, round, request: Some(request) }
}

/// A ballot counter above `ceiling` (see [`Ballot::ceiling`]) is refused like a malformed one.
fn below_ceiling(ballot: Ballot, ceiling: u64) -> Result<Ballot> {
    if ballot.counter > ceiling {
        return Err(Error::Input(format!(
            "a ballot counter of {} is beyond this node's ceiling ({ceiling}): refused",
            ballot.counter
        )));
    }
    Ok(ballot)
}

/// An acceptor message from a peer; its ballot must be at most `ceiling`.
pub fn message_from(m: proto::PaxosMessage, ceiling: u64) -> Result<(Bytes, u64, AcceptorMessage)> {
    use proto::paxos_message::Request as R;
    let message = match m.request {
        Some(R::Prepare(p)) => AcceptorMessage::Paxos(Request::Prepare { ballot: ballot_from(p.ballot)? }),
        Some(R::Accept(a)) => AcceptorMessage::Paxos(Request::Accept {
            ballot: ballot_from(a.ballot)?,
            value: a.value,
            promise_next: a.promise_next,
        }),
        Some(R::Remove(r)) => {
            AcceptorMessage::Remove { ballot: ballot_from(r.ballot)?, config_version: r.config_version }
        }
        None => return Err(Error::Input("a paxos message without a request".into())),
    };
    match &message {
        // An accept with `promise_next` makes the acceptor promise the ballot's successor: that
        // promise, not only the ballot, must stay under the ceiling (else it would be stored
        // above it, and every honest reply about the key carrying it would be refused).
        AcceptorMessage::Paxos(Request::Accept { ballot, promise_next: true, .. }) => {
            below_ceiling(ballot.successor(), ceiling)?
        }
        AcceptorMessage::Paxos(Request::Prepare { ballot } | Request::Accept { ballot, .. })
        | AcceptorMessage::Remove { ballot, .. } => below_ceiling(*ballot, ceiling)?,
    };
    Ok((m.key, m.round, message))
}

pub fn reply_to(key: Bytes, round: u64, reply: AcceptorReply) -> proto::PaxosReply {
    use proto::paxos_reply::Response as R;
    let response = match reply {
        AcceptorReply::Paxos(Response::Promised { accepted, value }) => {
            R::Promised(proto::Promised { accepted: Some(ballot_to(accepted)), value })
        }
        AcceptorReply::Paxos(Response::Accepted) => R::Accepted(proto::Accepted {}),
        AcceptorReply::Paxos(Response::Conflict { seen, accepted, landed }) => R::Conflict(proto::Conflict {
            seen: Some(ballot_to(seen)),
            accepted: Some(ballot_to(accepted)),
            landed: match landed {
                Landed::Unknown => 0,
                Landed::Yes => 1,
                Landed::No => 2,
            },
        }),
        AcceptorReply::Removed(removed) => R::Removed(proto::Removed { removed }),
        AcceptorReply::Deferred => R::Deferred(proto::Deferred {}),
    };
    proto::PaxosReply { key, round, response: Some(response) }
}

/// An acceptor's reply from the wire; a malformed one (no response, no ballot) is an error,
/// which the proposer treats as no answer from that acceptor. So is a reply carrying a ballot
/// above `ceiling`: a proposer never follows one.
pub fn reply_from(r: proto::PaxosReply, ceiling: u64) -> Result<(Bytes, u64, AcceptorReply)> {
    use proto::paxos_reply::Response as R;
    let Some(response) = r.response else {
        return Err(Error::Input("a paxos reply without a response".into()));
    };
    let reply = match response {
        R::Promised(p) => {
            AcceptorReply::Paxos(Response::Promised { accepted: ballot_from(p.accepted)?, value: p.value })
        }
        R::Accepted(_) => AcceptorReply::Paxos(Response::Accepted),
        R::Conflict(c) => AcceptorReply::Paxos(Response::Conflict {
            seen: ballot_from(c.seen)?,
            accepted: ballot_from(c.accepted)?,
            landed: match c.landed {
                1 => Landed::Yes,
                2 => Landed::No,
                _ => Landed::Unknown, // absent (a peer that does not say) is never taken as proof
            },
        }),
        R::Removed(r) => AcceptorReply::Removed(r.removed),
        R::Deferred(_) => AcceptorReply::Deferred,
    };
    match &reply {
        AcceptorReply::Paxos(Response::Promised { accepted, .. }) => {
            below_ceiling(*accepted, ceiling)?;
        }
        AcceptorReply::Paxos(Response::Conflict { seen, accepted, .. }) => {
            below_ceiling(*seen, ceiling)?;
            below_ceiling(*accepted, ceiling)?;
        }
        AcceptorReply::Paxos(Response::Accepted) | AcceptorReply::Removed(_) | AcceptorReply::Deferred => {}
    }
    Ok((r.key, r.round, reply))
}

/// A single-key command as a forward request.
pub fn forward_to(from: u32, key: Bytes, command: &Command) -> Result<proto::ForwardRequest> {
    use proto::forward_request::Command as C;
    let command = match command {
        Command::Read => C::Read(proto::Empty {}),
        Command::Write(Mutation::Set { value, options, .. }) => C::Set(proto::Set {
            value: value.clone(),
            condition: match options.condition {
                None => proto::SetCondition::Always,
                Some(SetCondition::IfAbsent) => proto::SetCondition::IfAbsent,
                Some(SetCondition::IfPresent) => proto::SetCondition::IfPresent,
                Some(SetCondition::IfValue(_)) => proto::SetCondition::IfValue,
            } as i32,
            get: options.get,
            if_value: match &options.condition {
                Some(SetCondition::IfValue(test)) => Some(value_condition_to(test)),
                _ => None,
            },
        }),
        Command::Write(Mutation::Remove { condition, get, .. }) => {
            C::RemoveKey(proto::RemoveKey { if_value: condition.as_ref().map(value_condition_to), get: *get })
        }
        Command::Write(Mutation::Del { .. }) => C::Del(proto::Empty {}),
        Command::Write(Mutation::Update { op: UpdateOp::IncrBy(n), .. }) => C::IncrBy(*n),
        Command::Write(Mutation::Update { op: UpdateOp::Append(b), .. }) => C::Append(b.clone()),
        Command::Write(Mutation::FlushAll | Mutation::MultiSet { .. }) | Command::Collect => {
            return Err(Error::Input("only single-key commands are forwarded".into()));
        }
    };
    Ok(proto::ForwardRequest { from, key, command: Some(command) })
}

pub fn forward_from(request: proto::ForwardRequest) -> Result<(Bytes, Command)> {
    use proto::forward_request::Command as C;
    let key = request.key;
    let command = match request.command {
        Some(C::Read(_)) => Command::Read,
        Some(C::Set(s)) => {
            let condition = match proto::SetCondition::try_from(s.condition) {
                Ok(proto::SetCondition::Always) => None,
                Ok(proto::SetCondition::IfAbsent) => Some(SetCondition::IfAbsent),
                Ok(proto::SetCondition::IfPresent) => Some(SetCondition::IfPresent),
                Ok(proto::SetCondition::IfValue) => Some(SetCondition::IfValue(value_condition_from(s.if_value)?)),
                Err(_) => return Err(Error::Input("unknown SET condition".into())),
            };
            Command::Write(Mutation::Set {
                key: key.clone(),
                value: s.value,
                options: SetOptions { condition, get: s.get },
            })
        }
        Some(C::Del(_)) => Command::Write(Mutation::Del { keys: vec![key.clone()] }),
        Some(C::IncrBy(n)) => Command::Write(Mutation::Update { key: key.clone(), op: UpdateOp::IncrBy(n) }),
        Some(C::Append(b)) => Command::Write(Mutation::Update { key: key.clone(), op: UpdateOp::Append(b) }),
        Some(C::RemoveKey(r)) => Command::Write(Mutation::Remove {
            key: key.clone(),
            condition: r.if_value.map(|c| value_condition_from(Some(c))).transpose()?,
            get: r.get,
        }),
        None => return Err(Error::Input("a forward without a command".into())),
    };
    Ok((key, command))
}

fn value_condition_to(test: &ValueCondition) -> proto::ValueCondition {
    use proto::value_condition::Test as T;
    let test = match test {
        ValueCondition::Equal(v) => T::Equal(v.clone()),
        ValueCondition::NotEqual(v) => T::NotEqual(v.clone()),
        ValueCondition::DigestEqual(d) => T::DigestEqual(*d),
        ValueCondition::DigestNotEqual(d) => T::DigestNotEqual(*d),
    };
    proto::ValueCondition { test: Some(test) }
}

/// A value condition from a peer; a missing one is an error, never "no condition" (that
/// would turn a compare-and-set into a plain SET).
fn value_condition_from(test: Option<proto::ValueCondition>) -> Result<ValueCondition> {
    use proto::value_condition::Test as T;
    Ok(match test.and_then(|t| t.test) {
        Some(T::Equal(v)) => ValueCondition::Equal(v),
        Some(T::NotEqual(v)) => ValueCondition::NotEqual(v),
        Some(T::DigestEqual(d)) => ValueCondition::DigestEqual(d),
        Some(T::DigestNotEqual(d)) => ValueCondition::DigestNotEqual(d),
        None => return Err(Error::Input("a value condition without its test".into())),
    })
}

pub fn outcome_to(result: Result<Outcome>) -> proto::ForwardReply {
    use proto::forward_reply::Outcome as O;
    let (outcome, error_message) = match result {
        Ok(Outcome::Read(value)) => (O::Read(proto::OptionalValue { value }), String::new()),
        Ok(Outcome::Write(MutationReply::Set(SetReply { written, previous }))) => {
            (O::Set(proto::SetOutcome { written, previous }), String::new())
        }
        Ok(Outcome::Write(MutationReply::Removed(SetReply { written, previous }))) => {
            (O::Removed(proto::SetOutcome { written, previous }), String::new())
        }
        Ok(Outcome::Write(MutationReply::Count(n))) => (O::Count(n), String::new()),
        Ok(Outcome::Write(MutationReply::Integer(n))) => (O::Integer(n), String::new()),
        Ok(other) => (O::Error(proto::ErrorClass::Input.into()), format!("unexpected outcome {other:?}")),
        Err(Error::TryAgain(m)) => (O::Error(proto::ErrorClass::TryAgain.into()), m),
        Err(Error::Uncertain(m)) => (O::Error(proto::ErrorClass::Uncertain.into()), m),
        // The message alone, not the error's Display: the forwarding node answers the client
        // with exactly the text the home would have (`ERR value is not an integer ...`).
        Err(Error::Input(m) | Error::Config(m) | Error::Peer(m) | Error::Io(m)) => {
            (O::Error(proto::ErrorClass::Input.into()), m)
        }
        Err(e @ Error::Prefixed { .. }) => (O::Error(proto::ErrorClass::Input.into()), e.to_string()),
    };
    proto::ForwardReply { outcome: Some(outcome), error_message }
}

pub fn outcome_from(reply: proto::ForwardReply) -> Result<Outcome> {
    use proto::forward_reply::Outcome as O;
    match reply.outcome {
        Some(O::Read(v)) => Ok(Outcome::Read(v.value)),
        Some(O::Set(s)) => {
            Ok(Outcome::Write(MutationReply::Set(SetReply { written: s.written, previous: s.previous })))
        }
        Some(O::Removed(s)) => {
            Ok(Outcome::Write(MutationReply::Removed(SetReply { written: s.written, previous: s.previous })))
        }
        Some(O::Count(n)) => Ok(Outcome::Write(MutationReply::Count(n))),
        Some(O::Integer(n)) => Ok(Outcome::Write(MutationReply::Integer(n))),
        Some(O::Error(class)) => Err(match proto::ErrorClass::try_from(class) {
            Ok(proto::ErrorClass::Input) => Error::Input(reply.error_message),
            Ok(proto::ErrorClass::TryAgain) => Error::TryAgain(reply.error_message),
            // Unspecified or unknown: nothing proves it did not happen.
            Ok(proto::ErrorClass::Uncertain | proto::ErrorClass::Unspecified) | Err(_) => {
                Error::Uncertain(reply.error_message)
            }
        }),
        None => Err(Error::Uncertain("the home node sent an empty reply".into())),
    }
}

pub fn config_to(c: &Config) -> proto::Config {
    let members = |ms: &[Member]| {
        ms.iter()
            .map(|m| proto::Member { id: m.id, peer_addr: m.peer_addr.clone(), incarnation: c.incarnation_of(m.id) })
            .collect::<Vec<_>>()
    };
    proto::Config {
        version: c.version,
        members: members(&c.members),
        previous: c.previous.as_deref().map(members).unwrap_or_default(),
        joint: c.previous.is_some(),
        highest_id: c.highest_id,
    }
}

/// A configuration from the wire. A member's incarnation 0 means none is recorded.
pub fn config_from(c: proto::Config) -> Config {
    let previous = if c.joint { c.previous.as_slice() } else { &[] };
    let incarnations =
        previous.iter().chain(&c.members).filter(|m| m.incarnation != 0).map(|m| (m.id, m.incarnation)).collect();
    let members = |ms: Vec<proto::Member>| {
        ms.into_iter().map(|m| Member { id: m.id, peer_addr: m.peer_addr }).collect::<Vec<_>>()
    };
    Config {
        version: c.version,
        members: members(c.members),
        previous: c.joint.then(|| members(c.previous)),
        highest_id: c.highest_id,
        incarnations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Incarnations travel with the members; a configuration from an older node (every
    /// incarnation 0) records none.
    #[test]
    fn a_configuration_keeps_its_incarnations_on_the_wire() {
        let member = |id: u32| Member { id, peer_addr: format!("h{id}:1") };
        let config = Config {
            version: 7,
            members: vec![member(1), member(2), member(4)],
            previous: Some(vec![member(1), member(2), member(3)]),
            highest_id: 4,
            incarnations: [(1, 0xa1), (2, 0xb2), (3, 0xc3)].into(),
        };
        assert_eq!(config_from(config_to(&config)), config);
        let mut older = config_to(&config);
        older.members.iter_mut().chain(older.previous.iter_mut()).for_each(|m| m.incarnation = 0);
        assert!(config_from(older).incarnations.is_empty());
    }

    #[test]
    fn absent_or_absurd_ballots_are_refused() {
        assert!(ballot_from(None).is_err());
        assert!(ballot_from(Some(proto::Ballot { counter: u64::MAX, node: 1 })).is_err());
        assert_eq!(ballot_from(Some(proto::Ballot { counter: 7, node: 2 })).unwrap(), Ballot::new(7, 2));
        let poisoned = proto::PaxosMessage {
            key: Bytes::from_static(b"k"),
            round: 1,
            request: Some(proto::paxos_message::Request::Prepare(proto::Prepare {
                ballot: Some(proto::Ballot { counter: u64::MAX, node: 9 }),
            })),
        };
        assert!(message_from(poisoned, Ballot::MAX_COUNTER).is_err());
    }

    #[test]
    fn ballots_above_the_ceiling_are_refused_in_messages_and_replies() {
        let prepare = |counter| proto::PaxosMessage {
            key: Bytes::from_static(b"k"),
            round: 1,
            request: Some(proto::paxos_message::Request::Prepare(proto::Prepare {
                ballot: Some(proto::Ballot { counter, node: 9 }),
            })),
        };
        assert!(message_from(prepare(1000), 1000).is_ok());
        assert!(message_from(prepare(1001), 1000).is_err());
        let accept = |counter, promise_next| proto::PaxosMessage {
            key: Bytes::from_static(b"k"),
            round: 1,
            request: Some(proto::paxos_message::Request::Accept(proto::Accept {
                ballot: Some(proto::Ballot { counter, node: 9 }),
                value: None,
                promise_next,
            })),
        };
        assert!(message_from(accept(1000, false), 1000).is_ok());
        assert!(message_from(accept(999, true), 1000).is_ok());
        assert!(message_from(accept(1000, true), 1000).is_err(), "its promise would be stored above the ceiling");
        let conflict = |seen| proto::PaxosReply {
            key: Bytes::from_static(b"k"),
            round: 1,
            response: Some(proto::paxos_reply::Response::Conflict(proto::Conflict {
                seen: Some(proto::Ballot { counter: seen, node: 9 }),
                accepted: Some(proto::Ballot { counter: 0, node: 0 }),
                landed: 2,
            })),
        };
        assert!(reply_from(conflict(1000), 1000).is_ok());
        assert!(reply_from(conflict(1001), 1000).is_err(), "a proposer never follows a ballot above its ceiling");
    }

    #[test]
    fn the_ceiling_rises_with_the_clock_from_a_floor_and_stays_far_below_the_followed_limit() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(Ballot::ceiling(UNIX_EPOCH), Ballot::CEILING_FLOOR);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000); // January 2027
        let later = now + Duration::from_secs(1);
        assert_eq!(Ballot::ceiling(later) - Ballot::ceiling(now), Ballot::CEILING_RATE);
        assert!(Ballot::ceiling(now) < Ballot::MAX_FOLLOWED >> 10);
        // In 60,000 years it is still below the followed limit.
        let far = now + Duration::from_secs(60_000 * 365 * 86_400);
        assert!(Ballot::ceiling(far) < Ballot::MAX_FOLLOWED);
    }

    #[test]
    fn value_conditions_cross_the_wire_and_a_missing_test_is_refused() {
        let key = Bytes::from_static(b"k");
        let v = Bytes::from_static(b"v");
        let set = |test| {
            Command::Write(Mutation::Set {
                key: key.clone(),
                value: v.clone(),
                options: SetOptions { condition: Some(SetCondition::IfValue(test)), get: true },
            })
        };
        let commands = [
            set(ValueCondition::Equal(v.clone())),
            set(ValueCondition::NotEqual(v.clone())),
            set(ValueCondition::DigestEqual(u64::MAX)),
            set(ValueCondition::DigestNotEqual(0)),
            Command::Write(Mutation::Remove { key: key.clone(), condition: None, get: true }),
            Command::Write(Mutation::Remove {
                key: key.clone(),
                condition: Some(ValueCondition::Equal(v.clone())),
                get: false,
            }),
        ];
        for command in commands {
            let (k, back) = forward_from(forward_to(1, key.clone(), &command).unwrap()).unwrap();
            assert_eq!((k, format!("{back:?}")), (key.clone(), format!("{command:?}")));
        }
        let mut request = forward_to(1, key.clone(), &set(ValueCondition::Equal(v.clone()))).unwrap();
        if let Some(proto::forward_request::Command::Set(s)) = &mut request.command {
            s.if_value = None;
        }
        assert!(forward_from(request).is_err(), "IFEQ without its value must not become a plain SET");
        let removed = Ok(Outcome::Write(MutationReply::Removed(SetReply { written: true, previous: Some(v) })));
        assert_eq!(format!("{:?}", outcome_from(outcome_to(removed.clone()))), format!("{removed:?}"));
    }
}
