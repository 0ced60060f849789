//! Who may talk to whom on the peer plane, decided in one place for every mode: the cluster
//! secret ([`ClusterSecret`]) and test partitions.
//!
//! With a secret configured, every connection proves it by the [handshake](super::handshake)
//! before a byte of HTTP/2 is read — a stranger gets a closed connection and nothing else (no
//! key list, no forwarding, no membership, no vote) — and, as a second line, the
//! [`PeerGuard`] on the peer server answers `UNAUTHENTICATED`, before any handler runs, a
//! call on a connection that has not proven it.
//!
//! `valthree cluster partition` and `valthree cluster packet` tell each node what its link to
//! each peer suffers (the [`Faults`] switch, [`crate::node::Link`]). By default a cut link
//! *drops* messages: a [`PeerChannel`] carries the call across the faulty link
//! ([`super::link`]: the caller waits for its deadline or its connection's keepalive, and
//! learns "maybe sent"), and the [`PeerGuard`] on the receiving side holds a call it must not
//! receive, or the reply it must not send, without answering. The explicit *refusing* shape
//! fails fast instead: the channel fails every call before it leaves — with a
//! [`Partitioned`] error that [`CallError`](super::CallError) reads as "not sent" — and the
//! guard answers a caller it is cut off from with `FAILED_PRECONDITION` before any handler
//! runs ("refused"). Callers name themselves in the [`FROM_HEADER`] metadata, which every
//! `PeerChannel` adds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::transport::Channel;

use std::time::Instant;

use super::ClusterSecret;
use super::admission::PeerConnection;
use crate::metrics::{Metrics, PeerFailure, PeerStats};
use crate::node::{Cut, Faults, NodeId, peer_name};

/// The metadata key a caller's node id travels in.
pub const FROM_HEADER: &str = "valthree-from";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call not sent because this node is cut off from the peer: refused before it left, or
/// (a dropping cut that outlived the connection) a connection attempt never answered.
#[derive(Debug)]
pub struct Partitioned(pub NodeId);

impl std::fmt::Display for Partitioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partitioned from n{}", self.0)
    }
}

impl std::error::Error for Partitioned {}

/// A call whose request or reply a dropping cut lost: the connection's keepalive gave up on
/// the peer. It may have run there.
#[derive(Debug)]
pub struct Dropped(pub NodeId);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection to n{} lost: no answer to keepalive (partitioned, messages dropped)", self.0)
    }
}

impl std::error::Error for Dropped {}

/// A channel to one peer, as every mode's gRPC clients use it: it names the caller,
/// carries each call across the link's faults (a cut, packet faults), and counts every call in the
/// node's metrics (by peer and RPC: calls, failures by kind, latency).
#[derive(Clone)]
pub struct PeerChannel {
    inner: Channel,
    from: NodeId,
    to: NodeId,
    faults: Arc<Faults>,
    metrics: Arc<Metrics>,
}

impl PeerChannel {
    /// Wraps a (lazily connected) channel to peer `to`.
    pub fn new(inner: Channel, from: NodeId, to: NodeId, faults: Arc<Faults>, metrics: Arc<Metrics>) -> Self {
        Self { inner, from, to, faults, metrics }
    }
}

/// One call being counted: recorded when it ends, or as abandoned when its caller stops
/// waiting (a deadline drops the future).
struct Counting {
    stats: Arc<PeerStats>,
    started: Instant,
    done: bool,
}

impl Counting {
    fn finish(&mut self, failure: Option<PeerFailure>) {
        self.done = true;
        self.stats.record(self.started.elapsed(), failure);
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if !self.done {
            self.stats.record(self.started.elapsed(), Some(PeerFailure::Abandoned));
        }
    }
}

/// How a call that came back failed, by the `grpc-status` of a trailers-only response (a
/// handler's error, or the peer's partition layer refusing); `None` for a success, whose
/// status comes later in the trailers.
fn failure_in(headers: &http::HeaderMap) -> Option<PeerFailure> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    match tonic::Code::from(code) {
        tonic::Code::Ok => None,
        tonic::Code::FailedPrecondition => Some(PeerFailure::Refused),
        _ => Some(PeerFailure::MaybeSent),
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for PeerChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let peer = peer_name(self.to);
        let rpc = request.uri().path().rsplit('/').next().unwrap_or_default();
        let mut counting = Counting { stats: self.metrics.peer(&peer, rpc), started: Instant::now(), done: false };
        let link = self.faults.link(&peer);
        if link.refused() {
            counting.finish(Some(PeerFailure::NotSent));
            let refused: BoxError = Box::new(Partitioned(self.to));
            return Box::pin(std::future::ready(Err(refused)));
        }
        request.headers_mut().insert(FROM_HEADER, http::HeaderValue::from(self.from));
        let call: BoxFuture<Result<Self::Response, BoxError>> = if link.is_clear() {
            let call = self.inner.call(request);
            Box::pin(async move { call.await.map_err(Into::into) })
        } else {
            let (inner, faults, to) = (self.inner.clone(), self.faults.clone(), self.to);
            Box::pin(async move { super::link::carry(inner, request, link, &faults, &peer, to).await })
        };
        Box::pin(async move {
            let result = call.await;
            counting.finish(match &result {
                Ok(response) => failure_in(response.headers()),
                Err(e) if super::call::error_never_sent(e.as_ref()) => Some(PeerFailure::NotSent),
                Err(_) => Some(PeerFailure::MaybeSent),
            });
            result
        })
    }
}

