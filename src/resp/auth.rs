//! Who may do what on the RESP front, in one place:
//!
//! * **Before AUTH** a connection may run only the commands the command table flags
//!   [`NO_AUTH`] (AUTH, HELLO, QUIT); anything else answers `NOAUTH`, as in Redis.
//! * **Passwords**: only the `default` user exists. With `--requirepass` it needs that
//!   password; without, it takes any (Redis' `nopass` default user).
//! * **Admin commands** (`VALTHREE.*`) need `--admin-token`: without one configured they
//!   are disabled, and a wrong token answers `NOPERM`.
//!
//! Secrets are compared by their SHA-256 digests, byte for byte without stopping early, so
//! the time a wrong guess takes says nothing about how much of it was right, nor how long
//! the secret is.
//!
//! The module sees neither connections nor the command table (callers pass the flags and
//! the configured secrets), so both may use it without depending on each other.

use sha2::{Digest, Sha256};

use crate::errinput;
use crate::error::{Error, Result};

/// The command flag (Redis' own name, shown by `COMMAND INFO`) of the commands a connection
/// may run before it authenticates.
pub const NO_AUTH: &str = "no-auth";

/// Whether a command with these flags may run on a connection that has not authenticated.
pub fn allowed_without_auth(flags: &[&str]) -> bool {
    flags.contains(&NO_AUTH)
}

/// Redis' reply to a command sent before authenticating.
pub fn auth_required() -> Error {
    Error::Prefixed { prefix: "NOAUTH", message: "Authentication required.".into() }
}

/// Redis' reply to a wrong username or password.
pub fn wrong_pass() -> Error {
    Error::Prefixed { prefix: "WRONGPASS", message: "invalid username-password pair or user is disabled.".into() }
}

/// Compares secrets in time independent of their contents and lengths.
pub fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    let (expected, given) = (Sha256::digest(expected), Sha256::digest(given));
    expected.iter().zip(given.iter()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// Checks credentials for the `default` user against `requirepass`.
pub fn credentials_match(requirepass: Option<&str>, username: &[u8], password: &[u8]) -> bool {
    match requirepass {
        None => username == b"default",
        Some(expected) => username == b"default" && same_secret(expected.as_bytes(), password),
    }
}

/// Checks the token an admin command was given against `--admin-token`: an error when
/// none is configured (admin commands are off) or when the token differs.
pub fn check_admin_token(expected: Option<&str>, given: &[u8]) -> Result<()> {
    let Some(expected) = expected else {
        return Err(errinput!("admin commands are disabled: start the server with --admin-token"));
    };
    if !same_secret(expected.as_bytes(), given) {
        return Err(Error::Prefixed { prefix: "NOPERM", message: "invalid admin token".into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_flagged_no_auth_run_before_auth() {
        assert!(allowed_without_auth(&["fast", NO_AUTH]));
        assert!(!allowed_without_auth(&["readonly", "fast"]));
        assert!(!allowed_without_auth(&[]));
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(same_secret(b"", b""));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"s3cret", b"s3cret!"));
        assert!(!same_secret(b"s3cret", b""));
    }

    #[test]
    fn the_default_user_needs_requirepass_or_nothing() {
        assert!(credentials_match(Some("pw"), b"default", b"pw"));
        assert!(!credentials_match(Some("pw"), b"default", b"wrong"));
        assert!(!credentials_match(Some("pw"), b"admin", b"pw"));
        assert!(credentials_match(None, b"default", b"anything"));
        assert!(!credentials_match(None, b"admin", b"anything"));
    }

    #[test]
    fn admin_commands_are_off_without_a_token_and_refuse_a_wrong_one() {
        let reply = |r: Result<()>| r.map_err(|e| e.to_resp());
        assert_eq!(reply(check_admin_token(Some("tok"), b"tok")), Ok(()));
        assert_eq!(reply(check_admin_token(Some("tok"), b"bad")), Err("NOPERM invalid admin token".into()));
        assert_eq!(
            reply(check_admin_token(None, b"tok")),
            Err("ERR admin commands are disabled: start the server with --admin-token".into())
        );
    }
}
