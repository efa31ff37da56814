//! The engine's metrics for one connection (see `Config::metrics`), aggregated per batch.
//!
//! Handing every request's figures to the process-wide recorder would cost more than answering
//! a pipelined plaintext request. So each connection counts locally (plain integers, no atomics)
//! and gives the recorder one summary per written batch, just before it is written (a client
//! that read its answers and then scrapes finds them counted): each histogram gets one `record_many`
//! per bucket the batch touched, valued at the mean of that bucket's samples, and
//! `pipelined_requests_total` one `increment` per (method, route, status) the batch answered
//! (`meter/requests.rs`). For a recorder that uses the same bounds ([`SECONDS_BUCKETS`]), bucket
//! counts are then exactly what per-sample recording would give, and `_sum` within a
//! nanosecond per sample (samples are summed in whole nanoseconds).
//!
//! The in-flight gauge cannot wait for a batch: a request that runs for a minute is in flight
//! for that minute, with nothing written. It moves by the net change whenever the connection's
//! task is about to wait ([`Meter::settle`]): once per batch for a pipelined burst (read and
//! answered in the same turn: no change, no call), and as soon as a slow request has started.

use std::sync::Arc;

use http::StatusCode;
use metrics::{Gauge, Histogram};

use crate::meter::names::{HANDLER_SECONDS, HEAD_OF_LINE_SECONDS, IN_FLIGHT, PIPELINE_DEPTH};
use crate::meter::{Labels, Requests, Tally};
use crate::timing::{Elapsed, Measured};

