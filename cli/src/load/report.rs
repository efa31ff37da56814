//! The summary `pipelined load` prints at the end: text in oha's layout, or one JSON document
//! (`--json`, written by serde_json; its fields are listed in the README).

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::run::Finished;
use super::stats::Failure;

/// Rows of the text latency histogram, and the width of its longest bar.
const ROWS: u64 = 11;
const BAR: u64 = 40;

/// What the run was asked to do, for the summary's header.
#[derive(Serialize)]
pub struct Settings {
    pub url: String,
    pub method: String,
    /// "1.1" or "2".
    pub http_version: &'static str,
    pub connections: usize,
    pub pipeline: usize,
    pub threads: usize,
    /// `-q`, requests per second; `null` when as fast as possible.
    pub rate: Option<f64>,
}

/// The JSON document.
#[derive(Serialize)]
struct Document<'a> {
    settings: &'a Settings,
    /// Stopped early by Ctrl-C.
    interrupted: bool,
    elapsed_secs: f64,
    requests: Requests,
    /// Answered / (answered + errors): the share of finished requests that got a response,
    /// whatever its status (requests aborted at the end finished neither way).
    success_rate: f64,
    /// Answered requests per second of the run.
    req_per_sec: f64,
    body_bytes: u64,
    body_bytes_per_sec: f64,
    /// From each request's start to its response's last byte; `null` when none was answered.
    latency_ms: Option<Percentiles>,
    /// Responses per status code (as strings: JSON object keys).
    status_codes: BTreeMap<String, u64>,
    /// Failed requests by kind; every kind is present, most are 0.
    errors: BTreeMap<Failure, u64>,
    /// The server's `Server-Timing: queue;dur=…` (the wait of a finished answer behind
    /// earlier ones); `null` when no response carried it.
    head_of_line_wait_ms: Option<Percentiles>,
}

#[derive(Serialize)]
struct Requests {
    /// Begun: answered + errors + aborted.
    total: u64,
    answered: u64,
    errors: u64,
    /// Still in flight when the run ended (the -z deadline or Ctrl-C).
    aborted: u64,
}

#[derive(Serialize)]
struct Percentiles {
    count: u64,
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    #[serde(rename = "p99.9")]
    p99_9: f64,
    max: f64,
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }

    fn rows(&self) -> [(&'static str, f64); 7] {
        [
            ("min", self.min),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p99_9),
            ("max", self.max),
            ("mean", self.mean),
        ]
    }
}

fn document<'a>(settings: &'a Settings, run: &Finished) -> Document<'a> {
    let stats = &run.stats;
    let (answered, errors) = (stats.answers(), stats.errors());
    let secs = run.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    Document {
        settings,
        interrupted: run.interrupted,
        elapsed_secs: run.elapsed.as_secs_f64(),
        requests: Requests {
            total: stats.issued,
            answered,
            errors,
            aborted: stats.aborted,
        },
        success_rate: if answered + errors == 0 {
            0.0
        } else {
            answered as f64 / (answered + errors) as f64
        },
        req_per_sec: answered as f64 / secs,
        body_bytes: stats.body_bytes,
        body_bytes_per_sec: stats.body_bytes as f64 / secs,
        latency_ms: Percentiles::of(&stats.latency),
        status_codes: stats
            .status
            .iter()
            .map(|(code, n)| (code.to_string(), *n))
            .collect(),
        errors: Failure::ALL
            .iter()
            .map(|f| (*f, stats.failures.get(f).copied().unwrap_or(0)))
            .collect(),
        head_of_line_wait_ms: Percentiles::of(&stats.hol_wait),
    }
}

/// The summary as one JSON document.
pub fn json(settings: &Settings, run: &Finished) -> String {
    let mut out =
        serde_json::to_string_pretty(&document(settings, run)).expect("plain data serializes");
    out.push('\n');
    out
}

