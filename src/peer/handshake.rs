//! The challenge every peer connection opens with when a cluster secret is configured: the
//! secret itself never travels, and nothing recorded from one connection is accepted on
//! another.
//!
//! ```text
//! server → client   server nonce (32 random bytes, fresh for the connection)
//! client → server   client nonce (32 random bytes) ‖ HMAC-SHA256(k, "client" ‖ server nonce ‖ client nonce)
//! server → client   HMAC-SHA256(k, "server" ‖ server nonce ‖ client nonce)
//! ```
//!
//! `k` is a key derived from the secret ([`ClusterSecret::key_for`]). The server reads no
//! byte of HTTP/2 until the client's answer checks out (else it closes the connection); the
//! client sends no call until the server's answer checks out, so a node talks only to holders
//! of the secret in both directions. A recording of a connection answers that connection's
//! nonce only: replayed on a new connection, it fails the challenge and no call is read.
//! Calls are bound to the connection they came on, and the connection to one handshake.
//!
//! This is not encryption: without peer TLS whoever reads the traffic reads the values, and
//! whoever can inject into an open TCP connection can forge calls on it. Peer TLS
//! (`--peer-tls-*`, see [`super::PeerTls`]) runs over the handshake and closes both gaps.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::ClusterSecret;

/// The length of a nonce and of a tag.
const LEN: usize = 32;

/// What the server and the client each prove with.
#[derive(Clone)]
pub struct HandshakeKey([u8; 32]);

impl std::fmt::Debug for HandshakeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandshakeKey(..)")
    }
}

impl HandshakeKey {
    /// The key `secret` gives.
    pub fn new(secret: &ClusterSecret) -> Self {
        Self(secret.key_for("peer connection handshake"))
    }

    fn mac(&self, role: &[u8], server_nonce: &[u8], client_nonce: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(role);
        mac.update(server_nonce);
        mac.update(client_nonce);
        mac
    }

    fn tag(&self, role: &[u8], server_nonce: &[u8], client_nonce: &[u8]) -> [u8; LEN] {
        self.mac(role, server_nonce, client_nonce).finalize().into_bytes().into()
    }

    /// True when `tag` is `role`'s for the two nonces (compared in constant time).
    fn verify(&self, role: &[u8], server_nonce: &[u8], client_nonce: &[u8], tag: &[u8]) -> bool {
        self.mac(role, server_nonce, client_nonce).verify_slice(tag).is_ok()
    }
}

/// A fresh nonce from the operating system's generator.
fn nonce() -> io::Result<[u8; LEN]> {
    super::secret::random().map_err(io::Error::other)
}

fn refused(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("peer handshake: {what}"))
}

/// The client's side, on a connection just opened: answers the server's challenge and checks
/// the server's answer to its own.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, key: &HandshakeKey) -> io::Result<()> {
    let mut server_nonce = [0u8; LEN];
    stream.read_exact(&mut server_nonce).await?;
    let client_nonce = nonce()?;
    let mut answer = client_nonce.to_vec();
    answer.extend_from_slice(&key.tag(b"client", &server_nonce, &client_nonce));
    stream.write_all(&answer).await?;
    stream.flush().await?;
    let mut proof = [0u8; LEN];
    stream.read_exact(&mut proof).await?;
    if !key.verify(b"server", &server_nonce, &client_nonce, &proof) {
        return Err(refused("the peer does not hold the cluster secret"));
    }
    Ok(())
}

/// The client's side for a caller that holds `secret` (what a node's channels do on every
/// connection they open; public for tests that speak raw HTTP/2 to a peer port).
pub async fn prove_secret<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, secret: &ClusterSecret) -> io::Result<()> {
    client(stream, &HandshakeKey::new(secret)).await
}

/// The server's side, driven from the connection's reads and writes until done.
pub(super) struct ServerHandshake {
    key: HandshakeKey,
    server_nonce: [u8; LEN],
    step: Step,
}

enum Step {
    /// Sending `bytes` from `at`; then reading the answer, or done when `last`.
    Send {
        bytes: Vec<u8>,
        at: usize,
        last: bool,
    },
    /// Reading the client's nonce and tag.
    Read {
        answer: [u8; 2 * LEN],
        read: usize,
    },
    Done,
}

impl ServerHandshake {
    /// A handshake with a fresh nonce.
    pub(super) fn new(key: HandshakeKey) -> io::Result<Self> {
        let server_nonce = nonce()?;
        Ok(Self { key, server_nonce, step: Step::Send { bytes: server_nonce.to_vec(), at: 0, last: false } })
    }

