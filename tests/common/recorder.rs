//! A `metrics` recorder for tests: gauges by value and histograms by sample count, read back by
//! name. Included with `#[path]` by the tests built with the `metrics` feature
//! (tests/gauges.rs, tests/h2_metrics.rs), each alone in its binary: it is process-wide. Each
//! uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// A gauge's value (as f64 bits), or a histogram's sample count.
#[derive(Default)]
pub struct Value(AtomicU64);

impl GaugeFn for Value {
    fn increment(&self, by: f64) {
        self.update(|v| v + by);
    }
    fn decrement(&self, by: f64) {
        self.update(|v| v - by);
    }
    fn set(&self, to: f64) {
        self.update(|_| to);
    }
}

impl HistogramFn for Value {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl Value {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

/// Gauges and histograms by name; counters are not looked at here.
#[derive(Default, Clone)]
pub struct Metrics {
    gauges: Arc<Mutex<HashMap<String, Arc<Value>>>>,
    histograms: Arc<Mutex<HashMap<String, Arc<Value>>>>,
}

impl Metrics {
    /// Whether a gauge of that name was ever registered (a metered connection opened).
    pub fn registered(&self, name: &str) -> bool {
        self.gauges.lock().unwrap().contains_key(name)
    }

    /// A gauge's value (0 when never registered).
    pub fn gauge(&self, name: &str) -> f64 {
        let gauges = self.gauges.lock().unwrap();
        gauges
            .get(name)
            .map_or(0.0, |v| f64::from_bits(v.0.load(Ordering::Acquire)))
    }

    /// How many samples a histogram got.
    pub fn samples(&self, name: &str) -> u64 {
        let histograms = self.histograms.lock().unwrap();
        histograms
            .get(name)
            .map_or(0, |v| v.0.load(Ordering::Acquire))
    }
}

impl Recorder for Metrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(gauges.entry(key.name().to_owned()).or_default()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(Arc::clone(
            histograms.entry(key.name().to_owned()).or_default(),
        ))
    }
}
