//! One connection fed arbitrary bytes: the input goes to `pipelined::serve_connection` over
//! `tokio::io::duplex` (the client half writes it all, shuts down its write side and reads to
//! EOF), and the server's output is checked. Shared by the `connection` fuzz target and by
//! `tests/fuzz_corpus.rs`, which replays the corpus under plain `cargo test`.
//!
//! What the output must be: a sequence of well-formed HTTP/1.1 responses and nothing else;
//! `100 Continue` interim responses aside, every response the service made carries its
//! dispatch number (`x-seq`, added by a wrapper around the router), and these must run
//! 0, 1, 2, … with none missing (invariants 1 and 4 of docs/ARCHITECTURE.md); a response without one is
//! a refusal by the engine and must close the connection; nothing follows a response that
//! closes it (invariant 5).

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use pipelined::{get, Body, BoxError, Config, Protocol, ResponseBody, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::util::BoxCloneService;
use tower::Service;

/// Turns a hung connection into a failure (the fuzzer's own `-timeout` would also catch it).
const HANG: Duration = Duration::from_secs(20);

/// Limits small enough that short inputs reach them (431, 413, too many headers).
pub fn config() -> Config {
    Config::default()
        .max_header_bytes(1024)
        .max_headers(16)
        .max_body_bytes(1000)
}

/// Serves `input` on one connection and panics unless the output is well formed.
pub fn check(input: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let dispatched = Arc::new(AtomicUsize::new(0));
    let output = runtime.block_on(exchange(input, Arc::clone(&dispatched)));
    check_output(&output, dispatched.load(Ordering::SeqCst));
}

/// Runs the server and the client side by side; returns everything the server wrote.
async fn exchange(input: &[u8], dispatched: Arc<AtomicUsize>) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut from_server, mut to_server) = tokio::io::split(client);
    // HTTP/1.1 only, as the checker is: a preface in the input is the engine's to refuse.
    let serve = pipelined::serve_connection(server, app(dispatched))
        .config(config())
        .protocol(Protocol::Http1)
        .into_future();
    let write = async {
        // The server may stop reading once it refused a request; that is not our failure.
        let _ = to_server.write_all(input).await;
        let _ = to_server.shutdown().await;
    };
    let read = async {
        let mut output = Vec::new();
        from_server
            .read_to_end(&mut output)
            .await
            .expect("reading the responses");
        output
    };
    let all = async { tokio::join!(serve, write, read).2 };
    tokio::time::timeout(HANG, all)
        .await
        .expect("the connection hung")
}

/// A tiny router whose handlers echo what they saw, wrapped so that every response the service
/// makes carries the number of its request in dispatch order.
fn app(
    dispatched: Arc<AtomicUsize>,
) -> BoxCloneService<Request<Body>, Response<ResponseBody>, BoxError> {
    let router = Router::new()
        .route("/", get(echo))
        .route("/items/{id}", get(echo).post(echo))
        .fallback(echo);
    BoxCloneService::new(tower::service_fn(move |req: Request<Body>| {
        let seq = dispatched.fetch_add(1, Ordering::SeqCst);
        let response = router.clone().call(req);
        async move {
            let mut response = response.await?;
            response
                .headers_mut()
                .insert("x-seq", HeaderValue::from(seq));
            Ok::<_, BoxError>(response)
        }
    }))
}

/// Reads the whole body and answers with the method, path and body length (or the body
/// error), and the method in `x-method` so the checker knows a HEAD response has no body.
async fn echo(req: Request<Body>) -> Response<ResponseBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (status, text) = match req.into_body().collect().await {
        Ok(body) => (
            StatusCode::OK,
            format!("{method} {path} {}\n", body.to_bytes().len()),
        ),
        Err(e) => (e.status(), format!("{method} {path} body error: {e}\n")),
    };
    let mut response = Response::new(ResponseBody::from(text));
    *response.status_mut() = status;
    let method = HeaderValue::from_str(method.as_str()).expect("a method is a token");
    response.headers_mut().insert("x-method", method);
    response
}

/// Parses `output` as HTTP/1.1 responses and checks the invariants in the module docs.
pub fn check_output(output: &[u8], dispatched: usize) {
    let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut rest = output;
    let mut next_seq = 0usize;
    let mut closed = false;
    while !rest.is_empty() {
        assert!(
            !closed,
            "bytes after the closing response: {:?}",
            show(rest)
        );
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut fields);
        let len = match res.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!("malformed response head ({other:?}): {:?}", show(rest)),
        };
        assert_eq!(res.version, Some(1), "not HTTP/1.1: {:?}", show(rest));
        let code = res.code.expect("a complete head has a status");
        let header = |name: &str| {
            let mut values = res
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name));
            let value = values.next().map(|h| h.value);
            assert!(values.next().is_none(), "two {name} headers");
            value
        };
        let head_text = show(&rest[..len]);
        rest = &rest[len..];
        if code == 100 {
            continue;
        }
        assert!((200..600).contains(&code), "status {code}: {head_text:?}");
        closed = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        match header("x-seq") {
            Some(seq) => {
                assert_eq!(
                    seq,
                    next_seq.to_string().as_bytes(),
                    "out of order: {head_text:?}"
                );
                next_seq += 1;
            }
            None => assert!(code >= 400 && closed, "a refusal must close: {head_text:?}"),
        }
        let method = header("x-method");
        if method == Some(b"HEAD") || code == 204 || code == 304 {
            continue;
        }
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
        let length = header("content-length");
        assert!(
            !(chunked && length.is_some()),
            "two framings: {head_text:?}"
        );
        let body: Vec<u8>;
        (body, rest) = if chunked {
            take_chunked(rest)
        } else if let Some(length) = length {
            let n: usize = std::str::from_utf8(length)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad content-length: {head_text:?}"));
            assert!(rest.len() >= n, "body cut short: {head_text:?}");
            let (body, rest) = rest.split_at(n);
            (body.to_vec(), rest)
        } else {
            assert!(
                closed,
                "a body delimited by close without close: {head_text:?}"
            );
            (rest.to_vec(), &[][..])
        };
        if let Some(method) = method {
            assert!(
                body.starts_with(method),
                "echo of another request: {:?}",
                show(&body)
            );
        }
    }
    assert_eq!(next_seq, dispatched, "a dispatched request got no response");
}

/// Decodes a chunked body (without trailers) off the front of `rest`; returns it and what
/// follows it.
fn take_chunked(mut rest: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut body = Vec::new();
    loop {
        let (len, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            other => panic!("bad chunk size line ({other:?})"),
        };
        let size = usize::try_from(size).expect("chunk size fits");
        rest = &rest[len..];
        assert!(rest.len() >= size + 2, "chunk cut short");
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk not ended by CRLF");
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
        if size == 0 {
            // The last chunk's CRLF ends an empty trailer section.
            return (body, rest);
        }
    }
}
