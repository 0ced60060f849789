//! Group commit on a thread of its own: callers queue batches of items, and the thread hands
//! everything queued at that moment to one `apply` (one fsync'd transaction), then splits the
//! results back to their callers. paxos' acceptor and dynamo's writer both run on it.
//! [`Pipeline`] is its async counterpart for rounds that may overlap (raft's proposals).

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// The exit code of a node whose writer thread panicked.
pub const WRITER_PANICKED: i32 = 70;

static EXIT_ON_PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes a panicking writer stop the process (`valthree serve` asks for it: a supervisor then
/// restarts the node from what is durable). Otherwise the writer refuses every later write.
pub fn exit_on_writer_panic() {
    EXIT_ON_PANIC.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// One caller's items and where its results go (one result per item, in order).
pub struct BatchJob<T, R> {
    pub batch: Vec<T>,
    pub reply: BatchReply<R>,
}

/// Where a [`BatchJob`]'s results go: to a waiting caller, or to a function the writer thread
/// calls itself once the batch is durable (it must be quick: a channel send), so no task
/// needs waking between the writer and whoever takes the results next.
pub enum BatchReply<R> {
    Once(oneshot::Sender<Result<Vec<R>>>),
    Then(Box<dyn FnOnce(Result<Vec<R>>) + Send>),
}

impl<R> BatchReply<R> {
    fn send(self, results: Result<Vec<R>>) {
        match self {
            Self::Once(tx) => {
                let _ = tx.send(results);
            }
            Self::Then(then) => then(results),
        }
    }
}

impl<R> From<oneshot::Sender<Result<Vec<R>>>> for BatchReply<R> {
    fn from(tx: oneshot::Sender<Result<Vec<R>>>) -> Self {
        Self::Once(tx)
    }
}

/// Starts the thread `name`: it applies up to `max_items` queued items at once (more wait for
/// the next round); a failed `apply` fails every caller of that round.
pub fn spawn_batcher<T, R>(
    name: &str,
    max_items: usize,
    mut apply: impl FnMut(&[T]) -> Result<Vec<R>> + Send + 'static,
) -> std::sync::mpsc::Sender<BatchJob<T, R>>
where
    T: Clone + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<BatchJob<T, R>>();
    let thread = name.to_string();
    std::thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.iter().map(|j| j.batch.len()).sum::<usize>() < max_items
                    && let Ok(more) = rx.try_recv()
                {
                    jobs.push(more);
                }
                let all: Vec<T> = jobs.iter().flat_map(|j| j.batch.iter().cloned()).collect();
                let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply(&all)));
                let Ok(applied) = applied else {
                    // A bug: the writer's state can no longer be trusted, and a node whose
                    // writer is gone would otherwise wait on it for ever. The round's callers
                    // hear that their writes may or may not be durable (a dropped connection
                    // says the same). A server process then stops so that a supervisor
                    // restarts it from what is durable; in a process that is not a server (a
                    // test running nodes in-process) every later caller is refused instead.
                    let failed = || Err(Error::Uncertain(format!("{thread}: the writer panicked")));
                    for job in jobs {
                        job.reply.send(failed());
                    }
                    if EXIT_ON_PANIC.load(std::sync::atomic::Ordering::Relaxed) {
                        tracing::error!("{thread}: the writer panicked; stopping the node");
                        std::process::exit(WRITER_PANICKED);
                    }
                    tracing::error!("{thread}: the writer panicked; refusing every later write");
                    while let Ok(job) = rx.recv() {
                        job.reply.send(failed());
                    }
                    return;
                };
                match applied {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        for job in jobs {
                            let mine = results.by_ref().take(job.batch.len()).collect();
                            job.reply.send(Ok(mine));
                        }
                    }
                    Err(e) => {
                        tracing::error!("{thread}: a batch failed: {e}");
                        for job in jobs {
                            job.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        })
        .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
    tx
}

/// Group commit for async work whose rounds may overlap: each caller queues one item; a task
/// takes everything queued at that moment (within [`PipelineLimits`]) as one batch, starts
/// `run` on it, and lets at most `in_flight` batches run at once, so what queues while they
/// run becomes the next batch. Under load a batch holds about clients / `in_flight` items, and
/// one round's fixed cost (an fsync, a quorum round trip) is paid once for all of them; a lone
/// caller is served at once. raft mode's proposals (many client writes in one log entry) and
/// its read-index rounds run on it.
pub struct Pipeline<T, R> {
    tx: tokio::sync::mpsc::UnboundedSender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for Pipeline<T, R> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

/// The receiving end of a [`Pipeline`], served by [`PipelineQueue::serve`].
pub struct PipelineQueue<T, R> {
    rx: tokio::sync::mpsc::UnboundedReceiver<(T, oneshot::Sender<R>)>,
}

/// How batches of a [`Pipeline`] are cut.
#[derive(Debug, Clone, Copy)]
pub struct PipelineLimits {
    /// Batches running at once.
    pub in_flight: usize,
    /// Items in one batch.
    pub max_items: usize,
    /// Total weight of one batch (a batch always takes at least one item, however heavy).
    pub max_weight: usize,
}

/// A new pipeline: callers use the first half, one task serves the second.
pub fn pipeline<T, R>() -> (Pipeline<T, R>, PipelineQueue<T, R>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Pipeline { tx }, PipelineQueue { rx })
}

impl<T, R> Pipeline<T, R> {
    /// Queues `item` and waits for its result: `None` when the pipeline stopped, or its batch
    /// ended without a result for it.
    pub async fn call(&self, item: T) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).ok()?;
        rx.await.ok()
    }
}

