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
//!   once per [`FAILURE_LOG_EVERY`], and bounded where it matters: in the passwords
//!   *compared*, per source network ([`source_group`]: all of loopback, an IPv4 /24, an IPv6
//!   /64), not in the answers sent. The [`Allowance`] decides, before a password is compared,
//!   whether it may be compared now, at a later turn, or not at all. A source group's first
//!   [`FREE_FAILURES`] wrong passwords (forgotten [`SOURCE_MEMORY`] after its last one) are
//!   compared at once; past them its passwords take turns, one at a time, each turn
//!   [`FAILURE_DELAY_STEP`] further from the one before, up to [`MAX_FAILURE_DELAY`] apart:
//!   whatever the number of connections, a source group has its first 10 wrong passwords
//!   compared at once, at most 19 more passwords in the next 10 s (turns 50, 150, 300, ...
//!   ms after the tenth), then **one a second** (a right password compared at a turn gives
//!   it back: the next turn comes as if it had not been taken, so logins do not slow their
//!   network). A password that gets a
//!   turn is compared at that turn and answered at once, right or wrong; a turn is taken
//!   only within [`MAX_FAILURE_DELAY`], and an AUTH for which none is free then is answered
//!   `-ERR too many AUTH attempts from your network; try again later` without comparing
//!   (INFO's `auth_attempts_throttled`; on a connection that keeps asking, each such answer
//!   waits a little longer, up to that second). So the time an answer takes says nothing of
//!   the password, and abandoning a slow AUTH gains nothing: it is compared at its turn all
//!   the same (the connection does not watch for the hang-up while it waits) and spends the
//!   source's turn as any other.
//!   (The slowdown this replaced delayed the *answer* to a wrong password and compared at
//!   once: a right one was answered sooner, so a guesser that gave up on every AUTH not
//!   answered within milliseconds learned 94 wrong passwords a second on one connection and
//!   1,613 on 40.)
//! * **A wrong password repeated** from the same address within [`SOURCE_MEMORY`] is not a
//!   guess: it tells the client nothing it did not learn the first time. It is answered at
//!   once without taking a turn, counted in INFO but not toward the source's failures
//!   ([`RepeatedFailures`]). Client libraries retry a failed login (redis-py 8 tries eleven
//!   times, each on a new connection): only the first try of a mistyped password takes a turn.
//! * **An address that logged in** within [`LOGIN_MEMORY`] has its passwords compared at
//!   once, without waiting for its group's turn: a client reconnecting during a flood of
//!   guesses from its network is not locked out. Its right password reveals nothing the
//!   first login did not; a *wrong* one compared that way is a guess, so each such address
//!   has its own allowance of them besides its group's ([`FREE_FAILURES`] at once, refilled
//!   one per [`MAX_FAILURE_DELAY`]), past which its passwords take turns like any other. A
//!   guesser on the very address of a client that logged in (the same host, the same NAT)
//!   thus adds at most one guess a second, and the client there then waits for turns too.
//! * **Who gets a turn**: an address that itself had a wrong password ([`GUESSER_FAILURES`])
//!   compared within [`SOURCE_MEMORY`] takes only a turn free at that moment (it waits for
//!   the next one, if within [`MAX_FAILURE_DELAY`], and takes it if nobody booked it
//!   meanwhile); any other may book the group's next turn up to [`MAX_FAILURE_DELAY`]
//!   ahead. So guessers on any number of addresses, each of which has guessed wrong once,
//!   however many connections they open, cannot keep a newcomer of their network (a client
//!   logging in for the first time) out: the newcomer books the next turn and its password is
//!   compared within the second. (When an address's tenth wrong password was what made the
//!   difference, 30 guessing addresses of one network let 0 of 25 newcomers in.) What a
//!   guesser can still do is guess from a fresh address every time, booking ahead as a
//!   newcomer does: an IPv4 /24 has 254 of them a minute; loopback and an IPv6 /64 have no
//!   such limit, and there such a guesser competes with newcomers as an equal, so a newcomer
//!   may be told to try later: that is the price of the bound. So may some of a burst of
//!   clients all connecting at once from addresses that each sent a wrong password in the
//!   last minute (a stale password before a rollout): they take the turns free at the
//!   moment, one at a time.
//!
//! What holds: each AUTH is answered within [`MAX_FAILURE_DELAY`] whatever other
//! connections do; the time it takes depends only on the source's allowance, decided before
//! the password is compared, never on the password (save a repeated wrong one, answered at
//! once); and a source group has passwords compared at most at the rate above, plus, for
//! each of its addresses that logged in within the hour, 10 wrong ones at once and one a
//! second. A guesser holding many networks (many
//! IPv6 /64s) has an allowance in each: a long random password (or TLS client certificates)
//! is the real defence.
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
use crate::error::Error;

