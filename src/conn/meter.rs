//! The engine's metrics for one connection (see `Config::metrics`).
//!
//! Handles are registered once per connection: looking a metric up by name hashes its key on
//! every call, which per request would cost more than the metric is worth.

use std::time::Duration;

use metrics::{Gauge, Histogram};

/// One connection's metric handles.
pub(crate) struct Meter {
    in_flight: Gauge,
    depth: Histogram,
    handler: Histogram,
    head_of_line: Histogram,
}

impl Meter {
    pub(crate) fn new() -> Self {
        Meter {
            in_flight: metrics::gauge!("pipelined_in_flight_requests"),
            depth: metrics::histogram!("pipelined_pipeline_depth"),
            handler: metrics::histogram!("pipelined_handler_seconds"),
            head_of_line: metrics::histogram!("pipelined_head_of_line_wait_seconds"),
        }
    }

    /// A request was read and queued; `queued` requests now wait behind the one being written.
    pub(crate) fn read(&self, queued: usize) {
        self.in_flight.increment(1.0);
        self.depth.record(queued as f64);
    }

    /// A request was answered, with its handler time and head-of-line wait when measured.
    pub(crate) fn answered(&self, timing: Option<(Duration, Duration)>) {
        self.in_flight.decrement(1.0);
        if let Some((handler, queue)) = timing {
            self.handler.record(handler.as_secs_f64());
            self.head_of_line.record(queue.as_secs_f64());
        }
    }
}
