//! Request-head parsing: `httparse` does the syntax, this file applies the RFC 9112 / 9110
//! rules the engine owns (Host, message framing, Connection, Expect) and builds an
//! `http::Request` whose target and header values share the read buffer (no copies).

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Request, StatusCode, Uri, Version};

use super::error::EngineError;
use super::target::TargetCache;
use super::trusted::Validated;
use crate::body::Body;

/// Headers parsed on the stack before falling back to a heap buffer; covers nearly every real
/// request without an allocation, while `Config::max_headers` may still be set higher.
const STACK_HEADERS: usize = 64;

/// How the request body is delimited on the wire (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: the next request starts right after the head.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A built request head apart from the connection: one that waits (a barrier, a service not
/// ready) or one a test parsed.
#[derive(Debug)]
pub(crate) struct Head {
    /// The request with an empty body, which the connection replaces in place when one
    /// follows: built as the type services take, it is never rebuilt.
    pub(crate) request: Request<Body>,
    pub(crate) meta: Meta,
}

/// What the connection needs to know about a built request, besides the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) framing: Framing,
    /// The connection must close after this request's response.
    pub(crate) close: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
}

/// An empty request, to be built into ([`Parser::build_into`]).
pub(crate) fn blank_request() -> Request<Body> {
    Request::new(Body::empty())
}

/// Reusable scratch space and the header-name cache, kept per connection so parsing allocates
/// nothing after warm-up.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    /// Where the last head's headers are: read back as unchecked values ([`Validated`]).
    validated: Validated,
    names: NameCache,
    /// The last target and its URI ([`TargetCache`]).
    targets: TargetCache,
    /// The last `Host` found valid ([`HostCache`]).
    hosts: HostCache,
}

/// Header names cached by position: a client sends the same names in the same order and
/// spelling on every request of a connection, so the previous head's name at the same
/// position, compared byte for byte, is nearly always the answer. That costs a short compare
/// and a clone instead of `HeaderName::from_bytes`'s lower-casing copy and table match (and,
/// for a non-standard name, an allocation). The answer is the same either way, as
/// `from_bytes` depends on the bytes alone.
#[derive(Debug, Default)]
struct NameCache {
    /// Entry `i` is the name at position `i`; positions past the end are not cached.
    entries: Vec<CachedName>,
}

/// Names cached per connection; covers the headers of nearly every request while bounding the
/// memory each connection keeps.
const CACHED_NAMES: usize = 16;

/// The longest spelling cached; longer names are parsed every time.
const CACHED_NAME_LEN: usize = 32;

/// One header name as spelled on the wire and what it parsed to.
#[derive(Debug)]
struct CachedName {
    spelling: [u8; CACHED_NAME_LEN],
    len: usize,
    name: HeaderName,
}

impl NameCache {
    /// The header name for `raw`, the name of the header at `position` in the head.
    fn name(&mut self, position: usize, raw: &[u8]) -> Result<HeaderName, EngineError> {
        if let Some(cached) = self.entries.get(position) {
            if cached.spelling.get(..cached.len) == Some(raw) {
                return Ok(cached.name.clone());
            }
        }
        let name = HeaderName::from_bytes(raw)
            .map_err(|_| EngineError::bad_request("invalid header name"))?;
        self.remember(position, raw, &name);
        Ok(name)
    }

    /// Caches `name` for `position`, keeping the entries a prefix of the positions.
    fn remember(&mut self, position: usize, raw: &[u8], name: &HeaderName) {
        if raw.len() > CACHED_NAME_LEN {
            self.entries.truncate(position);
            return;
        }
        let mut spelling = [0; CACHED_NAME_LEN];
        spelling[..raw.len()].copy_from_slice(raw);
        let entry = CachedName {
            spelling,
            len: raw.len(),
            name: name.clone(),
        };
        if let Some(slot) = self.entries.get_mut(position) {
            *slot = entry;
        } else if position == self.entries.len() && position < CACHED_NAMES {
            self.entries.push(entry);
        }
    }
}

