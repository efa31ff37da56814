//! Response encoding: status line, headers, and body framing (RFC 9112 §6, §7).

use std::io::Write;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

use super::date;
use crate::timing::{Elapsed, Measured};

/// The `Server` header sent unless the service sets its own.
const SERVER: &[u8] = b"server: pipelined\r\n";

/// What the request asked of its response, as far as encoding goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestInfo {
    pub(crate) version: Version,
    /// The request's method is HEAD: the response describes a body it does not carry.
    pub(crate) head_method: bool,
}

/// How the body follows the head on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// Nothing is written after the head (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding (HTTP/1.1, length unknown).
    Chunked,
    /// Raw bytes until the connection closes (HTTP/1.0, length unknown).
    UntilClose,
}

/// How a response goes on the wire, decided from its head alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    framing: BodyFraming,
    /// The length the service declared in `Content-Length`, if any.
    declared: Option<u64>,
    /// The service set its own `Date` / `Server`; ours are left out.
    own_date: bool,
    own_server: bool,
    /// The connection ends after this response.
    pub(crate) close: bool,
}

impl Plan {
    /// The same plan, closing the connection if `close` says so too.
    pub(crate) fn closing(self, close: bool) -> Plan {
        Plan {
            close: self.close || close,
            ..self
        }
    }
}

/// One header of a response: what the encoder takes, from a `HeaderMap` (a service's
/// response) or a list (an inline [`Answer`](crate::Answer)).
pub(crate) type Field<'h> = (&'h HeaderName, &'h HeaderValue);

/// What the encoder needs to know of a response's headers, found in one pass over them: a
/// response carries few headers, and one walk costs less than a hash lookup per question.
#[derive(Default)]
struct Fields {
    close: bool,
    declared: Option<u64>,
    date: bool,
    server: bool,
}

impl Fields {
    fn scan<'h>(headers: impl IntoIterator<Item = Field<'h>>) -> Self {
        let mut fields = Fields::default();
        for (name, value) in headers {
            match *name {
                header::CONNECTION => {
                    fields.close |= value
                        .as_bytes()
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
                }
                header::CONTENT_LENGTH if fields.declared.is_none() => {
                    fields.declared = std::str::from_utf8(value.as_bytes())
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok());
                }
                header::DATE => fields.date = true,
                header::SERVER => fields.server = true,
                _ => {}
            }
        }
        fields
    }
}

/// Decides framing and whether the connection must close after this response.
///
/// `body_len` is the body's exact length when known; `close` says the request already ends the
/// connection. It is raised when the service asks to close (`Connection: close`), or when an
/// HTTP/1.0 body of unknown length can only be delimited by closing. The connection asks this
/// as soon as a handler finishes, so that nothing after a closing response is processed.
pub(crate) fn plan<'h>(
    status: StatusCode,
    headers: impl IntoIterator<Item = Field<'h>>,
    body_len: Option<u64>,
    req: RequestInfo,
    mut close: bool,
) -> Plan {
    let fields = Fields::scan(headers);
    close |= fields.close;
    let declared = fields.declared;
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // A HEAD answer describes the body a GET would get: a handler that says its length
    // (with no body, as a HEAD handler does) is believed over the empty body.
    let length = if req.head_method {
        declared.or(body_len)
    } else {
        body_len.or(declared)
    };
    let framing = match length {
        _ if no_body => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
        None if req.version == Version::HTTP_11 => BodyFraming::Chunked,
        None => BodyFraming::UntilClose,
    };
    if framing == BodyFraming::UntilClose && !req.head_method {
        close = true;
    }
    Plan {
        framing,
        declared,
        own_date: fields.date,
        own_server: fields.server,
        close,
    }
}

