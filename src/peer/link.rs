//! What a faulty link does to one outgoing call: the network a test partition or a packet
//! fault ([`crate::node::Link`]) puts between this node and a peer, emulated at the call level.
//!
//! **Dropping cuts** behave as a real network does to this plane's transport. A request this
//! node may not send is lost; a reply the peer may not send is lost after the request ran
//! there. Either way the caller hears nothing: its call waits for its own deadline, or for
//! the connection's keepalive to give up ([`KEEPALIVE_GIVES_UP`] after the cut began), which
//! fails it as *maybe sent* — the caller cannot tell a lost request from a lost reply, and a
//! lost reply means the call ran. Once the keepalive has given up the connection is gone,
//! and each new call is a connection attempt that times out ([`CONNECT_TIMEOUT`]): *not
//! sent*, certainly. A one-way cut (`to` or `from` alone) thus delivers requests but not
//! replies, or neither, until the connection dies.
//!
//! **Packet faults** act on whole messages, not IP packets (TCP would turn a lost packet
//! into a retransmission; the protocols above care about messages): each request and each
//! reply is delayed by `delay` plus up to `jitter`; lost with chance `loss` (the caller
//! waits for its deadline; a lost reply means the call ran); a request is delivered twice
//! with chance `duplicate` (the copy's reply is discarded) — protocol messages only, not a
//! forwarded client command (see [`may_duplicate`]) — and held back with chance
//! `reorder` until the next call on the link has left (at most [`REORDER_HOLD`]), so that
//! call overtakes it.

use std::future::poll_fn;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use tonic::transport::Channel;

use super::partition::{Dropped, Partitioned};
use super::{CONNECT_TIMEOUT, KEEPALIVE_GIVES_UP};
use crate::node::{Cut, Faults, Link, NodeId, Packets};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

/// The longest a call held back for reordering waits for the next call on its link.
pub const REORDER_HOLD: Duration = Duration::from_millis(100);

/// Whether a call may be duplicated: every protocol message (acceptor batches, Raft's
/// appends and votes, replica writes, SWIM, anti-entropy), which must be idempotent, and no
/// `Forward`: a forwarded client command is sent at most once (no layer re-sends it; a lost
/// one is answered `-UNCERTAIN`, never retried, and TCP never duplicates), and the modes keep
/// no table to recognise a second copy, so a duplicate would run the command twice — a GETSET
/// would return its own value. That would need a request id and a dedup table at each home.
fn may_duplicate(request: &Request) -> bool {
    request.uri().path().rsplit('/').next() != Some("Forward")
}

/// Sends `request` on `inner` (ready first: the call is made on a clone of the channel).
async fn send(mut inner: Channel, request: Request) -> Result<Response, BoxError> {
    poll_fn(|cx| tower_service::Service::poll_ready(&mut inner, cx)).await?;
    Ok(tower_service::Service::call(&mut inner, request).await?)
}

/// Carries one call from this node to peer `to` (named `peer`) across `link`.
pub(super) async fn carry(
    inner: Channel,
    request: Request,
    link: Link,
    faults: &Faults,
    peer: &str,
    to: NodeId,
) -> Result<Response, BoxError> {
    if link.to == Some(Cut::Drop) || link.from == Some(Cut::Drop) {
        let gives_up = link.since.unwrap_or_else(Instant::now) + KEEPALIVE_GIVES_UP;
        if Instant::now() >= gives_up {
            // The connection is gone: a new one is attempted and never answered.
            tokio::time::sleep(CONNECT_TIMEOUT).await;
            return Err(Box::new(Partitioned(to)));
        }
        if link.to != Some(Cut::Drop) {
            // The request arrives and runs; its reply is lost.
            let _ = tokio::time::timeout_at(gives_up.into(), send(inner, request)).await;
        }
        tokio::time::sleep_until(gives_up.into()).await;
        return Err(Box::new(Dropped(to)));
    }
    match link.packets {
        Some(packets) => through_packets(inner, request, packets, faults, peer).await,
        None => send(inner, request).await,
    }
}

/// A call through a link with packet faults.
async fn through_packets(
    inner: Channel,
    request: Request,
    packets: Packets,
    faults: &Faults,
    peer: &str,
) -> Result<Response, BoxError> {
    let departures = faults.departures(peer);
    if faults.chance(packets.reorder) {
        // Held back until the next call on the link has left, which overtakes it.
        let next = departures.notified();
        let _ = tokio::time::timeout(REORDER_HOLD, next).await;
    }
    tokio::time::sleep(faults.delay(&packets)).await;
    if faults.chance(packets.loss) {
        departures.notify_waiters();
        return std::future::pending().await;
    }
    let request = if may_duplicate(&request) && faults.chance(packets.duplicate) {
        let (original, copy) = twin(request).await?;
        let channel = inner.clone();
        tokio::spawn(async move {
            let _ = send(channel, copy).await;
        });
        original
    } else {
        request
    };
    departures.notify_waiters();
    let response = send(inner, request).await?;
    if faults.chance(packets.loss) {
        // The call ran; its reply is lost.
        drop(response);
        return std::future::pending().await;
    }
    tokio::time::sleep(faults.delay(&packets)).await;
    Ok(response)
}

