//! The one wall clock a node reads, and the skew a test can inject into it.
//!
//! Safety decisions never read it: ballots, terms, dots, sessions and leases are counters,
//! and every timeout, election timer, SWIM timer and retry deadline runs on the monotonic
//! clock (`Instant`, tokio's timers), which a step of the wall clock — an operator's `date
//! -s`, an NTP step, the injected skew below — does not move. What does read the wall clock
//! reads it here: dynamo's timestamp on each write (which sibling a plain GET picks), its
//! tombstone ages and hint windows, SWIM's life of a node (its start time, kept above the last one), paxos' ballot
//! ceiling, the name of a raft snapshot, and the time the S3 client signs its requests with.
//! The audit, and what a skewed clock costs each of them, is in docs/verification.md
//! (*Clocks*).
//!
//! The skew is the process's: one node is one process (`valthree serve`), so injecting it
//! through the node's `VALTHREE.FAULT … CLOCK` command skews exactly that node. It is not
//! saved: a restarted node reads the true clock again.

use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{read_lock, write_lock};

/// How the node's wall clock differs from the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Skew {
    /// The host's clock.
    #[default]
    None,
    /// The host's clock plus this many milliseconds (negative: behind).
    Offset(i64),
    /// Jumping between two offsets: `a` for `period`, then `b` for `period`, and so on, from
    /// `since` (a monotonic instant, so that the strobe itself cannot be skewed).
    Strobe { a: i64, b: i64, period: Duration, since: Instant },
}

static SKEW: RwLock<Skew> = RwLock::new(Skew::None);

impl Skew {
    /// The offset in milliseconds at monotonic instant `at`.
    pub fn offset_at(&self, at: Instant) -> i64 {
        match *self {
            Skew::None => 0,
            Skew::Offset(ms) => ms,
            Skew::Strobe { a, b, period, since } => {
                let period = period.as_millis().max(1);
                if (at.saturating_duration_since(since).as_millis() / period).is_multiple_of(2) { a } else { b }
            }
        }
    }

    /// What the skew is, for the admin command's answer and the node's log:
    /// `none`, `offset +60000ms`, `strobe -5000ms +5000ms every 100ms`.
    pub fn describe(&self) -> String {
        match *self {
            Skew::None => "none".into(),
            Skew::Offset(ms) => format!("offset {ms:+}ms"),
            Skew::Strobe { a, b, period, .. } => format!("strobe {a:+}ms {b:+}ms every {}ms", period.as_millis()),
        }
    }
}

/// The node's wall clock: the host's, skewed as injected.
pub fn now() -> SystemTime {
    let offset = read_lock(&SKEW).offset_at(Instant::now());
    let host = SystemTime::now();
    let magnitude = Duration::from_millis(offset.unsigned_abs());
    if offset >= 0 {
        host.checked_add(magnitude).unwrap_or(host)
    } else {
        host.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

/// Milliseconds since the Unix epoch on the node's wall clock (0 for a clock before it).
pub fn now_ms() -> u64 {
    now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The skew now in effect.
pub fn skew() -> Skew {
    *read_lock(&SKEW)
}

/// Moves the clock by `ms` on top of any fixed offset (a strobe stops): bumps add up.
pub fn bump(ms: i64) -> Skew {
    let mut skew = write_lock(&SKEW);
    let base = match *skew {
        Skew::Offset(old) => old,
        Skew::None | Skew::Strobe { .. } => 0,
    };
    *skew = match base.saturating_add(ms) {
        0 => Skew::None,
        total => Skew::Offset(total),
    };
    *skew
}

/// Makes the clock jump between offsets `a` and `b` every `period`, from now on.
pub fn strobe(a: i64, b: i64, period: Duration) -> Skew {
    let mut skew = write_lock(&SKEW);
    *skew = Skew::Strobe { a, b, period: period.max(Duration::from_millis(1)), since: Instant::now() };
    *skew
}

/// Back to the host's clock.
pub fn reset() -> Skew {
    *write_lock(&SKEW) = Skew::None;
    Skew::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_holds_and_a_strobe_alternates_by_the_monotonic_clock() {
        let since = Instant::now();
        assert_eq!(Skew::None.offset_at(since), 0);
        assert_eq!(Skew::Offset(-7).offset_at(since + Duration::from_secs(9)), -7);
        let strobe = Skew::Strobe { a: -5, b: 5, period: Duration::from_millis(100), since };
        let at = |ms| strobe.offset_at(since + Duration::from_millis(ms));
        assert_eq!([at(0), at(99), at(100), at(199), at(200), at(350)], [-5, -5, 5, 5, -5, 5]);
    }

    #[test]
    fn describe_names_the_offsets_with_their_signs() {
        assert_eq!(Skew::Offset(60_000).describe(), "offset +60000ms");
        let strobe = Skew::Strobe { a: -5, b: 0, period: Duration::from_millis(50), since: Instant::now() };
        assert_eq!(strobe.describe(), "strobe -5ms +0ms every 50ms");
    }

    // The one test that changes the process's skew: nextest runs each test in its own process,
    // so no other test reads the clock it moves.
    #[test]
    fn bumps_add_up_move_the_node_clock_and_reset_restores_the_host_clock() {
        let host = |now: u64| {
            let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
            now as i64 - real
        };
        assert_eq!(bump(3_600_000), Skew::Offset(3_600_000));
        assert_eq!(bump(-600_000), Skew::Offset(3_000_000));
        let ahead = host(now_ms());
        assert!((2_999_000..=3_001_000).contains(&ahead), "{ahead} ms ahead");
        strobe(-1_000_000, -1_000_000, Duration::from_millis(10));
        let behind = host(now_ms());
        assert!((-1_001_000..=-999_000).contains(&behind), "{behind} ms");
        assert_eq!(bump(5), Skew::Offset(5), "a bump ends a strobe");
        assert_eq!(reset(), Skew::None);
        assert!(host(now_ms()).abs() < 1_000);
    }
}
