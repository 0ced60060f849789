//! Who may do what on the RESP front, in one place:
//!
//! * **Before AUTH** a connection may run only the commands the command table flags
//!   [`NO_AUTH`] (AUTH, HELLO, QUIT); anything else answers `NOAUTH`, as in Redis.
//! * **Passwords**: only the `default` user exists. With `--requirepass` it needs that
//!   password; without, it takes any (Redis' `nopass` default user).
//! * **Admin commands** (`VALTHREE.*`) need `--admin-token`: without one configured they
//!   are disabled, and a wrong token answers `NOPERM`.
//!
//! * **Guessing** is counted (INFO's `acl_access_denied_auth`, as in Redis), logged at most
//!   once per [`FAILURE_LOG_EVERY`], and slowed: past [`FREE_FAILURES`] on one connection
//!   *or from one source network* ([`FailuresBySource`]: reconnecting does not start over),
//!   each further wrong password is answered [`FAILURE_DELAY_STEP`] later than the one
//!   before, up to [`MAX_FAILURE_DELAY`] — a client that mistyped is not bothered, a guesser
//!   on one connection drops from a million tries a second to one. What is left is
//!   parallelism: each of a source's connections may wait out its second at once, so a
//!   guesser is bounded by its connections (`--maxclients`), not by time. A long random
//!   password (or TLS client certificates) is the real defence.
//! * **A wrong password repeated** from the same address within [`SOURCE_MEMORY`] is not a
//!   guess: it tells the client nothing it did not learn the first time. It is counted in INFO
//!   but not toward the slowdown, and answered at once ([`RepeatedFailures`]). Client libraries
//!   retry a failed login (redis-py 8 tries eleven times, each on a new connection): while a
//!   flood of guesses from its network keeps the source slowed, each retry of a mistyped
//!   password used to wait its full second again (15 s in all); now only the first does.
//!   What must hold: a wrong password is answered within [`MAX_FAILURE_DELAY`] whatever other
//!   connections do (the slowdown is a sleep of the connection that failed, never a queue
//!   behind other connections' failures), a right one is never delayed, and each *new* wrong
//!   password past the free ones costs its connection up to that second.
//!
//! Secrets are compared by their SHA-256 digests, byte for byte without stopping early, so
//! the time a wrong guess takes says nothing about how much of it was right, nor how long
//! the secret is.
//!
//! The module sees neither connections nor the command table (callers pass the flags and
//! the configured secrets), so both may use it without depending on each other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::errinput;
use crate::error::{Error, Result};

/// The command flag (Redis' own name, shown by `COMMAND INFO`) of the commands a connection
/// may run before it authenticates.
pub const NO_AUTH: &str = "no-auth";

/// Wrong passwords a connection may send before its answers are delayed.
pub const FREE_FAILURES: u32 = 10;
/// How much longer each wrong password past [`FREE_FAILURES`] waits than the one before.
pub const FAILURE_DELAY_STEP: Duration = Duration::from_millis(50);
/// The longest a wrong password waits for its answer.
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// How often failed authentications are logged, at most.
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a source's failures are remembered after its last one.
pub const SOURCE_MEMORY: Duration = Duration::from_secs(60);
/// Sources whose failures are remembered at once; past it, the table forgets the sources
/// whose last failure is oldest (a flood of sources cannot grow it without bound).
pub const MAX_SOURCES: usize = 4096;

