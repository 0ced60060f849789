//! The cluster secret: what every peer connection proves, in both directions, before a call
//! travels on it (the [handshake](super::handshake)), and the root of the other keys nodes
//! share (e.g. the one signing dynamo contexts).
//!
//! It comes from the environment (`VALTHREE_CLUSTER_SECRET`) or a file
//! (`--cluster-secret-file`), never from the command line, where `ps` would show it; `valthree
//! cluster up` makes one per cluster. It never travels: the handshake shows an HMAC of a
//! fresh challenge, which is worth nothing on another connection.

use std::fmt;

use sha2::{Digest, Sha256};

/// The environment variable a node reads its cluster secret from.
pub const SECRET_ENV: &str = "VALTHREE_CLUSTER_SECRET";

/// The shortest secret accepted, in bytes: the handshake's HMAC is only as strong as the
/// secret, and anyone who can reach the peer port may try secrets offline against a recorded
/// handshake, so a short one would be found. `valthree cluster up` makes 64 hex digits.
pub const MIN_SECRET_LEN: usize = 16;

/// A cluster secret (never printed: its `Debug` is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    /// The root of the keys derived from the secret ([`Self::key_for`]).
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

impl ClusterSecret {
    /// A secret from its text, at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(text: &str) -> Result<Self, String> {
        let text = text.trim_end_matches(['\r', '\n']);
        if text.len() < MIN_SECRET_LEN {
            return Err(format!("the cluster secret must be at least {MIN_SECRET_LEN} bytes"));
        }
        if text.trim().is_empty() || text.starts_with('\u{feff}') || text.chars().any(char::is_control) {
            return Err("the cluster secret must be printable text (no control characters, byte-order mark or \
                        whitespace alone)"
                .into());
        }
        let derived = sha256(&[b"valthree derived keys\0".as_slice(), text.as_bytes()].concat());
        Ok(Self { derived })
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

    /// A key for `purpose` (e.g. signing dynamo contexts, the peer handshake) that only
    /// holders of the secret can compute.
    pub fn key_for(&self, purpose: &str) -> [u8; 32] {
        sha256(&[self.derived.as_slice(), purpose.as_bytes()].concat())
    }
}

/// A random secret for a new cluster (`valthree cluster up`): 256 bits from the operating
/// system's generator (a seeded PRNG would make every secret guessable from one).
pub fn generate() -> Result<String, String> {
    Ok(hex(&random::<32>()?))
}

/// `N` bytes from the operating system's random generator.
pub(super) fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "the operating system's random generator failed".to_string())?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_secret_and_purpose_and_the_secret_is_never_printed() {
        let secret = ClusterSecret::new("correct horse battery staple\n").unwrap();
        assert_eq!(secret, ClusterSecret::new("correct horse battery staple").unwrap());
        let other = ClusterSecret::new("another secret, long enough").unwrap();
        assert_ne!(secret.key_for("a"), other.key_for("a"));
        assert_ne!(secret.key_for("a"), secret.key_for("b"));
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)");
        assert!(ClusterSecret::new("short").is_err());
        assert!(ClusterSecret::new(&"\0".repeat(MIN_SECRET_LEN)).is_err());
        assert!(ClusterSecret::new(&" ".repeat(MIN_SECRET_LEN)).is_err());
        assert!(ClusterSecret::new("\u{feff}0123456789abcdef").is_err());
        let (one, two) = (generate().unwrap(), generate().unwrap());
        assert_eq!(one.len(), 64);
        assert_ne!(one, two);
    }
}
