//! Who may talk to whom on the peer plane, decided in one place for every mode: the cluster
//! secret ([`ClusterSecret`]) and test partitions.
//!
//! With a secret configured, every connection proves it by the [handshake](super::handshake)
//! before a byte of HTTP/2 is read — a stranger gets a closed connection and nothing else (no
//! key list, no forwarding, no membership, no vote) — and, as a second line, the
//! [`PeerGuard`] on the peer server answers `UNAUTHENTICATED`, before any handler runs, a
//! call on a connection that has not proven it.
//!
//! `valthree cluster partition` tells each node which peers it is cut off from (the
//! [`Faults`] switch). Then a [`PeerChannel`] to such a peer fails every call before it leaves
//! — with a [`Partitioned`] error that [`CallError`](super::CallError) reads as "not sent" —
//! and the [`PeerGuard`] on the node's peer server answers a caller it is cut off from
//! with `FAILED_PRECONDITION` before any handler runs ("refused"). Callers name themselves in
//! the [`FROM_HEADER`] metadata, which every `PeerChannel` adds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::transport::Channel;

use super::ClusterSecret;
use super::admission::PeerConnection;
use crate::node::{Faults, NodeId, peer_name};

/// The metadata key a caller's node id travels in.
pub const FROM_HEADER: &str = "valthree-from";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call not sent because this node is cut off from the peer.
#[derive(Debug)]
pub struct Partitioned(pub NodeId);

impl std::fmt::Display for Partitioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partitioned from n{}", self.0)
    }
}

impl std::error::Error for Partitioned {}

/// A channel to one peer, as every mode's gRPC clients use it: it names the caller and
/// refuses to send while the node is cut off from the peer.
#[derive(Clone)]
pub struct PeerChannel {
    inner: Channel,
    from: NodeId,
    to: NodeId,
    faults: Arc<Faults>,
}

impl PeerChannel {
    /// Wraps a (lazily connected) channel to peer `to`.
    pub fn new(inner: Channel, from: NodeId, to: NodeId, faults: Arc<Faults>) -> Self {
        Self { inner, from, to, faults }
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
        if self.faults.is_isolated_from(&peer_name(self.to)) {
            let refused: BoxError = Box::new(Partitioned(self.to));
            return Box::pin(std::future::ready(Err(refused)));
        }
        request.headers_mut().insert(FROM_HEADER, http::HeaderValue::from(self.from));
        let call = self.inner.call(request);
        Box::pin(async move { call.await.map_err(Into::into) })
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
        if let Some(from) = from
            && self.faults.is_isolated_from(&peer_name(from))
        {
            let status = tonic::Status::failed_precondition(format!("partitioned from n{from}"));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answered = answer.await;
            drop(call);
            answered
        })
    }
}
