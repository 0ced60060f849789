//! What became of a peer call that failed, decided where the error is born: typed, never
//! read from an error's text.

use std::fmt;

/// The outcome of a failed peer call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Certainly not delivered: no connection could be made, or this node is cut off from
    /// the peer (a partition stops the call before it leaves).
    NotSent(String),
    /// The peer refused the call before running anything (it is cut off from this node).
    Refused(String),
    /// The call may have been delivered and run: the connection failed after sending, the
    /// peer answered with an error from inside its handler, or the deadline passed.
    MaybeSent(String),
}

impl CallError {
    /// Classifies a failed call's status.
    pub fn from_status(status: &tonic::Status) -> Self {
        let what = describe(status);
        if never_sent(status) {
            CallError::NotSent(what)
        } else if status.code() == tonic::Code::FailedPrecondition && std::error::Error::source(status).is_none() {
            // Sent by the peer itself (a status decoded from the wire has no local source):
            // its partition layer refuses before any handler runs.
            CallError::Refused(what)
        } else {
            CallError::MaybeSent(what)
        }
    }

    /// A call that did not finish before its deadline.
    pub fn timed_out(peer: &str) -> Self {
        CallError::MaybeSent(format!("{peer} did not answer in time"))
    }

    /// The kind's name, as logs (`error_kind`) and metrics (`kind`) give it.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::NotSent(_) => "not_sent",
            CallError::Refused(_) => "refused",
            CallError::MaybeSent(_) => "maybe_sent",
        }
    }

    /// True when the call certainly did not run at the peer.
    pub fn certainly_not_run(&self) -> bool {
        !matches!(self, CallError::MaybeSent(_))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotSent(m) | CallError::Refused(m) | CallError::MaybeSent(m) => f.write_str(m),
        }
    }
}

/// The metadata key that marks a refusal as "this node is stopping".
pub const STOPPING_HEADER: &str = "valthree-stopping";

/// The status a stopping node refuses a peer's call with: the call did not run (the status
/// is `FAILED_PRECONDITION`, so [`CallError::from_status`] reads it as refused) and the node
/// is alive, finishing what it took before (see [`is_stopping`]).
pub fn stopping(node: impl fmt::Display) -> tonic::Status {
    let mut status = tonic::Status::failed_precondition(format!("{node} is stopping"));
    status.metadata_mut().insert(STOPPING_HEADER, tonic::metadata::MetadataValue::from_static("1"));
    status
}

/// True when a failed call's status is a peer's [`stopping`] refusal, as it came over the
/// wire: the peer answered, so it is not hung; it runs no new call and ends the ones it took.
/// A status made on this side (a transport error) carries a source and never counts.
pub fn is_stopping(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition
        && std::error::Error::source(status).is_none()
        && status.metadata().contains_key(STOPPING_HEADER)
}

/// A status' message followed by its causes ("transport error: connection closed: ..."), so
/// that a log line or a `-UNCERTAIN` reply says what actually failed.
fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        let cause = error.to_string();
        if !cause.is_empty() && !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = error.source();
    }
    text
}

/// True when a failed call certainly never reached the peer: the connection to it could not
/// be made (refused, unreachable, timed out while connecting), or the request was never handed
/// to a connection (hyper found the connection already closed and gave the request back). tonic
/// marks the first with its `ConnectError` and hyper the second as a canceled request, somewhere in the status' source chain; typed checks, not matches on error texts. A
/// failure after the request was written (reset, keepalive timeout, the call's deadline) may
/// have delivered it and is not "never sent".
pub fn never_sent(status: &tonic::Status) -> bool {
    chain_never_sent(std::error::Error::source(status))
}

/// [`never_sent`] for a transport error as the channel returns it (before tonic wraps it in a
/// status): the error and its causes.
pub fn error_never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    chain_never_sent(Some(error))
}

fn chain_never_sent(mut source: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() || error.is::<super::partition::Partitioned>() {
            return true;
        }
        if let Some(error) = error.downcast_ref::<hyper::Error>()
            && error.is_canceled()
        {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{PeerClient, proto};
    use std::time::Duration;

    fn list_request() -> proto::ListKeysRequest {
        proto::ListKeysRequest { from: 1, tombstones: false }
    }

    #[test]
    fn a_stopping_refusal_reads_as_refused_and_stopping_over_the_wire() {
        let sent = stopping("n1").into_http::<tonic::body::Body>();
        let heard = tonic::Status::from_header_map(sent.headers()).expect("a status in the headers");
        assert!(is_stopping(&heard), "{heard:?}");
        assert!(matches!(CallError::from_status(&heard), CallError::Refused(_)));
        // A partition's refusal is no stop; nor is a stopping node's ping of an older version.
        assert!(!is_stopping(&tonic::Status::failed_precondition("partitioned from n1")));
        assert!(!is_stopping(&tonic::Status::unavailable("n1 is stopping")));
    }

    #[tokio::test]
    async fn a_call_to_a_closed_port_was_never_sent() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut client =
            PeerClient::new(crate::peer::endpoint(&format!("127.0.0.1:{port}"), None).unwrap().connect_lazy());
        for _ in 0..3 {
            let status = client.list_keys(list_request()).await.unwrap_err();
            assert!(never_sent(&status), "{status:?}");
            let error = CallError::from_status(&status);
            assert!(matches!(error, CallError::NotSent(_)));
            // The reply names the cause, not just tonic's "transport error".
            assert!(error.to_string().len() > status.message().len() + 2, "{error}");
        }
    }

    #[tokio::test]
    async fn a_hung_peer_fails_the_call_quickly_and_it_may_have_been_sent() {
        // A listener that accepts and never answers: what a SIGSTOPped node looks like.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mut client = PeerClient::new(crate::peer::endpoint(&addr.to_string(), None).unwrap().connect_lazy());
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(5), client.list_keys(list_request())).await;
        let status = outcome.expect("the keepalive ends the call before 5 s").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert!(!never_sent(&status), "{status:?}");
        assert!(matches!(CallError::from_status(&status), CallError::MaybeSent(_)));
        hold.abort();
    }
}
