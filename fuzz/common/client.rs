//! One client connection against a server that sends arbitrary bytes: `pipelined::client` over
//! `tokio::io::duplex` calls 1–8 GET/HEAD requests before any answer; the server half reads
//! them, writes the input as its answer and shuts down its write side. Shared by the
//! `client_responses` fuzz target and by `tests/fuzz_client_corpus.rs`, which replays the
//! corpus under plain `cargo test`.
//!
//! Input: byte 0, bits 0–2: how many requests, minus one; bits 3–4: `max_head_bytes` (64 KiB,
//! 32, 100 or 1000, so that short inputs reach the limit); bit 5: `max_body_buffer(1)` (the
//! reader pauses after every byte the caller has not taken). Byte 1: bit i makes request i a
//! HEAD. Byte 2: the size (1–64) of the pieces the second run feeds. The rest is the server's
//! answer.
//!
//! Every input runs twice, the answer in one write and then in pieces of that size (each piece
//! a read of its own), each on a fresh current-thread runtime whose clock is paused: a run
//! that stops making progress jumps straight to the timeout, so a hang fails at once and
//! deterministically. What must hold (the guarantees in `pipelined::client`'s docs):
//!
//! 1. No panic, and no hang: every request's future and body resolve, and the connection
//!    future ends, once the server has closed.
//! 2. The requests go on the wire in the order they were called.
//! 3. Every request has exactly one outcome, and they run: answers; then at most one failure
//!    that says what broke (`Protocol`, `Incomplete`, `Io`, in a future or in a body); then
//!    only `NotAnswered`/`NotSent`. Nothing is answered after a failure, nor after an answer
//!    the server ends the connection with (`Connection: close`, HTTP/1.0 without keep-alive,
//!    a body delimited by the close, Transfer-Encoding beside Content-Length).
//! 4. An answer is final (no 1xx); a HEAD, 204 or 304 answer has no body and no trailers;
//!    trailers come only with a chunked body; a body framed by Content-Length that ended has
//!    exactly that many bytes, and the client accepted only a valid, consistent length; a
//!    body that ended keeps what its `size_hint` and `is_end_stream` said before it was read.
//! 5. A request failed only if the connection future ended with an error.
//! 6. Split-invariance: both runs give the same outcomes (heads, body bytes, trailers, how
//!    each body ended, error kinds).

use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use pipelined::bytes::Bytes;
use pipelined::client::{Builder, ErrorKind, ResponseFuture};
use pipelined::http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Paused-clock time after which a run counts as hung; nothing in a run sleeps, so the clock
/// only gets there when every task is stuck.
const HANG: Duration = Duration::from_secs(5);

/// What one request came to: the response its future resolved to, or the kind of error the
/// future failed with.
pub type Outcome = Result<Answer, ErrorKind>;

/// A response as the caller saw it, read to the end of its body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// The body bytes that arrived, up to its end or its failure.
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    /// How the body ended: `Err` with the kind of its error.
    pub end: Result<(), ErrorKind>,
}

/// The client side of a run, read off the input's first three bytes.
struct Pipeline {
    /// One entry per request, in call order: whether it is a HEAD (else a GET).
    heads: Vec<bool>,
    builder: Builder,
    /// The piece size of the split run.
    piece: usize,
}

/// The outcomes of one run, and how the connection future ended.
struct Run {
    outcomes: Vec<Outcome>,
    connection: Result<(), ErrorKind>,
}

/// Runs `data` whole and in pieces; panics when an invariant in the module docs breaks.
pub fn check(data: &[u8]) {
    let [shape, heads, piece, answer @ ..] = data else {
        return;
    };
    let max_head_bytes = [64 * 1024, 32, 100, 1000][usize::from(shape >> 3 & 3)];
    let mut builder = Builder::new().max_head_bytes(max_head_bytes);
    if shape & 0x20 != 0 {
        builder = builder.max_body_buffer(1);
    }
    let pipeline = Pipeline {
        heads: (0..=shape & 7).map(|i| heads >> i & 1 == 1).collect(),
        builder,
        piece: usize::from(piece % 64) + 1,
    };
    // One write that the pipe holds whole, so the client reads it in one go.
    let whole = run(&pipeline, answer, answer.len().max(64 * 1024));
    check_outcomes(&pipeline.heads, &whole.outcomes, whole.connection);
    let split = run(&pipeline, answer, pipeline.piece);
    check_outcomes(&pipeline.heads, &split.outcomes, split.connection);
    assert_eq!(
        whole.outcomes, split.outcomes,
        "reads of at most {} bytes changed the outcomes",
        pipeline.piece
    );
}