/// The command flag (Redis' own name, shown by `COMMAND INFO`) of the commands a connection
/// may run before it authenticates.
pub const NO_AUTH: &str = "no-auth";

/// Wrong passwords a source group may have compared at once before its passwords take turns.
pub const FREE_FAILURES: u32 = 10;
/// Wrong passwords an address must have had compared itself (within [`SOURCE_MEMORY`]) to
/// take only the turns free at the moment, never one booked ahead.
pub const GUESSER_FAILURES: u32 = 1;
/// How much further each turn of a source group is from the one before.
pub const FAILURE_DELAY_STEP: Duration = Duration::from_millis(50);
/// The widest gap between a source group's turns, and the longest any AUTH waits for its
/// answer.
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// How often failed authentications are logged, at most.
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a source's failures are remembered after its last one.
pub const SOURCE_MEMORY: Duration = Duration::from_secs(60);
/// How long an address that logged in keeps its passwords compared at once, after its last
/// login.
pub const LOGIN_MEMORY: Duration = Duration::from_secs(3600);
/// Sources whose failures are remembered at once; past it, the table forgets the sources
/// whose last failure is oldest (a flood of sources cannot grow it without bound).
pub const MAX_SOURCES: usize = 4096;

/// When passwords may be compared, per source network (see the module doc): so that a
/// guesser who reconnects, or opens many connections, or gives up on slow answers, learns no
/// faster than one who waits. Sources are grouped ([`source_group`]): one host holds every
/// loopback address, and often a whole IPv4 /24 or IPv6 /64, so counting exact addresses
/// would let it rotate through them.
#[derive(Debug, Default)]
pub struct Allowance {
    tables: Mutex<Tables>,
}

/// What the allowance decided for one password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Compared at once: whether it matched (already recorded).
    Compared(bool),
    /// A turn was reserved for it at this instant: compare it then, and record the verdict
    /// with [`Allowance::settle`].
    At(Instant),
    /// The source's address sent many wrong passwords itself, so it may not book a turn
    /// ahead: the next one is at this instant (within [`MAX_FAILURE_DELAY`]); ask again then,
    /// once — unless another address booked it meanwhile, it is free then.
    Wait(Instant),
    /// No turn is free within [`MAX_FAILURE_DELAY`]: answer without comparing.
    Refused,
}

#[derive(Debug, Default)]
struct Tables {
    /// By source group.
    groups: HashMap<IpAddr, Group>,
    /// By exact address, the addresses that logged in.
    logins: HashMap<IpAddr, Login>,
    /// By exact address, wrong passwords compared and when the last was.
    addresses: HashMap<IpAddr, (u32, Instant)>,
}

/// A source group that sent wrong passwords.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Wrong passwords compared, and turns given past the free ones, since it was last quiet
    /// for [`SOURCE_MEMORY`].
    failures: u32,
    turns: u32,
    last_failure: Instant,
    /// Its last turn (or its last free failure): the next is [`turn_gap`] later.
    last_turn: Instant,
}

/// An address that logged in.
#[derive(Debug, Clone, Copy)]
struct Login {
    last: Instant,
    /// Wrong passwords it may still have compared at once, and when that was last refilled.
    misses: f64,
    refilled: Instant,
}

impl Allowance {
    /// Decides whether the password `source` sent at `now` is compared now (`matches` is
    /// called, under the table's lock, so concurrent AUTHs cannot all pass as free), at a
    /// reserved turn, or not at all.
    pub fn admit(&self, source: IpAddr, now: Instant, matches: impl FnOnce() -> bool) -> Admission {
        self.admit_as(source, now, true, matches)
    }

