//! `pipelined load`'s command line: oha's switches, plus `--pipeline N`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::send::TlsArgs;

#[derive(Args)]
pub struct LoadArgs {
    /// Target URL: http://HOST[:PORT]/PATH or https://…
    pub url: String,
    /// Requests to send in all (ignored with -z).
    #[arg(short = 'n', default_value_t = 200, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,
    // At most 100,000: each is a socket, and a file descriptor, for the whole run.
    /// Connections, each kept open for the whole run (a closed one is reopened).
    #[arg(short = 'c', default_value_t = 50, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// Run for this long instead of sending -n requests: 10s, 2m, 500ms, 1h (a bare number is
    /// seconds). Requests still in flight at the end are counted as aborted, not as errors.
    #[arg(short = 'z', value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second in all, on a schedule fixed in advance: each request's latency
    /// counts from its scheduled time, so a stalled server is not hidden by the client waiting
    /// (no coordinated omission). Default: as fast as the server answers.
    #[arg(short = 'q', value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,
    // At most 4,096: each connection holds this many requests' bytes to write.
    /// Requests each connection keeps outstanding: HTTP/1.1 pipelining (1: one at a time, as
    /// oha does); with --http2, concurrent streams per connection.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub pipeline: u32,
    /// Request method.
    #[arg(short = 'm', long = "method", default_value = "GET")]
    pub method: String,
    /// Header for every request, 'Name: value' (repeatable). Not Content-Length or
    /// Transfer-Encoding: the client frames the body itself.
    #[arg(short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body, as given.
    #[arg(short = 'd', value_name = "BODY", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Request body, read from a file.
    #[arg(short = 'D', value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Give up on a request this long after it was written: 5s, 500ms… It counts as a
    /// timeout; HTTP/1.1 cannot take a request back, so its connection is closed (the requests
    /// in flight behind it count as not answered) and a new one opened. Default: no limit.
    #[arg(short = 't', long = "timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Speak HTTP/2 (hyper's client; prior knowledge on http://, ALPN h2 on https://), for
    /// comparison: --pipeline is then the concurrent streams per connection.
    #[arg(long)]
    pub http2: bool,
    /// Print one JSON document instead of the text summary (implies --no-tui).
    #[arg(long)]
    pub json: bool,
    /// No live view: only the summary at the end (for scripts and CI). Without a terminal on
    /// stderr there is none anyway.
    #[arg(long)]
    pub no_tui: bool,
    // At most 1,024: past the cores there are, threads only take turns.
    /// Load-generating threads, the connections split among them (default: one per core this
    /// process may run on; `taskset -c 0` makes it one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `10s`, `250ms`, `2m`, `1h`, `1.5s` or a bare number of seconds; more than zero, at most a
/// day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` (use ms, s, m or h, e.g. 10s)"
            ))
        }
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|secs| *secs > 0.0 && *secs <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a duration from 1ms to 24h, like 10s or 500ms"))
}

/// A positive, finite number of requests per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|q| q.is_finite() && *q > 0.0 && *q <= 1e9)
        .ok_or_else(|| format!("`{s}` is not a rate in requests per second, like 1000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_oha_units_and_bare_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "0s", "-1s", "10x", "s", "2d", "100000s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rates_are_positive_and_finite() {
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-3", "inf", "NaN", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
