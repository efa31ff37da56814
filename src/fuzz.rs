//! Entry points for the cargo-fuzz targets in `fuzz/`; compiled only under `--cfg fuzzing`,
//! which cargo-fuzz sets. They reach the crate-private wire format (request-head parser, body
//! decoder) that the public API hides, take arbitrary bytes, and panic only when an invariant
//! breaks. The whole-connection target lives in `fuzz/` and uses the public API alone.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Version};

use crate::proto::decode::{Decoded, Decoder};
use crate::proto::request::{Framing, Head, Parser};
use crate::proto::trusted::Validated;
use crate::{BodyError, Config};

/// What one `Parser::parse` call (or the body after it) produced, for comparing two runs.
#[derive(Debug)]
enum Step {
    /// A head (its `Debug` rendering) and how many bytes it took off the buffer.
    Head(String, usize),
    /// A refused head or a failed body: its status, and its reason for the failure report.
    Refused(u16, #[allow(dead_code)] &'static str),
}

impl Step {
    /// Same head, or same status: which check fires first may depend on how much is buffered
    /// (a size limit may trip before a syntax error further on is seen).
    fn agrees(&self, other: &Step) -> bool {
        match (self, other) {
            (Step::Head(a, n), Step::Head(b, m)) => a == b && n == m,
            (Step::Refused(a, _), Step::Refused(b, _)) => a == b,
            _ => false,
        }
    }
}

/// Parses `data` as a pipeline of request heads, the way the connection reader does: parse the
/// front of a `BytesMut`, decode the body the head announces, repeat; when more bytes are
/// needed, append the next read. The first byte sets the read size.
///
/// Invariants: no panic; a parsed head came off the front of the buffer, ended with LF and fit
/// the header limit; `None` consumed nothing; the head's framing, version and `Host`
/// agree with its headers (`Framing::Length(n)` implies `0 < n <= max_body`); and reading the
/// input in small pieces gives the same steps as reading it at once, except that a size limit
/// (`413`, `414`, `431`), which only a partial head or body can trip, may replace a final
/// refusal found further on.
pub fn parse_request(data: &[u8]) {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(first % 64) + 1;
    let whole = parse_pipeline(data, data.len().max(1));
    let split = parse_pipeline(data, read_size);
    let steps = whole.len().max(split.len());
    let Some(i) = (0..steps).find(|&i| match (whole.get(i), split.get(i)) {
        (Some(a), Some(b)) => !a.agrees(b),
        _ => true,
    }) else {
        return;
    };
    let (a, b) = (whole.get(i), split.get(i));
    let limit = |s: &Option<&Step>| matches!(s, Some(Step::Refused(413 | 414 | 431, _)));
    let refused = |s: &Option<&Step>| matches!(s, Some(Step::Refused(..)));
    assert!(
        refused(&a) && refused(&b) && (limit(&a) || limit(&b)) && i + 1 == steps,
        "reading in pieces changed step {i}: {a:?} vs {b:?}\nwhole: {whole:?}\nsplit: {split:?}"
    );
}

/// One run of [`parse_request`]: the steps taken reading `data` `read_size` bytes at a time.
fn parse_pipeline(data: &[u8], read_size: usize) -> Vec<Step> {
    let config = Config::default();
    let mut parser = Parser::default();
    let mut input = data.chunks(read_size);
    let mut buf = BytesMut::new();
    let mut steps = Vec::new();
    loop {
        let before = buf.clone();
        let parsed = parser.parse(
            &mut buf,
            config.max_header_bytes,
            config.max_headers,
            config.max_body_bytes,
        );
        match parsed {
            Ok(Some(head)) => {
                let used = before.len() - buf.len();
                assert_eq!(
                    &before[used..],
                    &buf[..],
                    "the head must come off the front"
                );
                assert!(used <= config.max_header_bytes, "head over the limit");
                assert_eq!(before[used - 1], b'\n', "a head ends with LF");
                check_head(&head, config.max_body_bytes);
                steps.push(Step::Head(format!("{:?}", head.request), used));
                // The reader bounds trailers by the header limit too.
                let limits = (config.max_body_bytes, config.max_header_bytes);
                let Some(mut decoder) = Decoder::new(head.meta.framing, limits.0, limits.1) else {
                    continue;
                };
                // Skip the body exactly, reading more as the decoder asks.
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Decoded::Data(_)) => {}
                        Ok(Decoded::Trailers(_) | Decoded::Done) => break,
                        Ok(Decoded::NeedMore) => match input.next() {
                            Some(more) => buf.extend_from_slice(more),
                            None => return steps,
                        },
                        Err(e) => {
                            steps.push(Step::Refused(e.status().as_u16(), reason(&e)));
                            return steps;
                        }
                    }
                }
            }
            Ok(None) => {
                // Nothing is consumed (the parser may rewrite an `HTTP/1.x` version in place).
                assert_eq!(buf.len(), before.len(), "an incomplete head was consumed");
                assert!(
                    buf.len() <= config.max_header_bytes,
                    "buffered past the limit"
                );
                match input.next() {
                    Some(more) => buf.extend_from_slice(more),
                    None => return steps,
                }
            }
            Err(error) => {
                let status = error.status.as_u16();
                assert!((400..600).contains(&status), "refusal with status {status}");
                steps.push(Step::Refused(status, error.reason));
                return steps;
            }
        }
    }
}