/// What the request line and headers say, before the RFC checks.
struct Line {
    method: Method,
    target: Range<usize>,
    version: Version,
    /// The headers with rules of their own, noted as httparse hands them over.
    seen: Seen,
}

impl Parser {
    /// Gives the scratch space and cached names back, for a connection gone idle.
    pub(crate) fn release_memory(&mut self) {
        *self = Parser::default();
    }

    /// Parses one request head from the front of `buf`, removing it on success, and applies the
    /// rules that need no `http::Request` (target, Host); `None` when more bytes are needed.
    pub(crate) fn parse_head(
        &mut self,
        buf: &mut BytesMut,
        max_header_bytes: usize,
        max_headers: usize,
    ) -> Result<Option<Parsed>, EngineError> {
        let parsed = match self.parse_syntax(buf, max_headers) {
            // httparse judges the version as soon as it sees it; whether it is a later 1.x
            // (served as 1.1), another major (505) or garbage (400) is only known once the
            // line is whole, so that the answer never depends on where a read ended.
            Err(e) if is_version_error(e) => match version_token(buf) {
                None => Ok(None),
                Some(_) if downgrade_minor_version(buf) => self.parse_syntax(buf, max_headers),
                Some(_) => Err(e),
            },
            other => other,
        };
        let (line, len) = match parsed? {
            Some(found) => found,
            None => {
                if buf.len() > max_header_bytes {
                    return Err(too_large(buf, max_header_bytes));
                }
                return Ok(None);
            }
        };
        if len > max_header_bytes {
            return Err(too_large(buf, max_header_bytes));
        }
        let bytes = buf.split_to(len).freeze();
        self.check(bytes, line).map(Some)
    }

    /// Parses one request head as [`Parser::parse_head`] does and builds its `http::Request`
    /// (the connection does the two apart, for the inline path in between).
    #[cfg(any(test, fuzzing, feature = "bench-internals"))]
    pub(crate) fn parse(
        &mut self,
        buf: &mut BytesMut,
        max_header_bytes: usize,
        max_headers: usize,
        max_body_bytes: u64,
    ) -> Result<Option<Head>, EngineError> {
        let Some(mut parsed) = self.parse_head(buf, max_header_bytes, max_headers)? else {
            return Ok(None);
        };
        let mut request = blank_request();
        let meta = self.build_into(&mut parsed, max_body_bytes, &mut request)?;
        Ok(Some(Head { request, meta }))
    }

