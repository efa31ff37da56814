//! What `pipelined send` prints: a table of responses and a timeline, or one JSON document.
//!
//! The timeline places each request's server-side work on the client's clock. The ordered
//! engine's `Server-Timing: handler;dur=H, queue;dur=Q` says the handler ran H ms and its
//! finished response then waited Q ms for earlier ones; the response was written as that wait
//! ended, so the handler finished at about `arrival - Q` and started at `arrival - Q - H`. The
//! network's share is folded into nothing — on loopback it is a fraction of a millisecond.
//!
//! JSON is written by hand: the document is small and flat, and the escaping below is the whole
//! of what RFC 8259 asks of strings, so a serializer crate is not worth the dependency.

use std::fmt::Write;

use super::client::Exchange;
use super::decode::Response;
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
    let (mut handler, mut queue) = (None, None);
    for value in response.header_values("server-timing") {
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
pub fn text(target: &Target, sent: &[Sent], exchange: &Exchange, bytes: usize) -> String {
    let mut out = String::new();
    let n = sent.len();
    let plural = if n == 1 { "" } else { "s" };
    let tls = match target.scheme {
        Scheme::Http => "",
        Scheme::Https => "TLS ",
    };
    let _ = writeln!(
        out,
        "{n} request{plural} to {} in one write ({bytes} bytes) on one {tls}connection\n",
        target.authority
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
            r.status,
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

/// One JSON document: the responses (index, status, path, arrival_ms, handler_ms, queue_ms,
/// headers, body) and the error that cut the exchange short, if any. Header names are
/// lowercase; repeated fields are joined with ", " (RFC 9110 §5.3). Bodies that are not UTF-8
/// are shown with U+FFFD in place of invalid bytes; `body_bytes` is the exact length.
pub fn json(target: &Target, sent: &[Sent], exchange: &Exchange) -> String {
    let mut out = String::from("{\n  \"url\": ");
    string(
        &mut out,
        &format!("{}://{}", target.scheme.as_str(), target.authority),
    );
    let with_timing = exchange.responses.iter().any(|r| timing(r).is_some());
    let _ = write!(
        out,
        ",\n  \"requests\": {},\n  \"server_timing\": {with_timing},\n  \"responses\": [",
        sent.len()
    );
    for (i, r) in exchange.responses.iter().enumerate() {
        out.push_str(if i == 0 { "\n    {" } else { ",\n    {" });
        let _ = write!(
            out,
            "\"index\": {}, \"status\": {}, \"reason\": ",
            i + 1,
            r.status
        );
        string(&mut out, &r.reason);
        out.push_str(", \"path\": ");
        string(&mut out, &sent[i].path);
        let t = timing(r);
        let _ = write!(
            out,
            ", \"arrival_ms\": {:.3}, \"handler_ms\": {}, \"queue_ms\": {}, \"headers\": {{",
            ms(r.arrival),
            number(t.map(|t| t.handler)),
            number(t.map(|t| t.queue))
        );
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &r.headers {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        for (j, name) in names.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            string(&mut out, name);
            out.push_str(": ");
            string(
                &mut out,
                &r.header_values(name).collect::<Vec<_>>().join(", "),
            );
        }
        let _ = write!(out, "}}, \"body_bytes\": {}, \"body\": ", r.body.len());
        string(&mut out, &String::from_utf8_lossy(&r.body));
        out.push('}');
    }
    out.push_str(if exchange.responses.is_empty() {
        "],\n"
    } else {
        "\n  ],\n"
    });
    out.push_str("  \"error\": ");
    match &exchange.error {
        Some(e) => string(&mut out, e),
        None => out.push_str("null"),
    }
    out.push_str("\n}\n");
    out
}

fn number(n: Option<f64>) -> String {
    n.map_or_else(|| "null".to_owned(), |n| format!("{n:.3}"))
}

/// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_rfc_8259_requires() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
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