    /// [`Allowance::admit`] for an admin token: an address that logged in has no allowance of
    /// its own for it (any client that knows the password, or any client at all without one,
    /// can log in from many addresses): only its group's turns.
    pub fn admit_token(&self, source: IpAddr, now: Instant, matches: impl FnOnce() -> bool) -> Admission {
        self.admit_as(source, now, false, matches)
    }

    fn admit_as(&self, source: IpAddr, now: Instant, logins: bool, matches: impl FnOnce() -> bool) -> Admission {
        let mut tables = crate::node::lock(&self.tables);
        let group = source_group(source);
        if tables.failures(group, now) < FREE_FAILURES {
            let matched = matches();
            tables.settle(source, matched, now);
            return Admission::Compared(matched);
        }
        if logins
            && let Some(login) = tables.logins.get_mut(&source.to_canonical())
            && now.saturating_duration_since(login.last) < LOGIN_MEMORY
        {
            let refill = now.saturating_duration_since(login.refilled).as_secs_f64() / MAX_FAILURE_DELAY.as_secs_f64();
            login.misses = (login.misses + refill).min(FREE_FAILURES as f64);
            login.refilled = now;
            if login.misses >= 1.0 {
                let matched = matches();
                if !matched {
                    login.misses -= 1.0;
                }
                tables.settle(source, matched, now);
                return Admission::Compared(matched);
            }
        }
        // An address that sent many wrong passwords itself takes only a turn free now; the
        // others may book the next one up to a second ahead, so a guesser on one address
        // cannot keep its network's newcomers out.
        let guesser = tables.address_failures(source, now) >= GUESSER_FAILURES;
        let entry = tables.groups.get_mut(&group).expect("a group past its free failures is in the table");
        let turns = entry.turns.saturating_add(1);
        let at = (entry.last_turn + turn_gap(turns)).max(now);
        if at.saturating_duration_since(now) > MAX_FAILURE_DELAY {
            return Admission::Refused;
        }
        if guesser && at > now {
            return Admission::Wait(at);
        }
        (entry.turns, entry.last_turn) = (turns, at);
        Admission::At(at)
    }

    /// Records the verdict on a password compared at its turn. A right one gives its turn
    /// back: the group's next turn comes no later than if it had not been taken, so a burst of
    /// clients logging in does not push a network's turns a second apart.
    pub fn settle(&self, source: IpAddr, matched: bool, now: Instant) {
        let mut tables = crate::node::lock(&self.tables);
        if matched && let Some(group) = tables.groups.get_mut(&source_group(source)) {
            group.turns = group.turns.saturating_sub(1);
        }
        tables.settle(source, matched, now);
    }
}

impl Tables {
    /// The wrong passwords `group` had compared, unless it has been quiet for [`SOURCE_MEMORY`].
    fn failures(&self, group: IpAddr, now: Instant) -> u32 {
        self.groups
            .get(&group)
            .filter(|g| now.saturating_duration_since(g.last_failure) < SOURCE_MEMORY)
            .map_or(0, |g| g.failures)
    }

    /// The wrong passwords `source` itself had compared, unless it has been quiet for
    /// [`SOURCE_MEMORY`].
    fn address_failures(&self, source: IpAddr, now: Instant) -> u32 {
        self.addresses
            .get(&source.to_canonical())
            .filter(|(_, last)| now.saturating_duration_since(*last) < SOURCE_MEMORY)
            .map_or(0, |(failures, _)| *failures)
    }