    /// The headers of `parsed`, the head this parser parsed last, for a [`HeadView`](crate::HeadView).
    pub(crate) fn fields<'a>(&'a self, parsed: &'a Parsed) -> (&'a Validated, &'a Bytes) {
        (&self.validated, &parsed.bytes)
    }

    /// Runs httparse, records header positions, and returns the request line and head length.
    fn parse_syntax(
        &mut self,
        buf: &[u8],
        max_headers: usize,
    ) -> Result<Option<(Line, usize)>, EngineError> {
        let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        let first = self.parse_into(buf, &mut stack[..max_headers.min(STACK_HEADERS)]);
        match first {
            Err(httparse::Error::TooManyHeaders) if max_headers > STACK_HEADERS => {
                let mut heap = Vec::new();
                heap.resize_with(max_headers, MaybeUninit::uninit);
                self.parse_into(buf, &mut heap)
            }
            other => other,
        }
        .map_err(|e| syntax_error(e, buf))
    }

    fn parse_into<'b>(
        &mut self,
        buf: &'b [u8],
        headers: &mut [MaybeUninit<httparse::Header<'b>>],
    ) -> Result<Option<(Line, usize)>, httparse::Error> {
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, headers)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => return Ok(None),
        };
        let offset = |s: &[u8]| s.as_ptr() as usize - buf.as_ptr() as usize;
        self.validated.record(buf, req.headers);
        // Noted here, in the pass httparse's output is still hot in, so that the common request
        // (Host, maybe Connection, nothing else of interest) needs no map lookups later, or no
        // map at all (the inline path).
        let mut seen = Seen::default();
        for header in req.headers.iter() {
            let at = offset(header.value);
            seen.note(
                header.name.as_bytes(),
                at..at + header.value.len(),
                header.value,
            );
        }
        let method = req.method.unwrap_or_default();
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| httparse::Error::Token)?;
        let target = req.path.unwrap_or_default().as_bytes();
        let version = match req.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let line = Line {
            method,
            target: offset(target)..offset(target) + target.len(),
            version,
            seen,
        };
        Ok(Some((line, len)))
    }

    /// The rules a head must pass before anything is built from it: its target's form
    /// ([`TargetCache::parse`]) and its `Host`; and what the rest need to know of its headers.
    fn check(&mut self, bytes: Bytes, line: Line) -> Result<Parsed, EngineError> {
        let seen = line.seen;
        let uri = self.targets.parse(&line.method, bytes.slice(line.target))?;
        let host = seen.host.clone().map(|r| &bytes[r]);
        self.hosts.check(host, seen.hosts, line.version)?;
        Ok(Parsed {
            bytes,
            method: line.method,
            uri,
            version: line.version,
            seen,
        })
    }

    /// Builds the head this parser parsed last into `request` (a [`blank_request`]) and
    /// applies the rules that read its header map (body framing, `Expect`). Built where it
    /// stays until the service takes it: a `Request` is 264 bytes, and returning it through
    /// the steps between cost a copy at each (callgrind: ~230 instructions per request).
    /// On an error `request` is left part-built: the caller blanks it again. `parsed` is
    /// taken by reference for the same reason (~150 bytes, copied twice when moved here);
    /// its method and target are moved out.
    pub(crate) fn build_into(
        &mut self,
        parsed: &mut Parsed,
        max_body_bytes: u64,
        request: &mut Request<Body>,
    ) -> Result<Meta, EngineError> {
        let close = parsed.close();
        let Parsed {
            ref bytes,
            ref mut method,
            ref mut uri,
            version,
            ref seen,
        } = *parsed;
        debug_assert!(
            request.headers().is_empty() && request.extensions().is_empty(),
            "built into a request that is not blank"
        );
        let headers = request.headers_mut();
        headers.reserve(self.validated.count());
        for (position, (raw_name, value, _)) in self.validated.fields(bytes).enumerate() {
            let name = self.names.name(position, raw_name)?;
            headers.append(name, value);
        }
        let framing = if seen.framing {
            framing(request.headers(), version, max_body_bytes)?
        } else {
            Framing::Empty
        };
        let expect_continue = seen.expect && expects_continue(request.headers(), version)?;
        std::mem::swap(request.method_mut(), method);
        std::mem::swap(request.uri_mut(), uri);
        *request.version_mut() = version;
        Ok(Meta {
            framing,
            close,
            expect_continue,
        })
    }
}

/// A request head parsed and checked, before an `http::Request` is built from it
/// ([`Parser::build_into`]): what the inline path answers from.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The whole head, which the header fields are slices of.
    bytes: Bytes,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    seen: Seen,
}

impl Parsed {
    /// The head is the whole request: no body follows it and no `100 Continue` is awaited.
    pub(crate) fn is_whole(&self) -> bool {
        !self.seen.framing && !self.seen.expect
    }

    /// The connection must close after this request's answer.
    pub(crate) fn close(&self) -> bool {
        self.seen.close || (self.version == Version::HTTP_10 && !self.seen.keep_alive)
    }
}

/// The longest `Host` value cached (a DNS name is at most 253 bytes, a port 6 more).
const CACHED_HOST_LEN: usize = 260;

