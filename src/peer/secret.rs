//! The cluster secret: what a node shows every peer it calls, and checks on every call it
//! serves, before any handler runs (see [`super::PeerGuard`]).
//!
//! It comes from the environment (`VALTHREE_CLUSTER_SECRET`) or a file
//! (`--cluster-secret-file`), never from the command line, where `ps` would show it; `valthree
//! cluster up` makes one per cluster. On the wire a call carries the secret's SHA-256 in the
//! [`SECRET_HEADER`] metadata, and the check compares digests of digests, so it takes the same
//! time whatever the guess. Without TLS on the peer plane the header can be read by whoever can
//! read the traffic: the secret keeps strangers on the same host or network out; it is not
//! encryption.

use std::fmt;

use sha2::{Digest, Sha256};

/// The metadata key the secret's digest travels in.
pub const SECRET_HEADER: &str = "valthree-cluster-secret";

/// The environment variable a node reads its cluster secret from.
pub const SECRET_ENV: &str = "VALTHREE_CLUSTER_SECRET";

/// The shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// A cluster secret (never printed: its `Debug` is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    /// Hex SHA-256 of the secret: the header value.
    header: String,
    /// SHA-256 of `header`, what a received header is compared with.
    expected: [u8; 32],
    /// The root of the keys derived from the secret ([`Self::key_for`]); unlike `header`,
    /// never sent anywhere.
    derived: [u8; 32],
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterSecret {
    /// A secret from its text, at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(text: &str) -> Result<Self, String> {
        let text = text.trim_end_matches(['\r', '\n']);
        if text.len() < MIN_SECRET_LEN {
            return Err(format!("the cluster secret must be at least {MIN_SECRET_LEN} bytes"));
        }
        let header = hex(&sha256(text.as_bytes()));
        let expected = sha256(header.as_bytes());
        let derived = sha256(&[b"valthree derived keys\0".as_slice(), text.as_bytes()].concat());
        Ok(Self { header, expected, derived })
    }

    /// The secret read from `--cluster-secret-file` (its first line), else the one in the
    /// environment, else none.
    pub fn configured(from_file: Option<&str>) -> Result<Option<Self>, String> {
        match (from_file, std::env::var(SECRET_ENV)) {
            (Some(text), _) => Self::new(text).map(Some),
            (None, Ok(text)) if !text.is_empty() => Self::new(&text).map(Some),
            (None, _) => Ok(None),
        }
    }

    /// The header value a caller sends.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// A key for `purpose` (e.g. signing dynamo contexts) that only holders of the secret can
    /// compute: not from the header, which travels in plaintext without peer TLS.
    pub fn key_for(&self, purpose: &str) -> [u8; 32] {
        sha256(&[self.derived.as_slice(), purpose.as_bytes()].concat())
    }

    /// True when `given` (a received header value) is this secret's.
    pub fn accepts(&self, given: &[u8]) -> bool {
        let given = sha256(given);
        // Equal-length digests, compared without an early exit.
        given.iter().zip(self.expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// A random secret for a new cluster (`valthree cluster up`).
pub fn generate() -> String {
    let mut rng = fastrand::Rng::new();
    (0..4).map(|_| format!("{:016x}", rng.u64(..))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_is_accepted_and_it_is_never_printed() {
        let secret = ClusterSecret::new("correct horse battery staple\n").unwrap();
        assert!(secret.accepts(secret.header().as_bytes()));
        assert!(!secret.accepts(b""));
        assert!(!secret.accepts(b"correct horse battery staple"));
        let other = ClusterSecret::new("another secret, long enough").unwrap();
        assert!(!secret.accepts(other.header().as_bytes()));
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)");
        assert!(ClusterSecret::new("short").is_err());
        assert_eq!(generate().len(), 64);
    }
}
