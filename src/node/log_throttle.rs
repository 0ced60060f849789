//! A log line an attacker can trigger at will (a refused connection, a wrong password) is
//! written at most once per interval, with the count of those held back since, so a flood
//! neither fills the disk nor hides the rest of the log.
//!
//! The same for every repeated warning and error, whoever writes it (openraft included):
//! [`RepeatLimit`], a layer of the node's log, lets one line per call site through every
//! [`REPEAT_WINDOW`]; the first line of a call site after a window in which others were held
//! back is replaced by one that says so — `… (repeated 1203 times in 10 s)` — with the count
//! in the `repeated` field. A raft leader that lost a voter, or a paxos or dynamo node whose
//! peer is down, writes a few lines a minute instead of one per round.

use super::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// One line per call site per window, for warnings and errors.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// The target of the lines that stand for held-back ones.
pub const REPEAT_TARGET: &str = "valthree::repeated";

/// Lets one log line through per `every`.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    /// When a line last went through, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Self {
        Self { every, state: Mutex::new((None, 0)) }
    }

    /// `Some(held back since the last line)` when a line may be written now, else `None`.
    pub fn allow(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let held_back = state.1;
                *state = (Some(now), 0);
                Some(held_back)
            }
        }
    }
}

/// The log layer that limits repeated warnings and errors (see the module doc).
#[derive(Debug)]
pub struct RepeatLimit {
    window: Duration,
    /// Per call site: when its window began, and the lines held back in it.
    sites: Mutex<HashMap<Identifier, (Instant, u64)>>,
}

impl RepeatLimit {
    /// One line per call site per `window`.
    pub fn new(window: Duration) -> Self {
        Self { window, sites: Mutex::new(HashMap::new()) }
    }

    /// What to do with a line of `site` now: write it, hold it back, or write instead the
    /// line that says how many were held back (`Some(count, seconds)`).
    fn decide(&self, site: Identifier, now: Instant) -> Decision {
        let mut sites = lock(&self.sites);
        match sites.get_mut(&site) {
            None => {
                sites.insert(site, (now, 0));
                Decision::Write
            }
            Some((began, held)) if now.duration_since(*began) < self.window => {
                *held += 1;
                Decision::Hold
            }
            Some((began, held)) => {
                let (count, seconds) = (*held, now.duration_since(*began).as_secs());
                *began = now;
                *held = 0;
                if count == 0 { Decision::Write } else { Decision::Summarize(count + 1, seconds) }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Write,
    Hold,
    Summarize(u64, u64),
}

/// The text of an event: its message, then its other fields as `name=value`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{}", rest);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for RepeatLimit {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // Levels compare by verbosity: above WARN are INFO, DEBUG and TRACE.
        if *meta.level() > Level::WARN || meta.target() == REPEAT_TARGET {
            return true;
        }
        match self.decide(meta.callsite(), Instant::now()) {
            Decision::Write => true,
            Decision::Hold => false,
            Decision::Summarize(repeated, seconds) => {
                let mut text = Text::default();
                event.record(&mut text);
                let (origin, text) = (meta.target(), text.0);
                // Written through the log like any line (after this one is refused), so it
                // gets the same format, fields and destination.
                if *meta.level() == Level::ERROR {
                    tracing::error!(target: REPEAT_TARGET, origin, repeated, "{text} (repeated {repeated} times in {seconds} s)");
                } else {
                    tracing::warn!(target: REPEAT_TARGET, origin, repeated, "{text} (repeated {repeated} times in {seconds} s)");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_held_back() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        let open = LogThrottle::new(Duration::ZERO);
        assert_eq!(open.allow(), Some(0));
        assert_eq!(open.allow(), Some(0));
    }

    #[test]
    fn a_call_site_writes_once_per_window_then_says_how_many_it_held_back() {
        struct Site;
        impl tracing::callsite::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unimplemented!()
            }
        }
        static SITE: Site = Site;
        let limit = RepeatLimit::new(Duration::from_secs(10));
        let id = || Identifier(&SITE);
        let t0 = Instant::now();
        assert_eq!(limit.decide(id(), t0), Decision::Write);
        for i in 1..=1202 {
            assert_eq!(limit.decide(id(), t0 + Duration::from_millis(i)), Decision::Hold);
        }
        assert_eq!(limit.decide(id(), t0 + Duration::from_secs(10)), Decision::Summarize(1203, 10));
        assert_eq!(limit.decide(id(), t0 + Duration::from_secs(11)), Decision::Hold);
        // A quiet window: the next line is written as it is.
        assert_eq!(limit.decide(id(), t0 + Duration::from_secs(20)), Decision::Summarize(2, 10));
        assert_eq!(limit.decide(id(), t0 + Duration::from_secs(40)), Decision::Write);
    }
}
