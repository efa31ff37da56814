//! Property: any valid pipelined byte stream, split at arbitrary points into reads, yields the
//! same requests and the same responses as the stream sent in one piece.
//!
//! proptest generates pipelines of 1 to 19 valid requests (GET, HEAD and OPTIONS on a few
//! routes; POST with a `Content-Length` body; POST with a chunked body of random chunk sizes,
//! optional chunk extensions and trailers; random header-name casing; optional
//! `Expect: 100-continue`; optionally `Connection: close` on the last one). Each stream is
//! served over an in-memory duplex twice: once written whole, once in random-sized pieces where
//! the client waits until the server has read each piece before writing the next, so the
//! server's reads really end at those points (that is counted and asserted, not hoped for).
//! The handlers echo what they saw (method, target, body length and FNV-1a hash, trailer
//! names), so "same requests" is checked against what the generator sent, and the two
//! response streams must be byte-identical apart from the clock-dependent `date:` and
//! `server-timing:` headers.

use std::future::IntoFuture;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use pipelined::{get, Body, Protocol, ResponseBody, Router};
use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::watch;

/// Turns a hung exchange into a failure; never decides what passes.
const HANG: Duration = Duration::from_secs(20);

/// How a generated request frames its body.
#[derive(Clone, Debug)]
enum Framing {
    None,
    Length,
    Chunked {
        /// Chunk sizes, used in turn until the body is spent.
        cuts: Vec<usize>,
        extensions: bool,
        upper_hex: bool,
        trailers: Vec<(&'static str, u32)>,
    },
}

#[derive(Clone, Debug)]
struct Req {
    method: &'static str,
    target: String,
    body: Vec<u8>,
    framing: Framing,
    /// Picks the casing of header names (and of `chunked`).
    casing: u8,
    expect_continue: bool,
    extra_header: bool,
}

impl Req {
    /// Whether the server answers `100 Continue` before this request's response.
    fn gets_continue(&self) -> bool {
        self.expect_continue
            && match self.framing {
                Framing::None => false,
                Framing::Length => !self.body.is_empty(),
                Framing::Chunked { .. } => true,
            }
    }

    /// The line the echo handler answers with.
    fn echo(&self) -> String {
        let trailers = match &self.framing {
            Framing::Chunked { trailers, .. } => {
                let mut names: Vec<&str> = trailers.iter().map(|(name, _)| *name).collect();
                names.sort_unstable();
                names.dedup();
                names.join(",")
            }
            _ => String::new(),
        };
        format!(
            "{} {} len={} fnv={:016x} trailers={trailers}\n",
            self.method,
            self.target,
            self.body.len(),
            fnv1a(&self.body)
        )
    }

