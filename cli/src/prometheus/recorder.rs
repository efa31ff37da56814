//! A small Prometheus recorder for the `metrics` facade.
//!
//! Every sample lands in a fixed set of atomics: counters and gauges are one `AtomicU64`,
//! histograms one counter per bucket plus a running sum. Recording never locks, allocates or
//! stores a sample, so nothing has to be drained between scrapes, and `record_many(v, n)` (the
//! engine's pre-aggregated batches) costs what one `record` does. Only registering a handle and
//! rendering (see `exposition`) take the registry's lock; callers register once and keep their
//! handles.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};

use super::exposition;
use super::model::{buckets_for, Buckets, Family, Kind, Series};

/// Every metric registered or described, by family name; rendered as Prometheus text.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
}

impl Registry {
    /// The Prometheus text exposition (format 0.0.4) of every series registered so far.
    pub fn render(&self) -> String {
        exposition::render(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        // A panic while holding the lock leaves the maps consistent (each insert is whole).
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn describe(&self, name: &KeyName, kind: Kind, help: SharedString) {
        let name = metric_name(name.as_str());
        let mut families = self.lock();
        match families.get_mut(&*name) {
            Some(family) if family.kind == kind => family.help = Some(help),
            Some(_) => mismatch(&name, kind),
            None => {
                let family = Family {
                    kind,
                    help: Some(help),
                    series: BTreeMap::new(),
                };
                families.insert(name.into_owned(), family);
            }
        }
    }

    /// The series for `key`, created on first use; `None` if its name is taken by another type.
    fn register(&self, key: &Key, kind: Kind) -> Option<Series> {
        let name = metric_name(key.name());
        let labels = labels(key);
        let mut families = self.lock();
        if !families.contains_key(&*name) {
            let family = Family {
                kind,
                help: None,
                series: BTreeMap::new(),
            };
            families.insert(name.clone().into_owned(), family);
        }
        let family = families.get_mut(&*name)?;
        if family.kind != kind {
            mismatch(&name, kind);
            return None;
        }
        if let Some(series) = family.series.get(&*labels) {
            return Some(series.clone());
        }
        let series = match kind {
            Kind::Counter | Kind::Gauge => Series::Scalar(Arc::default()),
            Kind::Histogram => Series::Histogram(Arc::new(Buckets::new(buckets_for(&name)))),
        };
        family.series.insert(labels.into_owned(), series.clone());
        Some(series)
    }
}

/// Two types under one name would render an invalid family; the second registration gets a
/// handle that records nothing, and the log says why its samples are missing.
fn mismatch(name: &str, kind: Kind) {
    tracing::warn!(
        metric = name,
        kind = kind.as_str(),
        "metric already registered with another type; ignored"
    );
}

impl Recorder for Registry {
    // The 0.0.4 text format has no unit line: by convention the name carries the unit.
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, help: SharedString) {
        self.describe(&key, Kind::Counter, help);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, help: SharedString) {
        self.describe(&key, Kind::Gauge, help);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, help: SharedString) {
        self.describe(&key, Kind::Histogram, help);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.register(key, Kind::Counter) {
            Some(Series::Scalar(count)) => Counter::from_arc(count),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.register(key, Kind::Gauge) {
            Some(Series::Scalar(bits)) => Gauge::from_arc(bits),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.register(key, Kind::Histogram) {
            Some(Series::Histogram(buckets)) => Histogram::from_arc(buckets),
            _ => Histogram::noop(),
        }
    }
}

/// A valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`): the facade accepts any string, and one
/// bad name must not make the whole scrape unparseable.
fn metric_name(name: &str) -> Cow<'_, str> {
    sanitize(name, |c| c == ':')
}

/// A valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn label_name(name: &str) -> Cow<'_, str> {
    sanitize(name, |_| false)
}

/// `name` with every character that is not ASCII alphanumeric, `_` or `extra` replaced by
/// `_`, and `_` put in front of a leading digit.
fn sanitize(name: &str, extra: impl Fn(char) -> bool) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || extra(c);
    let leading_digit = name.starts_with(|c: char| c.is_ascii_digit());
    if !name.is_empty() && !leading_digit && name.chars().all(valid) {
        return Cow::Borrowed(name);
    }
    let mut fixed = String::with_capacity(name.len() + 1);
    if leading_digit || name.is_empty() {
        fixed.push('_');
    }
    fixed.extend(name.chars().map(|c| if valid(c) { c } else { '_' }));
    Cow::Owned(fixed)
}