/// The summary as text.
pub fn text(settings: &Settings, run: &Finished) -> String {
    let d = document(settings, run);
    let mut out = String::new();
    let pipeline = match (settings.http_version, settings.pipeline) {
        ("2", n) => format!("{n} concurrent streams per connection"),
        (_, 1) => "one request at a time per connection".to_owned(),
        (_, n) => format!("{n} pipelined requests per connection"),
    };
    let _ = writeln!(
        out,
        "{} {} over HTTP/{}: {} connections, {pipeline}{}",
        settings.method,
        settings.url,
        settings.http_version,
        settings.connections,
        settings.rate.map_or(String::new(), |q| format!(
            ", {q} req/s on a fixed schedule"
        )),
    );
    if d.interrupted {
        out.push_str("Stopped early by Ctrl-C.\n");
    }
    out.push_str("\nSummary:\n");
    let r = &d.requests;
    let _ = writeln!(
        out,
        "  Requests:     {} in all: {} answered, {} errors, {} aborted at the end",
        r.total, r.answered, r.errors, r.aborted
    );
    let _ = writeln!(out, "  Success rate: {:.2} %", d.success_rate * 100.0);
    let _ = writeln!(out, "  Total:        {:.4} s", d.elapsed_secs);
    let _ = writeln!(out, "  Requests/sec: {:.2}", d.req_per_sec);
    let _ = writeln!(
        out,
        "  Body bytes:   {} ({}/s)",
        bytes(d.body_bytes as f64),
        bytes(d.body_bytes_per_sec)
    );
    if let Some(latency) = &d.latency_ms {
        let from = if settings.rate.is_some() {
            "from each request's scheduled time"
        } else {
            if settings.http_version == "2" {
                "from when each request was handed to hyper's HTTP/2 client"
            } else {
                "from when each request's first byte was written"
            }
        };
        let _ = writeln!(out, "\nLatency ({from} to its response's last byte):");
        for (name, value) in latency.rows() {
            let _ = writeln!(out, "  {name:<6} {value:.4} ms");
        }
        out.push_str("\nLatency histogram:\n");
        out.push_str(&histogram(&run.stats.latency));
    }
    if !d.status_codes.is_empty() {
        out.push_str("\nStatus codes:\n");
        for (code, n) in &d.status_codes {
            let _ = writeln!(out, "  [{code}] {n} responses");
        }
    }
    if r.errors > 0 {
        out.push_str("\nErrors:\n");
        for (failure, n) in d.errors.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  [{n}] {}", failure.describe());
        }
    }
    if let Some(wait) = &d.head_of_line_wait_ms {
        let _ = writeln!(
            out,
            "\nHead-of-line wait (the server's Server-Timing queue;dur, {} responses):",
            wait.count
        );
        for (name, value) in wait.rows() {
            let _ = writeln!(out, "  {name:<6} {value:.4} ms");
        }
    }
    out
}

/// `ROWS` equal slices from the fastest response to the slowest, each labelled with its upper
/// end, with its count and a bar scaled to the fullest.
fn histogram(h: &Histogram<u64>) -> String {
    let (low, high) = (h.min(), h.max());
    let step = (high - low).div_ceil(ROWS).max(1);
    // The slice `high` falls in; a value's recorded bucket may end a little past `high`.
    let last = ((high - low) / step).min(ROWS - 1);
    let mut counts = [0u64; ROWS as usize];
    for value in h.iter_recorded() {
        let row = (value.value_iterated_to().saturating_sub(low) / step).min(last);
        counts[row as usize] += value.count_at_value();
    }
    let fullest = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut out = String::new();
    for (row, n) in (0..=last).zip(counts) {
        let to = if row == last {
            high
        } else {
            low + (row + 1) * step
        };
        let bar = "■".repeat((n * BAR / fullest) as usize);
        let _ = writeln!(out, "  {:>10.4} ms [{n}] |{bar}", ms(to));
    }
    out
}

/// A byte count with a binary unit.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_rows_cover_every_response() {
        let mut h = super::super::stats::histogram();
        for micros in [100, 150, 200, 900, 1000, 5000] {
            h.record(micros * 1000).unwrap();
        }
        let text = histogram(&h);
        let total: u64 = text
            .lines()
            .map(|l| {
                let open = l.find('[').unwrap();
                let close = l.find(']').unwrap();
                l[open + 1..close].parse::<u64>().unwrap()
            })
            .sum();
        assert_eq!(total, 6, "{text}");
        assert!(text.lines().count() <= ROWS as usize, "{text}");
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.00 MiB");
    }

    #[test]
    fn the_document_reports_the_counts_as_kept() {
        let mut run = Finished {
            stats: super::super::stats::Stats::default(),
            elapsed: Duration::from_secs(2),
            interrupted: false,
        };
        run.stats.issued = 10;
        run.stats.aborted = 8;
        run.stats.answered(Duration::from_millis(1), 200, 3);
        run.stats.failed(Failure::Reset);
        let settings = Settings {
            url: "http://x/".into(),
            method: "GET".into(),
            http_version: "1.1",
            connections: 1,
            pipeline: 1,
            threads: 1,
            rate: None,
        };
        let d = document(&settings, &run);
        assert_eq!(
            (d.requests.answered, d.requests.errors, d.requests.aborted),
            (1, 1, 8)
        );
        assert_eq!(d.req_per_sec, 0.5);
    }
}
