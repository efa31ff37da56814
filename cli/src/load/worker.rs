//! One load thread's share of the run: its connections, its requests (a count, or until the
//! run ends), its schedule under `-q`, and its counts.
//!
//! A thread's connections all run on its own current-thread runtime, so what they share is
//! plain cells: nothing per request crosses threads but one store for the live view.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::Plan;
use super::stats::{Failure, Progress, Stats};

/// A fixed schedule (`-q`): this thread's k-th request is due at `start + (k·threads +
/// index) / rate`, so the threads' requests interleave into one evenly spaced sequence.
pub struct Pace {
    start: Instant,
    /// Seconds between this thread's requests: threads / rate.
    every: f64,
    /// Seconds from `start` to this thread's first request: index / rate.
    first: f64,
    next: Cell<u64>,
}

impl Pace {
    pub fn new(start: Instant, rate: f64, threads: usize, index: usize) -> Pace {
        Pace {
            start,
            every: threads as f64 / rate,
            first: index as f64 / rate,
            next: Cell::new(0),
        }
    }

    fn take(&self) -> Instant {
        let k = self.next.get();
        self.next.set(k + 1);
        self.start + Duration::from_secs_f64(self.first + k as f64 * self.every)
    }

    /// How many of this thread's requests were due by `end`.
    fn due_by(&self, end: Instant) -> u64 {
        let elapsed = end.saturating_duration_since(self.start).as_secs_f64() - self.first;
        if elapsed < 0.0 {
            return 0;
        }
        (elapsed / self.every).floor() as u64 + 1
    }
}

/// What a thread's connections share.
pub struct Worker {
    pub plan: Arc<Plan>,
    stats: RefCell<Stats>,
    answered: Cell<u64>,
    errors: Cell<u64>,
    progress: Arc<[Progress]>,
    index: usize,
    /// Requests this thread may still begin (`u64::MAX` for a timed run).
    budget: Cell<u64>,
    /// What it was given to begin with.
    share: u64,
    pace: Option<Pace>,
}

/// A request about to begin: when its latency counts from.
pub enum Start {
    /// Now, when it is handed to the connection (no `-q`).
    Now,
    /// Its scheduled time (`-q`), which may be past.
    At(Instant),
}

impl Worker {
    pub fn new(
        plan: Arc<Plan>,
        budget: u64,
        pace: Option<Pace>,
        progress: Arc<[Progress]>,
        index: usize,
    ) -> Worker {
        Worker {
            plan,
            stats: RefCell::new(Stats::default()),
            answered: Cell::new(0),
            errors: Cell::new(0),
            progress,
            index,
            budget: Cell::new(budget),
            share: budget,
            pace,
        }
    }

    /// Whether requests remain to begin.
    pub fn more(&self) -> bool {
        self.budget.get() > 0
    }

    /// Takes the next request of this thread's share, if any remain (under `-q` possibly
    /// not due yet: it is [`Worker::begin`] that counts it).
    pub fn take(&self) -> Option<Start> {
        let left = self.budget.get();
        if left == 0 {
            return None;
        }
        self.budget.set(left - 1);
        Some(match &self.pace {
            None => Start::Now,
            Some(pace) => Start::At(pace.take()),
        })
    }

    /// A request handed to a connection (or failed for want of one): it now ends answered,
    /// failed or aborted.
    pub fn begin(&self) {
        self.stats.borrow_mut().issued += 1;
    }

    /// Requests in flight when the run ended, neither answered nor failed.
    pub fn aborted(&self, n: usize) {
        self.stats.borrow_mut().aborted += n as u64;
    }

    /// A complete response: `since` is when its latency began.
    pub fn answered(&self, since: Instant, status: u16, body_bytes: u64, hol_wait: Option<f64>) {
        let latency = since.elapsed();
        let mut stats = self.stats.borrow_mut();
        stats.answered(latency, status, body_bytes);
        if let Some(ms) = hol_wait {
            stats.hol_wait(Duration::from_secs_f64(ms / 1000.0));
        }
        self.answered.set(self.answered.get() + 1);
        self.publish();
    }

    pub fn failed(&self, failure: Failure) {
        self.stats.borrow_mut().failed(failure);
        self.errors.set(self.errors.get() + 1);
        self.publish();
    }

    /// A request that could not begin on any connection: counted as begun and failed.
    pub fn connect_failed(&self) {
        if self.take().is_some() {
            self.begin();
            self.failed(Failure::Connect);
        }
    }

    fn publish(&self) {
        self.progress[self.index].publish(self.answered.get(), self.errors.get());
    }

    /// The counts of a run that ended at `end`, leaving empty ones behind. Under `-q` the
    /// requests the schedule had due by then that no connection was free to send are counted
    /// as begun and aborted: a server that held every connection is charged for them too.
    pub fn take_stats(&self, end: Instant) -> Stats {
        let mut stats = std::mem::take(&mut *self.stats.borrow_mut());
        if let Some(pace) = &self.pace {
            let due = pace.due_by(end).min(self.share);
            let missed = due.saturating_sub(stats.issued);
            stats.issued += missed;
            stats.aborted += missed;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_interleave_into_one_even_schedule() {
        let start = Instant::now();
        let at = |pace: &Pace| pace.take().duration_since(start).as_secs_f64();
        // 1,000 requests per second over two threads: thread 0 at 0, 2, 4 ms, thread 1 at 1,
        // 3, 5 ms.
        let (a, b) = (
            Pace::new(start, 1000.0, 2, 0),
            Pace::new(start, 1000.0, 2, 1),
        );
        let times: Vec<f64> = (0..3).flat_map(|_| [at(&a), at(&b)]).collect();
        for (k, t) in times.iter().enumerate() {
            assert!((t - k as f64 / 1000.0).abs() < 1e-6, "request {k} at {t}");
        }
    }

    /// What was due by a time is what `take` would have handed out by then: the count a
    /// `-q -z` run charges for requests no connection was free to send.
    #[test]
    fn due_by_counts_the_requests_scheduled_up_to_then() {
        let start = Instant::now();
        let ms = |n: f64| start + Duration::from_secs_f64(n / 1000.0);
        // 1,000 a second over two threads: thread 0 at 0, 2, 4 ms…, thread 1 at 1, 3, 5 ms…
        let (a, b) = (
            Pace::new(start, 1000.0, 2, 0),
            Pace::new(start, 1000.0, 2, 1),
        );
        assert_eq!(a.due_by(start), 1, "the first is due at the start");
        assert_eq!(a.due_by(ms(1.5)), 1);
        assert_eq!(a.due_by(ms(5.5)), 3);
        assert_eq!(b.due_by(ms(0.5)), 0, "thread 1's first is due at 1 ms");
        assert_eq!(b.due_by(ms(1.5)), 1);
        assert_eq!(b.due_by(ms(5.5)), 3);
        assert_eq!(b.due_by(ms(100.5)), 50);
    }
}