    /// Moves the handshake on; ready when done (or failed: the connection must then close).
    pub(super) fn poll<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut self.step {
                Step::Send { bytes, at, last } => {
                    while *at < bytes.len() {
                        let sent = ready!(Pin::new(&mut *stream).poll_write(cx, &bytes[*at..]))?;
                        if sent == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *at += sent;
                    }
                    ready!(Pin::new(&mut *stream).poll_flush(cx))?;
                    self.step = if *last { Step::Done } else { Step::Read { answer: [0; 2 * LEN], read: 0 } };
                }
                Step::Read { answer, read } => {
                    while *read < answer.len() {
                        let mut buf = ReadBuf::new(&mut answer[*read..]);
                        ready!(Pin::new(&mut *stream).poll_read(cx, &mut buf))?;
                        if buf.filled().is_empty() {
                            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                        }
                        *read += buf.filled().len();
                    }
                    let (client_nonce, tag) = answer.split_at(LEN);
                    if !self.key.verify(b"client", &self.server_nonce, client_nonce, tag) {
                        return Poll::Ready(Err(refused("the caller does not hold the cluster secret")));
                    }
                    let proof = self.key.tag(b"server", &self.server_nonce, client_nonce);
                    self.step = Step::Send { bytes: proof.to_vec(), at: 0, last: true };
                }
                Step::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Opens peer connections for a tonic channel: TCP, then the handshake when a key is given
/// (peer TLS, when configured, runs over what this returns).
#[derive(Clone, Debug)]
pub struct Connector {
    key: Option<HandshakeKey>,
}

impl Connector {
    /// Connections proving `secret`, if any.
    pub fn new(secret: Option<&ClusterSecret>) -> Self {
        Self { key: secret.map(HandshakeKey::new) }
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Connects and passes the handshake within [`CONNECT_TIMEOUT`](super::CONNECT_TIMEOUT).
    /// The timeout is applied here, not only around the connector by tonic, so that its error
    /// comes out as a connect error: a call waiting for this connection was certainly never
    /// sent ([`super::never_sent`]); a loaded peer that answers the handshake late must not make
    /// a forwarded write `-UNCERTAIN`.
    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let key = self.key.clone();
        let connecting = async move {
            let host = uri.host().ok_or_else(|| io::Error::other(format!("no host in {uri}")))?;
            let port = uri.port_u16().ok_or_else(|| io::Error::other(format!("no port in {uri}")))?;
            let mut stream = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
            stream.set_nodelay(true)?;
            if let Some(key) = key {
                client(&mut stream, &key).await?;
            }
            Ok(hyper_util::rt::TokioIo::new(stream))
        };
        Box::pin(async move {
            match tokio::time::timeout(super::CONNECT_TIMEOUT, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", super::CONNECT_TIMEOUT),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> HandshakeKey {
        HandshakeKey::new(&ClusterSecret::new(text).unwrap())
    }

    async fn serve(mut stream: TcpStream, key: HandshakeKey) -> io::Result<()> {
        let mut handshake = ServerHandshake::new(key)?;
        std::future::poll_fn(|cx| handshake.poll(&mut stream, cx)).await
    }

    #[tokio::test]
    async fn both_sides_holding_the_secret_pass_and_a_wrong_secret_fails_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (server_key, client_key, pass) in [
            ("the cluster secret, long enough", "the cluster secret, long enough", true),
            ("the cluster secret, long enough", "another secret, long enough too", false),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let client_key = key(client_key);
            let (client, server) = tokio::join!(client(&mut stream, &client_key), serve(accepted, key(server_key)));
            assert_eq!(client.is_ok(), pass, "{client:?}");
            assert_eq!(server.is_ok(), pass, "{server:?}");
        }
    }

    #[tokio::test]
    async fn an_answer_recorded_on_one_connection_fails_on_the_next() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secret = "the cluster secret, long enough";
        let server = tokio::spawn({
            let key = key(secret);
            async move {
                let first = serve(listener.accept().await.unwrap().0, key.clone()).await;
                let second = serve(listener.accept().await.unwrap().0, key).await;
                (first, second)
            }
        });
        // A client that records what it sends.
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut server_nonce = [0u8; LEN];
        first.read_exact(&mut server_nonce).await.unwrap();
        let client_nonce = [7u8; LEN];
        let mut answer = client_nonce.to_vec();
        answer.extend_from_slice(&key(secret).tag(b"client", &server_nonce, &client_nonce));
        first.write_all(&answer).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(&answer).await.unwrap();
        let (first, second) = server.await.unwrap();
        assert!(first.is_ok(), "{first:?}");
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    }
}
