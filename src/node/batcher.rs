//! Group commit on a thread of its own: callers queue batches of items, and the thread hands
//! everything queued at that moment to one `apply` (one fsync'd transaction), then splits the
//! results back to their callers. paxos' acceptor and dynamo's writer both run on it.

use tokio::sync::oneshot;

use crate::error::Result;

/// One caller's items and where its results go (one result per item, in order).
pub struct BatchJob<T, R> {
    pub batch: Vec<T>,
    pub reply: oneshot::Sender<Result<Vec<R>>>,
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
                match apply(&all) {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        for job in jobs {
                            let mine = results.by_ref().take(job.batch.len()).collect();
                            let _ = job.reply.send(Ok(mine));
                        }
                    }
                    Err(e) => {
                        tracing::error!("{thread}: a batch failed: {e}");
                        for job in jobs {
                            let _ = job.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        })
        .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_results_in_order() {
        let tx = spawn_batcher("test-batcher", 100, |items: &[u32]| Ok(items.iter().map(|i| i * 10).collect()));
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        tx.send(BatchJob { batch: vec![1, 2], reply: a }).unwrap();
        tx.send(BatchJob { batch: vec![3], reply: b }).unwrap();
        assert_eq!(ra.await.unwrap().unwrap(), vec![10, 20]);
        assert_eq!(rb.await.unwrap().unwrap(), vec![30]);
    }
}
