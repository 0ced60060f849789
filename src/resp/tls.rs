//! TLS on the client port, as Redis 6+ offers it (`--tls-port`, `--tls-cert-file`,
//! `--tls-key-file`, `--tls-ca-cert-file`, `--tls-auth-clients`), with rustls.
//!
//! The plain port and the TLS port serve the same store side by side; `--port`-less setups
//! bind the plain `--addr` as always. With a CA file, clients must present a certificate it
//! signed (`--tls-auth-clients yes`, Redis' default once a CA is given) or may (`optional`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Whether clients must show a certificate signed by `--tls-ca-cert-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// A client certificate is required.
    Yes,
    /// A client certificate is checked when given.
    Optional,
    /// No client certificate is asked for.
    No,
}

/// The TLS settings of the client port.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_cert_file: Option<PathBuf>,
    pub auth_clients: ClientAuth,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The time client certificates are checked against: the node's one wall clock
/// ([`crate::node::clock`]), so that an injected skew makes a certificate look expired or not
/// yet valid exactly as a real one would.
#[derive(Debug)]
struct NodeClock;

impl rustls::time_provider::TimeProvider for NodeClock {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        let since = crate::node::clock::now().duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(rustls::pki_types::UnixTime::since_unix_epoch(since))
    }
}

/// Builds the acceptor, or says exactly which file is wrong.
pub fn acceptor(options: &TlsOptions) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = read_certs(&options.cert_file)?;
    let key =
        PrivateKeyDer::from_pem_file(&options.key_file).map_err(|e| format!("{}: {e}", options.key_file.display()))?;
    let builder = rustls::ServerConfig::builder_with_details(provider.clone(), Arc::new(NodeClock))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (&options.ca_cert_file, options.auth_clients) {
        (Some(ca), auth) if auth != ClientAuth::No => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
        (None, ClientAuth::Yes) => {
            return Err("--tls-auth-clients yes needs --tls-ca-cert-file to check client certificates against".into());
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {}: {e}", options.cert_file.display(), options.key_file.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