/// The last `Host` value found valid, per connection: a client sends the same one on every
/// request, so its grammar check ([`check_host`], ~100 instructions) runs once. The verdict is
/// the same either way: for a single, non-empty `Host` it depends on the value's bytes alone.
#[derive(Debug, Default)]
struct HostCache(Vec<u8>);

impl HostCache {
    /// [`check_host`], skipped for the value last found valid.
    fn check(
        &mut self,
        host: Option<&[u8]>,
        count: usize,
        version: Version,
    ) -> Result<(), EngineError> {
        if let (Some(value), 1) = (host, count) {
            if !value.is_empty() && value == self.0 {
                return Ok(());
            }
        }
        check_host(host, count, version)?;
        if let (Some(value), 1) = (host, count) {
            if value.len() <= CACHED_HOST_LEN {
                self.0.clear();
                self.0.extend_from_slice(value);
            }
        }
        Ok(())
    }
}

/// Headers with rules of their own, as seen in one request.
#[derive(Debug, Default)]
struct Seen {
    /// Where the first `Host` value sits in the head.
    host: Option<Range<usize>>,
    /// How many `Host` headers there were.
    hosts: usize,
    /// `Content-Length` or `Transfer-Encoding`.
    framing: bool,
    /// A `Connection` header lists `close`.
    close: bool,
    /// A `Connection` header lists `keep-alive`.
    keep_alive: bool,
    expect: bool,
}

impl Seen {
    /// Records one header, by its name as sent; `at` is where `value` sits in the head. The
    /// length picks the one name to compare, so most headers cost a single match.
    fn note(&mut self, name: &[u8], at: Range<usize>, value: &[u8]) {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            4 if is("host") => {
                self.hosts += 1;
                self.host.get_or_insert(at);
            }
            14 if is("content-length") => self.framing = true,
            17 if is("transfer-encoding") => self.framing = true,
            // The usual value, `keep-alive` alone, without splitting it into a list.
            10 if is("connection") && value.eq_ignore_ascii_case(b"keep-alive") => {
                self.keep_alive = true;
            }
            // RFC 9112 §9.3: the options may be spread over several Connection headers.
            10 if is("connection") => {
                for token in value_tokens(value) {
                    self.close |= token.eq_ignore_ascii_case(b"close");
                    self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            6 if is("expect") => self.expect = true,
            _ => {}
        }
    }
}

/// A head that outgrew the limit, answered by what outgrew it: `431` once the request line is
/// whole (the header section did); otherwise by the part of the line still being read — the
/// method (`501`, RFC 9112 §3: longer than any method implemented), the target (`414`), or the
/// version (`400`: no version is that long).
fn too_large(buf: &[u8], max_header_bytes: usize) -> EngineError {
    let window = &buf[..buf.len().min(max_header_bytes)];
    // Empty lines before the request line are skipped by the parser, so they are here too.
    let start = window.iter().position(|b| !matches!(b, b'\r' | b'\n'));
    let line = &window[start.unwrap_or(window.len())..];
    if line.contains(&b'\n') {
        return EngineError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header section too large",
        );
    }
    match line.iter().filter(|&&b| b == b' ').take(2).count() {
        0 if line.is_empty() => EngineError::bad_request("invalid request line"),
        0 => EngineError::new(StatusCode::NOT_IMPLEMENTED, "request method too long"),
        1 => EngineError::new(StatusCode::URI_TOO_LONG, "request target too long"),
        _ => EngineError::bad_request(INVALID_VERSION),
    }
}

const INVALID_VERSION: &str = "invalid HTTP version";

/// An answer about the request line's version (400 for a malformed one, 505 for another major).
fn is_version_error(e: EngineError) -> bool {
    e.reason == INVALID_VERSION || e.status == StatusCode::HTTP_VERSION_NOT_SUPPORTED
}