    fn write_to(&self, out: &mut Vec<u8>, close: bool) {
        let name = |n: &str| cased(n, self.casing);
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        out.extend_from_slice(format!("{}: example.test\r\n", name("host")).as_bytes());
        if self.extra_header {
            out.extend_from_slice(format!("{}: pipelined\r\n", name("user-agent")).as_bytes());
        }
        if self.expect_continue {
            out.extend_from_slice(format!("{}: 100-continue\r\n", name("expect")).as_bytes());
        }
        if close {
            out.extend_from_slice(format!("{}: close\r\n", name("connection")).as_bytes());
        }
        match &self.framing {
            Framing::None => out.extend_from_slice(b"\r\n"),
            Framing::Length => {
                let len = self.body.len();
                out.extend_from_slice(
                    format!("{}: {len}\r\n\r\n", name("content-length")).as_bytes(),
                );
                out.extend_from_slice(&self.body);
            }
            Framing::Chunked {
                cuts,
                extensions,
                upper_hex,
                trailers,
            } => {
                let te = format!("{}: {}\r\n\r\n", name("transfer-encoding"), name("chunked"));
                out.extend_from_slice(te.as_bytes());
                let size = |n: usize| match (upper_hex, extensions) {
                    (true, false) => format!("{n:X}\r\n"),
                    (false, false) => format!("{n:x}\r\n"),
                    (true, true) => format!("{n:X};ext=\"v\"\r\n"),
                    (false, true) => format!("{n:x} ; name\r\n"),
                };
                let mut rest = &self.body[..];
                for &cut in cuts.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                    out.extend_from_slice(size(chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                    rest = tail;
                }
                out.extend_from_slice(size(0).as_bytes());
                for (field, value) in trailers {
                    out.extend_from_slice(format!("{}: {value}\r\n", name(field)).as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// `name` in one of four casings: lower, Title-Case, UPPER, or a mix picked by `casing`'s bits.
fn cased(name: &str, casing: u8) -> String {
    match casing % 4 {
        0 => name.to_ascii_lowercase(),
        1 => name
            .split('-')
            .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
            .collect::<Vec<_>>()
            .join("-"),
        2 => name.to_ascii_uppercase(),
        _ => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if (casing >> (i % 6 + 2)) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn target() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        Just("/".to_owned()),
        Just("/a".to_owned()),
        Just("/b/c".to_owned()),
        (0u32..1000).prop_map(|id| format!("/items/{id}")),
        Just("/missing".to_owned()),
    ];
    (path, any::<bool>()).prop_map(|(path, query)| {
        if query {
            format!("{path}?q=1&r=x")
        } else {
            path
        }
    })
}

fn request() -> impl Strategy<Value = Req> {
    let body = || prop::collection::vec(any::<u8>(), 0..300);
    let safe = (
        prop_oneof![Just("GET"), Just("HEAD"), Just("OPTIONS")],
        target(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(method, target, casing, extra_header)| Req {
            method,
            target,
            body: Vec::new(),
            framing: Framing::None,
            casing,
            expect_continue: false,
            extra_header,
        });
    let with_length = (target(), body(), any::<u8>(), any::<bool>(), any::<bool>()).prop_map(
        |(target, body, casing, expect_continue, extra_header)| Req {
            method: "POST",
            target,
            body,
            framing: Framing::Length,
            casing,
            expect_continue,
            extra_header,
        },
    );
    let trailer = (
        prop_oneof![Just("x-sum"), Just("x-note"), Just("etag")],
        any::<u32>(),
    );
    let chunked = (
        (target(), body(), any::<u8>(), any::<bool>()),
        prop::collection::vec(1usize..100, 1..8),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(trailer, 0..3),
    )
        .prop_map(
            |((target, body, casing, expect_continue), cuts, extensions, upper_hex, trailers)| {
                Req {
                    method: "POST",
                    target,
                    body,
                    framing: Framing::Chunked {
                        cuts,
                        extensions,
                        upper_hex,
                        trailers,
                    },
                    casing,
                    expect_continue,
                    extra_header: false,
                }
            },
        );
    prop_oneof![3 => safe, 1 => with_length, 1 => chunked]
}

/// Echoes what the handler saw; see [`Req::echo`].
async fn echo(req: Request<Body>) -> Response<ResponseBody> {
    let line = format!("{} {}", req.method(), req.uri());
    let text = match req.into_body().collect().await {
        Ok(collected) => {
            let mut trailers: Vec<String> = collected
                .trailers()
                .into_iter()
                .flat_map(|map| map.keys().map(|k| k.as_str().to_owned()))
                .collect();
            trailers.sort_unstable();
            let body = collected.to_bytes();
            format!(
                "{line} len={} fnv={:016x} trailers={}\n",
                body.len(),
                fnv1a(&body),
                trailers.join(",")
            )
        }
        Err(e) => format!("{line} body error: {e}\n"),
    };
    Response::new(ResponseBody::from(text))
}

fn app() -> Router {
    let methods = || get(echo).post(echo).options(echo);
    Router::new()
        .route("/", methods())
        .route("/a", methods())
        .route("/b/c", methods())
        .route("/items/{id}", methods())
        .fallback(echo)
}

/// The server's half of the duplex, counting the bytes and the reads the server made.
struct Counted {
    io: DuplexStream,
    /// (bytes read, non-empty reads)
    progress: watch::Sender<(usize, usize)>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.progress.send_modify(|(bytes, reads)| {
                *bytes += n;
                *reads += 1;
            });
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One parsed response.
#[derive(Debug)]
struct Parsed {
    status: u16,
    content_length: Option<usize>,
    body: Vec<u8>,
}

/// Reads responses off the client's half, keeping every byte it reads.
struct ResponseReader<R> {
    io: R,
    raw: Vec<u8>,
    pos: usize,
}

impl<R: AsyncRead + Unpin> ResponseReader<R> {
    async fn fill(&mut self) {
        let n = self
            .io
            .read_buf(&mut self.raw)
            .await
            .expect("reading responses");
        assert!(n > 0, "EOF before every response arrived");
    }

    /// The next response; `head` says whether it answers a HEAD request (no body).
    async fn next(&mut self, head: bool) -> Parsed {
        let (status, content_length, len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut fields);
            match res
                .parse(&self.raw[self.pos..])
                .expect("a well-formed response head")
            {
                httparse::Status::Complete(len) => {
                    let content_length = res
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap());
                    break (res.code.unwrap(), content_length, len);
                }
                httparse::Status::Partial => self.fill().await,
            }
        };
        self.pos += len;
        let body_len = if head || status < 200 {
            0
        } else {
            content_length.expect("echo responses have a Content-Length")
        };
        while self.raw.len() < self.pos + body_len {
            self.fill().await;
        }
        let body = self.raw[self.pos..self.pos + body_len].to_vec();
        self.pos += body_len;
        Parsed {
            status,
            content_length,
            body,
        }
    }
}

/// Serves `stream` on a fresh connection, written whole (`pieces` empty) or in pieces of the
/// given sizes (used in turn), and reads one response per request (plus any `100 Continue`),
/// then half-closes and reads to EOF. Returns the response bytes and the server's read count.
async fn exchange(reqs: &[Req], stream: &[u8], pieces: &[usize]) -> (Vec<u8>, usize) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (progress, mut consumed) = watch::channel((0, 0));
    let server = Counted {
        io: server,
        progress,
    };
    // The HTTP/1.1 engine itself: no preface sniffing, so every read is the engine's.
    let connection = pipelined::serve_connection(server, app()).protocol(Protocol::Http1);
    let serving = tokio::spawn(connection.into_future());
    let (from_server, mut to_server) = tokio::io::split(client);
    let write = async {
        if pieces.is_empty() {
            to_server.write_all(stream).await.unwrap();
            return;
        }
        let mut rest = stream;
        let mut written = 0;
        for &size in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            to_server.write_all(piece).await.unwrap();
            written += piece.len();
            rest = tail;
            // The next piece goes out only once the server has read this one, so no server
            // read can span two pieces.
            consumed
                .wait_for(|&(bytes, _)| bytes >= written)
                .await
                .expect("the server dropped its half early");
        }
    };
    let mut reader = ResponseReader {
        io: from_server,
        raw: Vec::new(),
        pos: 0,
    };
    let read = async {
        for req in reqs {
            if req.gets_continue() {
                assert_eq!(reader.next(false).await.status, 100);
            }
            let res = reader.next(req.method == "HEAD").await;
            check(req, &res);
        }
    };
    tokio::join!(write, read);
    // Every response is in; only now half-close, so that no response can be affected by the
    // end of input (the last one would otherwise say `connection: close` depending on timing).
    to_server.shutdown().await.unwrap();
    let mut rest = Vec::new();
    reader.io.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "bytes after the last response: {rest:?}");
    serving.await.expect("the connection task panicked");
    let reads = consumed.borrow().1;
    (reader.raw, reads)
}

/// The response answers `req`: 200, and the echo of exactly what was sent.
fn check(req: &Req, res: &Parsed) {
    let echo = req.echo();
    assert_eq!(res.status, 200, "{req:?}");
    if req.method == "HEAD" {
        assert_eq!(res.content_length, Some(echo.len()), "{req:?}");
        assert!(res.body.is_empty());
    } else {
        assert_eq!(String::from_utf8_lossy(&res.body), echo, "{req:?}");
    }
}

/// The response bytes without the header lines that depend on the clock: `date:` may tick
/// between the two runs, and `server-timing:` reports how long the handler took.
fn without_clock(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .split_inclusive("\r\n")
        .filter(|line| !line.starts_with("date: ") && !line.starts_with("server-timing: "))
        .collect()
}

fn run(reqs: &[Req], close_last: bool, pieces: &[usize]) {
    let mut stream = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        req.write_to(&mut stream, close_last && i + 1 == reqs.len());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let both = async {
            let (whole, _) = exchange(reqs, &stream, &[]).await;
            let (split, reads) = exchange(reqs, &stream, pieces).await;
            (whole, split, reads)
        };
        let (whole, split, reads) = tokio::time::timeout(HANG, both)
            .await
            .expect("an exchange hung");
        let used_pieces = count_pieces(stream.len(), pieces);
        assert!(
            reads >= used_pieces,
            "{used_pieces} pieces arrived in only {reads} server reads"
        );
        assert_eq!(without_clock(&whole), without_clock(&split));
    });
}

/// How many pieces `len` bytes are cut into by `pieces` (used in turn).
fn count_pieces(len: usize, pieces: &[usize]) -> usize {
    let mut left = len;
    pieces
        .iter()
        .cycle()
        .take_while(|&&size| {
            let more = left > 0;
            left = left.saturating_sub(size);
            more
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn split_reads_give_the_same_requests_and_responses(
        reqs in prop::collection::vec(request(), 1..20),
        close_last in any::<bool>(),
        pieces in prop::collection::vec(
            prop_oneof![1usize..=3, 1usize..=40, 40usize..=700],
            1..32,
        ),
    ) {
        run(&reqs, close_last, &pieces);
    }
}

/// The splitting itself is real: one request written a byte at a time reaches the server in
/// at least as many reads as it has bytes.
#[test]
fn byte_at_a_time_means_one_read_per_byte() {
    let req = Req {
        method: "POST",
        target: "/items/7?q=1&r=x".to_owned(),
        body: b"hello, world".to_vec(),
        framing: Framing::Chunked {
            cuts: vec![5, 1],
            extensions: true,
            upper_hex: true,
            trailers: vec![("x-sum", 7)],
        },
        casing: 3,
        expect_continue: true,
        extra_header: true,
    };
    run(std::slice::from_ref(&req), false, &[1]);
}