/// One run on its own runtime: the answer goes through a pipe of `piece` bytes, written
/// `piece` bytes at a time, so no read of the client's gets more than that.
fn run(pipeline: &Pipeline, answer: &[u8], piece: usize) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        tokio::time::timeout(HANG, exchange(pipeline, answer, piece))
            .await
            .expect("the client hung")
    })
}

/// Calls every request before any answer (as a pipelining caller does), then runs the server
/// beside the callers reading their outcomes in order, and waits for the connection to end.
async fn exchange(pipeline: &Pipeline, answer: &[u8], piece: usize) -> Run {
    let (ours, theirs) = tokio::io::duplex(piece);
    let (mut send, connection) = pipeline.builder.handshake::<_, Empty<Bytes>>(ours);
    let connection = tokio::spawn(connection);
    let mut calls = Vec::new();
    for &head in &pipeline.heads {
        let method = if head { Method::HEAD } else { Method::GET };
        let request = Request::builder()
            .method(method)
            .uri("http://fuzz/")
            .body(Empty::new())
            .expect("a valid request");
        calls.push(match send.ready().await {
            Ok(()) => Ok(tower::Service::call(&mut send, request)),
            Err(e) => Err(e.kind()),
        });
    }
    // No more calls: the connection may end once every response is read.
    drop(send);
    let outcomes = async {
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(outcome(call).await);
        }
        outcomes
    };
    let (theirs, outcomes) = tokio::join!(serve(theirs, &pipeline.heads, answer, piece), outcomes);
    let connection = connection
        .await
        .expect("the connection task panicked")
        .map_err(|e| e.kind());
    // Only now: dropped earlier, the server's end would fail the client's writes.
    drop(theirs);
    Run {
        outcomes,
        connection,
    }
}

/// The server: reads every request head (checking their order), then writes `answer` in
/// pieces and shuts down its write side. Returns its end, still open for reading.
async fn serve(mut io: DuplexStream, heads: &[bool], answer: &[u8], piece: usize) -> DuplexStream {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < heads.len() {
        let n = io.read(&mut buf).await.expect("reading the requests");
        assert!(n > 0, "the client closed before writing every request");
        got.extend_from_slice(&buf[..n]);
    }
    let mut rest = &got[..];
    for &head in heads {
        let line: &[u8] = if head { b"HEAD / " } else { b"GET / " };
        assert!(
            rest.starts_with(line),
            "requests written out of call order: {:?}",
            String::from_utf8_lossy(&got)
        );
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("counted")
            + 4;
        rest = &rest[end..];
    }
    assert!(rest.is_empty(), "more than the requests were written");
    for chunk in answer.chunks(piece) {
        if io.write_all(chunk).await.is_err() {
            // The client ended the connection (it found the answer broken).
            break;
        }
    }
    let _ = io.shutdown().await;
    io
}

/// Awaits one call's response and reads its body frame by frame to the end.
async fn outcome(call: Result<ResponseFuture, ErrorKind>) -> Outcome {
    let response = match call {
        Ok(future) => future.await,
        Err(kind) => return Err(kind),
    };
    let (parts, mut body) = match response {
        Ok(response) => response.into_parts(),
        Err(e) => return Err(e.kind()),
    };
    // What the body promises before any of it is read (a proxy would frame it by these).
    let (hint, empty) = (body.size_hint(), body.is_end_stream());
    let mut data = Vec::new();
    let mut trailers = None;
    let end = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(e.kind()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(bytes) => {
                    assert!(trailers.is_none(), "body data after the trailers");
                    data.extend_from_slice(&bytes);
                }
                Err(frame) => {
                    let map = frame.into_trailers().expect("data or trailers");
                    assert!(trailers.replace(map).is_none(), "two trailer sections");
                }
            },
        }
    };
    let len = data.len() as u64;
    assert!(
        end.is_err() || (hint.lower() <= len && hint.upper().is_none_or(|upper| len <= upper)),
        "{len} body bytes after a size hint of {hint:?}"
    );
    assert!(
        !empty || (len == 0 && trailers.is_none()),
        "a body that said it had ended went on"
    );
    Ok(Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: data,
        trailers,
        end,
    })
}