/// The server side: refuses, before any handler runs, a call on a connection that has not
/// proven the cluster secret (when one is configured) and a caller the node is cut off from.
#[derive(Clone)]
pub struct PeerGuard {
    faults: Arc<Faults>,
    secret: Option<ClusterSecret>,
    service: &'static str,
}

impl PeerGuard {
    /// A layer reading `faults`, requiring `secret` if given, in front of the gRPC service
    /// named `service` (e.g. `valthree.peer.Peer`): without a secret, only a well-formed
    /// call of that service proves a connection.
    pub fn new(faults: Arc<Faults>, secret: Option<ClusterSecret>, service: &'static str) -> Self {
        Self { faults, secret, service }
    }
}

impl<S> tower_layer::Layer<S> for PeerGuard {
    type Service = PeerGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PeerGuardService { inner, faults: self.faults.clone(), secret: self.secret.clone(), service: self.service }
    }
}

/// [`PeerGuard`]'s service.
#[derive(Clone)]
pub struct PeerGuardService<S> {
    inner: S,
    faults: Arc<Faults>,
    secret: Option<ClusterSecret>,
    service: &'static str,
}

/// Whether `request` is a well-formed gRPC call of the service named `service`: a POST of
/// `application/grpc` to `/service/Method`. Without a secret, only such a call proves a
/// connection: a request for a path that does not exist, or of another protocol, leaves it
/// bounded as a stranger's.
fn is_call_of<B>(request: &http::Request<B>, service: &str) -> bool {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let method =
        request.uri().path().strip_prefix('/').and_then(|p| p.strip_prefix(service)).and_then(|p| p.strip_prefix('/'));
    request.method() == http::Method::POST && grpc && method.is_some_and(|m| !m.is_empty() && !m.contains('/'))
}

impl<S, B> tower_service::Service<http::Request<B>> for PeerGuardService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The connection's standing, over TLS or not.
        let extensions = request.extensions();
        let connection = extensions.get::<PeerConnection>().or_else(|| {
            extensions.get::<tonic::transport::server::TlsConnectInfo<PeerConnection>>().map(|tls| tls.get_ref())
        });
        let connection = connection.cloned();
        if self.secret.is_some() {
            // The handshake proves a connection before any of its bytes reach the server, so
            // only a connection that did not come through admission could fail this.
            if !connection.as_ref().is_some_and(PeerConnection::is_proven) {
                antithesis_sdk::assert_unreachable!(
                    "peer: a call without the cluster secret reached a node",
                    &serde_json::json!({})
                );
                let status = tonic::Status::unauthenticated("the cluster secret is missing or wrong");
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        // The connection has proven the secret, or (without one) carries a well-formed call of
        // this node's service: it is a peer's, counted among the proven connections.
        let call = connection.map(|connection| {
            if self.secret.is_some() || is_call_of(&request, self.service) {
                connection.prove();
            }
            connection.begin_call()
        });
        let from = request.headers().get(FROM_HEADER).and_then(|v| v.to_str().ok()?.parse::<NodeId>().ok());
        let link = from.map(|from| self.faults.link(&peer_name(from))).unwrap_or_default();
        if link.refused() {
            let status = tonic::Status::failed_precondition(format!("partitioned from n{}", from.unwrap_or_default()));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        if link.from == Some(Cut::Drop) {
            // The request never arrives: nothing runs and nothing answers, until the caller
            // gives up and resets the call.
            return Box::pin(async move {
                let _held = call;
                std::future::pending().await
            });
        }
        let answer = self.inner.call(request);
        let reply_lost = link.to == Some(Cut::Drop);
        Box::pin(async move {
            let answered = answer.await;
            if reply_lost {
                // The call ran here; its reply never reaches the caller.
                drop(answered);
                let _held = call;
                return std::future::pending().await;
            }
            drop(call);
            answered
        })
    }
}
