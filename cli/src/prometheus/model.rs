//! What the recorder keeps and the exposition renders: metric families, their series and
//! histogram buckets. Both halves import this module, and neither imports the other's
//! internals (the recorder calls `exposition::render`, nothing goes back).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::{HistogramFn, Label, SharedString};

/// Bucket upper bounds for `*_seconds` histograms: the engine's own (10 µs to 10 s, three
/// steps a decade), which it aggregates per batch against these same bounds.
const SECONDS: &[f64] = pipelined::SECONDS_BUCKETS;

/// Bucket upper bounds for `*_pipeline_depth` (requests read per written batch).
const DEPTH: &[f64] = pipelined::DEPTH_BUCKETS;

/// Bucket upper bounds for any other histogram: the Prometheus client libraries' defaults, so
/// a histogram nobody planned for still reads like everyone's.
const DEFAULT: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The buckets a histogram gets, by the unit its name ends with (the Prometheus naming
/// convention), so the choice never depends on whether it was described first.
pub(super) fn buckets_for(name: &str) -> &'static [f64] {
    if name.ends_with("_seconds") {
        SECONDS
    } else if name.ends_with("_pipeline_depth") {
        DEPTH
    } else {
        DEFAULT
    }
}

/// One metric name: its type, HELP text and one series per label set. `BTreeMap`s keep the
/// exposition sorted, so scrapes diff cleanly.
pub(super) struct Family {
    pub(super) kind: Kind,
    pub(super) help: Option<SharedString>,
    pub(super) series: BTreeMap<Vec<Label>, Series>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series' storage, shared with the handles given out for it.
#[derive(Clone)]
pub(super) enum Series {
    /// A counter's count, or a gauge's `f64` bits (the facade implements both on `AtomicU64`).
    Scalar(Arc<AtomicU64>),
    Histogram(Arc<Buckets>),
}

/// A histogram: samples counted per bucket, plus their sum.
///
/// Each bucket counts only the samples that fell in it (not everything at or below its bound),
/// so a sample is one atomic add whatever its size; rendering adds them up into Prometheus'
/// cumulative buckets. The count is the last cumulative bucket (`+Inf`) rather than a counter
/// of its own: one add fewer per sample, and `_count` always equals `le="+Inf"` in a scrape.
pub(super) struct Buckets {
    pub(super) bounds: &'static [f64],
    /// One per bound, then the overflow bucket (above every bound, or NaN).
    pub(super) counts: Box<[AtomicU64]>,
    /// The `f64` bits of the sum of all samples.
    pub(super) sum: AtomicU64,
}

impl Buckets {
    pub(super) fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        // The first bound the value is not above (`le` is inclusive); NaN is under none, so
        // it is in the overflow bucket only, as `le="+Inf"` must count every sample. Searched
        // from the bottom: most samples (handler times of a fast server, small depths) are in
        // the first buckets, found in a comparison or two.
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(count as u64, Ordering::Relaxed);
        let add = value * count as f64;
        // The closure always returns `Some`: the update cannot fail.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some((f64::from_bits(sum) + add).to_bits())
            });
    }
}
