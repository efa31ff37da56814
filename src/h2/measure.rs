//! What is measured of each HTTP/2 stream's handler, as the HTTP/1.1 engine measures it: its
//! time, for `Server-Timing` (`Config::server_timing`) and the `pipelined_handler_seconds`
//! histogram, and the `pipelined_in_flight_requests` gauge while it runs (`Config::metrics`);
//! and of every stream, the service's or refused, its answer in `pipelined_requests_total`
//! ([`Counting`]).
//!
//! HTTP/2 has no head-of-line wait: each stream's response leaves as soon as it is ready, so
//! `queue` is always `0.000` and `pipelined_head_of_line_wait_seconds` and
//! `pipelined_pipeline_depth` are not recorded. Each stream records straight to the recorder,
//! not once per batch as HTTP/1.1 does: an HTTP/2 connection has no written batch to wait
//! for, and a stream costs hyper a task already.

#[cfg(feature = "metrics")]
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
#[cfg(feature = "metrics")]
use metrics::{Gauge, Histogram};

#[cfg(feature = "metrics")]
use crate::meter::names::{HANDLER_SECONDS, IN_FLIGHT};
#[cfg(feature = "metrics")]
use crate::meter::{self, Labels, Requests};
use crate::proto::encode::server_timing_value;
use crate::stats::ServerStats;
use crate::timing::{Elapsed, Stamp};
use crate::Config;

/// What one connection measures of its streams; shared by them all.
pub(super) struct Measure {
    /// Anything at all: otherwise a stream costs no clock read.
    measured: bool,
    server_timing: bool,
    #[cfg(feature = "metrics")]
    meter: Option<Meter>,
}

/// The metric handles, looked up once per connection rather than once per stream.
#[cfg(feature = "metrics")]
#[derive(Clone)]
struct Meter {
    in_flight: Gauge,
    handler: Histogram,
}

impl Measure {
    pub(super) fn new(config: &Config) -> Self {
        Measure {
            measured: config.server_timing || config.metrics,
            server_timing: config.server_timing,
            #[cfg(feature = "metrics")]
            meter: config.metrics.then(|| Meter {
                in_flight: metrics::gauge!(IN_FLIGHT),
                handler: metrics::histogram!(HANDLER_SECONDS),
            }),
        }
    }

    /// A handler starts: its clock, and its place in the in-flight gauge until it answers or
    /// is cancelled; `None` when nothing is measured.
    pub(super) fn start(&self) -> Option<Handling> {
        if !self.measured {
            return None;
        }
        let handling = Handling {
            started: Stamp::now(),
            server_timing: self.server_timing,
            #[cfg(feature = "metrics")]
            meter: self.meter.clone(),
        };
        #[cfg(feature = "metrics")]
        if let Some(meter) = &handling.meter {
            meter.in_flight.increment(1.0);
        }
        Some(handling)
    }
}

/// What one stream's answer is counted under in `pipelined_requests_total`, and the server's
/// counters it goes to; nothing when the server is not metered.
pub(super) struct Counting {
    #[cfg(feature = "metrics")]
    counted: Option<(Labels, Arc<Requests>)>,
}

impl Measure {
    /// A stream's request arrived, with `method`: its answer, whatever it is, is counted in
    /// `stats`' counters.
    // Without the metrics feature nothing is counted, and neither says anything.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn counting(&self, method: &Method, stats: &ServerStats) -> Counting {
        Counting {
            #[cfg(feature = "metrics")]
            counted: self
                .meter
                .is_some()
                .then(|| (Labels::new(method), stats.requests())),
        }
    }
}

impl Counting {
    /// Runs `call` (the service's `call`), learning the route a `Router` reports as it routes.
    pub(super) fn call<T>(&mut self, call: impl FnOnce() -> T) -> T {
        #[cfg(feature = "metrics")]
        if let Some((labels, _)) = &mut self.counted {
            let expecting = meter::expect_route();
            let value = call();
            *labels = labels.routed_to(expecting.route());
            return value;
        }
        call()
    }

    /// The stream's answer is `status`: the one place an HTTP/2 answer is counted.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn answered(self, status: StatusCode) {
        #[cfg(feature = "metrics")]
        if let Some((labels, requests)) = self.counted {
            requests.count(labels, status, 1);
        }
    }
}

/// One running handler, measured.
pub(super) struct Handling {
    started: Stamp,
    server_timing: bool,
    #[cfg(feature = "metrics")]
    meter: Option<Meter>,
}

impl Handling {
    /// The handler answered: its time is recorded, and given to the response's headers as
    /// `Server-Timing` when that is on (appended: a service's own is kept beside it).
    pub(super) fn finish(self, headers: &mut HeaderMap) {
        let handler = Stamp::now().since(self.started);
        #[cfg(feature = "metrics")]
        if let Some(meter) = &self.meter {
            meter.handler.record(handler.as_secs_f64());
        }
        if self.server_timing {
            headers.append("server-timing", server_timing(handler));
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for Handling {
    /// Out of the in-flight gauge, answered or cancelled (a reset stream, a timeout).
    fn drop(&mut self) {
        if let Some(meter) = &self.meter {
            meter.in_flight.decrement(1.0);
        }
    }
}

/// `handler;dur=…, queue;dur=0.000`, formatted as HTTP/1.1 formats it.
fn server_timing(handler: Elapsed) -> HeaderValue {
    let mut value = Vec::with_capacity(48);
    server_timing_value(&mut value, handler, Elapsed::ZERO);
    HeaderValue::from_maybe_shared(Bytes::from(value))
        .expect("digits, letters and punctuation make a valid header value")
}
