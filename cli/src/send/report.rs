//! What `pipelined send` prints: a table of responses and a timeline, or one JSON document.
//!
//! The timeline places each request's server-side work on the client's clock. The ordered
//! engine's `Server-Timing: handler;dur=H, queue;dur=Q` says the handler ran H ms and its
//! finished response then waited Q ms for earlier ones; the response was written as that wait
//! ended, so the handler finished at about `arrival - Q` and started at `arrival - Q - H`. The
//! network's share is folded into nothing — on loopback it is a fraction of a millisecond.
//!
//! The JSON document is written by serde_json from the structs below, so every string a server
//! sends (headers, bodies, reasons) is escaped by the crate that owns the format.

use std::borrow::Cow;
use std::fmt::Write;

use http::HeaderValue;
use serde::{Serialize, Serializer};

use super::client::{Exchange, Response};
use super::url::{Scheme, Target};
use super::Sent;

/// Columns the timeline's bars span.
const WIDTH: usize = 60;
/// Characters of each body shown in the table.
const BODY_CHARS: usize = 60;

/// Server-side time of one response, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub handler: f64,
    pub queue: f64,
}

/// `handler` and `queue` durations from the response's `Server-Timing` fields, if it has both.
pub fn timing(response: &Response) -> Option<Timing> {
    let values = response.headers.get_all("server-timing");
    timing_of(values.iter().map(HeaderValue::as_bytes))
}

/// `handler` and `queue` durations from `Server-Timing` field values, if they have both.
pub fn timing_of<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Timing> {
    let (mut handler, mut queue) = (None, None);
    for value in values {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for metric in value.split(',') {
            let mut params = metric.split(';').map(str::trim);
            let name = params.next().unwrap_or_default();
            let dur = params
                .filter_map(|p| p.strip_prefix("dur="))
                .find_map(|d| d.parse::<f64>().ok().filter(|d| d.is_finite() && *d >= 0.0));
            match name {
                "handler" => handler = handler.or(dur),
                "queue" => queue = queue.or(dur),
                _ => {}
            }
        }
    }
    Some(Timing {
        handler: handler?,
        queue: queue?,
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The table of responses, then the timeline.
pub fn text(target: &Target, sent: &[Sent], exchange: &Exchange) -> String {
    let mut out = String::new();
    let n = sent.len();
    let plural = if n == 1 { "" } else { "s" };
    let tls = match target.scheme {
        Scheme::Http => "",
        Scheme::Https => "TLS ",
    };
    let _ = writeln!(
        out,
        "{n} request{plural} to {} in one write ({} bytes) on one {tls}connection\n",
        target.authority, exchange.written
    );
    let path_width = sent
        .iter()
        .map(|s| s.path.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    let index_width = n.to_string().len();
    let _ = writeln!(
        out,
        "{:>index_width$}  status  {:>9}  {:path_width$}  body",
        "#", "arrived", "path"
    );
    for (i, r) in exchange.responses.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>index_width$}  {:<6}  {:>6.1} ms  {:path_width$}  {}",
            i + 1,
            r.status.as_u16(),
            ms(r.arrival),
            sent[i].path,
            preview(&r.body)
        );
    }
    if exchange.responses.is_empty() {
        return out;
    }
    out.push('\n');
    timeline(&mut out, sent, &exchange.responses, index_width, path_width);
    out
}

/// The body's start on one line, escaped, with its size when cut short.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let shown: String = text.chars().take(BODY_CHARS).collect();
    if shown.len() < text.len() {
        format!("{shown:?}… ({} bytes)", body.len())
    } else {
        format!("{shown:?}")
    }
}

