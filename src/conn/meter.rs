//! The engine's metrics for one connection (see `Config::metrics`), aggregated per batch.
//!
//! Handing every request's figures to the process-wide recorder would cost more than answering
//! a pipelined plaintext request. So each connection counts locally (plain integers, no atomics)
//! and gives the recorder one summary per written batch: each histogram gets one `record_many`
//! per bucket the batch touched, valued at the mean of that bucket's samples, and
//! `pipelined_requests_total` one `increment` per (method, route, status) the batch answered
//! (`meter/requests.rs`). For a recorder that uses the same bounds ([`SECONDS_BUCKETS`]), bucket
//! counts and `_sum` are then exactly what per-sample recording would give.
//!
//! The in-flight gauge cannot wait for a batch: a request that runs for a minute is in flight
//! for that minute, with nothing written. It moves by the net change whenever the connection's
//! task is about to wait ([`Meter::settle`]): once per batch for a pipelined burst (read and
//! answered in the same turn: no change, no call), and as soon as a slow request has started.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use metrics::{Gauge, Histogram};

use crate::meter::names::{HANDLER_SECONDS, HEAD_OF_LINE_SECONDS, IN_FLIGHT, PIPELINE_DEPTH};
use crate::meter::{Labels, Requests, Tally};

/// Bucket bounds, in seconds, of `pipelined_handler_seconds` and
/// `pipelined_head_of_line_wait_seconds`: 10 µs (a handler answered inline) to 10 s (a slow
/// upstream). Configure the recorder's histograms with these bounds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of `pipelined_pipeline_depth` (requests read per written batch).
pub const DEPTH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Samples of one histogram since the last batch, by bucket of [`SECONDS_BUCKETS`] (the last
/// entry is the overflow bucket).
#[derive(Default)]
struct Local {
    counts: [u32; SECONDS_BUCKETS.len() + 1],
    sums: [f64; SECONDS_BUCKETS.len() + 1],
}

impl Local {
    fn record(&mut self, seconds: f64) {
        let bucket = SECONDS_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(SECONDS_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sums[bucket] += seconds;
    }

    /// Hands the samples to `histogram`, one `record_many` per bucket used, and starts over.
    fn flush(&mut self, histogram: &Histogram) {
        for (count, sum) in self.counts.iter_mut().zip(self.sums.iter_mut()) {
            if *count > 0 {
                histogram.record_many(*sum / f64::from(*count), *count as usize);
                (*count, *sum) = (0, 0.0);
            }
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
    /// Requests read since the last batch was written (the pipeline depth).
    read: u32,
    /// Requests read minus requests answered since the gauge last moved.
    unsettled: i64,
    /// Requests read and not yet answered, over the connection's life: what the gauge must
    /// give back if the connection ends before answering them.
    outstanding: u64,
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
            unsettled: 0,
            outstanding: 0,
        }
    }

    /// A request was read.
    pub(crate) fn read(&mut self) {
        self.read += 1;
        self.unsettled += 1;
        self.outstanding += 1;
    }

    /// A request was answered with `status` (its head is being encoded), with its handler
    /// time and head-of-line wait when measured.
    pub(crate) fn answered(
        &mut self,
        labels: Labels,
        status: StatusCode,
        timing: Option<(Duration, Duration)>,
    ) {
        self.unsettled -= 1;
        self.outstanding = self.outstanding.saturating_sub(1);
        self.tally.add(labels, status, &self.requests);
        if let Some((handler, queue)) = timing {
            self.handler_samples.record(handler.as_secs_f64());
            self.head_of_line_samples.record(queue.as_secs_f64());
        }
    }

    /// The connection's task is about to wait (for the socket, a handler or a write): the
    /// in-flight gauge takes the requests started and answered since it last moved.
    pub(crate) fn settle(&mut self) {
        if self.unsettled != 0 {
            self.in_flight.increment(self.unsettled as f64);
            self.unsettled = 0;
        }
    }

    /// A batch was written: hand its summary to the recorder.
    pub(crate) fn batch(&mut self) {
        self.settle();
        if self.read > 0 {
            self.depth.record(f64::from(self.read));
        }
        self.read = 0;
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
        if self.outstanding > 0 {
            self.in_flight.decrement(self.outstanding as f64);
        }
    }
}
