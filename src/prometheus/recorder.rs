//! A small Prometheus recorder for the `metrics` facade.
//!
//! Every sample lands in a fixed set of atomics: counters and gauges are one `AtomicU64`,
//! histograms one counter per bucket plus a running sum. Recording never locks, allocates or
//! stores a sample, so nothing has to be drained between scrapes, and `record_many(v, n)` (the
//! engine's pre-aggregated batches) costs what one `record` does. Only registering a handle and
//! rendering take the registry's lock; callers register once and keep their handles.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Label, Metadata, Recorder, SharedString,
    Unit,
};

/// Bucket upper bounds for `*_seconds` histograms: 10 µs to 10 s, three steps a decade.
const SECONDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket upper bounds for `*_pipeline_depth` (requests queued on one connection).
const DEPTH: &[f64] = &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Bucket upper bounds for any other histogram: the Prometheus client libraries' defaults, so
/// a histogram nobody planned for still reads like everyone's.
const DEFAULT: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// HELP text of a metric nobody described: every family needs one, and saying so points at
/// the missing `describe_*` call.
const UNDESCRIBED: &str = "(not described)";

/// The buckets a histogram gets, by the unit its name ends with (the Prometheus naming
/// convention), so the choice never depends on whether it was described first.
fn buckets_for(name: &str) -> &'static [f64] {
    if name.ends_with("_seconds") {
        SECONDS
    } else if name.ends_with("_pipeline_depth") {
        DEPTH
    } else {
        DEFAULT
    }
}

/// Every metric registered or described, by family name; rendered as Prometheus text.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
}

/// One metric name: its type, HELP text and one series per label set. `BTreeMap`s keep the
/// exposition sorted, so scrapes diff cleanly.
struct Family {
    kind: Kind,
    help: Option<SharedString>,
    series: BTreeMap<Vec<Label>, Series>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series' storage, shared with the handles given out for it.
#[derive(Clone)]
enum Series {
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
struct Buckets {
    bounds: &'static [f64],
    /// One per bound, then the overflow bucket (above every bound, or NaN).
    counts: Box<[AtomicU64]>,
    /// The `f64` bits of the sum of all samples.
    sum: AtomicU64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
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
        // The first bound the value is not above (`le` is inclusive); NaN is in no bucket but
        // the overflow one, as `le="+Inf"` must count every sample.
        let bucket = if value.is_nan() {
            self.bounds.len()
        } else {
            self.bounds.partition_point(|bound| *bound < value)
        };
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

impl Registry {
    /// The Prometheus text exposition (format 0.0.4) of every series registered so far.
    pub fn render(&self) -> String {
        let families = self.lock();
        let mut out = String::with_capacity(4096);
        for (name, family) in families.iter().filter(|(_, f)| !f.series.is_empty()) {
            let help = family.help.as_deref().unwrap_or(UNDESCRIBED);
            push(&mut out, format_args!("# HELP {name} {}\n", Help(help)));
            push(
                &mut out,
                format_args!("# TYPE {name} {}\n", family.kind.as_str()),
            );
            for (labels, series) in &family.series {
                let labels = Labels(labels);
                match series {
                    Series::Scalar(value) => {
                        let value = value.load(Ordering::Relaxed);
                        if family.kind == Kind::Counter {
                            push(&mut out, format_args!("{name}{labels} {value}\n"));
                        } else {
                            let value = Value(f64::from_bits(value));
                            push(&mut out, format_args!("{name}{labels} {value}\n"));
                        }
                    }
                    Series::Histogram(buckets) => render_histogram(&mut out, name, labels, buckets),
                }
            }
        }
        out
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

/// `_bucket` lines (cumulative, ending with `+Inf`), then `_sum` and `_count`.
fn render_histogram(out: &mut String, name: &str, labels: Labels<'_>, buckets: &Buckets) {
    let mut cumulative = 0u64;
    for (i, count) in buckets.counts.iter().enumerate() {
        cumulative += count.load(Ordering::Relaxed);
        let le = buckets.bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let le = labels.with_le(Value(le));
        push(out, format_args!("{name}_bucket{le} {cumulative}\n"));
    }
    let sum = Value(f64::from_bits(buckets.sum.load(Ordering::Relaxed)));
    push(out, format_args!("{name}_sum{labels} {sum}\n"));
    push(out, format_args!("{name}_count{labels} {cumulative}\n"));
}

fn push(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing to a `String` cannot fail.
    let _ = out.write_fmt(args);
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

/// A label set as `{a="x",b="y"}` (nothing when empty), optionally with `le` last.
#[derive(Clone, Copy)]
struct Labels<'a>(&'a [Label]);

impl<'a> Labels<'a> {
    fn with_le(self, le: Value) -> WithLe<'a> {
        WithLe(self, le)
    }
}

impl fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        write_labels(f, self.0)?;
        f.write_str("}")
    }
}

struct WithLe<'a>(Labels<'a>, Value);

impl fmt::Display for WithLe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        write_labels(f, self.0 .0)?;
        let comma = if self.0 .0.is_empty() { "" } else { "," };
        write!(f, "{comma}le=\"{}\"}}", self.1)
    }
}