/// Invariants 3–5 over one run's outcomes (`heads`: which requests were HEAD).
pub fn check_outcomes(heads: &[bool], outcomes: &[Outcome], connection: Result<(), ErrorKind>) {
    assert_eq!(
        outcomes.len(),
        heads.len(),
        "not one outcome per request: {outcomes:#?}"
    );
    // Something failed, or the server said it closes: only NotAnswered/NotSent may follow.
    let mut over = false;
    let mut any_failed = false;
    for (i, (outcome, &head)) in outcomes.iter().zip(heads).enumerate() {
        let (failure, closes_after) = match outcome {
            Ok(answer) => {
                assert!(!over, "request {i} answered after the end: {outcomes:#?}");
                check_answer(answer, head);
                (answer.end.err(), closes(answer, head))
            }
            Err(kind) => (Some(*kind), false),
        };
        if let Some(kind) = failure {
            any_failed = true;
            let says_what_broke = !over
                && matches!(
                    kind,
                    ErrorKind::Protocol | ErrorKind::Incomplete | ErrorKind::Io
                );
            // Only a request still waiting for its head can be left unanswered.
            let unanswered =
                outcome.is_err() && matches!(kind, ErrorKind::NotAnswered | ErrorKind::NotSent);
            assert!(
                says_what_broke || unanswered,
                "request {i} failed with {kind:?} out of place: {outcomes:#?}"
            );
            over = true;
        }
        over |= closes_after;
    }
    assert!(
        !any_failed || connection.is_err(),
        "requests failed, yet the connection ended cleanly: {outcomes:#?}"
    );
}

/// Invariant 4 for one answer.
fn check_answer(answer: &Answer, head: bool) {
    let status = answer.status;
    assert!(
        !status.is_informational(),
        "a 1xx handed over as the final answer: {answer:?}"
    );
    let bodiless = head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        assert!(
            answer.body.is_empty() && answer.trailers.is_none() && answer.end.is_ok(),
            "a body on a HEAD/204/304 answer (HEAD: {head}): {answer:?}"
        );
        return;
    }
    if answer.headers.contains_key(TRANSFER_ENCODING) {
        assert!(
            answer.trailers.is_none() || chunked(&answer.headers),
            "trailers without chunked coding: {answer:?}"
        );
        return;
    }
    assert!(
        answer.trailers.is_none(),
        "trailers without chunked coding: {answer:?}"
    );
    if let Some(n) = content_length(&answer.headers) {
        let len = answer.body.len() as u64;
        assert!(
            len == n || (answer.end.is_err() && len < n),
            "{len} body bytes for Content-Length {n}: {answer:?}"
        );
    }
}

/// Whether nothing may be answered after `answer` (RFC 9112): the server said so (§9.3:
/// `Connection: close`, or HTTP/1.0 without `keep-alive`), its body ran to the close (§6.3
/// point 7, or point 4: a Transfer-Encoding that does not end in chunked), or its framing is
/// not to be trusted past it (§6.3 point 3: Transfer-Encoding beside Content-Length).
fn closes(answer: &Answer, head: bool) -> bool {
    let has = |token: &[u8]| {
        answer.headers.get_all(CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding is followed by a close.
    let te_on_1_0 =
        answer.version == Version::HTTP_10 && answer.headers.contains_key(TRANSFER_ENCODING);
    if has(b"close") || (answer.version == Version::HTTP_10 && !has(b"keep-alive")) || te_on_1_0 {
        return true;
    }
    let status = answer.status;
    if head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return false;
    }
    let headers = &answer.headers;
    match (
        headers.contains_key(TRANSFER_ENCODING),
        headers.contains_key(CONTENT_LENGTH),
    ) {
        (true, length) => length || !chunked(headers),
        (false, length) => !length,
    }
}

/// Whether the last transfer coding is chunked.
fn chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|last| last.as_bytes().rsplit(|&b| b == b',').next())
        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The length an accepted Content-Length says; panics when the client accepted one that is
/// not a decimal number, or a list of different ones (RFC 9112 §6.3 point 5).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut members = headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|member| {
            let digits = member.trim_ascii();
            let valid = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
            std::str::from_utf8(digits)
                .ok()
                .filter(|_| valid)
                .and_then(|s| s.parse::<u64>().ok())
        });
    let n = members.next()?.unwrap_or_else(|| {
        panic!("an invalid Content-Length accepted: {headers:?}");
    });
    assert!(
        members.all(|m| m == Some(n)),
        "conflicting Content-Length values accepted: {headers:?}"
    );
    Some(n)
}
