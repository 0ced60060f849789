//! Mutual TLS for the peer plane (`--peer-tls-cert`, `--peer-tls-key`, `--peer-tls-ca`), as
//! etcd's peer TLS: every node serves its peer port over TLS with its certificate and accepts
//! only callers whose client certificate the cluster's CA signed; every call it makes checks
//! the peer's certificate against the same CA (by the address it dials: the certificate must
//! name that IP or host) and shows its own. With it, peer traffic is encrypted and strangers
//! cannot even complete a handshake; the cluster secret may be used on top.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The files of a node's peer TLS.
#[derive(Clone)]
pub struct PeerTls {
    identity: Identity,
    ca: Certificate,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls(..)")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("{}: not a PEM file", path.display()));
    }
    Ok(bytes)
}

impl PeerTls {
    /// Loads the node's certificate and key and the cluster's CA (PEM files).
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, String> {
        Ok(Self { identity: Identity::from_pem(read(cert)?, read(key)?), ca: Certificate::from_pem(read(ca)?) })
    }

    /// From the three optional flags: all or none.
    pub fn from_flags(
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
        ca: Option<&PathBuf>,
    ) -> Result<Option<Self>, String> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Self::load(cert, key, ca).map(Some),
            _ => Err("peer TLS needs all three of --peer-tls-cert, --peer-tls-key and --peer-tls-ca".into()),
        }
    }

    /// The server side: this node's certificate, client certificates required.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone())
    }

    /// The client side: the peer's certificate checked against the CA, this node's shown.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.ca.clone()).identity(self.identity.clone())
    }
}
