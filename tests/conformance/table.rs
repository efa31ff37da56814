//! The conformance table: raw-byte requests, one group per RFC concern, with the status each
//! must get and whether the connection must close after it. `tests/conformance.rs` runs every
//! group (see its doc for the choices the rows follow); `tests/gauges.rs` runs the whole table
//! to check that the engine's gauges come back to zero after it.

use crate::runner::{row, Case, CLOSE, KEEP, MAX_BODY_BYTES, MAX_HEADERS, MAX_HEADER_BYTES};

/// `GET path` with `Host: t` and one extra raw field line (given without its CRLF).
fn get_field(path: &str, field: impl AsRef<[u8]>) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n").into_bytes();
    req.extend_from_slice(field.as_ref());
    req.extend_from_slice(b"\r\n\r\n");
    req
}

/// `GET /host` in `version` whose header section is exactly `fields` (each ending in CRLF).
fn get_host(version: &str, fields: &str) -> String {
    format!("GET /host {version}\r\n{fields}\r\n")
}

/// A `POST /sink` with the given extra header lines (each ending in CRLF) and raw body bytes.
fn post_sink(headers: &str, body: &str) -> String {
    format!("POST /sink HTTP/1.1\r\nHost: t\r\n{headers}\r\n{body}")
}

/// A chunked `POST /sink` whose body is `body` verbatim (chunk framing included).
fn chunked_sink(body: &str) -> String {
    post_sink("Transfer-Encoding: chunked\r\n", body)
}

/// A `POST /sink` of `hello`, chunked, under the given `Transfer-Encoding` field line.
fn te_hello(te: &str) -> String {
    post_sink(&format!("{te}\r\n"), "5\r\nhello\r\n0\r\n\r\n")
}

/// A `GET path` whose whole head is exactly `total` bytes, padded in one field.
fn head_of_len(path: &str, total: usize) -> String {
    let bare = format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-Pad: \r\n\r\n");
    let pad = "p".repeat(total - bare.len());
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n")
}

