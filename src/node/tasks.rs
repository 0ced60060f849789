//! A node's background tasks and their shutdown: every task a mode starts (its peer server,
//! drivers, garbage collection, probes) is spawned here, so that stopping the node cancels
//! them all and waits for them, as the RESP side drains its connections (mini-redis'
//! `shutdown.rs` pattern with tokio-util's cancellation token and task tracker).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The background tasks of one node.
#[derive(Clone, Default)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// Runs `task` until it ends or the node shuts down.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Resolves when the node starts shutting down (for servers' graceful stop).
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// True once shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Cancels every task and waits up to `grace` for them to end; true when all did.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }
}

/// The commands peers handed this node to run (a forwarded write, a command at its key's
/// home), counted so that a stopping node refuses new ones — definitely, so that their sender
/// runs them elsewhere — and finishes the ones it took before its background work stops.
#[derive(Debug, Default)]
pub struct PeerCommands {
    stopping: AtomicBool,
    running: AtomicUsize,
}

/// One admitted command; it counts as running until dropped.
#[derive(Debug)]
pub struct Admitted<'a>(&'a PeerCommands);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PeerCommands {
    /// Admits a command, or refuses it with the status its sender reads as "certainly not
    /// run here" (`CallError::Refused`) and as "stopping, not hung"
    /// ([`crate::peer::is_stopping`]) once the node is stopping.
    pub fn admit(&self, node: impl std::fmt::Display) -> Result<Admitted<'_>, tonic::Status> {
        // Counted before the check, so that `drain` never misses one it let in.
        self.running.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(self);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(crate::peer::stopping(node));
        }
        Ok(admitted)
    }

    /// True once the node stopped admitting commands.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Refuses every new command and waits up to `limit` for the admitted ones to finish;
    /// returns how many still run.
    pub async fn drain(&self, limit: Duration) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        while self.running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.running.load(Ordering::SeqCst)
    }
}

/// The pause before retry `attempt` (1, 2, ...): 20 ms per attempt up to 200 ms, with up to
/// half of it again at random so that retrying nodes spread out.
pub fn backoff(attempt: u32) -> Duration {
    let base = 20 * u64::from(attempt.clamp(1, 10));
    Duration::from_millis(base + fastrand::u64(0..=base / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_ends_every_task() {
        let tasks = Tasks::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        tasks.spawn(async move {
            let _held = tx;
            std::future::pending::<()>().await;
        });
        let stopping = tasks.stopping();
        assert!(tasks.shutdown(Duration::from_secs(1)).await);
        stopping.await;
        assert!(rx.recv().await.is_none(), "the task (and what it held) is gone");
    }
}
