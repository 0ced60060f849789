//! The HTTP admin endpoint (`valthree serve --metrics-addr HOST:PORT`, off by default), a
//! plane of its own beside the client port and the peer port:
//!
//! * `GET /metrics` — every metric in Prometheus' text format;
//! * `GET /livez` — `200 ok` while the process serves (it says nothing of the cluster);
//! * `GET /readyz` — `200 ready` when this node can answer a linearizable read now
//!   ([`Store::readiness`]: raft a known leader, applied caught up and a confirmed read index;
//!   paxos a quorum round; dynamo R owners alive for each of its partitions; s3 the object
//!   store answers), else `503` and the reason on one line.
//!
//! It reads nothing secret and changes nothing, so it has no password; bind it to loopback or a
//! private network (`cluster up` uses loopback; the compose files the container network).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::store::Store;

/// How long `/readyz` waits for the mode's answer before it answers "not ready".
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections served at once; more are closed at once (a scraper needs one).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the endpoint on `listener` until `shutdown` is cancelled. Once `stopping` is
/// cancelled (the node got SIGTERM and refuses new clients), `/readyz` answers not ready.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    stopping: CancellationToken,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let socket = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let (metrics, store, shutdown) = (metrics.clone(), store.clone(), shutdown.clone());
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (metrics, store, stopping) = (metrics.clone(), store.clone(), stopping.is_cancelled());
                async move { Ok::<_, Infallible>(respond(&request, &metrics, store.as_ref(), stopping).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(socket), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection => {}
            }
            drop(permit);
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("valid"));
    response
}

/// The answer to one request; `stopping`: the node is stopping (it refuses new clients).
pub async fn respond<B>(
    request: &Request<B>,
    metrics: &Arc<Metrics>,
    store: &dyn Store,
    stopping: bool,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.encode());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE.parse().expect("valid"),
            );
            response
        }
        "/livez" => text(StatusCode::OK, "ok\n"),
        // A load balancer takes the node out before its listener refuses anyone for long.
        "/readyz" if stopping => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: stopping (SIGTERM)\n"),
        "/readyz" => match tokio::time::timeout(READY_TIMEOUT, store.readiness()).await {
            Ok(Ok(())) => text(StatusCode::OK, "ready\n"),
            Ok(Err(reason)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: no answer from the {} mode within {READY_TIMEOUT:?}\n", store.describe().mode),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: /metrics, /livez, /readyz\n"),
    }
}
