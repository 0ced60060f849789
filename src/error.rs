//! One error type for the whole crate.
//!
//! Every failure a client can see falls into one of three classes, and the class — not the
//! message — is the contract (see docs/errors.md, "Did it happen or not?"):
//!
//! * **definite, bad request** (`-ERR`): the request was wrong; nothing happened.
//! * **definite, not applied** (`-TRYAGAIN`): the request was fine but certainly did not take
//!   effect (an optimistic-concurrency conflict after bounded retries, an object store that
//!   refused the connection before anything was sent).
//! * **indeterminate** (`-UNCERTAIN`): the request may or may not have taken effect (a
//!   conditional PUT that timed out after it was sent).
//!
//! `Error::is_definite` tells the two apart; the RESP layer turns the class into the reply
//! prefix, and the workload turns it into `fail` or `info` in the history.

use std::fmt;

/// The crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure, classified by what the client may conclude from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad request: syntax, arity, a value that is not an integer. Replied as `-ERR msg`.
    Input(String),
    /// A reply with a Redis error prefix of its own (`NOAUTH`, `WRONGPASS`, `NOPROTO`).
    Prefixed { prefix: &'static str, message: String },
    /// The operation certainly did not take effect and may be retried. `-TRYAGAIN msg`.
    TryAgain(String),
    /// The operation may or may not have taken effect. `-UNCERTAIN msg`.
    Uncertain(String),
    /// A start-up or configuration problem (bad flags, unusable data dir).
    Config(String),
    /// A message from another node that is malformed or breaks the protocol (peer input is
    /// input): refused, nothing applied.
    Peer(String),
    /// A local I/O failure outside a client request.
    Io(String),
}

impl Error {
    /// True when the client may be sure the operation did not take effect.
    pub fn is_definite(&self) -> bool {
        !matches!(self, Error::Uncertain(_))
    }

    /// The kind of error reply this failure is, as metrics and INFO's `errorstats` count it:
    /// the reply's prefix (`ERR`, `TRYAGAIN`, `UNCERTAIN`, `NOAUTH`, `OOM`, `CONFLICT`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Prefixed { prefix, .. } => prefix,
            Error::TryAgain(_) => "TRYAGAIN",
            Error::Uncertain(_) => "UNCERTAIN",
            Error::Input(_) | Error::Config(_) | Error::Peer(_) | Error::Io(_) => "ERR",
        }
    }

    /// The RESP error line for this failure, without the leading `-`.
    pub fn to_resp(&self) -> String {
        match self {
            Error::Input(m) => format!("ERR {m}"),
            Error::Prefixed { prefix, message } => format!("{prefix} {message}"),
            Error::TryAgain(m) => format!("TRYAGAIN {m}"),
            Error::Uncertain(m) => format!("UNCERTAIN {m}"),
            Error::Config(m) | Error::Peer(m) | Error::Io(m) => format!("ERR {m}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) => write!(f, "bad request: {m}"),
            Error::Prefixed { prefix, message } => write!(f, "{prefix} {message}"),
            Error::TryAgain(m) => write!(f, "not applied, try again: {m}"),
            Error::Uncertain(m) => write!(f, "outcome unknown: {m}"),
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Peer(m) => write!(f, "refused from a peer: {m}"),
            Error::Io(m) => write!(f, "I/O: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// Returns early with an `Error::Input` built from a format string (toydb's `errinput!`).
#[macro_export]
macro_rules! errinput {
    ($($arg:tt)*) => { $crate::error::Error::Input(format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uncertain_is_indeterminate() {
        assert!(Error::Input("x".into()).is_definite());
        assert!(Error::TryAgain("x".into()).is_definite());
        assert!(!Error::Uncertain("x".into()).is_definite());
    }

    #[test]
    fn resp_prefixes_follow_the_design() {
        assert_eq!(Error::Input("syntax error".into()).to_resp(), "ERR syntax error");
        assert_eq!(Error::TryAgain("conflict".into()).to_resp(), "TRYAGAIN conflict");
        assert_eq!(Error::Uncertain("timeout".into()).to_resp(), "UNCERTAIN timeout");
    }
}
