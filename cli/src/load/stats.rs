//! What one load thread counts, merged at the end: latencies and head-of-line waits in HDR
//! histograms, status codes, body bytes, errors by kind.
//!
//! Each thread owns its `Stats` (no lock or atomic per response); the live view reads only
//! the `Progress` counters, one cache line per thread.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds exactly (an hour, in nanoseconds); longer ones are
/// recorded as this.
const MAX_NANOS: u64 = 3_600_000_000_000;
/// Significant digits of every recorded value (HdrHistogram's usual 3: 0.1 % error).
const DIGITS: u8 = 3;

/// Why a request got no response, as the summary groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No connection could be made for it (refused, unreachable, TLS handshake failed).
    Connect,
    /// No complete response within `-t`.
    Timeout,
    /// The connection was reset or broken under it.
    Reset,
    /// Written, then the connection ended before its response: it may or may not have been
    /// processed.
    NotAnswered,
    /// Never written: the connection ended while it waited its turn.
    NotSent,
    /// Its response began and was cut short.
    Incomplete,
    /// The server's bytes were not HTTP the client could read.
    Protocol,
    /// Anything else the client reported (an I/O error other than a reset, say).
    Other,
}

impl Failure {
    pub const ALL: [Failure; 8] = [
        Failure::Connect,
        Failure::Timeout,
        Failure::Reset,
        Failure::NotAnswered,
        Failure::NotSent,
        Failure::Incomplete,
        Failure::Protocol,
        Failure::Other,
    ];

    /// The words the text summary uses.
    pub fn describe(self) -> &'static str {
        match self {
            Failure::Connect => "connect: no connection could be made",
            Failure::Timeout => "timeout: no complete response in time",
            Failure::Reset => "reset: the connection was reset",
            Failure::NotAnswered => "not answered: written, then the connection ended",
            Failure::NotSent => "not sent: the connection ended before it was written",
            Failure::Incomplete => "incomplete: the response was cut short",
            Failure::Protocol => "protocol: the response was not valid HTTP",
            Failure::Other => "other",
        }
    }

    /// The kind of a connection-level I/O error: a reset, or something else.
    pub fn of_io(e: &io::Error) -> Failure {
        if crate::send::client::is_reset(e) {
            Failure::Reset
        } else {
            Failure::Other
        }
    }
}

/// A latency histogram, in nanoseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NANOS, DIGITS).expect("constant, valid bounds")
}

/// One thread's counts.
pub struct Stats {
    /// From each request's start (written, or scheduled with -q) to its response's last byte.
    pub latency: Histogram<u64>,
    /// The `queue` duration of each response's `Server-Timing` (the ordered engine's
    /// head-of-line wait), when the server sent one.
    pub hol_wait: Histogram<u64>,
    /// Responses per status code.
    pub status: BTreeMap<u16, u64>,
    pub failures: BTreeMap<Failure, u64>,
    /// Response body bytes.
    pub body_bytes: u64,
    /// Requests begun: handed to a connection, or given up when none could be made.
    pub issued: u64,
    /// Requests begun and still in flight when the run ended (`-z`, Ctrl-C), and under `-q`
    /// those due that never left: neither answered nor failed.
    pub aborted: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            hol_wait: histogram(),
            status: BTreeMap::new(),
            failures: BTreeMap::new(),
            body_bytes: 0,
            issued: 0,
            aborted: 0,
        }
    }
}

impl Stats {
    /// A complete response.
    pub fn answered(&mut self, latency: Duration, status: u16, body_bytes: u64) {
        self.latency.saturating_record(nanos(latency));
        *self.status.entry(status).or_default() += 1;
        self.body_bytes += body_bytes;
    }

    /// The server's own account of the response's wait behind earlier ones.
    pub fn hol_wait(&mut self, wait: Duration) {
        self.hol_wait.saturating_record(nanos(wait));
    }

    pub fn failed(&mut self, failure: Failure) {
        *self.failures.entry(failure).or_default() += 1;
    }

    pub fn answers(&self) -> u64 {
        self.status.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Stats) {
        self.latency
            .add(&other.latency)
            .expect("histograms of the same bounds");
        self.hol_wait
            .add(&other.hol_wait)
            .expect("histograms of the same bounds");
        for (status, n) in &other.status {
            *self.status.entry(*status).or_default() += n;
        }
        for (failure, n) in &other.failures {
            *self.failures.entry(*failure).or_default() += n;
        }
        self.body_bytes += other.body_bytes;
        self.issued += other.issued;
        self.aborted += other.aborted;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A thread's running totals for the live view: written by that thread only, read by the
/// view's. Aligned to its own cache line so the threads' writes do not contend.
#[derive(Default)]
#[repr(align(128))]
pub struct Progress {
    answered: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    /// Publishes the thread's totals (a plain store: one writer).
    pub fn publish(&self, answered: u64, errors: u64) {
        self.answered.store(answered, Ordering::Relaxed);
        self.errors.store(errors, Ordering::Relaxed);
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_every_count() {
        let mut a = Stats {
            issued: 3,
            ..Stats::default()
        };
        a.answered(Duration::from_micros(100), 200, 10);
        a.answered(Duration::from_micros(300), 404, 5);
        a.failed(Failure::Reset);
        let mut b = Stats {
            issued: 2,
            ..Stats::default()
        };
        b.answered(Duration::from_millis(2), 200, 7);
        b.failed(Failure::NotAnswered);
        b.hol_wait(Duration::from_micros(50));
        a.merge(&b);
        assert_eq!(a.issued, 5);
        assert_eq!(a.answers(), 3);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.status[&200], 2);
        assert_eq!(a.status[&404], 1);
        assert_eq!(a.body_bytes, 22);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.hol_wait.len(), 1);
        assert!(a.latency.max() >= 1_999_000, "max {}", a.latency.max());
        assert_eq!(a.failures[&Failure::Reset], 1);
        assert_eq!(a.failures[&Failure::NotAnswered], 1);
    }
}
