//! CPU-bound work on a fixed number of worker threads, behind a bounded queue: the "fixed
//! number of workers" and "back pressure" patterns of docs/ARCHITECTURE.md, for `GET /work/{n}`.
//!
//! CPU-bound work must not run on tokio's threads (it would stall every connection sharing
//! them), and an unbounded queue in front of a pool only converts overload into latency and
//! memory. So: one worker thread per core, a queue of fixed length, and `503` when it is full.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Jobs that may wait for a worker; beyond this the pool refuses work (`503`).
pub const QUEUE_LEN: usize = 64;

struct Job {
    rounds: u64,
    done: oneshot::Sender<u64>,
}

/// A fixed pool of worker threads.
#[derive(Clone)]
pub struct WorkPool {
    queue: SyncSender<Job>,
}

/// The queue is full: the caller should shed the request.
#[derive(Debug)]
pub struct Busy;

impl WorkPool {
    /// Starts `workers` threads fed by a queue of `queue_len` jobs.
    pub fn new(workers: usize, queue_len: usize) -> Self {
        let (queue, jobs) = mpsc::sync_channel::<Job>(queue_len);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..workers.max(1) {
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("work-{i}"))
                .spawn(move || loop {
                    // The lock is held only while taking a job, never while working.
                    let job = match jobs.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let _ = job.done.send(hash_rounds(job.rounds));
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a work thread");
            }
        }
        WorkPool { queue }
    }

    /// Queues `rounds` of hashing; the receiver yields the digest.
    pub fn submit(&self, rounds: u64) -> Result<oneshot::Receiver<u64>, Busy> {
        let (done, result) = oneshot::channel();
        match self.queue.try_send(Job { rounds, done }) {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// `rounds` rounds of SipHash over the running value: pure CPU, no memory traffic.
pub fn hash_rounds(rounds: u64) -> u64 {
    let mut value = rounds;
    for round in 0..rounds {
        let mut hasher = DefaultHasher::new();
        (value, round).hash(&mut hasher);
        value = hasher.finish();
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_digest_is_deterministic() {
        let pool = WorkPool::new(2, 4);
        let a = pool.submit(1000).unwrap().await.unwrap();
        let b = pool.submit(1000).unwrap().await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a, hash_rounds(1000));
        assert_ne!(a, hash_rounds(1001));
    }

    /// One worker and a queue of one hold at most two jobs, whatever the timing: of three long
    /// jobs submitted at once, at least one is refused. Once they finish, work is taken again.
    #[tokio::test]
    async fn a_full_queue_refuses_work() {
        let pool = WorkPool::new(1, 1);
        let results: Vec<_> = (0..3).map(|_| pool.submit(200_000)).collect();
        let refused = results.iter().filter(|r| r.is_err()).count();
        assert!(
            refused >= 1,
            "a third job fit behind one worker and one queue slot"
        );
        for accepted in results.into_iter().flatten() {
            accepted.await.unwrap();
        }
        assert!(pool.submit(1).unwrap().await.is_ok());
    }
}