/// `key`'s labels with valid names, sorted, so the same set in another order is the same
/// series. Borrowed in the usual case (already sorted and valid): registering allocates only
/// for a new series.
fn labels(key: &Key) -> Cow<'_, [Label]> {
    let labels = key.labels().as_slice();
    let valid = labels
        .iter()
        .all(|l| matches!(label_name(l.key()), Cow::Borrowed(_)));
    if valid && labels.is_sorted() {
        return Cow::Borrowed(labels);
    }
    let mut fixed: Vec<Label> = labels
        .iter()
        .map(|l| Label::new(label_name(l.key()).into_owned(), l.value().to_owned()))
        .collect();
    fixed.sort();
    Cow::Owned(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    fn histogram(registry: &Registry, name: &'static str) -> Histogram {
        metrics::with_local_recorder(registry, || metrics::histogram!(name))
    }

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let registry = Registry::default();
        let depth = histogram(&registry, "test_pipeline_depth");
        for value in [0.0, 1.0, 3.0, 3.0, 100.0, 1000.0] {
            depth.record(value);
        }
        let text = registry.render();
        assert_eq!(
            lines(&text, "test_pipeline_depth"),
            [
                "test_pipeline_depth_bucket{le=\"1\"} 2",
                "test_pipeline_depth_bucket{le=\"2\"} 2",
                "test_pipeline_depth_bucket{le=\"4\"} 4",
                "test_pipeline_depth_bucket{le=\"8\"} 4",
                "test_pipeline_depth_bucket{le=\"16\"} 4",
                "test_pipeline_depth_bucket{le=\"32\"} 4",
                "test_pipeline_depth_bucket{le=\"64\"} 4",
                "test_pipeline_depth_bucket{le=\"128\"} 5",
                "test_pipeline_depth_bucket{le=\"+Inf\"} 6",
                "test_pipeline_depth_sum 1107",
                "test_pipeline_depth_count 6",
            ]
        );
    }

    #[test]
    fn a_bound_holds_samples_equal_to_it_and_nan_only_fits_inf() {
        let registry = Registry::default();
        let wait = histogram(&registry, "test_wait_seconds");
        wait.record(0.01);
        wait.record(f64::NAN);
        let text = registry.render();
        let bucket = |le: &str| lines(&text, &format!("test_wait_seconds_bucket{{le=\"{le}\"}}"));
        assert_eq!(
            bucket("0.005"),
            ["test_wait_seconds_bucket{le=\"0.005\"} 0"]
        );
        assert_eq!(bucket("0.01"), ["test_wait_seconds_bucket{le=\"0.01\"} 1"]);
        assert_eq!(bucket("10"), ["test_wait_seconds_bucket{le=\"10\"} 1"]);
        assert_eq!(bucket("+Inf"), ["test_wait_seconds_bucket{le=\"+Inf\"} 2"]);
        assert_eq!(
            bucket("0.00001"),
            ["test_wait_seconds_bucket{le=\"0.00001\"} 0"]
        );
    }

    #[test]
    fn record_many_counts_n_samples_at_once() {
        let registry = Registry::default();
        let wait = histogram(&registry, "test_wait_seconds");
        wait.record_many(0.002, 1000);
        wait.record(0.002);
        wait.record_many(3.0, 2);
        let text = registry.render();
        for expected in [
            "test_wait_seconds_bucket{le=\"0.001\"} 0",
            "test_wait_seconds_bucket{le=\"0.0025\"} 1001",
            "test_wait_seconds_bucket{le=\"2.5\"} 1001",
            "test_wait_seconds_bucket{le=\"5\"} 1003",
            "test_wait_seconds_bucket{le=\"+Inf\"} 1003",
            "test_wait_seconds_count 1003",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "{expected} in:\n{text}"
            );
        }
        let sum = lines(&text, "test_wait_seconds_sum")[0];
        let sum: f64 = sum.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 8.002).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn counters_and_gauges() {
        let registry = Registry::default();
        metrics::with_local_recorder(&registry, || {
            metrics::counter!("test_total", "b" => "2", "a" => "1").increment(3);
            // The same labels in another order are the same series.
            metrics::counter!("test_total", "a" => "1", "b" => "2").increment(1);
            let open = metrics::gauge!("test_open");
            open.increment(5.0);
            open.decrement(2.5);
            metrics::gauge!("test_ratio").set(f64::INFINITY);
        });
        let text = registry.render();
        assert_eq!(
            lines(&text, "test_total"),
            ["test_total{a=\"1\",b=\"2\"} 4"]
        );
        assert_eq!(lines(&text, "test_open"), ["test_open 2.5"]);
        assert_eq!(lines(&text, "test_ratio"), ["test_ratio +Inf"]);
    }

    #[test]
    fn a_name_taken_by_another_type_records_nothing() {
        let registry = Registry::default();
        metrics::with_local_recorder(&registry, || {
            metrics::counter!("test_total").increment(1);
            metrics::gauge!("test_total").set(7.0);
        });
        let text = registry.render();
        assert_eq!(lines(&text, "test_total"), ["test_total 1"]);
        assert_eq!(lines(&text, "# TYPE"), ["# TYPE test_total counter"]);
    }
}