    fn settle(&mut self, source: IpAddr, matched: bool, now: Instant) {
        if matched {
            let source = source.to_canonical();
            make_room(&mut self.logins, &source, now, LOGIN_MEMORY, |l| l.last);
            let fresh = Login { last: now, misses: FREE_FAILURES as f64, refilled: now };
            self.logins.entry(source).and_modify(|l| l.last = now).or_insert(fresh);
            return;
        }
        let address = source.to_canonical();
        let failures = self.address_failures(address, now);
        make_room(&mut self.addresses, &address, now, SOURCE_MEMORY, |(_, last)| *last);
        self.addresses.insert(address, (failures.saturating_add(1), now));
        let group = source_group(source);
        make_room(&mut self.groups, &group, now, SOURCE_MEMORY, |g| g.last_failure);
        let entry =
            self.groups.entry(group).or_insert(Group { failures: 0, turns: 0, last_failure: now, last_turn: now });
        if now.saturating_duration_since(entry.last_failure) >= SOURCE_MEMORY {
            (entry.failures, entry.turns) = (0, 0);
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures <= FREE_FAILURES {
            entry.last_turn = now;
        }
    }
}

/// Makes room for `key` in `table` when it is full ([`MAX_SOURCES`]): forgets the entries
/// older than `memory`, and if that is not enough, the oldest (a flood of sources cannot grow
/// the table without bound).
fn make_room<K: Eq + std::hash::Hash + Copy, V>(
    table: &mut HashMap<K, V>,
    key: &K,
    now: Instant,
    memory: Duration,
    last: impl Fn(&V) -> Instant,
) {
    if table.len() < MAX_SOURCES || table.contains_key(key) {
        return;
    }
    table.retain(|_, v| now.saturating_duration_since(last(v)) < memory);
    if table.len() >= MAX_SOURCES {
        let oldest = table.iter().min_by_key(|(_, v)| last(v)).map(|(k, _)| *k);
        table.remove(&oldest.expect("not empty"));
    }
}

/// How long a connection may stay without authenticating (with `--requirepass`): a client
/// authenticates within milliseconds of connecting; one that does not is closed then.
pub const AUTH_DEADLINE: Duration = Duration::from_secs(10);
/// Connections from one address that have not authenticated, at most at once (as the peer
/// port's cap per source).
pub const STRANGERS_PER_ADDRESS: usize = 64;

/// The connections that have not authenticated yet, by source address, so that idle ones
/// from a few addresses cannot take every one of `--maxclients`: each address may hold
/// [`STRANGERS_PER_ADDRESS`] of them, each for [`AUTH_DEADLINE`]. (Before, 100 idle
/// connections from one address kept a `--maxclients 100` node's clients out for as long as
/// they stayed.)
#[derive(Debug, Default)]
pub struct Strangers {
    table: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection that has not authenticated: counted against its address until dropped.
#[derive(Debug)]
pub struct Stranger {
    strangers: std::sync::Arc<Strangers>,
    source: IpAddr,
}

impl Strangers {
    /// Counts a new connection from `source`, unless that address holds
    /// [`STRANGERS_PER_ADDRESS`] already.
    pub fn enter(self: &std::sync::Arc<Self>, source: IpAddr) -> Option<Stranger> {
        let source = source.to_canonical();
        let mut table = crate::node::lock(&self.table);
        let held = table.entry(source).or_insert(0);
        if *held >= STRANGERS_PER_ADDRESS {
            return None;
        }
        *held += 1;
        Some(Stranger { strangers: self.clone(), source })
    }

    /// Connections from `source` that have not authenticated.
    pub fn held(&self, source: IpAddr) -> usize {
        crate::node::lock(&self.table).get(&source.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let mut table = crate::node::lock(&self.strangers.table);
        if let Some(held) = table.get_mut(&self.source) {
            *held -= 1;
            if *held == 0 {
                table.remove(&self.source);
            }
        }
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
    fn digest(&self, username: &[u8], password: &[u8]) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.key)
            .chain_update((username.len() as u64).to_be_bytes())
            .chain_update(username)
            .chain_update(password)
            .finalize()
            .into()
    }

    /// True when `source` already failed with these credentials within [`SOURCE_MEMORY`]
    /// (and then they are remembered from `now` on).
    pub fn seen(&self, source: IpAddr, username: &[u8], password: &[u8], now: Instant) -> bool {
        let entry = (source.to_canonical(), self.digest(username, password));
        let mut table = crate::node::lock(&self.table);
        match table.get_mut(&entry) {
            Some(last) if now.saturating_duration_since(*last) < SOURCE_MEMORY => {
                *last = now;
                true
            }
            _ => false,
        }
    }

