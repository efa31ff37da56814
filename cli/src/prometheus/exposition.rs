//! The Prometheus text exposition format 0.0.4, rendered from the registry.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering;

use metrics::Label;

use super::model::{Buckets, Family, Kind, Series};

/// HELP text of a metric nobody described: every family needs one, and saying so points at
/// the missing `describe_*` call.
const UNDESCRIBED: &str = "(not described)";

/// Every family with at least one series: HELP, TYPE, then its samples.
pub(super) fn render(families: &BTreeMap<String, Family>) -> String {
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
    use metrics::Unit;

    use crate::prometheus::Registry;

    /// Lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
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
}