/// Wrong passwords per source network, so that a guesser who reconnects after every few
/// tries is slowed as one who stays. Sources are grouped ([`source_group`]): one host holds
/// every loopback address, and often a whole IPv4 /24 or IPv6 /64, so counting exact
/// addresses would let it rotate through them.
#[derive(Debug, Default)]
pub struct FailuresBySource {
    table: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailuresBySource {
    /// Counts one more failure from `source` at `now`; its group's failures within
    /// [`SOURCE_MEMORY`].
    pub fn record(&self, source: IpAddr, now: Instant) -> u32 {
        let source = source_group(source);
        let mut table = crate::node::lock(&self.table);
        if table.len() >= MAX_SOURCES && !table.contains_key(&source) {
            table.retain(|_, (_, last)| now.saturating_duration_since(*last) < SOURCE_MEMORY);
            if table.len() >= MAX_SOURCES {
                let oldest = table.iter().min_by_key(|(_, (_, last))| *last).map(|(ip, _)| *ip);
                table.remove(&oldest.expect("not empty"));
            }
        }
        let entry = table.entry(source).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= SOURCE_MEMORY {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
        entry.0
    }
}

/// Wrong passwords already refused, by exact source address: their repeats are answered at
/// once. Only a digest of each is kept (SHA-256 of the user and password under a key drawn
/// at start, so a memory dump does not hold the near-misses of the real password in a form
/// that can be checked offline), for [`SOURCE_MEMORY`] after its last try, at most
/// [`MAX_SOURCES`] of them.
///
/// What a repeat's fast answer tells: that the same address tried that wrong password in
/// the last minute. Only a client on that very address can ask, and finding another
/// client's mistyped password that way costs a full guess per candidate, as any guess does.
#[derive(Debug)]
pub struct RepeatedFailures {
    key: [u8; 32],
    table: Mutex<HashMap<(IpAddr, [u8; 32]), Instant>>,
}

impl Default for RepeatedFailures {
    fn default() -> Self {
        let mut key = [0u8; 32];
        // A process-lifetime key; without the system's generator the digests are merely unkeyed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().secure_random.fill(&mut key);
        Self { key, table: Mutex::new(HashMap::new()) }
    }
}

impl RepeatedFailures {
    /// True when `source` already failed with these credentials within [`SOURCE_MEMORY`];
    /// either way they are remembered from `now` on.
    pub fn repeated(&self, source: IpAddr, username: &[u8], password: &[u8], now: Instant) -> bool {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(self.key)
            .chain_update((username.len() as u64).to_be_bytes())
            .chain_update(username)
            .chain_update(password)
            .finalize()
            .into();
        let entry = (source.to_canonical(), digest);
        let mut table = crate::node::lock(&self.table);
        if table.len() >= MAX_SOURCES && !table.contains_key(&entry) {
            table.retain(|_, last| now.saturating_duration_since(*last) < SOURCE_MEMORY);
            if table.len() >= MAX_SOURCES {
                let oldest = table.iter().min_by_key(|(_, last)| **last).map(|(k, _)| *k);
                table.remove(&oldest.expect("not empty"));
            }
        }
        let before = table.insert(entry, now);
        before.is_some_and(|last| now.saturating_duration_since(last) < SOURCE_MEMORY)
    }
}

/// The group whose failures `ip`'s count with: all of loopback, an IPv4 /24, an IPv6 /64
/// (an IPv4 address mapped into IPv6 as IPv4).
pub fn source_group(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return IpAddr::from([127, 0, 0, 0]);
    }
    match ip {
        IpAddr::V4(v4) => std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00).into(),
        IpAddr::V6(v6) => std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)).into(),
    }
}

/// How long the answer to a connection's `failures`-th wrong password waits.
pub fn failure_delay(failures: u32) -> Duration {
    FAILURE_DELAY_STEP.saturating_mul(failures.saturating_sub(FREE_FAILURES)).min(MAX_FAILURE_DELAY)
}

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
    fn wrong_passwords_past_the_free_ones_wait_longer_and_longer_up_to_a_limit() {
        assert_eq!(failure_delay(1), Duration::ZERO);
        assert_eq!(failure_delay(FREE_FAILURES), Duration::ZERO);
        assert_eq!(failure_delay(FREE_FAILURES + 1), FAILURE_DELAY_STEP);
        assert_eq!(failure_delay(FREE_FAILURES + 3), FAILURE_DELAY_STEP * 3);
        assert_eq!(failure_delay(u32::MAX), MAX_FAILURE_DELAY);
    }

    #[test]
    fn a_sources_failures_add_up_across_connections_and_are_forgotten_in_time() {
        let failures = FailuresBySource::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 1..=12 {
            assert_eq!(failures.record(a, t0), i);
        }
        assert_eq!(failures.record(b, t0), 13, "the same /24");
        let c: IpAddr = "10.0.1.2".parse().unwrap();
        assert_eq!(failures.record(c, t0), 1);
        // Every loopback address is one source; so is an IPv6 /64.
        assert_eq!(failures.record("127.0.0.1".parse().unwrap(), t0), 1);
        assert_eq!(failures.record("127.3.4.5".parse().unwrap(), t0), 2);
        assert_eq!(failures.record("::1".parse().unwrap(), t0), 3);
        assert_eq!(failures.record("2001:db8::1".parse().unwrap(), t0), 1);
        assert_eq!(failures.record("2001:db8::ffff:1".parse().unwrap(), t0), 2);
        assert_eq!(failures.record(c, t0 + SOURCE_MEMORY), 1, "forgotten a minute after the last");
        // A flood of sources keeps the table bounded.
        for i in 0..(MAX_SOURCES as u32 + 10) {
            failures.record(IpAddr::from((i << 8).to_be_bytes()), t0 + Duration::from_secs(1));
        }
        assert!(crate::node::lock(&failures.table).len() <= MAX_SOURCES);
    }

    #[test]
    fn a_wrong_password_repeated_from_the_same_address_is_known_and_others_are_not() {
        let repeated = RepeatedFailures::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(!repeated.repeated(a, b"default", b"typo", t0));
        assert!(repeated.repeated(a, b"default", b"typo", t0 + Duration::from_secs(1)));
        assert!(!repeated.repeated(a, b"default", b"typo2", t0), "another password is a guess");
        assert!(!repeated.repeated(a, b"other", b"typo", t0), "so is another user");
        assert!(!repeated.repeated(b, b"default", b"typo", t0), "the exact address, not its network");
        assert!(!repeated.repeated(a, b"default", b"late", t0));
        assert!(!repeated.repeated(a, b"default", b"late", t0 + SOURCE_MEMORY), "forgotten after a minute");
        for i in 0..(MAX_SOURCES as u32 + 10) {
            repeated.repeated(a, b"default", &i.to_be_bytes(), t0 + Duration::from_secs(2));
        }
        assert!(crate::node::lock(&repeated.table).len() <= MAX_SOURCES);
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
