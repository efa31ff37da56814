//! CPU-bound work on a fixed number of worker threads, behind a bounded queue: the "fixed
//! number of workers" and "back pressure" patterns of docs/ARCHITECTURE.md, for `GET /work/{n}`.
//!
//! CPU-bound work must not run on tokio's threads (it would stall every connection sharing
//! them), and an unbounded queue in front of a pool only converts overload into latency and
//! memory. So: one worker thread per core, a queue of fixed length, and `503` when it is full.
//!
//! Work nobody waits for any more is not done: a job whose requester is gone (its handler was
//! cancelled because the client left, or timed out) is skipped if it has not started, and
//! stops within [`CHECK_EVERY`] rounds if it has.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Jobs that may wait for a worker; beyond this the pool refuses work (`503`).
pub const QUEUE_LEN: usize = 64;

/// Rounds hashed between two looks at whether the requester is still there. A round is
/// ~20 ns, so this is ~0.2 ms of work: well inside the 10 ms an abandoned job may still run,
/// and an atomic load per 10,000 rounds costs nothing measurable.
const CHECK_EVERY: u64 = 10_000;

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
                    run(job);
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a work thread");
            }
        }
        WorkPool { queue }
    }

    /// Queues `rounds` of hashing; the receiver yields the digest. Dropping the receiver
    /// abandons the job.
    pub fn submit(&self, rounds: u64) -> Result<oneshot::Receiver<u64>, Busy> {
        let (done, result) = oneshot::channel();
        match self.queue.try_send(Job { rounds, done }) {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// Runs one job on a worker thread, unless or until its requester is gone.
fn run(job: Job) {
    match hash_unless_abandoned(job.rounds, &job.done) {
        Some(digest) => {
            let _ = job.done.send(digest);
        }
        None => tracing::debug!(rounds = job.rounds, "work abandoned: stopped"),
    }
}

/// All `rounds` of a job, looking before each [`CHECK_EVERY`] rounds (the first included:
/// a job abandoned while it queued never starts) whether its requester is still there; `None`
/// when it left first.
fn hash_unless_abandoned(rounds: u64, done: &oneshot::Sender<u64>) -> Option<u64> {
    let mut value = rounds;
    let mut round = 0;
    while round < rounds {
        if done.is_closed() {
            return None;
        }
        let end = rounds.min(round.saturating_add(CHECK_EVERY));
        value = hash_range(value, round..end);
        round = end;
    }
    Some(value)
}

/// The rounds `range` of a job of SipHash rounds over a running value (pure CPU, no memory
/// traffic), from the value the earlier rounds left; a job of `n` rounds starts from `n`.
fn hash_range(mut value: u64, range: std::ops::Range<u64>) -> u64 {
    for round in range {
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
        assert_eq!(a, hash_range(1000, 0..1000));
        assert_ne!(a, hash_range(1001, 0..1001));
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

    /// Hashing stops once the requester is gone (before the first round or between two
    /// checks): u64::MAX rounds would otherwise run for centuries.
    #[test]
    fn hashing_stops_when_the_requester_leaves() {
        let (done, result) = oneshot::channel();
        let worker = std::thread::spawn(move || hash_unless_abandoned(u64::MAX, &done));
        drop(result);
        assert_eq!(worker.join().unwrap(), None);
    }

    /// A job abandoned while it waits in the queue never starts: on one worker, it would
    /// otherwise hash u64::MAX rounds and the job after it, which is awaited, never finish.
    #[tokio::test]
    async fn abandoned_work_is_not_done() {
        // Room for all three, whether or not the worker has taken the first yet.
        let pool = WorkPool::new(1, 3);
        let first = pool.submit(u64::MAX).unwrap();
        let second = pool.submit(u64::MAX).unwrap();
        drop(second);
        drop(first);
        let last = pool.submit(1000).unwrap();
        let digest = tokio::time::timeout(std::time::Duration::from_secs(30), last)
            .await
            .expect("the worker is still hashing abandoned work")
            .unwrap();
        assert_eq!(digest, hash_range(1000, 0..1000));
    }
}