fn timeline(
    out: &mut String,
    sent: &[Sent],
    responses: &[Response],
    index_width: usize,
    path_width: usize,
) {
    let timings: Vec<Option<Timing>> = responses.iter().map(timing).collect();
    let end = responses.iter().map(|r| ms(r.arrival)).fold(0.0, f64::max);
    let scale = WIDTH as f64 / end.max(0.001);
    // Some responses with timing and some without: say which rows lack it.
    let partial = timings.iter().any(Option::is_some) && timings.iter().any(Option::is_none);
    if timings.iter().all(Option::is_none) {
        out.push_str(
            "timeline: the responses carry no Server-Timing header (e.g. --engine hyper, or \
             another server),\nso only arrival times are shown (· waiting, │ arrived):\n",
        );
    } else {
        out.push_str(
            "timeline on the server (█ handler running, ░ finished, waiting for earlier \
             responses, │ arrived):\n",
        );
    }
    let margin = index_width + path_width + 4;
    let _ = writeln!(out, "{:margin$}0 ms{:>w$.0} ms", "", end, w = WIDTH - 3);
    for (i, (r, t)) in responses.iter().zip(&timings).enumerate() {
        let arrival = ms(r.arrival);
        let (bar, note) = match t {
            Some(t) => (
                bar(arrival, Some(*t), scale),
                format!("handler {}, waited {}", short(t.handler), short(t.queue)),
            ),
            None if partial => (bar(arrival, None, scale), "no Server-Timing".to_owned()),
            None => (bar(arrival, None, scale), String::new()),
        };
        let row = format!(
            "{:>index_width$}  {:path_width$}  {bar:<w$} {arrival:>6.1} ms  {note}",
            i + 1,
            sent[i].path,
            w = WIDTH + 1
        );
        out.push_str(row.trim_end());
        out.push('\n');
    }
}

/// Milliseconds to one decimal, or two below 1 ms (an instant handler is not "0.0 ms").
fn short(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// One row: blank until the handler started, `█` while it ran, `░` while its finished answer
/// waited, `│` where it arrived. Without timing, dots lead up to the arrival. A handler
/// shorter than a column still gets one, so every request shows where it ran.
fn bar(arrival: f64, timing: Option<Timing>, scale: f64) -> String {
    let col = |x: f64| ((x.max(0.0) * scale).round() as usize).min(WIDTH);
    let arrived = col(arrival);
    let Some(t) = timing else {
        return format!("{}│", "·".repeat(arrived));
    };
    let finished = (arrival - t.queue).max(0.0);
    let started = (finished - t.handler).max(0.0);
    let start = ((started * scale).floor() as usize).min(WIDTH - 1);
    let done = col(finished).max(start + 1);
    let arrived = arrived.max(done);
    format!(
        "{}{}{}│",
        " ".repeat(start),
        "█".repeat(done - start),
        "░".repeat(arrived - done)
    )
}

/// The `--json` document, fields in the order written.
#[derive(Serialize)]
struct Document<'a> {
    url: String,
    requests: usize,
    /// Whether any response carried `Server-Timing` (else `handler_ms`/`queue_ms` are null).
    server_timing: bool,
    responses: Vec<JsonResponse<'a>>,
    /// What cut the exchange short, if anything.
    error: Option<&'a str>,
}

/// One response of the `--json` document.
#[derive(Serialize)]
struct JsonResponse<'a> {
    index: usize,
    status: u16,
    reason: &'a str,
    path: &'a str,
    arrival_ms: f64,
    handler_ms: Option<f64>,
    queue_ms: Option<f64>,
    headers: Headers<'a>,
    body_bytes: usize,
    body: Cow<'a, str>,
}

/// A response's header fields as one JSON object: names in the order they first arrived,
/// repeated fields joined with ", " (RFC 9110 §5.3), so the object has each name once.
struct Headers<'a>(&'a Response);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.headers.keys().map(|name| {
            let joined = self
                .0
                .header_values(name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (name.as_str(), joined)
        }))
    }
}

