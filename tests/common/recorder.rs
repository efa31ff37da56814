//! The tests' `metrics` recorder: `metrics-util`'s `DebuggingRecorder`, installed once per test
//! binary (it is process-wide), read back by name and labels. Included with `#[path]` by the
//! tests built with the `metrics` feature (tests/gauges.rs, tests/h2_metrics.rs); each uses
//! part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// The installed recorder's snapshots. A snapshot takes every value out of the recorder (a
/// counter's increments, a gauge's net change, a histogram's samples since the last one), so
/// they are added up here, over every snapshot taken.
#[derive(Clone)]
pub struct Metrics {
    snapshotter: Arc<Snapshotter>,
    totals: Arc<Mutex<Totals>>,
}

/// A series: its name and labels.
type Series = (String, Vec<(String, String)>);

/// Every series' value so far, by kind.
#[derive(Default)]
struct Totals {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
    samples: HashMap<Series, u64>,
    sums: HashMap<Series, f64>,
}

impl Metrics {
    /// The recorder of this test binary, installed by the first caller.
    pub fn install() -> Metrics {
        static INSTALLED: OnceLock<Metrics> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                let recorder = DebuggingRecorder::new();
                let snapshotter = Arc::new(recorder.snapshotter());
                recorder
                    .install()
                    .expect("the only recorder of this binary");
                Metrics {
                    snapshotter,
                    totals: Arc::default(),
                }
            })
            .clone()
    }

    /// The totals, with what the recorder holds now added in.
    fn totals(&self) -> MutexGuard<'_, Totals> {
        let mut totals = self.totals.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels = key.labels();
            let labels = labels.map(|l| (l.key().to_owned(), l.value().to_owned()));
            let series = (key.name().to_owned(), labels.collect());
            match value {
                DebugValue::Counter(n) => *totals.counters.entry(series).or_default() += n,
                DebugValue::Gauge(by) => *totals.gauges.entry(series).or_default() += *by,
                DebugValue::Histogram(values) => {
                    let sum: f64 = values.iter().map(|v| v.into_inner()).sum();
                    *totals.sums.entry(series.clone()).or_default() += sum;
                    *totals.samples.entry(series).or_default() += values.len() as u64;
                }
            }
        }
        totals
    }

    /// Whether a gauge of that name was ever registered (a metered connection opened).
    pub fn registered(&self, name: &str) -> bool {
        self.totals().gauges.keys().any(|(n, _)| n == name)
    }

    /// A gauge's value (0 when never registered).
    pub fn gauge(&self, name: &str) -> f64 {
        let totals = self.totals();
        let values = totals.gauges.iter().filter(|((n, _), _)| n == name);
        values.map(|(_, v)| v).sum()
    }

    /// How many samples a histogram got.
    pub fn samples(&self, name: &str) -> u64 {
        let totals = self.totals();
        let values = totals.samples.iter().filter(|((n, _), _)| n == name);
        values.map(|(_, v)| v).sum()
    }

    /// The sum of a histogram's samples.
    pub fn sum(&self, name: &str) -> f64 {
        let totals = self.totals();
        let values = totals.sums.iter().filter(|((n, _), _)| n == name);
        values.map(|(_, v)| v).sum()
    }

    /// A counter's total over the series whose labels include every one of `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let totals = self.totals();
        let matching = totals.counters.iter().filter(|((n, series), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| series.iter().any(|(sk, sv)| sk == k && sv == v))
        });
        matching.map(|(_, v)| v).sum()
    }
}