/// Maps an httparse error to the status RFC 9112 asks for.
fn syntax_error(err: httparse::Error, buf: &[u8]) -> EngineError {
    match err {
        httparse::Error::TooManyHeaders => EngineError::too_many_headers(),
        httparse::Error::Version if other_major_version(buf) => EngineError::new(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "only HTTP/1.0 and HTTP/1.1 are served here",
        ),
        httparse::Error::Version => EngineError::bad_request(INVALID_VERSION),
        httparse::Error::HeaderName => EngineError::bad_request("invalid header name"),
        httparse::Error::HeaderValue => EngineError::bad_request("invalid header value"),
        httparse::Error::NewLine => EngineError::bad_request("invalid line ending"),
        httparse::Error::Token | httparse::Error::Status => {
            EngineError::bad_request("invalid request line")
        }
    }
}

/// Where the version token of the first request line sits in `buf`; `None` until the line is
/// complete.
fn version_token(buf: &[u8]) -> Option<Range<usize>> {
    let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    let rest = &buf[start..];
    let len = rest.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = &buf[start..start + len];
    let space = line.iter().rposition(|&b| b == b' ')?;
    Some(start + space + 1..start + len)
}

/// True when the request line is well formed but names a major version other than 1
/// (`HTTP/2.0`, `HTTP/3`): that deserves `505`, not a generic `400`.
fn other_major_version(buf: &[u8]) -> bool {
    let Some(range) = version_token(buf) else {
        return false;
    };
    matches!(&buf[range], [b'H', b'T', b'T', b'P', b'/', major, rest @ ..]
        if major.is_ascii_digit() && *major != b'1'
            && matches!(rest, [] | [b'.', b'0'..=b'9']))
}

/// RFC 9110 §2.5: a later minor version of HTTP/1 (`HTTP/1.2`) is processed as HTTP/1.1, the
/// highest we implement. httparse only knows 1.0 and 1.1, so the version digit is rewritten in
/// the buffer; returns whether it was.
fn downgrade_minor_version(buf: &mut [u8]) -> bool {
    let Some(range) = version_token(buf) else {
        return false;
    };
    match &mut buf[range] {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ b'2'..=b'9'] => {
            *minor = b'1';
            true
        }
        _ => false,
    }
}

