//! How long backup and restore keep trying what a node refused.
//!
//! A refusal that says the request may be sent again (`-TRYAGAIN`, `-UNCERTAIN`,
//! `-LOADING`), or a connection that broke, is retried after a pause that doubles from
//! [`Policy::first`] up to [`Policy::max`], until the pauses add up to [`Policy::patience`];
//! then the caller gives up with an error that says how often and how long it tried. Only
//! requests that are harmless to send twice are retried: reads, a SCAN page, and restore's
//! writes (a restore writes each key of the file to the file's value, so a write that did
//! happen and is sent again writes the same value again).
//!
//! Restore is the more patient: one refused write ends a restore that may have run for an
//! hour, and a cluster under load (a raft leader change, fsyncs queued behind other work)
//! may refuse writes for tens of seconds and then take them again. A 1,000,000-key raft
//! restore of a test build once failed at 440,000 keys with `MSET of 10000 keys answered
//! -UNCERTAIN` after five retries and 6.2 s of pauses; a write now has two minutes of
//! pauses before the restore gives up.

use std::time::Duration;

/// When to try again, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The pause before the first retry; each after it is twice the one before...
    pub first: Duration,
    /// ... up to this.
    pub max: Duration,
    /// No retry once the pauses so far add up to this: the last pause may end past it.
    pub patience: Duration,
}

impl Policy {
    /// Reads and SCANs of a backup: about a minute of pauses, up to 5 s each. (Ten tries
    /// and 21 s of pauses were too few: a dynamo backup of a test build at load 24 gave up
    /// on `-TRYAGAIN only 1 replicas answered the read; R is 2`.)
    pub const READS: Policy =
        Policy { first: Duration::from_millis(100), max: Duration::from_secs(5), patience: Duration::from_secs(60) };

    /// Restore's writes (idempotent: each key to the file's value): about two minutes of
    /// pauses, up to 10 s each.
    pub const WRITES: Policy =
        Policy { first: Duration::from_millis(100), max: Duration::from_secs(10), patience: Duration::from_secs(120) };

    /// A fresh count of tries under this policy.
    pub fn start(self) -> Backoff {
        Backoff { policy: self, tries: 1, waited: Duration::ZERO, next: self.first }
    }
}

/// The tries of one request under a [`Policy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    tries: u32,
    waited: Duration,
    next: Duration,
}

impl Backoff {
    /// After a failed try: the pause before the next one, or `None` when the policy's
    /// patience is spent (the pauses so far add up to it).
    pub fn next_pause(&mut self) -> Option<Duration> {
        if self.waited >= self.policy.patience {
            return None;
        }
        let pause = self.next.min(self.policy.max);
        self.waited += pause;
        self.next = (self.next * 2).min(self.policy.max);
        self.tries += 1;
        Some(pause)
    }

    /// Waits for the pause before the next try (between three quarters of it and all of
    /// it, so that writers refused at once do not all come back at once); `false` when the
    /// policy's patience is spent and the caller should give up.
    pub async fn wait(&mut self) -> bool {
        let Some(pause) = self.next_pause() else { return false };
        let jittered = pause.mul_f64(0.75 + fastrand::f64() * 0.25);
        tokio::time::sleep(jittered).await;
        true
    }

    /// What was tried, for the error that gives up: "tried 19 times over 122.7 s of pauses".
    pub fn tried(&self) -> String {
        format!("tried {} times over {:.1} s of pauses", self.tries, self.waited.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pauses(policy: Policy) -> Vec<Duration> {
        let mut backoff = policy.start();
        std::iter::from_fn(|| backoff.next_pause()).collect()
    }

    /// The pauses double from the first to the longest, and stop once they add up to the
    /// patience.
    #[test]
    fn pauses_double_up_to_the_longest_until_the_patience_is_spent() {
        let ms = Duration::from_millis;
        let policy = Policy { first: ms(100), max: ms(1000), patience: ms(3000) };
        assert_eq!(pauses(policy), [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        let mut backoff = policy.start();
        while backoff.next_pause().is_some() {}
        assert_eq!(backoff.tried(), "tried 7 times over 3.5 s of pauses");
        assert_eq!(backoff.next_pause(), None, "a spent policy stays spent");
    }

    /// A backup's reads wait about a minute for a cluster that refuses them; a restore's
    /// writes two minutes — far past the 6.2 s of pauses (five retries) after which a
    /// 1,000,000-key raft restore once gave up on an -UNCERTAIN MSET.
    #[test]
    fn a_restore_waits_minutes_for_a_cluster_that_refuses_its_writes() {
        let reads: Duration = pauses(Policy::READS).iter().sum();
        assert!(reads >= Duration::from_secs(60) && reads < Duration::from_secs(70), "{reads:?}");
        let writes = pauses(Policy::WRITES);
        let total: Duration = writes.iter().sum();
        assert!(total >= Duration::from_secs(120) && total < Duration::from_secs(135), "{total:?}");
        assert!(writes.len() >= 15, "{} retries", writes.len());
        assert!(writes.iter().all(|p| *p <= Duration::from_secs(10)), "{writes:?}");
        assert!(writes.windows(2).all(|w| w[0] <= w[1]), "{writes:?}");
    }

    /// A restore's first retry comes soon: a refusal is usually brief.
    #[test]
    fn the_first_retry_comes_soon() {
        assert_eq!(pauses(Policy::WRITES)[0], Duration::from_millis(100));
        assert_eq!(pauses(Policy::READS)[0], Duration::from_millis(100));
    }
}