impl<T: Send + 'static, R: Send + 'static> PipelineQueue<T, R> {
    /// Serves the queue until every caller's half is dropped or `run` answers `None`. `run`
    /// gets a batch's items in queue order and answers one result per item, in order.
    pub async fn serve<F, Fut>(mut self, limits: PipelineLimits, weight: impl Fn(&T) -> usize, mut run: F)
    where
        F: FnMut(Vec<T>) -> Option<Fut>,
        Fut: std::future::Future<Output = Vec<R>> + Send + 'static,
    {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.in_flight.max(1)));
        let mut held = None;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let first = match held.take() {
                Some(first) => first,
                None => match self.rx.recv().await {
                    Some(first) => first,
                    None => return,
                },
            };
            let mut total = weight(&first.0);
            let mut batch = vec![first];
            while batch.len() < limits.max_items && total < limits.max_weight {
                let Ok(next) = self.rx.try_recv() else { break };
                let heft = weight(&next.0);
                if total + heft > limits.max_weight {
                    held = Some(next);
                    break;
                }
                total += heft;
                batch.push(next);
            }
            let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
            let Some(work) = run(items) else { return };
            tokio::spawn(async move {
                let results = work.await;
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                drop(slot);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_results_in_order() {
        let tx = spawn_batcher("test-batcher", 100, |items: &[u32]| Ok(items.iter().map(|i| i * 10).collect()));
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        tx.send(BatchJob { batch: vec![1, 2], reply: a.into() }).unwrap();
        tx.send(BatchJob { batch: vec![3], reply: b.into() }).unwrap();
        assert_eq!(ra.await.unwrap().unwrap(), vec![10, 20]);
        assert_eq!(rb.await.unwrap().unwrap(), vec![30]);
    }

    #[tokio::test]
    async fn a_writer_that_panics_fails_its_round_and_every_later_write_in_a_process_that_is_no_server() {
        let tx = spawn_batcher("test-panicking", 100, |items: &[u32]| {
            if items.contains(&0) {
                panic!("a bug");
            }
            Ok(items.to_vec())
        });
        let call = |batch: Vec<u32>| {
            let (reply, rx) = oneshot::channel();
            tx.send(BatchJob { batch, reply: reply.into() }).unwrap();
            rx
        };
        assert_eq!(call(vec![1]).await.unwrap().unwrap(), vec![1]);
        let failed = call(vec![0]).await.unwrap().unwrap_err();
        assert!(!failed.is_definite(), "the panicking round may or may not have been written: {failed}");
        let later = call(vec![2]).await.unwrap().unwrap_err();
        assert!(later.to_string().contains("panicked"), "{later}");
    }

    /// Polls `call` once: a pipeline call queues its item on its first poll, so once this
    /// returns the item is in the queue, in the order of these calls (no sleep orders them).
    async fn enqueue<F: std::future::Future + Unpin>(call: &mut F) {
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *call).poll(cx))).await;
        assert!(polled.is_pending(), "the call waits for its batch");
    }

    #[tokio::test]
    async fn a_pipeline_batches_what_queues_while_a_batch_runs() {
        let (pipe, queue) = pipeline::<u32, (u32, usize)>();
        let (release, released) = tokio::sync::watch::channel(false);
        let (started, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let limits = PipelineLimits { in_flight: 1, max_items: 100, max_weight: 1000 };
        tokio::spawn(queue.serve(
            limits,
            |_| 1,
            move |items: Vec<u32>| {
                let _ = started.send(items.clone());
                let mut released = released.clone();
                Some(async move {
                    let _ = released.wait_for(|r| *r).await;
                    let n = items.len();
                    items.into_iter().map(|i| (i * 10, n)).collect::<Vec<_>>()
                })
            },
        ));
        let mut first = Box::pin(pipe.call(1));
        enqueue(&mut first).await;
        assert_eq!(batches.recv().await, Some(vec![1]), "the first call runs alone");
        // The first batch holds the only slot: these three queue and go together.
        let mut rest: Vec<_> = (2..=4).map(|i| Box::pin(pipe.call(i))).collect();
        for call in &mut rest {
            enqueue(call).await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await, Some((10, 1)));
        for (i, call) in (2..=4).zip(rest) {
            assert_eq!(call.await, Some((i * 10, 3)), "each caller gets its own result");
        }
    }

    #[tokio::test]
    async fn a_pipeline_batch_stops_at_its_weight() {
        let (pipe, queue) = pipeline::<usize, usize>();
        let limits = PipelineLimits { in_flight: 1, max_items: 100, max_weight: 10 };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (started, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let mut gate = Some(rx);
        tokio::spawn(queue.serve(
            limits,
            |w| *w,
            move |items: Vec<usize>| {
                let _ = started.send(items.clone());
                let gate = gate.take();
                Some(async move {
                    if let Some(gate) = gate {
                        let _ = gate.await;
                    }
                    let n = items.len();
                    vec![n; n]
                })
            },
        ));
        let mut blocker = Box::pin(pipe.call(1));
        enqueue(&mut blocker).await;
        assert_eq!(batches.recv().await, Some(vec![1]), "the blocker runs alone");
        let (mut a, mut b, mut c) = (Box::pin(pipe.call(6)), Box::pin(pipe.call(4)), Box::pin(pipe.call(5)));
        enqueue(&mut a).await;
        enqueue(&mut b).await;
        enqueue(&mut c).await;
        tx.send(()).unwrap();
        assert_eq!(blocker.await, Some(1));
        assert_eq!((a.await, b.await), (Some(2), Some(2)), "6 + 4 fill one batch");
        assert_eq!(c.await, Some(1), "the 5 waits for the next");
    }
}