/// RFC 9112 §2.2 (message parsing), §3 (request line), §3.1 (method); RFC 9110 §9.1.
#[rustfmt::skip]
pub fn request_line() -> Vec<Case> {
    vec![
        // §3.1 / RFC 9110 §9.1: method = token, case-sensitive; an extension method is routed.
        row("extension method on a POST-only route", "PURGE /sink HTTP/1.1\r\nHost: t\r\n\r\n", 405, KEEP),
        // RFC 9110 §9.3.7: OPTIONS on a path describes it; the router answers with Allow.
        row("OPTIONS on a POST-only route", "OPTIONS /sink HTTP/1.1\r\nHost: t\r\n\r\n", 204, KEEP),
        row("extension method on an unrouted path", "PURGE /x HTTP/1.1\r\nHost: t\r\n\r\n", 404, KEEP),
        row("method made of every tchar symbol", "!#$%&'*+-.^_`|~ /x HTTP/1.1\r\nHost: t\r\n\r\n", 404, KEEP),
        row("lowercase get is another method", "get /x HTTP/1.1\r\nHost: t\r\n\r\n", 404, KEEP),
        // A method that is not a token: invalid request line, 400 (§3 SHOULD; the engine does).
        row("( in the method", "GE(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("@ in the method", "G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("non-ASCII byte in the method", b"G\xc9T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("request line starting with a space", " GET / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("request line of one token", "HELLO\r\nHost: t\r\n\r\n", 400, CLOSE),
        // §3: exactly one SP between the three parts; the MAY to split on any whitespace is
        // not taken.
        row("two spaces before the target", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("two spaces before the version", "GET /  HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("tab between method and target", "GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("tab between target and version", "GET /\tHTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("space after the version", "GET / HTTP/1.1 \r\nHost: t\r\n\r\n", 400, CLOSE),
        // §2.2: a bare CR MUST be treated as invalid (or replaced); a bare LF MAY end a line.
        row("bare CR ending the request line", "GET / HTTP/1.1\rHost: t\r\n\r\n", 400, CLOSE),
        row("bare LF ending the request line", "GET /lf HTTP/1.1\nHost: t\r\n\r\n", 200, KEEP).body("/lf"),
        // §2.2: a server SHOULD ignore at least one empty line before the request line; the
        // engine ignores any number, CRLF or LF.
        row("one empty line before the request line", "\r\nGET /lead HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP).body("/lead"),
        row("two empty lines before the request line", "\r\n\r\nGET /lead2 HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP).body("/lead2"),
        row("bare-LF empty line before the request line", "\nGET /lead-lf HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP).body("/lead-lf"),
        row("a line of spaces before the request line", "  \r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        // A request line that outgrows the header limit is answered by the part still being
        // read: a method longer than any implemented is 501 (§3 SHOULD), never 414 (which is
        // about the target, see `limits`); a version that long is no version: 400.
        row("100,000-byte method", format!("{} / HTTP/1.1\r\nHost: t\r\n\r\n", "M".repeat(100_000)), 501, CLOSE),
        row("version longer than the header limit", format!("GET / HTTP/1.1{}\r\nHost: t\r\n\r\n", "1".repeat(MAX_HEADER_BYTES)), 400, CLOSE),
    ]
}

/// RFC 9112 §3.2 (request target forms), §3.2.2 (absolute-form); RFC 9110 §4.1.
#[rustfmt::skip]
pub fn request_target() -> Vec<Case> {
    vec![
        // §3.2.2: absolute-form is accepted for any method; the origin server MUST ignore Host
        // and use the target's authority. Routing uses the path.
        row("absolute-form with Host", "GET http://example.com/abs HTTP/1.1\r\nHost: example.com\r\n\r\n", 200, KEEP).body("/abs"),
        row("absolute-form with a different Host", "GET http://example.com/abs2 HTTP/1.1\r\nHost: other.test\r\n\r\n", 200, KEEP).body("/abs2"),
        // §3.2: "A server MUST respond with a 400 ... to any HTTP/1.1 request message that lacks
        // a Host header field" — absolute-form included — or has an invalid one.
        row("absolute-form without Host", "GET http://example.com/ HTTP/1.1\r\n\r\n", 400, CLOSE),
        row("absolute-form with an invalid Host", "GET http://example.com/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400, CLOSE),
        // RFC 9110 §4.2.4: userinfo in an http URI is treated as an error.
        row("absolute-form with userinfo", "GET http://user:pw@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, CLOSE),
        // §3.2.4: asterisk-form only for a server-wide OPTIONS, which the router answers (200
        // with Allow); §3.2.3: authority-form only for CONNECT, which opens tunnels this server
        // does not: 501, and close (the client may already be sending the tunnel's bytes).
        row("asterisk-form on OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP),
        row("asterisk-form on GET", "GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("authority-form on CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501, CLOSE),
        row("authority-form on GET", "GET example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        // §3.2: no request-target form has a fragment. §3 says an invalid request line SHOULD get
        // 400 (or 301) and SHOULD NOT be autocorrected: the engine refuses it.
        row("fragment in the target", "GET /frag#part HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("non-UTF-8 byte in the target", b"GET /\xff HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        // The target is ASCII (RFC 3986): raw non-ASCII bytes, valid UTF-8 or not, are refused
        // rather than guessed at (a client percent-encodes them).
        row("UTF-8 in the target", "GET /caf\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("UTF-8 in the query", "GET /q?caf\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("UTF-8 in an absolute-form target", "GET http://t/caf\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        // The engine's choice: `%00` in the path (NUL once decoded, which truncates a path for
        // C-string consumers) is refused, as nginx does; other escapes are passed on undecoded,
        // and the query may encode any byte (form data).
        row("%00 in the path", "GET /a%00b HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("%00 at the end of the path", "GET /a%00 HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("%00 in an absolute-form path", "GET http://t/a%00 HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("%00 in the query", "GET /nul?a=%00 HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP).body("/nul"),
        row("%2500 in the path is not NUL", "GET /a%2500 HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP).body("/a%2500"),
        row("DEL in the target", "GET /a\x7fb HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("space inside the target", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
    ]
}

/// RFC 9112 §2.3 (HTTP version), §9.3 (persistence); RFC 9110 §2.5, §6.2, §15.6.6 (505).
#[rustfmt::skip]
pub fn version() -> Vec<Case> {
    vec![
        // §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive; else invalid: 400.
        row("request line without a version (HTTP/0.9 style)", "GET /\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("lowercase http/1.1", "GET / http/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("HTTP/1.10", "GET / HTTP/1.10\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("HTTP/1 without a minor version", "GET / HTTP/1\r\nHost: t\r\n\r\n", 400, CLOSE),
        // RFC 9110 §15.6.6: a major version the server does not support: 505.
        row("HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, CLOSE),
        row("HTTP/3.0 request line", "GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505, CLOSE),
        row("HTTP/0.9 spelled out", "GET / HTTP/0.9\r\nHost: t\r\n\r\n", 505, CLOSE),
        row("HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, CLOSE),
        // RFC 9110 §2.5: a higher minor version SHOULD be processed as the highest we implement.
        row("HTTP/1.2 served as HTTP/1.1", "GET /twelve HTTP/1.2\r\nHost: t\r\n\r\n", 200, KEEP).body("/twelve"),
        // §9.3: HTTP/1.0 closes unless it asks for keep-alive; HTTP/1.1 persists unless `close`.
        row("HTTP/1.0 with keep-alive persists", "GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, KEEP).body("/ten"),
        row("HTTP/1.0 without keep-alive closes", "GET /ten-close HTTP/1.0\r\n\r\n", 200, CLOSE),
        row("HTTP/1.1 with Connection: close closes", "GET /close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200, CLOSE),
    ]
}

/// RFC 9112 §5 (field syntax), §5.1 (no whitespace before the colon), §5.2 (obs-fold), §2.2
/// (bare CR, whitespace before the first field); RFC 9110 §5.1 (names are tokens,
/// case-insensitive), §5.5 (values: no CR, LF, NUL; obs-text allowed).
#[rustfmt::skip]
pub fn header_syntax() -> Vec<Case> {
    vec![
        // §5.1: "A server MUST reject, with ... 400, any received request message that contains
        // whitespace between a header field name and colon."
        row("space before the colon", get_field("/", "X-A : b"), 400, CLOSE),
        row("tab before the colon", get_field("/", "X-A\t: b"), 400, CLOSE),
        row("space before the colon of Transfer-Encoding", "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, CLOSE),
        // §2.2: whitespace between the start line and the first field: MUST reject or ignore
        // the line; the engine rejects.
        row("space before the first field line", "GET / HTTP/1.1\r\n Host: t\r\n\r\n", 400, CLOSE),
        row("tab before the first field line", "GET / HTTP/1.1\r\n\tHost: t\r\n\r\n", 400, CLOSE),
        // §5.2: obs-fold in a request: MUST reject with 400 or unfold; the engine rejects.
        row("obs-fold with a space", "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n", 400, CLOSE),
        row("obs-fold with a tab", "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\tc\r\n\r\n", 400, CLOSE),
        // §2.2: a bare CR MUST be treated as invalid (or replaced with SP).
        row("bare CR inside a value", get_field("/", "X-A: b\rc"), 400, CLOSE),
        row("bare CR ending a field line", "GET / HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n", 400, CLOSE),
        row("bare CR in the blank line ending the head", "GET / HTTP/1.1\r\nHost: t\r\n\r\r\n", 400, CLOSE),
        // §2.2: a bare LF MAY be accepted as a line terminator; the engine does.
        row("bare LF line endings throughout", "GET /lf-all HTTP/1.1\nHost: t\nX-A: b\n\n", 200, KEEP).body("/lf-all"),
        row("mixed CRLF and LF line endings", "GET /lf-mix HTTP/1.1\r\nHost: t\nX-A: b\r\n\n", 200, KEEP).body("/lf-mix"),
        // RFC 9110 §5.5: NUL (and CR, LF) in a value MUST be rejected or replaced; other CTLs
        // and DEL are outside field-vchar. The engine rejects them all.
        row("NUL in a value", get_field("/", "X-A: b\0c"), 400, CLOSE),
        row("NUL in a name", get_field("/", "X-\0A: b"), 400, CLOSE),
        row("SOH (0x01) in a value", get_field("/", "X-A: b\x01c"), 400, CLOSE),
        row("VT (0x0b) in a value", get_field("/", "X-A: b\x0bc"), 400, CLOSE),
        row("ESC (0x1b) in a value", get_field("/", "X-A: b\x1bc"), 400, CLOSE),
        row("DEL in a value", get_field("/", "X-A: b\x7fc"), 400, CLOSE),
        row("DEL in a name", get_field("/", "X-\x7fA: b"), 400, CLOSE),
        // RFC 9110 §5.5: obs-text and inner SP / HTAB are valid field content.
        row("obs-text (UTF-8) in a value", get_field("/obs", "X-A: caf\u{e9}"), 200, KEEP).body("/obs"),
        row("tab inside a value", get_field("/tab", "X-A: b\tc"), 200, KEEP).body("/tab"),
        row("empty value", get_field("/empty", "X-Empty:"), 200, KEEP).body("/empty"),
        // RFC 9110 §5.1: field-name = token.
        row("space inside a name", get_field("/", "X A: b"), 400, CLOSE),
        row("@ in a name", get_field("/", "X@A: b"), 400, CLOSE),
        row("double quote in a name", get_field("/", "X\"A: b"), 400, CLOSE),
        row("( in a name", get_field("/", "X(A): b"), 400, CLOSE),
        row("non-ASCII name", get_field("/", "X-\u{e9}: b"), 400, CLOSE),
        row("empty name", get_field("/", ": b"), 400, CLOSE),
        row("field line without a colon", get_field("/", "X-A b"), 400, CLOSE),
        // RFC 9110 §5.1: names are case-insensitive (the Host rule sees `hOsT`).
        row("name in mixed case", "GET /case HTTP/1.1\r\nhOsT: t\r\n\r\n", 200, KEEP).body("/case"),
    ]
}

/// RFC 9112 §3.2 (Host); RFC 9110 §7.2 (Host = uri-host [ ":" port ]), RFC 3986 §3.2.
#[rustfmt::skip]
pub fn host() -> Vec<Case> {
    vec![
        // §3.2: "A server MUST respond with a 400 ... to any HTTP/1.1 request message that lacks
        // a Host header field and to any request message that contains more than one Host
        // header field line or a Host header field with an invalid field value."
        row("HTTP/1.1 without Host", get_host("HTTP/1.1", "X-A: b\r\n"), 400, CLOSE),
        row("HTTP/1.0 without Host is fine", get_host("HTTP/1.0", "Connection: keep-alive\r\n"), 200, KEEP).body("/host"),
        row("two Host fields", get_host("HTTP/1.1", "Host: a\r\nHost: b\r\n"), 400, CLOSE),
        row("two identical Host fields", get_host("HTTP/1.1", "Host: a\r\nHost: a\r\n"), 400, CLOSE),
        row("two Host fields on HTTP/1.0", get_host("HTTP/1.0", "Host: a\r\nHost: b\r\n"), 400, CLOSE),
        row("Host with a space", get_host("HTTP/1.1", "Host: exa mple\r\n"), 400, CLOSE),
        row("Host with a slash", get_host("HTTP/1.1", "Host: t/x\r\n"), 400, CLOSE),
        row("Host with userinfo", get_host("HTTP/1.1", "Host: user@example.com\r\n"), 400, CLOSE),
        row("Host with an unclosed IPv6 literal", get_host("HTTP/1.1", "Host: [::1\r\n"), 400, CLOSE),
        row("Host with two ports", get_host("HTTP/1.1", "Host: t:80:81\r\n"), 400, CLOSE),
        // uri-host = IP-literal / IPv4address / reg-name and port = *DIGIT (RFC 3986 §3.2.2,
        // §3.2.3): brackets only around a whole IP literal, digits only after the colon. These
        // values are invalid, so 400 is a MUST; the engine answers 200 today (see the report).
        row("Host with a non-numeric port", get_host("HTTP/1.1", "Host: t:http\r\n"), 400, CLOSE),
        row("Host with brackets inside a name", get_host("HTTP/1.1", "Host: a[b]\r\n"), 400, CLOSE),
        row("Host with text after an IPv6 literal", get_host("HTTP/1.1", "Host: [::1]x\r\n"), 400, CLOSE),
        row("invalid Host on HTTP/1.0", get_host("HTTP/1.0", "Host: a b\r\n"), 400, CLOSE),
        // An empty Host leaves an http(s) target URI with an empty host, which RFC 9110 §4.2.1
        // says MUST be rejected as invalid (§3.2 allows an empty Host only for targets without
        // an authority, which an origin server never has): 400, as nginx answers.
        row("empty Host", get_host("HTTP/1.1", "Host:\r\n"), 400, CLOSE),
        row("empty Host of spaces", get_host("HTTP/1.1", "Host:   \r\n"), 400, CLOSE),
        row("empty Host on HTTP/1.0", get_host("HTTP/1.0", "Host:\r\n"), 400, CLOSE),
        row("empty Host with an absolute-form target", "GET http://example.com/ HTTP/1.1\r\nHost:\r\n\r\n", 400, CLOSE),
        row("Host of only a port", get_host("HTTP/1.1", "Host: :80\r\n"), 400, CLOSE),
        // Valid forms: port = *DIGIT may be empty; OWS (a tab included) before the value is not
        // part of it (RFC 9112 §5), so a tab there is accepted.
        row("tab before the Host value", get_host("HTTP/1.1", "Host:\tt\r\n"), 200, KEEP).body("/host"),
        row("Host with a port", get_host("HTTP/1.1", "Host: t:8080\r\n"), 200, KEEP).body("/host"),
        row("Host with an empty port", get_host("HTTP/1.1", "Host: t:\r\n"), 200, KEEP).body("/host"),
        row("Host as an IPv6 literal with a port", get_host("HTTP/1.1", "Host: [::1]:8080\r\n"), 200, KEEP).body("/host"),
        row("Host as an IPv4 address", get_host("HTTP/1.1", "Host: 127.0.0.1\r\n"), 200, KEEP).body("/host"),
    ]
}

/// RFC 9112 §6.2, §6.3 (message body length); RFC 9110 §8.6 (Content-Length = 1*DIGIT).
#[rustfmt::skip]
pub fn content_length() -> Vec<Case> {
    vec![
        row("Content-Length body", post_sink("Content-Length: 5\r\n", "hello"), 200, KEEP).body("hello"),
        row("Content-Length 0", post_sink("Content-Length: 0\r\n", ""), 200, KEEP).body(""),
        row("Content-Length with leading zeros", post_sink("Content-Length: 005\r\n", "hello"), 200, KEEP).body("hello"),
        // OWS around a field value is not part of it (RFC 9112 §5).
        row("Content-Length with OWS", post_sink("Content-Length: \t5 \t\r\n", "hello"), 200, KEEP).body("hello"),
        row("Content-Length name in upper case", post_sink("CONTENT-LENGTH: 5\r\n", "hello"), 200, KEEP).body("hello"),
        // A body on a GET is framed too: the sentinel behind it must not be eaten.
        row("GET with a Content-Length body", "GET /get-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 200, KEEP).body("/get-body"),
        // §6.3 item 5: an invalid Content-Length is an unrecoverable error: 400, then close.
        row("Content-Length +5", post_sink("Content-Length: +5\r\n", "hello"), 400, CLOSE),
        row("Content-Length -1", post_sink("Content-Length: -1\r\n", "hello"), 400, CLOSE),
        row("Content-Length 0x5", post_sink("Content-Length: 0x5\r\n", "hello"), 400, CLOSE),
        row("Content-Length '5 5'", post_sink("Content-Length: 5 5\r\n", "hello"), 400, CLOSE),
        row("Content-Length empty", post_sink("Content-Length: \r\n", "hello"), 400, CLOSE),
        row("Content-Length of 2^64 (20 digits)", post_sink("Content-Length: 18446744073709551616\r\n", "hello"), 400, CLOSE),
        row("Content-Length of 23 digits", post_sink("Content-Length: 99999999999999999999999\r\n", "hello"), 400, CLOSE),
        row("conflicting Content-Length fields", post_sink("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400, CLOSE),
        row("conflicting Content-Length list", post_sink("Content-Length: 5, 6\r\n", "hello!"), 400, CLOSE),
        row("valid and invalid Content-Length fields", post_sink("Content-Length: 5\r\nContent-Length: x\r\n", "hello"), 400, CLOSE),
        // §6.3 / RFC 9110 §8.6: a list of one repeated value MAY be accepted as that value or
        // rejected; the engine rejects it, as nginx does (the field is not a list, and framing
        // another peer may read differently is refused, not guessed).
        row("identical Content-Length list", post_sink("Content-Length: 5, 5\r\n", "hello"), 400, CLOSE),
        row("identical Content-Length fields", post_sink("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400, CLOSE),
        // OWS before the value may be a tab (RFC 9112 §5): accepted.
        row("tab before the Content-Length value", post_sink("Content-Length:\t5\r\n", "hello"), 200, KEEP).body("hello"),
        row("Content-Length with a trailing comma", post_sink("Content-Length: 5,\r\n", "hello"), 400, CLOSE),
        // §8: a body cut short by EOF is incomplete; the engine answers 400 and closes.
        row("Content-Length body cut short by EOF", post_sink("Content-Length: 5\r\n", "hel"), 400, CLOSE).then_eof(),
    ]
}

/// RFC 9112 §6.1 (Transfer-Encoding), §6.3 items 3-4, §7 (coding names are case-insensitive);
/// RFC 9110 §5.6.1 (lists: OWS and empty elements).
#[rustfmt::skip]
pub fn transfer_encoding() -> Vec<Case> {
    vec![
        row("chunked", te_hello("Transfer-Encoding: chunked"), 200, KEEP).body("hello"),
        // §6.1: a server MAY reject CL + TE or use TE; regardless it MUST close. The engine
        // rejects.
        row("Content-Length then Transfer-Encoding", post_sink("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("Transfer-Encoding then Content-Length", post_sink("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        // §6.1: TE in HTTP/1.0 MUST be treated as faulty framing, and the connection closed.
        row("Transfer-Encoding on HTTP/1.0", "POST /sink HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, CLOSE),
        // §6.3 item 4: chunked not final: MUST 400, then close.
        row("TE chunked, gzip", te_hello("Transfer-Encoding: chunked, gzip"), 400, CLOSE),
        row("TE gzip alone", post_sink("Transfer-Encoding: gzip\r\n", "hello"), 400, CLOSE),
        row("TE identity alone", post_sink("Transfer-Encoding: identity\r\n", "hello"), 400, CLOSE),
        row("TE empty", te_hello("Transfer-Encoding:"), 400, CLOSE),
        // §6.1: chunked MUST NOT be applied twice; the engine refuses it.
        row("TE chunked, chunked", te_hello("Transfer-Encoding: chunked, chunked"), 400, CLOSE),
        row("TE chunked in two fields", te_hello("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"), 400, CLOSE),
        // §6.1: an unknown coding SHOULD get 501 (the engine's pick), and the body cannot be
        // read, so the connection closes.
        row("TE gzip, chunked", te_hello("Transfer-Encoding: gzip, chunked"), 501, CLOSE),
        row("TE gzip and chunked in two fields", te_hello("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"), 501, CLOSE),
        // §7: coding names are case-insensitive; OWS around list elements and empty elements
        // are not part of them (RFC 9110 §5.6.1). These all mean plain chunked.
        row("TE Chunked", te_hello("Transfer-Encoding: Chunked"), 200, KEEP).body("hello"),
        row("TE with spaces before chunked", te_hello("Transfer-Encoding:   chunked"), 200, KEEP).body("hello"),
        row("TE with whitespace after chunked", te_hello("Transfer-Encoding: chunked \t"), 200, KEEP).body("hello"),
        row("TE with a tab before chunked", te_hello("Transfer-Encoding:\tchunked"), 200, KEEP).body("hello"),
        row("TE chunked with a trailing empty element", te_hello("Transfer-Encoding: chunked,"), 200, KEEP).body("hello"),
        row("TE chunked after an empty element", te_hello("Transfer-Encoding: , chunked"), 200, KEEP).body("hello"),
        row("Transfer-Encoding name in odd case", te_hello("tRaNsFeR-eNcOdInG: chunked"), 200, KEEP).body("hello"),
        // Anything else is a final coding that is not chunked: 400 (§6.3 item 4).
        row("TE xchunked", te_hello("Transfer-Encoding: xchunked"), 400, CLOSE),
        row("TE chunk", te_hello("Transfer-Encoding: chunk"), 400, CLOSE),
        row("TE chunked;q=1", te_hello("Transfer-Encoding: chunked;q=1"), 400, CLOSE),
        row("TE \"chunked\" quoted", te_hello("Transfer-Encoding: \"chunked\""), 400, CLOSE),
        // VT is not OWS and not a field-vchar (RFC 9110 §5.5): the field is invalid.
        row("TE chunked followed by VT", te_hello("Transfer-Encoding: chunked\x0b"), 400, CLOSE),
    ]
}

/// RFC 9112 §7.1 (chunked), §7.1.1 (extensions), §7.1.2 (trailers), §8 (incomplete messages).
#[rustfmt::skip]
pub fn chunked() -> Vec<Case> {
    vec![
        row("several chunks, upper-case hex, leading zeros", chunked_sink("0005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n"), 200, KEEP).body("hello0123456789"),
        // chunk-size = 1*HEXDIG, then CRLF: anything else is 400 and close (framing is lost).
        row("chunk size not hex", chunked_sink("zz\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size empty", chunked_sink("\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size negative", chunked_sink("-5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size with a leading space", chunked_sink(" 5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size 0x-prefixed", chunked_sink("0x5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size overflowing (17 hex digits)", chunked_sink("10000000000000000\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size u64::MAX is over the body limit", chunked_sink("ffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 413, CLOSE),
        row("bare LF ending the chunk size", chunked_sink("5\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("missing CRLF after chunk data", chunked_sink("5\r\nhelloXX\r\n0\r\n\r\n"), 400, CLOSE),
        row("bare LF after chunk data", chunked_sink("5\r\nhello\n0\r\n\r\n"), 400, CLOSE),
        row("bare CR after chunk data", chunked_sink("5\r\nhello\r0\r\n\r\n"), 400, CLOSE),
        // §7.1.1: unrecognized extensions MUST be ignored, quoted strings included.
        row("chunk extension", chunked_sink("5;name=value\r\nhello\r\n0;last\r\n\r\n"), 200, KEEP).body("hello"),
        row("chunk extension with a quoted string", chunked_sink("5;a=\"q;u=o\\\"ted\"\r\nhello\r\n0\r\n\r\n"), 200, KEEP).body("hello"),
        // §7.1.1 puts BWS around `;` and `=`, so it is accepted there (as hyper and nginx do).
        row("chunk extension with BWS", chunked_sink("5 ; a = b\r\nhello\r\n0\r\n\r\n"), 200, KEEP).body("hello"),
        row("chunk extension with tabs as BWS", chunked_sink("5\t;\ta\r\nhello\r\n0\r\n\r\n"), 200, KEEP).body("hello"),
        // Anything else outside the §7.1 grammar is refused, though nginx and hyper accept
        // these: a line that parsers read differently is how bodies get smuggled.
        row("empty chunk extension name", chunked_sink("5;\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk extension name not a token", chunked_sink("5;bad[=x\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("whitespace after the chunk size", chunked_sink("5 \r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("whitespace at the end of a chunk extension", chunked_sink("5;a=b \r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk extension value missing", chunked_sink("5;a=\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk extension quoted string not closed", chunked_sink("5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size with an underscore", chunked_sink("1_0\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size with a plus sign", chunked_sink("+5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        // Control characters in an extension are how smuggling payloads hide: 400.
        row("NUL in a chunk extension", chunked_sink("5;a=\0\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("bare LF in a chunk extension", chunked_sink("5;a\nb\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("bare CR in a chunk extension", chunked_sink("5;a\rb\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        // §7.1.2: a trailer section of fields; same field syntax as the header section.
        row("trailer field", chunked_sink("5\r\nhello\r\n0\r\nX-T: v\r\n\r\n"), 200, KEEP).body("hello+x-t=v"),
        row("trailer section ended by bare LFs", chunked_sink("5\r\nhello\r\n0\r\nX-T: w\n\n"), 200, KEEP).body("hello+x-t=w"),
        row("trailer name with a space", chunked_sink("5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n"), 400, CLOSE),
        row("trailer line without a colon", chunked_sink("5\r\nhello\r\n0\r\nX-T\r\n\r\n"), 400, CLOSE),
        row("trailer with obs-fold", chunked_sink("5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"), 400, CLOSE),
        row("NUL in a trailer value", chunked_sink("5\r\nhello\r\n0\r\nX-T: a\0b\r\n\r\n"), 400, CLOSE),
        // The engine's own bounds: a chunk-size line of at most 4 KiB (decode.rs MAX_CHUNK_LINE;
        // §7.1.1: a server ought to limit extensions and answer 4xx past the limit) and a
        // trailer section of at most max_header_bytes (RFC 9110 §5.4: fields larger than a
        // server wishes to process MUST get a 4xx).
        row("chunk size line over 4 KiB", chunked_sink(&format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000))), 400, CLOSE),
        row("trailer section over the header limit", chunked_sink(&format!("5\r\nhello\r\n0\r\nX-T: {}\r\n\r\n", "t".repeat(MAX_HEADER_BYTES + 100))), 400, CLOSE),
        // §8: a chunked body that ends before its last CRLF is incomplete: 400, close.
        row("last chunk without the final CRLF at EOF", chunked_sink("5\r\nhello\r\n0\r\n"), 400, CLOSE).then_eof(),
        row("chunk data cut short by EOF", chunked_sink("5\r\nhel"), 400, CLOSE).then_eof(),
    ]
}

/// RFC 9112 §3 (414 for a long target), RFC 9110 §15.5.14 (413), §15.5.15 (414), RFC 6585 §5
/// (431), RFC 9110 §15.5.9 (408).
#[rustfmt::skip]
pub fn limits() -> Vec<Case> {
    let many = |n: usize| (0..n).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
    let over = "x".repeat(MAX_BODY_BYTES as usize + 1);
    let at = "y".repeat(MAX_BODY_BYTES as usize);
    vec![
        row("request line over the header limit", format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(MAX_HEADER_BYTES + 100)), 414, CLOSE),
        row("one field value over the header limit", get_field("/", format!("X-Big: {}", "b".repeat(MAX_HEADER_BYTES + 100))), 431, CLOSE),
        row("header section over the limit across fields", format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", (0..12).map(|i| format!("X-F{i}: {}\r\n", "f".repeat(90))).collect::<String>()), 431, CLOSE),
        row("head exactly at the header limit", head_of_len("/exact", MAX_HEADER_BYTES), 200, KEEP).body("/exact"),
        row("head one byte over the header limit", head_of_len("/over", MAX_HEADER_BYTES + 1), 431, CLOSE),
        row("too many fields", format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", many(MAX_HEADERS)), 431, CLOSE),
        row("exactly the most fields", format!("GET /most HTTP/1.1\r\nHost: t\r\n{}\r\n", many(MAX_HEADERS - 1)), 200, KEEP).body("/most"),
        row("Content-Length over the body limit", post_sink(&format!("Content-Length: {}\r\n", over.len()), &over), 413, CLOSE),
        row("Content-Length u64::MAX is over the body limit", post_sink("Content-Length: 18446744073709551615\r\n", "hello"), 413, CLOSE),
        row("Content-Length at the body limit", post_sink(&format!("Content-Length: {}\r\n", at.len()), &at), 200, KEEP).body(at.clone()),
        row("chunked body over the body limit", chunked_sink(&format!("{:x}\r\n{over}\r\n0\r\n\r\n", over.len())), 413, CLOSE),
        row("chunked body over the limit across chunks", chunked_sink(&format!("{:x}\r\n{at}\r\n1\r\nz\r\n0\r\n\r\n", at.len())), 413, CLOSE),
        row("chunked body at the body limit", chunked_sink(&format!("{:x}\r\n{at}\r\n0\r\n\r\n", at.len())), 200, KEEP).body(at.clone()),
        // Headers not complete within the header-read timeout: 408, close.
        row("head not finished within the header-read timeout", "GET /slow HTTP/1.1\r\nHost: t\r\n", 408, CLOSE).then_stall(),
    ]
}

/// RFC 9110 §10.1.1 (Expect).
#[rustfmt::skip]
pub fn expect() -> Vec<Case> {
    vec![
        // "100-continue" is case-insensitive; the 100 comes (in order) before the final answer.
        row("Expect: 100-continue", post_sink("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello"), 200, KEEP).continue_first().body("hello"),
        row("Expect: 100-Continue", post_sink("Expect: 100-Continue\r\nContent-Length: 5\r\n", "hello"), 200, KEEP).continue_first().body("hello"),
        row("Expect: 100-continue on a chunked body", post_sink("Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 200, KEEP).continue_first().body("hello"),
        // A server MAY omit the 100 when the framing says there is no content; the engine does.
        row("Expect: 100-continue without a body", get_field("/no-body", "Expect: 100-continue"), 200, KEEP).body("/no-body"),
        row("Expect: 100-continue with Content-Length 0", post_sink("Expect: 100-continue\r\nContent-Length: 0\r\n", ""), 200, KEEP).body(""),
        // A final status instead of 100 is allowed; a body over the limit gets it at once.
        row("Expect: 100-continue over the body limit", post_sink(&format!("Expect: 100-continue\r\nContent-Length: {}\r\n", MAX_BODY_BYTES + 1), ""), 413, CLOSE),
        // "A server that receives a 100-continue expectation in an HTTP/1.0 request MUST ignore
        // that expectation."
        row("Expect: 100-continue on HTTP/1.0 is ignored", "POST /sink HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", 200, KEEP).body("hello"),
        // Any other expectation MAY get 417; the engine answers 417 and closes.
        row("unknown expectation", post_sink("Content-Length: 5\r\nExpect: teapot\r\n", "hello"), 417, CLOSE),
        row("unknown expectation without a body", get_field("/", "Expect: teapot"), 417, CLOSE),
        row("100-continue among other expectations", post_sink("Content-Length: 5\r\nExpect: 100-continue, x\r\n", "hello"), 417, CLOSE),
    ]
}

/// Every group, for the size and distinctness check.
pub fn all() -> Vec<Case> {
    [
        request_line(),
        request_target(),
        version(),
        header_syntax(),
        host(),
        content_length(),
        transfer_encoding(),
        chunked(),
        limits(),
        expect(),
    ]
    .concat()
}