/// The head's derived fields agree with its headers.
fn check_head(head: &Head, max_body: u64) {
    let req = &head.request;
    let headers = req.headers();
    assert!(matches!(req.version(), Version::HTTP_10 | Version::HTTP_11));
    if req.version() == Version::HTTP_11 {
        let hosts = headers.get_all(header::HOST).iter().count();
        assert!(hosts == 1 || (hosts == 0 && req.uri().authority().is_some()));
    }
    let has_te = headers.contains_key(header::TRANSFER_ENCODING);
    let has_cl = headers.contains_key(header::CONTENT_LENGTH);
    assert!(!(has_te && has_cl), "both framings accepted");
    match head.meta.framing {
        Framing::Empty => assert!(!has_te),
        Framing::Length(n) => assert!(has_cl && n > 0 && n <= max_body, "length {n}"),
        Framing::Chunked => assert!(has_te && req.version() == Version::HTTP_11),
    }
    assert!(!head.meta.expect_continue || req.version() == Version::HTTP_11);
    if req.version() == Version::HTTP_10 && !headers.contains_key(header::CONNECTION) {
        assert!(head.meta.close, "HTTP/1.0 without keep-alive must close");
    }
}

/// The reason a body failed, for the failure report.
fn reason(error: &BodyError) -> &'static str {
    match error {
        BodyError::Malformed(why) => why,
        _ => "",
    }
}

/// How one decoding run ended.
#[derive(Debug, PartialEq)]
enum End {
    Done(Option<HeaderMap>),
    /// The error's status and reason. Two runs must agree on the status only: which check
    /// fires first may depend on how much is buffered, but never whether one fires.
    Failed(u16, &'static str),
    /// The input ran out first.
    Incomplete,
}

/// Decodes `data[2..]` as a request body. `data[0]` picks the framing (even: chunked; odd:
/// `Content-Length` with a length from the data) and the body and trailer limits; `data[1]`
/// seeds the split points.
///
/// Invariants: no panic; decoding the bytes at once and in pieces yields the same data, the same
/// trailers, the same end and the same number of bytes consumed; never more than `max_body`
/// bytes; a `Content-Length` body ends after exactly its length.
pub fn decode_body(data: &[u8]) {
    let [mode, seed, body @ ..] = data else {
        return;
    };
    let max_body = [1, 16, 100, 1000, 1 << 20][usize::from(mode >> 1) % 5];
    let max_trailer_bytes = if mode & 0x80 == 0 { 256 } else { 16 * 1024 };
    let framing = if mode & 1 == 0 {
        Framing::Chunked
    } else {
        // The parser refuses a length over the limit and maps 0 to no body at all.
        let n = u64::from(body.first().copied().unwrap_or(0)) * 7 + 1;
        Framing::Length(n.min(max_body))
    };
    let limits = (framing, max_body, max_trailer_bytes);
    let mut whole = decode(limits, std::iter::once(body));
    let mut split = decode(limits, split_points(body, *seed));
    for (_, end, _) in [&mut whole, &mut split] {
        if let End::Failed(_, why) = end {
            *why = "";
        }
    }
    assert_eq!(whole, split, "splitting the input changed the decoding");
    let (out, end, consumed) = whole;
    assert!(out.len() as u64 <= max_body, "more than max_body");
    assert!(out.len() <= consumed && consumed <= body.len());
    if let (Framing::Length(n), End::Done(_)) = (framing, &end) {
        assert_eq!((out.len() as u64, consumed as u64), (n, n));
    }
}

/// One run of [`decode_body`]: decodes the pieces in order, feeding the next one whenever the
/// decoder asks for more. Returns the body data, how it ended, and the bytes consumed.
fn decode<'a>(
    (framing, max_body, max_trailer_bytes): (Framing, u64, usize),
    mut pieces: impl Iterator<Item = &'a [u8]>,
) -> (Bytes, End, usize) {
    let mut decoder =
        Decoder::new(framing, max_body, max_trailer_bytes).expect("a framing with a body");
    let (mut buf, mut out, mut fed) = (BytesMut::new(), Vec::new(), 0);
    let end = loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(bytes)) => {
                assert!(!bytes.is_empty(), "empty data frame");
                out.extend_from_slice(&bytes);
            }
            Ok(Decoded::Trailers(map)) => break End::Done(Some(map)),
            Ok(Decoded::Done) => break End::Done(None),
            Ok(Decoded::NeedMore) => match pieces.next() {
                Some(piece) => {
                    fed += piece.len();
                    buf.extend_from_slice(piece);
                }
                None => break End::Incomplete,
            },
            Err(e) => break End::Failed(e.status().as_u16(), reason(&e)),
        }
    };
    (Bytes::from(out), end, fed - buf.len())
}

/// `body` in pieces of 1 to 16 bytes, sizes drawn from a xorshift generator seeded by `seed`.
fn split_points(body: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let (piece, tail) = rest.split_at((state as usize % 16 + 1).min(rest.len()));
        rest = tail;
        Some(piece)
    })
}

/// Header values built without a second validation (`proto::trusted`) from any head httparse
/// accepts, parsed as the engine's parser does (default settings, header array not
/// pre-initialised). Invariants: each value is the bytes httparse found, and the checked
/// constructor `HeaderValue::from_bytes` accepts them and gives an equal value.
pub fn trusted(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; 64];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(&bytes, &mut headers) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return,
    }
    let mut validated = Validated::default();
    validated.record(&bytes, request.headers);
    for (_, value, at) in validated.fields(&bytes) {
        assert_eq!(value.as_bytes(), &bytes[at.clone()]);
        let checked = http::HeaderValue::from_bytes(&bytes[at]);
        assert_eq!(
            checked.ok(),
            Some(value),
            "httparse accepted a value http refuses"
        );
    }
}