/// Bucket bounds, in seconds, of `pipelined_handler_seconds` and
/// `pipelined_head_of_line_wait_seconds`: 10 µs (a handler answered inline) to 10 s (a slow
/// upstream). Configure the recorder's histograms with these bounds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of `pipelined_pipeline_depth` (requests read per written batch).
pub const DEPTH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// [`SECONDS_BUCKETS`] in nanoseconds: a sample is put in its bucket without a conversion.
const NANOS_BUCKETS: [u64; SECONDS_BUCKETS.len()] = {
    let mut nanos = [0; SECONDS_BUCKETS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (SECONDS_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// Samples of one histogram since the last batch, by bucket of [`SECONDS_BUCKETS`] (the last
/// entry is the overflow bucket).
#[derive(Default)]
struct Local {
    counts: [u32; SECONDS_BUCKETS.len() + 1],
    /// Nanoseconds, summed exactly.
    sums: [u64; SECONDS_BUCKETS.len() + 1],
    /// Bit `i`: bucket `i` has samples. A batch touches one or two buckets: the flush visits
    /// those, not all twenty.
    used: u32,
    /// Samples of exactly zero (an answer encoded the moment it was ready: no head-of-line
    /// wait, the commonest sample there is), counted apart: one comparison and an increment.
    zeros: u32,
}

impl Local {
    #[inline]
    fn record(&mut self, sample: Elapsed) {
        if sample == Elapsed::ZERO {
            self.zeros += 1;
            return;
        }
        let nanos = sample.as_nanos();
        let bucket = NANOS_BUCKETS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(NANOS_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sums[bucket] += nanos;
        self.used |= 1 << bucket;
    }

    /// Hands the samples to `histogram`, one `record_many` per bucket used, and starts over.
    fn flush(&mut self, histogram: &Histogram) {
        if self.zeros > 0 {
            histogram.record_many(0.0, self.zeros as usize);
            self.zeros = 0;
        }
        while self.used != 0 {
            let bucket = self.used.trailing_zeros() as usize;
            self.used &= self.used - 1;
            let (count, sum) = (self.counts[bucket], self.sums[bucket]);
            let mean = Elapsed::from_nanos(sum / u64::from(count));
            histogram.record_many(mean.as_secs_f64(), count as usize);
            (self.counts[bucket], self.sums[bucket]) = (0, 0);
        }
    }
}

/// One connection's metric handles and what it counted since the last batch.
pub(crate) struct Meter {
    in_flight: Gauge,
    depth: Histogram,
    handler: Histogram,
    head_of_line: Histogram,
    handler_samples: Local,
    head_of_line_samples: Local,
    /// The server's `pipelined_requests_total` handles.
    requests: Arc<Requests>,
    /// Answers since the last batch was written, by labels and status.
    tally: Tally,
    /// Requests read over the connection's life (every answer is to a request read).
    read: u64,
    /// Requests answered over the connection's life.
    answered: u64,
    /// `read` when the last batch was written: the next batch's pipeline depth is the
    /// difference.
    read_by_batch: u64,
    /// What this connection has added to the in-flight gauge: requests read and not answered
    /// as of its last move, given back if the connection ends before answering them.
    in_gauge: u64,
}

impl Meter {
    /// A connection's meter, counting requests into `requests` (its server's).
    pub(crate) fn new(requests: Arc<Requests>) -> Self {
        Meter {
            in_flight: metrics::gauge!(IN_FLIGHT),
            depth: metrics::histogram!(PIPELINE_DEPTH),
            handler: metrics::histogram!(HANDLER_SECONDS),
            head_of_line: metrics::histogram!(HEAD_OF_LINE_SECONDS),
            handler_samples: Local::default(),
            head_of_line_samples: Local::default(),
            requests,
            tally: Tally::default(),
            read: 0,
            answered: 0,
            read_by_batch: 0,
            in_gauge: 0,
        }
    }

    /// A request was read.
    pub(crate) fn read(&mut self) {
        self.read += 1;
    }

    /// A request was answered with `status` (its head is being encoded), with its handler
    /// time and head-of-line wait when measured. Inlined: a call's register saves and restores
    /// cost a third of what it does (callgrind).
    #[inline(always)]
    pub(crate) fn answered(
        &mut self,
        labels: Labels,
        status: StatusCode,
        timing: Option<Measured>,
    ) {
        self.answered += 1;
        self.tally.add(labels, status, &self.requests);
        if let Some(Measured { handler, queue }) = timing {
            self.handler_samples.record(handler);
            self.head_of_line_samples.record(queue);
        }
    }

    /// The connection's task is about to wait (for the socket, a handler or a write): the
    /// in-flight gauge takes the requests started and answered since it last moved.
    pub(crate) fn settle(&mut self) {
        // Every answer is to a request read (`Conn::refuse` counts the ones refused before
        // their head parsed); were one not, the gauge would stop at zero, not wrap.
        debug_assert!(
            self.answered <= self.read,
            "an answer to a request not read"
        );
        let in_flight = self.read.saturating_sub(self.answered);
        if in_flight != self.in_gauge {
            self.in_flight
                .increment(in_flight as f64 - self.in_gauge as f64);
            self.in_gauge = in_flight;
        }
    }

    /// A batch is about to be written: hand its summary to the recorder first, so that a
    /// client that read its answers finds them counted.
    pub(crate) fn batch(&mut self) {
        self.settle();
        let depth = self.read - self.read_by_batch;
        if depth > 0 {
            self.depth.record(depth as f64);
        }
        self.read_by_batch = self.read;
        self.tally.flush(&self.requests);
        self.handler_samples.flush(&self.handler);
        self.head_of_line_samples.flush(&self.head_of_line);
    }
}

impl Drop for Meter {
    /// A connection that ends with requests unanswered (a reset, the drain deadline) takes
    /// them out of the in-flight gauge, so the gauge returns to zero.
    fn drop(&mut self) {
        self.batch();
        if self.in_gauge > 0 {
            self.in_flight.decrement(self.in_gauge as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{Histogram, HistogramFn};

    use super::{Local, NANOS_BUCKETS, SECONDS_BUCKETS};
    use crate::timing::Elapsed;

    /// What a histogram was given: (value, count) per `record_many`.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(f64, usize)>>);

    impl HistogramFn for Recorded {
        fn record(&self, value: f64) {
            self.record_many(value, 1);
        }

        fn record_many(&self, value: f64, count: usize) {
            self.0.lock().unwrap().push((value, count));
        }
    }

    #[test]
    fn a_flush_gives_each_used_bucket_its_count_and_mean_once() {
        let recorded = Arc::new(Recorded::default());
        let histogram = Histogram::from_arc(recorded.clone());
        let mut local = Local::default();
        // Two zeros, two in the first bucket, one on a bound, one over every bound.
        for nanos in [2_000, 0, 4_000, 250_000_000, 0, 60_000_000_000] {
            local.record(Elapsed::from_nanos(nanos));
        }
        local.flush(&histogram);
        let got = recorded.0.lock().unwrap().clone();
        assert_eq!(got, [(0.0, 2), (0.000_003, 2), (0.25, 1), (60.0, 1)]);
        // Started over: nothing left to give, and the next batch counts from zero.
        local.flush(&histogram);
        local.record(Elapsed::from_nanos(NANOS_BUCKETS[0]));
        local.flush(&histogram);
        let got = recorded.0.lock().unwrap().clone();
        assert_eq!(got[4..], [(SECONDS_BUCKETS[0], 1)]);
    }

    #[test]
    fn a_sample_on_a_bound_is_in_the_bucket_the_recorder_puts_that_bound_in() {
        for (&nanos, &seconds) in NANOS_BUCKETS.iter().zip(SECONDS_BUCKETS) {
            assert_eq!(Elapsed::from_nanos(nanos).as_secs_f64(), seconds);
        }
    }
}