/// One JSON document: the responses (index, status, path, arrival_ms, handler_ms, queue_ms,
/// headers, body) and the error that cut the exchange short, if any. Header names are
/// lowercase. Bodies that are not UTF-8 are shown with U+FFFD in place of invalid bytes;
/// `body_bytes` is the exact length. Times are in milliseconds, to the microsecond.
pub fn json(target: &Target, sent: &[Sent], exchange: &Exchange) -> String {
    let responses = exchange
        .responses
        .iter()
        .zip(sent)
        .enumerate()
        .map(|(i, (r, sent))| {
            let t = timing(r);
            JsonResponse {
                index: i + 1,
                status: r.status.as_u16(),
                reason: r.reason(),
                path: &sent.path,
                arrival_ms: micros(ms(r.arrival)),
                handler_ms: t.map(|t| micros(t.handler)),
                queue_ms: t.map(|t| micros(t.queue)),
                headers: Headers(r),
                body_bytes: r.body.len(),
                body: String::from_utf8_lossy(&r.body),
            }
        })
        .collect();
    let document = Document {
        url: format!("{}://{}", target.scheme.as_str(), target.authority),
        requests: sent.len(),
        server_timing: exchange.responses.iter().any(|r| timing(r).is_some()),
        responses,
        error: exchange.error.as_deref(),
    };
    let mut out = serde_json::to_string_pretty(&document)
        .expect("a document of strings, numbers and maps always serializes");
    out.push('\n');
    out
}

/// Milliseconds rounded to three decimals: finer digits would be noise, not measurement.
fn micros(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;

    /// Whatever bytes a server puts in a header or a body, the document parses and gives them
    /// back (bodies and values that are not UTF-8 with U+FFFD); so does an error quoting them.
    #[test]
    fn json_carries_any_text_the_server_sent() {
        let awkward = "a\"b\\c\nd\u{1}\u{7f}é\u{2028}</script>";
        // What a field value may hold: no control characters, any other byte.
        let field = "a\"b\\c\td é\u{2028}</script>";
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_str(field).unwrap());
        headers.append("x-b", HeaderValue::from_bytes(b"\xff").unwrap());
        headers.append("x-a", HeaderValue::from_static("second"));
        let response = Response {
            status: StatusCode::OK,
            reason: awkward.to_owned(),
            headers,
            body: Bytes::from([awkward.as_bytes(), b"\xfe"].concat()),
            arrival: std::time::Duration::from_micros(1500),
        };
        let target = Target::parse("http://[::1]:8080").unwrap();
        let exchange = Exchange {
            responses: vec![response],
            raw: Vec::new(),
            written: 0,
            error: Some(awkward.to_owned()),
        };
        let sent = [Sent {
            path: "/\"".to_owned(),
        }];

        let doc: serde_json::Value =
            serde_json::from_str(&json(&target, &sent, &exchange)).unwrap();

        assert_eq!(doc["url"], "http://[::1]:8080");
        assert_eq!(doc["error"], awkward);
        let r = &doc["responses"][0];
        assert_eq!(r["reason"], awkward);
        assert_eq!(r["path"], "/\"");
        assert_eq!(r["arrival_ms"], 1.5);
        assert_eq!(r["handler_ms"], serde_json::Value::Null);
        assert_eq!(r["headers"]["x-a"], format!("{field}, second"));
        assert_eq!(r["headers"]["x-b"], "\u{fffd}");
        let names: Vec<&String> = r["headers"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["x-a", "x-b"], "each name once");
        assert_eq!(r["body"], format!("{awkward}\u{fffd}"));
        assert_eq!(r["body_bytes"], awkward.len() + 1);
    }

    #[test]
    fn bars_place_handler_wait_and_arrival() {
        // 60 columns for 300 ms: 5 ms a column.
        let scale = WIDTH as f64 / 300.0;
        let slow = bar(
            300.0,
            Some(Timing {
                handler: 300.0,
                queue: 0.0,
            }),
            scale,
        );
        assert_eq!(slow, format!("{}│", "█".repeat(60)));
        let fast = bar(
            300.0,
            Some(Timing {
                handler: 100.0,
                queue: 200.0,
            }),
            scale,
        );
        assert_eq!(fast, format!("{}{}│", "█".repeat(20), "░".repeat(40)));
        let instant = bar(
            300.0,
            Some(Timing {
                handler: 0.01,
                queue: 300.0,
            }),
            scale,
        );
        assert_eq!(instant, format!("█{}│", "░".repeat(59)));
        assert_eq!(bar(150.0, None, scale), format!("{}│", "·".repeat(30)));
    }
}