/// Writes the head of a response planned by [`plan`]; returns how the body follows.
pub(crate) fn response_head<'h>(
    dst: &mut Vec<u8>,
    status: StatusCode,
    headers: impl IntoIterator<Item = Field<'h>>,
    req: RequestInfo,
    plan: Plan,
    timing: Option<&Measured>,
) -> BodyFraming {
    let Plan {
        framing,
        declared,
        own_date,
        own_server,
        close,
    } = plan;
    status_line(dst, status);
    for (name, value) in headers {
        if matches!(
            *name,
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONNECTION
        ) {
            continue;
        }
        field(dst, name, value);
    }
    if !own_date {
        date::extend_line(dst);
    }
    if !own_server {
        dst.extend_from_slice(SERVER);
    }
    if let Some(&Measured { handler, queue }) = timing {
        server_timing(dst, handler, queue);
    }
    match framing {
        BodyFraming::Length(n) => content_length(dst, n),
        BodyFraming::Chunked if req.head_method => {}
        BodyFraming::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // A 304 may describe the representation's length, if the service said it.
        BodyFraming::None if status == StatusCode::NOT_MODIFIED => {
            if let Some(n) = declared {
                content_length(dst, n);
            }
        }
        BodyFraming::None | BodyFraming::UntilClose => {}
    }
    if close {
        dst.extend_from_slice(b"connection: close\r\n");
    } else if req.version == Version::HTTP_10 {
        dst.extend_from_slice(b"connection: keep-alive\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    if req.head_method {
        BodyFraming::None
    } else {
        framing
    }
}

/// The status line; the commonest one is a single copy.
fn status_line(dst: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    dst.extend_from_slice(b"\r\n");
}

fn field(dst: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    dst.extend_from_slice(name.as_str().as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// The `Server-Timing` field line ([`server_timing_value`]). A line of its own, so a
/// service's own `Server-Timing` is kept beside it. Inlined: a call's register saves and
/// restores cost a fifth of the line (callgrind).
#[inline(always)]
fn server_timing(dst: &mut Vec<u8>, handler: Elapsed, queue: Elapsed) {
    if is_short(Measured { handler, queue }) {
        // Both under 10 ms (nearly every answer): the line goes into the buffer in one copy
        // and its digits are patched there; a zero (an inline answer's queue) is left as is.
        let start = dst.len();
        dst.extend_from_slice(SHORT_LINE);
        let line: &mut [u8; SHORT_LINE.len()] = (&mut dst[start..])
            .try_into()
            .expect("the line just written");
        patch_short_handler(line, handler);
        if queue != Elapsed::ZERO {
            patch_short_queue(line, queue);
        }
        return;
    }
    dst.extend_from_slice(b"server-timing: ");
    server_timing_value(dst, handler, queue);
    dst.extend_from_slice(b"\r\n");
}

/// Durations [`server_timing`] writes into [`SHORT_LINE`]: one digit before the point.
const SHORT: Elapsed = Elapsed::from_nanos(10_000_000);

/// Whether `timing` is written as [`SHORT_LINE`] (then [`patch_short_handler`] and
/// [`patch_short_queue`] can rewrite it).
pub(crate) fn is_short(timing: Measured) -> bool {
    timing.handler < SHORT && timing.queue < SHORT
}

/// The handler time in a line [`server_timing`] wrote for a short timing, rewritten.
#[inline]
pub(crate) fn patch_short_handler(line: &mut [u8; SHORT_LINE.len()], handler: Elapsed) {
    short_millis(&mut line[27..32], handler);
}

/// The queue time in a line [`server_timing`] wrote for a short timing, rewritten.
#[inline]
pub(crate) fn patch_short_queue(line: &mut [u8; SHORT_LINE.len()], queue: Elapsed) {
    short_millis(&mut line[44..49], queue);
}

/// The `Server-Timing` line of two durations under [`SHORT`], digits to be filled in.
pub(crate) const SHORT_LINE: &[u8; 51] = b"server-timing: handler;dur=0.000, queue;dur=0.000\r\n";

/// Writes a duration under [`SHORT`] over `0.000` (`dst`: 5 bytes), as [`millis`] would: the
/// whole milliseconds, then the three decimals from [`DECIMALS`] (one division, not four).
#[inline]
fn short_millis(dst: &mut [u8], d: Elapsed) {
    let micros = d.as_nanos() / 1000;
    dst[0] = b'0' + (micros / 1000) as u8;
    dst[2..5].copy_from_slice(&DECIMALS[(micros % 1000) as usize]);
}

/// `000` to `999`: the decimals of [`short_millis`].
static DECIMALS: [[u8; 3]; 1000] = {
    let mut table = [[0; 3]; 1000];
    let mut n = 0;
    while n < 1000 {
        table[n] = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        n += 1;
    }
    table
};

/// `handler;dur=…, queue;dur=…` (milliseconds): how long the handler ran, and how long its
/// finished response waited for earlier ones (head-of-line wait). The value of HTTP/1.1's
/// `Server-Timing` line and of HTTP/2's header alike, so both protocols report the same way.
pub(crate) fn server_timing_value(dst: &mut Vec<u8>, handler: Elapsed, queue: Elapsed) {
    dst.extend_from_slice(b"handler;dur=");
    millis(dst, handler);
    dst.extend_from_slice(b", queue;dur=");
    millis(dst, queue);
}

/// Writes a duration as milliseconds with three decimals (microsecond resolution), with integer
/// formatting only: float formatting would cost more than the rest of the head. Under 10 ms
/// (nearly every handler and queue time) the whole part is one digit, written without the
/// formatter.
fn millis(dst: &mut Vec<u8>, d: Elapsed) {
    let micros = d.as_nanos() / 1000;
    let whole = micros / 1000;
    if whole < 10 {
        dst.push(b'0' + whole as u8);
    } else {
        dst.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    }
    dst.push(b'.');
    dst.extend_from_slice(&DECIMALS[(micros % 1000) as usize]);
}

fn content_length(dst: &mut Vec<u8>, n: u64) {
    dst.extend_from_slice(b"content-length: ");
    dst.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// Writes the size line that starts a chunk of `len` bytes.
pub(crate) fn chunk_start(dst: &mut Vec<u8>, len: usize) {
    // Writing into a Vec cannot fail.
    let _ = write!(dst, "{len:x}\r\n");
}

/// Writes the CRLF that ends a chunk's data.
pub(crate) fn chunk_end(dst: &mut Vec<u8>) {
    dst.extend_from_slice(b"\r\n");
}

/// Writes the last chunk and the trailer section.
pub(crate) fn chunked_end(dst: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        field(dst, name, value);
    }
    dst.extend_from_slice(b"\r\n");
}

/// The `100 Continue` interim response.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` microseconds.
    fn us(n: u64) -> Elapsed {
        Elapsed::from_nanos(n * 1000)
    }

    #[test]
    fn durations_are_written_as_milliseconds_with_three_decimals() {
        let cases = [
            (0, "0.000"),
            (5, "0.005"),
            (9_999, "9.999"),
            (10_000, "10.000"),
            (1_234, "1.234"),
            (301_615, "301.615"),
            (2_000_000, "2000.000"),
            (61_000_999, "61000.999"),
        ];
        for (micros, text) in cases {
            let mut dst = Vec::new();
            millis(&mut dst, us(micros));
            assert_eq!(String::from_utf8(dst).unwrap(), text);
        }
    }

    #[test]
    fn the_server_timing_line_and_value_say_the_same() {
        let (handler, queue) = (us(1_234), Elapsed::ZERO);
        let mut value = Vec::new();
        server_timing_value(&mut value, handler, queue);
        assert_eq!(value, b"handler;dur=1.234, queue;dur=0.000");
        // The line of two durations under 10 ms is a shortcut: it must agree with the general
        // one for every digit and on each side of its bounds, for either duration.
        let micro = us(1);
        let just_under = Elapsed::from_nanos(9_999_999);
        let ten = us(10_000);
        let pairs = [
            (handler, queue),
            (Elapsed::ZERO, Elapsed::ZERO),
            (Elapsed::from_nanos(999), Elapsed::from_nanos(999)),
            (micro, Elapsed::ZERO),
            (Elapsed::ZERO, micro),
            (Elapsed::ZERO, handler),
            (us(9_876), us(5_432)),
            (just_under, just_under),
            (ten, Elapsed::ZERO),
            (Elapsed::ZERO, ten),
            (us(3_000_000), us(7)),
        ];
        // And every microsecond under 10 ms, on each side.
        let every = (0..10_000u64).map(us);
        let every = every.clone().zip(every.rev());
        for (handler, queue) in pairs.into_iter().chain(every) {
            let (mut line, mut value) = (Vec::new(), Vec::new());
            server_timing(&mut line, handler, queue);
            server_timing_value(&mut value, handler, queue);
            assert_eq!(line, [&b"server-timing: "[..], &value, b"\r\n"].concat());
        }
    }

    fn get11() -> RequestInfo {
        RequestInfo {
            version: Version::HTTP_11,
            head_method: false,
        }
    }

    /// The head `response_head` writes for `status` and `headers`, planned with `body_len`.
    fn written(
        status: StatusCode,
        headers: &HeaderMap,
        body_len: Option<u64>,
        req: RequestInfo,
    ) -> String {
        let plan = plan(status, headers, body_len, req, false);
        let mut dst = Vec::new();
        response_head(&mut dst, status, headers, req, plan, None);
        String::from_utf8(dst).unwrap()
    }

    #[test]
    fn statuses_without_a_body_get_no_framing() {
        let headers = HeaderMap::new();
        for status in [101, 103, 204, 304] {
            let status = StatusCode::from_u16(status).unwrap();
            let plan = plan(status, &headers, Some(5), get11(), false);
            assert_eq!(plan.framing, BodyFraming::None, "{status}");
        }
        let plan = plan(StatusCode::OK, &headers, Some(5), get11(), false);
        assert_eq!(plan.framing, BodyFraming::Length(5));
    }

    #[test]
    fn the_service_s_own_date_and_server_replace_ours() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::DATE,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        headers.insert(header::SERVER, "mine".parse().unwrap());
        let head = written(StatusCode::OK, &headers, Some(0), get11());
        assert_eq!(head.matches("date: ").count(), 1, "{head}");
        assert!(
            head.contains("date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
            "{head}"
        );
        assert_eq!(head.matches("server: ").count(), 1, "{head}");
        assert!(head.contains("server: mine\r\n"), "{head}");
        let ours = written(StatusCode::OK, &HeaderMap::new(), Some(0), get11());
        assert!(ours.contains("server: pipelined\r\n"), "{ours}");
        assert_eq!(ours.matches("date: ").count(), 1, "{ours}");
    }

    #[test]
    fn a_head_answer_describes_the_first_content_length_the_service_gave() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONTENT_LENGTH, "5".parse().unwrap());
        headers.append(header::CONTENT_LENGTH, "7".parse().unwrap());
        let head = RequestInfo {
            version: Version::HTTP_11,
            head_method: true,
        };
        let written = written(StatusCode::OK, &headers, Some(0), head);
        assert!(written.contains("content-length: 5\r\n"), "{written}");
        assert!(!written.contains("content-length: 7"), "{written}");
    }

    #[test]
    fn a_head_answer_of_unknown_length_announces_no_chunks() {
        let head = RequestInfo {
            version: Version::HTTP_11,
            head_method: true,
        };
        let written = written(StatusCode::OK, &HeaderMap::new(), None, head);
        assert!(!written.contains("transfer-encoding"), "{written}");
        assert!(!written.contains("content-length"), "{written}");
    }

    #[test]
    fn only_a_304_keeps_the_content_length_the_service_declared() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "5".parse().unwrap());
        let not_modified = written(StatusCode::NOT_MODIFIED, &headers, Some(0), get11());
        assert!(
            not_modified.contains("content-length: 5\r\n"),
            "{not_modified}"
        );
        for status in [StatusCode::NO_CONTENT, StatusCode::CONTINUE] {
            let written = written(status, &headers, Some(0), get11());
            assert!(!written.contains("content-length"), "{status}: {written}");
        }
    }
}