/// RFC 9112 §3.2: exactly one `Host` in HTTP/1.1, and it must be a valid authority; `host`
/// is the first value of the `count` there were.
fn check_host(host: Option<&[u8]>, count: usize, version: Version) -> Result<(), EngineError> {
    if count > 1 {
        return Err(EngineError::bad_request("more than one Host header"));
    }
    match host {
        // Required even when the target is in absolute form (RFC 9112 §3.2).
        None if version == Version::HTTP_11 => {
            Err(EngineError::bad_request("HTTP/1.1 request without Host"))
        }
        // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid and MUST be refused;
        // with an empty Host an origin-form target has no host to rebuild it with, and an
        // absolute-form one has an authority Host fails to match (RFC 9112 §3.2.2).
        Some([]) => Err(EngineError::bad_request("empty Host header")),
        Some(value) if !valid_host(value) => Err(EngineError::bad_request("invalid Host header")),
        _ => Ok(()),
    }
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in brackets
/// or a non-empty reg-name (which covers IPv4), then optionally a colon and digits; userinfo, a
/// second colon, or anything after the brackets is not.
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => (&value[..=end], &value[end + 1..]),
            None => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        reg_name => !reg_name.is_empty() && valid_reg_name(reg_name),
    };
    port_ok && host_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`.
fn valid_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'%' {
            let hex = name.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !REG_NAME_CHARS[usize::from(name[i])] {
            return false;
        }
        i += 1;
    }
    true
}

/// The bytes a reg-name may hold outside `%XX` escapes (`unreserved / sub-delims`), as a
/// table: every request's Host goes through this, and one load per byte is far cheaper than
/// a chain of range tests.
const REG_NAME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        table[b] = matches!(b as u8,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'-' | b'.' | b'_' | b'~'
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=');
        b += 1;
    }
    table
};

/// Works out body framing from `Content-Length` / `Transfer-Encoding` (RFC 9112 §6).
fn framing(headers: &HeaderMap, version: Version, max_body: u64) -> Result<Framing, EngineError> {
    let has_te = headers.contains_key(header::TRANSFER_ENCODING);
    let has_cl = headers.contains_key(header::CONTENT_LENGTH);
    if has_te {
        if has_cl {
            return Err(EngineError::bad_request(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(EngineError::bad_request("Transfer-Encoding in HTTP/1.0"));
        }
        return transfer_coding(headers);
    }
    if !has_cl {
        return Ok(Framing::Empty);
    }
    let length = content_length(headers)?;
    if length > max_body {
        return Err(EngineError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body larger than the limit",
        ));
    }
    Ok(if length == 0 {
        Framing::Empty
    } else {
        Framing::Length(length)
    })
}

/// `Content-Length = 1*DIGIT`, exactly once. RFC 9110 §8.6 lets a recipient take a list of
/// identical values (`5, 5`, or the field repeated) as that value; the engine refuses them, as
/// nginx does: the field is not a list, and framing that another peer in the chain may read
/// differently is better refused than guessed.
fn content_length(headers: &HeaderMap) -> Result<u64, EngineError> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let bad = || EngineError::bad_request("invalid Content-Length");
    let value = values.next().ok_or_else(bad)?;
    if values.next().is_some() {
        return Err(EngineError::bad_request("more than one Content-Length"));
    }
    let digits = value.as_bytes().trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(bad)
}

/// `Transfer-Encoding` must end in exactly one `chunked`; no other coding is supported.
fn transfer_coding(headers: &HeaderMap) -> Result<Framing, EngineError> {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .peekable();
    let mut chunked_seen = false;
    let mut unknown = false;
    while let Some(coding) = codings.next() {
        let last = codings.peek().is_none();
        if coding.eq_ignore_ascii_case(b"chunked") {
            if chunked_seen || !last {
                return Err(EngineError::bad_request("chunked must be the final coding"));
            }
            chunked_seen = true;
        } else if last {
            return Err(EngineError::bad_request("chunked must be the final coding"));
        } else {
            unknown = true;
        }
    }
    match (chunked_seen, unknown) {
        (true, false) => Ok(Framing::Chunked),
        (true, true) => Err(EngineError::new(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported transfer coding",
        )),
        (false, _) => Err(EngineError::bad_request("empty Transfer-Encoding")),
    }
}

/// `Expect: 100-continue` is honoured on HTTP/1.1 and ignored on HTTP/1.0 (RFC 9110
/// §10.1.1); any other expectation is answered `417`.
fn expects_continue(headers: &HeaderMap, version: Version) -> Result<bool, EngineError> {
    Ok(expects_100_continue(headers)? && version == Version::HTTP_11)
}

/// Whether `headers` ask for `100-continue`; any other expectation is refused `417`, on every
/// protocol.
pub(crate) fn expects_100_continue(headers: &HeaderMap) -> Result<bool, EngineError> {
    let mut expect = false;
    for token in header_tokens(headers, header::EXPECT) {
        if !token.eq_ignore_ascii_case(b"100-continue") {
            return Err(EngineError::expectation_failed());
        }
        expect = true;
    }
    Ok(expect)
}

/// The comma-separated, trimmed, non-empty list elements of every `name` header.
fn header_tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| value_tokens(v.as_bytes()))
}

/// The comma-separated, trimmed, non-empty list elements of one header value.
fn value_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// The headers of `head` as a parser that has already parsed other heads gives them.
    fn headers(parser: &mut Parser, head: &str) -> Vec<(String, HeaderValue)> {
        let mut buf = BytesMut::from(head.as_bytes());
        let parsed = parser.parse(&mut buf, 64 * 1024, 100, 1024);
        let head = parsed.expect("valid head").expect("whole head");
        let map = head.request.headers();
        map.iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
            .collect()
    }

    /// Names taken from the cache are exactly what a fresh parser gives, whether the names at
    /// each position repeat, change case, change, or are too long to cache.
    #[test]
    fn cached_names_match_a_fresh_parse() {
        let long = format!("X-{}", "a".repeat(CACHED_NAME_LEN));
        let heads = [
            "GET / HTTP/1.1\r\nHost: a\r\nX-Custom: 1\r\nAccept: */*\r\n\r\n".to_owned(),
            "GET / HTTP/1.1\r\nHOST: a\r\nx-custom: 1\r\nAccept: */*\r\n\r\n".to_owned(),
            format!("GET / HTTP/1.1\r\nHost: a\r\n{long}: 1\r\nAccept: */*\r\nX-Other: 2\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Custom: 1\r\nAccept: */*\r\nX-Other: 2\r\n\r\n"
                .to_owned(),
            "GET / HTTP/1.1\r\nAccept: */*\r\nHost: a\r\n\r\n".to_owned(),
        ];
        let mut warm = Parser::default();
        for head in &heads {
            assert_eq!(
                headers(&mut warm, head),
                headers(&mut Parser::default(), head)
            );
        }
    }

    /// Parses `head` with a fresh parser: `Ok(true)` for a whole head, `Ok(false)` while it is
    /// still partial.
    fn parse(
        head: &[u8],
        max_header_bytes: usize,
        max_headers: usize,
    ) -> Result<bool, EngineError> {
        let mut buf = BytesMut::from(head);
        let parsed = Parser::default().parse(&mut buf, max_header_bytes, max_headers, 1024);
        parsed.map(|head| head.is_some())
    }

    /// The cache answers for the first `CACHED_NAMES` positions, names up to `CACHED_NAME_LEN`
    /// bytes; a longer name ends the cached prefix there, so later positions are not cached
    /// under the wrong position.
    #[test]
    fn the_name_cache_holds_a_prefix_of_positions_within_its_bounds() {
        let cached = |parser: &Parser| -> Vec<usize> {
            parser.names.entries.iter().map(|entry| entry.len).collect()
        };
        let many: String = (0..CACHED_NAMES + 2)
            .map(|i| format!("x-{i:02}: v\r\n"))
            .collect();
        let mut parser = Parser::default();
        headers(
            &mut parser,
            &format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
        );
        assert_eq!(cached(&parser).len(), CACHED_NAMES);

        let longest = "n".repeat(CACHED_NAME_LEN);
        let mut parser = Parser::default();
        headers(
            &mut parser,
            &format!("GET / HTTP/1.1\r\nHost: a\r\n{longest}: 1\r\n\r\n"),
        );
        assert_eq!(cached(&parser), [4, CACHED_NAME_LEN]);

        let too_long = "n".repeat(CACHED_NAME_LEN + 1);
        let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{too_long}: 1\r\nAccept: */*\r\n\r\n");
        let mut parser = Parser::default();
        headers(&mut parser, &head);
        assert_eq!(cached(&parser), [4]);
    }

    #[test]
    fn release_memory_gives_back_the_scratch_space_and_the_cache() {
        let mut parser = Parser::default();
        headers(
            &mut parser,
            "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        );
        parser.release_memory();
        assert_eq!(parser.validated.capacity(), 0);
        assert_eq!(parser.names.entries.capacity(), 0);
    }

    /// `max_header_bytes` is the most a head may take: a partial head of exactly that many
    /// bytes is still waited for, one byte more is refused.
    #[test]
    fn the_head_limit_is_inclusive_while_the_head_arrives() {
        let partial = b"GET / HTTP/1.1\r\nHost: a";
        assert_eq!(parse(partial, partial.len(), 100), Ok(false));
        let refused = parse(partial, partial.len() - 1, 100);
        assert_eq!(
            refused.map_err(|e| e.status),
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    /// Past the headers parsed on the stack, `max_headers` still decides.
    #[test]
    fn max_headers_above_the_stack_buffer_is_honoured() {
        let fields: String = (0..STACK_HEADERS + 10)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        let total = STACK_HEADERS + 11;
        assert_eq!(parse(head.as_bytes(), 64 * 1024, total), Ok(true));
        let refused = parse(head.as_bytes(), 64 * 1024, total - 1);
        assert_eq!(refused, Err(EngineError::too_many_headers()));
    }

    /// RFC 9112 §9.3: an HTTP/1.0 connection stays open only when a `Connection` header
    /// lists `keep-alive`, alone or among other options.
    #[test]
    fn http_1_0_stays_open_when_keep_alive_is_listed() {
        for (connection, close) in [
            ("keep-alive", false),
            ("Upgrade, Keep-Alive", false),
            ("Upgrade", true),
        ] {
            let mut buf = BytesMut::from(
                format!("GET / HTTP/1.0\r\nConnection: {connection}\r\n\r\n").as_bytes(),
            );
            let head = Parser::default().parse(&mut buf, 1024, 100, 1024);
            let head = head.expect("valid head").expect("whole head");
            assert_eq!(head.meta.close, close, "{connection}");
        }
    }

    /// Empty lines before a request line are skipped, so a head made of nothing else that
    /// outgrows the limit has no method to call too long: it is a bad request line.
    #[test]
    fn an_outgrown_head_of_empty_lines_is_a_bad_request_line() {
        let status = |head: &[u8]| parse(head, 4, 100).map_err(|e| e.status);
        assert_eq!(status(b"\r\n\r\n\r\n"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(status(b"\r\nGETGET"), Err(StatusCode::NOT_IMPLEMENTED));
    }

    /// The refused ones first: `ab%41[` is where a wrong step past an escape shows, and a
    /// step that never moves would hang on the first valid escape instead of failing.
    #[test]
    fn hosts_the_grammar_allows_and_refuses() {
        let invalid = [
            "a%4", "a%4g", "ab%41[", "a%", "[]", "[zz]", "[::1]x", "[::1", "a:b", "a b", "u@a",
        ];
        for host in invalid {
            assert!(!valid_host(host.as_bytes()), "{host:?} was accepted");
        }
        let valid = [
            "a",
            "a:80",
            "a:",
            "127.0.0.1",
            "a%41b",
            "%41",
            "[::1]",
            "[::1]:80",
            "[2001:db8::1.2.3.4]",
        ];
        for host in valid {
            assert!(valid_host(host.as_bytes()), "{host:?} was refused");
        }
    }

    #[test]
    fn a_cached_host_is_only_the_last_one_found_valid() {
        let mut cache = HostCache::default();
        let v11 = Version::HTTP_11;
        assert!(cache.check(Some(b"a:80"), 1, v11).is_ok());
        assert_eq!(cache.0, b"a:80", "remembered once valid");
        assert!(cache.check(Some(b"a:80"), 1, v11).is_ok());
        assert!(
            cache.check(Some(b"a:80"), 2, v11).is_err(),
            "two Hosts, cached or not"
        );
        assert!(cache.check(Some(b"a b"), 1, v11).is_err());
        assert_eq!(cache.0, b"a:80", "an invalid one is not remembered");
        assert!(cache.check(None, 0, v11).is_err());
        assert!(cache.check(Some(b""), 1, v11).is_err());
    }

    /// The reason, sent as the 400's body, names what is wrong with the Host.
    #[test]
    fn an_empty_host_is_refused_as_empty() {
        let empty = check_host(Some(b""), 1, Version::HTTP_11);
        assert_eq!(empty, Err(EngineError::bad_request("empty Host header")));
    }
}