    /// Remembers that `source` failed with these credentials at `now`.
    pub fn remember(&self, source: IpAddr, username: &[u8], password: &[u8], now: Instant) {
        let entry = (source.to_canonical(), self.digest(username, password));
        let mut table = crate::node::lock(&self.table);
        make_room(&mut table, &entry, now, SOURCE_MEMORY, |last| *last);
        table.insert(entry, now);
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

/// The gap between a source group's `turns`-th turn past its free failures and the next.
pub fn turn_gap(turns: u32) -> Duration {
    FAILURE_DELAY_STEP.saturating_mul(turns).min(MAX_FAILURE_DELAY)
}

/// Redis-style reply to an AUTH that was not compared: its source has no turn free.
pub fn too_many_attempts() -> Error {
    errinput!("too many AUTH attempts from your network; try again later")
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

/// The longest secret (a password, a token) that may be configured or given: what a secret
/// file may hold. A longer one given cannot match and is neither hashed nor compared.
pub const MAX_SECRET_LEN: usize = 64 << 10;

/// A secret's digest: secrets are compared by their digests, so that a comparison's time is
/// independent of their contents and lengths.
pub fn secret_digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Compares two digests without stopping early.
pub fn same_digest(expected: &[u8; 32], given: &[u8; 32]) -> bool {
    expected.iter().zip(given.iter()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// The reply to a wrong admin token.
pub fn admin_token_refused() -> Error {
    Error::Prefixed { prefix: "NOPERM", message: "invalid admin token".into() }
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
    fn turns_past_the_free_failures_grow_further_apart_up_to_a_limit() {
        assert_eq!(turn_gap(1), FAILURE_DELAY_STEP);
        assert_eq!(turn_gap(3), FAILURE_DELAY_STEP * 3);
        assert_eq!(turn_gap(u32::MAX), MAX_FAILURE_DELAY);
    }

    /// `n` wrong passwords from `source` at `now`, each compared at once.
    fn fail_at_once(allowance: &Allowance, source: &str, n: u32, now: Instant) {
        for _ in 0..n {
            assert_eq!(allowance.admit(source.parse().unwrap(), now, || false), Admission::Compared(false));
        }
    }

    #[test]
    fn past_its_free_failures_a_source_groups_passwords_take_turns_whatever_they_are() {
        let allowance = Allowance::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        fail_at_once(&allowance, "10.0.0.1", FREE_FAILURES - 1, t0);
        fail_at_once(&allowance, "10.0.0.2", 1, t0); // the same /24
        // Past them nothing is compared before its turn: not a wrong password, not the right one.
        let never = || -> bool { panic!("compared before its turn") };
        assert_eq!(
            allowance.admit(a, t0, never),
            Admission::Wait(t0 + FAILURE_DELAY_STEP),
            "an address that guessed wrong may not book ahead"
        );
        let b: IpAddr = "10.0.0.6".parse().unwrap();
        assert_eq!(allowance.admit(b, t0, never), Admission::At(t0 + FAILURE_DELAY_STEP));
        let mut turn = t0 + FAILURE_DELAY_STEP;
        let mut turns = 1;
        let right_password = loop {
            match allowance.admit("10.0.0.3".parse().unwrap(), t0, never) {
                Admission::At(at) => {
                    assert_eq!(at - turn, turn_gap(turns + 1), "each turn further from the one before");
                    (turn, turns) = (at, turns + 1);
                }
                Admission::Refused => break allowance.admit(b, t0, never),
                other => panic!("{other:?}: a newcomer books ahead, compared at no turn"),
            }
        };
        assert_eq!(right_password, Admission::Refused, "no turn free within the second: refused unchecked");
        assert!(turn - t0 <= MAX_FAILURE_DELAY);
        // A second later a turn is free again; a second after that, too: one a second at most.
        let later = t0 + Duration::from_secs(2);
        assert!(matches!(allowance.admit(a, later, never), Admission::At(_)));
        // Other groups are not concerned; loopback is one group, so is an IPv6 /64.
        assert_eq!(allowance.admit("10.0.1.1".parse().unwrap(), t0, || true), Admission::Compared(true));
        fail_at_once(&allowance, "127.0.0.1", FREE_FAILURES / 2, t0);
        fail_at_once(&allowance, "127.3.4.5", FREE_FAILURES / 2, t0);
        assert!(matches!(allowance.admit("::1".parse().unwrap(), t0, never), Admission::At(_)));
        fail_at_once(&allowance, "2001:db8::1", FREE_FAILURES, t0);
        assert!(matches!(allowance.admit("2001:db8::ffff:1".parse().unwrap(), t0, never), Admission::At(_)));
        assert_eq!(allowance.admit("2001:db8:0:1::1".parse().unwrap(), t0, || false), Admission::Compared(false));
        // Forgotten a minute after the last failure; a verdict at a turn is a failure too.
        allowance.settle(a, false, t0 + Duration::from_secs(5));
        let quiet = t0 + Duration::from_secs(5) + SOURCE_MEMORY;
        fail_at_once(&allowance, "10.0.0.1", FREE_FAILURES, quiet);
        assert!(matches!(allowance.admit("10.0.0.4".parse().unwrap(), quiet, never), Admission::At(_)));
        // A flood of sources keeps the tables bounded.
        for i in 0..(MAX_SOURCES as u32 + 10) {
            allowance.admit(IpAddr::from((i << 8).to_be_bytes()), t0, || false);
            allowance.admit(IpAddr::from(i.to_be_bytes()), t0, || true);
        }
        let tables = crate::node::lock(&allowance.tables);
        assert!(tables.groups.len() <= MAX_SOURCES && tables.logins.len() <= MAX_SOURCES);
        assert!(tables.addresses.len() <= MAX_SOURCES);
    }

    #[test]
    fn a_guesser_on_one_address_takes_only_turns_free_now_and_cannot_keep_newcomers_out() {
        let allowance = Allowance::default();
        let t0 = Instant::now();
        let (guesser, newcomer): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.9".parse().unwrap());
        fail_at_once(&allowance, "127.0.0.1", FREE_FAILURES, t0);
        let never = || -> bool { panic!("compared before its turn") };
        // Its next turn is 50 ms ahead: not free now, so it is told to ask again then.
        let free = t0 + FAILURE_DELAY_STEP;
        assert_eq!(allowance.admit(guesser, t0, never), Admission::Wait(free));
        assert_eq!(allowance.admit(guesser, free, never), Admission::At(free));
        let turn = free + turn_gap(2);
        assert_eq!(allowance.admit(guesser, free, never), Admission::Wait(turn));
        // A newcomer books that turn meanwhile, and when the guesser asks again, the next is
        // ahead again (its caller then answers "too many").
        assert_eq!(allowance.admit(newcomer, free, never), Admission::At(turn));
        assert_eq!(allowance.admit(guesser, turn, never), Admission::Wait(turn + turn_gap(3)));
        allowance.settle(newcomer, true, turn);
        assert_eq!(allowance.admit(newcomer, turn, || true), Admission::Compared(true), "and it logged in");
    }

    /// Guessers spread over many addresses of one network, each having guessed wrong once,
    /// take only the turns free at the moment: a newcomer books ahead of them all. (When an
    /// address needed ten wrong passwords of its own to count as a guesser, 30 guessing
    /// addresses let 0 of 25 newcomers in.)
    #[test]
    fn guessers_on_many_addresses_cannot_keep_newcomers_out_and_logins_give_their_turn_back() {
        let allowance = Allowance::default();
        let t0 = Instant::now();
        for i in 1..=FREE_FAILURES {
            fail_at_once(&allowance, &format!("127.0.1.{i}"), 1, t0);
        }
        let never = || -> bool { panic!("compared before its turn") };
        let next = t0 + FAILURE_DELAY_STEP;
        for i in 1..=FREE_FAILURES {
            let guesser: IpAddr = format!("127.0.1.{i}").parse().unwrap();
            assert_eq!(allowance.admit(guesser, t0, never), Admission::Wait(next), "127.0.1.{i}");
        }
        let newcomer: IpAddr = "127.0.2.1".parse().unwrap();
        assert_eq!(allowance.admit(newcomer, t0, never), Admission::At(next));
        // It logged in at its turn: the turn is given back, and the next is as near as it was.
        allowance.settle(newcomer, true, next);
        let other: IpAddr = "127.0.2.2".parse().unwrap();
        assert_eq!(allowance.admit(other, next, never), Admission::At(next + turn_gap(1)));
    }

    #[test]
    fn an_address_that_logged_in_is_compared_at_once_and_its_wrong_passwords_are_bounded_too() {
        let allowance = Allowance::default();
        let t0 = Instant::now();
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let never = || -> bool { panic!("compared before its turn") };
        assert_eq!(allowance.admit(client, t0, || true), Admission::Compared(true));
        fail_at_once(&allowance, "127.0.0.2", FREE_FAILURES, t0);
        // The group is flooded: its turns for the next second are taken.
        let mut i = 3;
        while allowance.admit(IpAddr::from([127, 0, 0, i]), t0, never) != Admission::Refused {
            i += 1;
        }
        // The client that logged in is answered at once, again and again.
        for _ in 0..100 {
            assert_eq!(allowance.admit(client, t0, || true), Admission::Compared(true));
        }
        // A guesser on its very address has its own few wrong passwords compared at once...
        fail_at_once(&allowance, "127.0.0.1", FREE_FAILURES, t0);
        // ... and then waits for the group's turns like anyone, the right password too.
        assert_eq!(allowance.admit(client, t0, never), Admission::Refused);
        // One more a second.
        let later = t0 + MAX_FAILURE_DELAY;
        assert_eq!(allowance.admit(client, later, || false), Admission::Compared(false));
        assert!(!matches!(allowance.admit(client, later, never), Admission::At(_)), "no turn booked ahead");
        // Two seconds on, two more; and then a turn free at once, which it may take.
        let free = t0 + 3 * MAX_FAILURE_DELAY;
        assert_eq!(allowance.admit(client, free, || false), Admission::Compared(false));
        assert_eq!(allowance.admit(client, free, || false), Admission::Compared(false));
        assert_eq!(allowance.admit(client, free, never), Admission::At(free), "a turn free now");
        // Forgotten an hour after the last login.
        let late = t0 + LOGIN_MEMORY + Duration::from_secs(10);
        fail_at_once(&allowance, "127.0.0.2", FREE_FAILURES, late);
        assert!(matches!(allowance.admit(client, late, never), Admission::At(_)));
    }

    #[test]
    fn a_wrong_password_repeated_from_the_same_address_is_known_and_others_are_not() {
        let repeated = RepeatedFailures::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(!repeated.seen(a, b"default", b"typo", t0));
        repeated.remember(a, b"default", b"typo", t0);
        assert!(repeated.seen(a, b"default", b"typo", t0 + Duration::from_secs(1)));
        assert!(!repeated.seen(a, b"default", b"typo2", t0), "another password is a guess");
        assert!(!repeated.seen(a, b"other", b"typo", t0), "so is another user");
        assert!(!repeated.seen(b, b"default", b"typo", t0), "the exact address, not its network");
        assert!(
            repeated.seen(a, b"default", b"typo", t0 + SOURCE_MEMORY),
            "a minute after its last try, which the one a second in was"
        );
        repeated.remember(a, b"default", b"late", t0);
        assert!(!repeated.seen(a, b"default", b"late", t0 + SOURCE_MEMORY), "forgotten after a minute");
        for i in 0..(MAX_SOURCES as u32 + 10) {
            repeated.remember(a, b"default", &i.to_be_bytes(), t0 + Duration::from_secs(2));
        }
        assert!(crate::node::lock(&repeated.table).len() <= MAX_SOURCES);
    }

    #[test]
    fn secrets_match_only_when_equal() {
        let same = |a: &[u8], b: &[u8]| same_digest(&secret_digest(a), &secret_digest(b));
        assert!(same(b"s3cret", b"s3cret"));
        assert!(same(b"", b""));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"s3cret", b"s3cret!"));
        assert!(!same(b"s3cret", b""));
    }
}