/// Two copies of a request: its body read into memory, its method, URI and headers copied.
async fn twin(request: Request) -> Result<(Request, Request), BoxError> {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = body.collect().await?.to_bytes();
    let copy = |bytes: Bytes| {
        let mut request = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(bytes)));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        request
    };
    Ok((copy(bytes.clone()), copy(bytes)))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::node::{Direction, NodeOptions};
    use crate::peer::{CallError, Clients, PeerChannel, PeerClient, PeerServer, proto};

    /// A peer that records the `from` of every ping it runs, in the order they run.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<u32>>>);

    impl Recorder {
        fn seen(&self) -> Vec<u32> {
            self.0.lock().unwrap().clone()
        }
    }

    #[tonic::async_trait]
    impl crate::peer::Peer for Recorder {
        async fn paxos(
            &self,
            _: tonic::Request<proto::PaxosBatch>,
        ) -> Result<tonic::Response<proto::PaxosReplies>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn forward(
            &self,
            request: tonic::Request<proto::ForwardRequest>,
        ) -> Result<tonic::Response<proto::ForwardReply>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner().from);
            Ok(tonic::Response::new(proto::ForwardReply::default()))
        }
        async fn list_keys(
            &self,
            _: tonic::Request<proto::ListKeysRequest>,
        ) -> Result<tonic::Response<proto::ListKeysReply>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn scan_keys(
            &self,
            _: tonic::Request<proto::ScanKeysRequest>,
        ) -> Result<tonic::Response<proto::ScanKeysReply>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn ping(
            &self,
            request: tonic::Request<proto::PingRequest>,
        ) -> Result<tonic::Response<proto::Empty>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner().from);
            Ok(tonic::Response::new(proto::Empty {}))
        }
        async fn configure(
            &self,
            _: tonic::Request<proto::Config>,
        ) -> Result<tonic::Response<proto::ConfigReply>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn presence(
            &self,
            _: tonic::Request<proto::PresenceNote>,
        ) -> Result<tonic::Response<proto::Empty>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }

    /// Node 1's client of node 2's peer server, each with its own fault switches.
    struct Pair {
        client: PeerClient<PeerChannel>,
        n1: Arc<Faults>,
        n2: Arc<Faults>,
        recorder: Recorder,
    }

    async fn pair() -> Pair {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (n1, n2) = (Arc::new(Faults::default()), Arc::new(Faults::default()));
        let recorder = Recorder::default();
        let options = NodeOptions::local(2, &addr, Vec::new(), std::env::temp_dir());
        tokio::spawn(crate::peer::serve(
            listener,
            PeerServer::new(recorder.clone()),
            n2.clone(),
            options,
            std::future::pending(),
        ));
        let clients = Clients::new(1, n1.clone(), None, None, crate::metrics::Metrics::new());
        let client = PeerClient::new(clients.channel(2, &addr).unwrap());
        Pair { client, n1, n2, recorder }
    }

    /// A ping within `deadline`, as a caller classifies its outcome (a deadline that passes is
    /// `timed_out`); and how long it took.
    async fn ping(
        client: &PeerClient<PeerChannel>,
        from: u32,
        deadline: Duration,
    ) -> (Result<(), CallError>, Duration) {
        let started = Instant::now();
        let mut client = client.clone();
        let outcome = match tokio::time::timeout(deadline, client.ping(proto::PingRequest { from })).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(CallError::from_status(&status)),
            Err(_) => Err(CallError::timed_out("n2")),
        };
        (outcome, started.elapsed())
    }

    #[tokio::test]
    async fn a_call_across_a_dropping_cut_waits_for_its_deadline_and_may_have_been_sent() {
        let p = pair().await;
        assert_eq!(ping(&p.client, 1, Duration::from_secs(5)).await.0, Ok(()));
        p.n1.isolate(["n2".to_string()]);
        p.n2.isolate(["n1".to_string()]);
        // A deadline shorter than the keepalive's patience: the call takes all of it.
        let (outcome, took) = ping(&p.client, 2, Duration::from_millis(400)).await;
        assert!(matches!(outcome, Err(CallError::MaybeSent(_))), "{outcome:?}");
        assert!(took >= Duration::from_millis(400), "took {took:?}");
        // A longer one: the keepalive gives the connection up, 1 s after the cut began.
        let (outcome, took) = ping(&p.client, 3, Duration::from_secs(10)).await;
        assert!(matches!(outcome, Err(CallError::MaybeSent(_))), "{outcome:?}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        // Then the connection is gone: a new call is a connection attempt that times out.
        let (outcome, took) = ping(&p.client, 4, Duration::from_secs(10)).await;
        assert!(matches!(outcome, Err(CallError::NotSent(_))), "{outcome:?}");
        assert!(took >= CONNECT_TIMEOUT && took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(p.recorder.seen(), [1], "no dropped request ran");
        p.n1.heal();
        p.n2.heal();
        assert_eq!(ping(&p.client, 5, Duration::from_secs(5)).await.0, Ok(()));
    }

    #[tokio::test]
    async fn a_reply_lost_to_a_one_way_cut_leaves_a_call_that_ran() {
        let p = pair().await;
        // n2's messages to n1 are lost; n1's reach n2.
        p.n2.cut(["n1".to_string()], &[Direction::To], Cut::Drop);
        p.n1.cut(["n2".to_string()], &[Direction::From], Cut::Drop);
        let (outcome, _) = ping(&p.client, 7, Duration::from_secs(10)).await;
        assert!(matches!(outcome, Err(CallError::MaybeSent(_))), "{outcome:?}");
        assert_eq!(p.recorder.seen(), [7], "the request arrived and ran");
    }

    #[tokio::test]
    async fn the_receiver_alone_drops_a_call_it_must_not_hear() {
        let p = pair().await;
        // Only n2 knows of the cut: it holds n1's call unanswered and runs nothing.
        p.n2.cut(["n1".to_string()], &[Direction::From], Cut::Drop);
        let (outcome, took) = ping(&p.client, 8, Duration::from_millis(500)).await;
        assert!(matches!(outcome, Err(CallError::MaybeSent(_))), "{outcome:?}");
        assert!(took >= Duration::from_millis(500));
        assert!(p.recorder.seen().is_empty());
    }

    #[tokio::test]
    async fn a_refusing_cut_fails_at_once_on_either_side() {
        let p = pair().await;
        p.n1.refuse(["n2".to_string()]);
        let (outcome, took) = ping(&p.client, 1, Duration::from_secs(5)).await;
        assert!(matches!(outcome, Err(CallError::NotSent(_))), "{outcome:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        p.n1.heal();
        p.n2.refuse(["n1".to_string()]);
        let (outcome, _) = ping(&p.client, 2, Duration::from_secs(5)).await;
        assert!(matches!(outcome, Err(CallError::Refused(_))), "{outcome:?}");
        assert!(p.recorder.seen().is_empty());
    }

    #[tokio::test]
    async fn a_duplicated_call_runs_twice() {
        let p = pair().await;
        p.n1.set_packets(["n2".to_string()], Packets { duplicate: 1.0, ..Packets::default() }, Some(1));
        for from in 1..=3 {
            assert_eq!(ping(&p.client, from, Duration::from_secs(5)).await.0, Ok(()));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.recorder.seen().len() < 6 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut seen = p.recorder.seen();
        seen.sort();
        assert_eq!(seen, [1, 1, 2, 2, 3, 3]);
        // A forwarded client command is never duplicated: it would run twice.
        let mut client = p.client.clone();
        client.forward(proto::ForwardRequest { from: 9, ..Default::default() }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(p.recorder.seen().iter().filter(|f| **f == 9).count(), 1);
    }

    #[tokio::test]
    async fn a_held_back_call_is_overtaken_by_the_next() {
        let p = pair().await;
        p.n1.set_packets(["n2".to_string()], Packets { reorder: 0.5, ..Packets::default() }, Some(3));
        let mut calls = Vec::new();
        for from in 1..=20 {
            let client = p.client.clone();
            calls.push(tokio::spawn(async move { ping(&client, from, Duration::from_secs(5)).await.0 }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for call in calls {
            assert_eq!(call.await.unwrap(), Ok(()));
        }
        let seen = p.recorder.seen();
        assert_eq!(seen.len(), 20, "every call arrives once: {seen:?}");
        assert!(seen.windows(2).any(|w| w[0] > w[1]), "some call was overtaken: {seen:?}");
    }

    #[tokio::test]
    async fn a_lost_call_waits_for_its_deadline_and_delay_slows_both_ways() {
        let p = pair().await;
        p.n1.set_packets(["n2".to_string()], Packets { loss: 1.0, ..Packets::default() }, Some(1));
        let (outcome, took) = ping(&p.client, 1, Duration::from_millis(300)).await;
        assert!(matches!(outcome, Err(CallError::MaybeSent(_))), "{outcome:?}");
        assert!(took >= Duration::from_millis(300));
        assert!(p.recorder.seen().is_empty(), "the request was lost");
        p.n1.heal();
        let delay = Duration::from_millis(100);
        p.n1.set_packets(["n2".to_string()], Packets { delay, ..Packets::default() }, Some(1));
        let (outcome, took) = ping(&p.client, 2, Duration::from_secs(5)).await;
        assert_eq!(outcome, Ok(()));
        assert!(took >= delay * 2, "the request and the reply are each delayed: {took:?}");
    }
}