fn write_labels(f: &mut fmt::Formatter<'_>, labels: &[Label]) -> fmt::Result {
    for (i, label) in labels.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        write!(f, "{comma}{}=\"", label.key())?;
        escape(f, label.value(), true)?;
        f.write_str("\"")?;
    }
    Ok(())
}

/// HELP text: backslashes and newlines escaped (quotes are fine there).
struct Help<'a>(&'a str);

impl fmt::Display for Help<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(f, self.0, false)
    }
}

/// Escapes `\` and newline, and `"` too inside label values.
fn escape(f: &mut fmt::Formatter<'_>, text: &str, quotes: bool) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(|c| c == '\\' || c == '\n' || (quotes && c == '"')) {
        f.write_str(&rest[..at])?;
        f.write_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        })?;
        rest = &rest[at + 1..];
    }
    f.write_str(rest)
}

/// A sample value or bound as Prometheus spells it: `+Inf`, `-Inf`, `NaN`, or the shortest
/// decimal that reads back as the same `f64`.
#[derive(Clone, Copy)]
struct Value(f64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            f64::INFINITY => f.write_str("+Inf"),
            f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
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
                "test_pipeline_depth_bucket{le=\"0\"} 1",
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
    fn label_values_and_help_are_escaped() {
        let registry = Registry::default();
        metrics::with_local_recorder(&registry, || {
            metrics::describe_counter!("test_total", "a \"quoted\" back\\slash\nsecond line");
            metrics::counter!("test_total", "path" => "a\\b\"c\nd").increment(1);
        });
        let text = registry.render();
        assert_eq!(
            lines(&text, "# HELP test_total"),
            ["# HELP test_total a \"quoted\" back\\\\slash\\nsecond line"]
        );
        assert_eq!(
            lines(&text, "test_total"),
            ["test_total{path=\"a\\\\b\\\"c\\nd\"} 1"]
        );
    }

    #[test]
    fn one_help_and_type_per_family_sorted_by_name() {
        let registry = Registry::default();
        metrics::with_local_recorder(&registry, || {
            metrics::describe_histogram!("b_seconds", Unit::Seconds, "B.");
            metrics::describe_gauge!("never_registered", "Not rendered without a series.");
            metrics::histogram!("b_seconds", "x" => "1").record(1.0);
            metrics::histogram!("b_seconds", "x" => "2").record(1.0);
            metrics::counter!("a_total", "x" => "1").increment(1);
            metrics::counter!("a_total", "x" => "2").increment(1);
            metrics::gauge!("c-gauge").set(1.0);
        });
        let text = registry.render();
        let comments: Vec<&str> = lines(&text, "#");
        assert_eq!(
            comments,
            [
                "# HELP a_total (not described)",
                "# TYPE a_total counter",
                "# HELP b_seconds B.",
                "# TYPE b_seconds histogram",
                "# HELP c_gauge (not described)",
                "# TYPE c_gauge gauge",
            ]
        );
        assert_eq!(
            lines(&text, "b_seconds_bucket{x=\"2\",le=\"+Inf\"}"),
            ["b_seconds_bucket{x=\"2\",le=\"+Inf\"} 1"]
        );
        assert_eq!(
            lines(&text, "b_seconds_count{x=\"1\"}"),
            ["b_seconds_count{x=\"1\"} 1"]
        );
        // Every series of a family follows its TYPE line, before the next family starts.
        let families: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| &l[..1])
            .collect();
        let mut grouped = families.clone();
        grouped.dedup();
        assert_eq!(grouped, ["a", "b", "c"], "{text}");
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
