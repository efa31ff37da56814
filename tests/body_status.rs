//! The right status while it is still possible: a request body known to be malformed or too
//! large before its response head is encoded gets `400` / `413` (with the reason, then close)
//! instead of the handler's answer; once the head has left, the connection is cut off and
//! closed instead.
//!
//! Each test fixes which side of that line it is on without timing: either every byte is in
//! the server's first read (written into an in-memory duplex before the server starts), or the
//! handler answers only after its body reported the error, or the bad bytes are sent only after
//! the response head has been read.

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use pipelined::{Body, Config, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tower::service_fn;

/// Turns a hung connection into a failure; never what a test asserts.
const HANG: Duration = Duration::from_secs(20);

const CHUNKED_HEAD: &str = "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A connection to a server running `handler` (through `serve_connection`, on the HTTP/1.1
/// engine: no preface sniffing) whose first read finds `first` whole: it is written before the
/// server starts.
async fn connect<F, Fut, B>(handler: F, config: Config, first: &str) -> DuplexStream
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes, Error: Into<pipelined::BoxError>> + Send + 'static,
{
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client.write_all(first.as_bytes()).await.unwrap();
    let service = service_fn(move |req| {
        let answer = handler(req);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let connection = pipelined::serve_connection(server, service)
        .config(config)
        .protocol(Protocol::Http1);
    tokio::spawn(connection.into_future());
    client
}

/// Everything the server writes until it closes.
async fn read_to_close(client: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(HANG, client.read_to_end(&mut out))
        .await
        .expect("the server never closed")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(client: &mut DuplexStream, needle: &str) -> String {
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(needle) {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(HANG, client.read(&mut buf))
            .await
            .expect("the server went quiet")
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers `200` at once, without looking at the body.
async fn at_once(_req: Request<Body>) -> Response<String> {
    Response::new("answered without reading\n".to_owned())
}

/// A refusal the engine wrote in place of the handler's answer: `status`, closing, with the
/// reason in the body, and nothing of the handler's.
fn assert_refused(out: &str, status: &str, reason: &str) {
    assert!(
        out.starts_with(&format!("HTTP/1.1 {status}\r\n")),
        "{out:?}"
    );
    assert!(out.contains("\r\nconnection: close\r\n"), "{out:?}");
    assert!(out.ends_with(&format!("{reason}\n")), "{out:?}");
    assert!(
        !out.contains("answered"),
        "the handler's answer leaked: {out:?}"
    );
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out:?}");
}

/// The bad chunk is in the same read as the head: it is decoded before the handler's finished
/// answer is encoded, so the answer is `400`.
#[tokio::test]
async fn a_bad_chunk_read_with_the_head_turns_an_immediate_answer_into_400() {
    let mut client = connect(at_once, Config::default(), &format!("{CHUNKED_HEAD}zz\r\n")).await;
    let out = read_to_close(&mut client).await;
    assert_refused(&out, "400 Bad Request", "invalid chunk size");
}

/// The same for a chunk-size line the grammar refuses and a body over the limit (`413`).
#[tokio::test]
async fn a_malformed_or_oversized_body_read_with_the_head_gets_its_own_status() {
    for (body, status, reason) in [
        (
            "5;\r\nhello\r\n0\r\n\r\n",
            "400 Bad Request",
            "invalid chunk extension",
        ),
        (
            "5 \r\nhello\r\n0\r\n\r\n",
            "400 Bad Request",
            "invalid chunk extension",
        ),
        (
            "5\r\nhelloXX\r\n0\r\n\r\n",
            "400 Bad Request",
            "missing CRLF after chunk data",
        ),
        (
            "10\r\n0123456789abcdef\r\n0\r\n\r\n",
            "413 Payload Too Large",
            "request body larger than the limit",
        ),
    ] {
        let config = Config::default().max_body_bytes(8);
        let mut client = connect(at_once, config, &format!("{CHUNKED_HEAD}{body}")).await;
        let out = read_to_close(&mut client).await;
        assert_refused(&out, status, reason);
    }
}

/// A handler that answers only after its body failed (and ignores the failure): the failure
/// was known before the answer existed, so the answer is the body's `400`, wherever the reads
/// fell.
#[tokio::test]
async fn a_body_that_fails_before_the_handler_answers_gets_400() {
    let handler = |req: Request<Body>| async move {
        let read = req.into_body().collect().await;
        assert!(read.is_err(), "the body should have failed");
        Response::new("answered after the body failed\n".to_owned())
    };
    let mut client = connect(handler, Config::default(), CHUNKED_HEAD).await;
    client.write_all(b"5\r\nhello\r\nzz\r\n").await.unwrap();
    let out = read_to_close(&mut client).await;
    assert_refused(&out, "400 Bad Request", "invalid chunk size");
}

/// The answer's head has been read by the client before the bad chunk is sent: the status
/// cannot change any more. The finished answer stands and the connection closes, with nothing
/// after it.
#[tokio::test]
async fn once_the_head_has_left_a_whole_answer_stands_and_the_connection_closes() {
    let mut client = connect(at_once, Config::default(), CHUNKED_HEAD).await;
    let head = read_until(&mut client, "answered without reading\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    client.write_all(b"zz\r\n").await.unwrap();
    assert_eq!(
        read_to_close(&mut client).await,
        "",
        "nothing may follow the answer"
    );
}

/// A streamed answer (an echo of the body) whose head has left: the bad chunk cuts the body off
/// (no last chunk) and the connection closes.
#[tokio::test]
async fn once_the_head_has_left_a_streamed_answer_is_cut_off() {
    let echo = |req: Request<Body>| async move { Response::new(req.into_body()) };
    let mut client = connect(echo, Config::default(), CHUNKED_HEAD).await;
    let head = read_until(&mut client, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert!(head.contains("transfer-encoding: chunked"), "{head:?}");
    client.write_all(b"5\r\nhello\r\n").await.unwrap();
    read_until(&mut client, "5\r\nhello\r\n").await;
    client.write_all(b"zz\r\n").await.unwrap();
    let rest = read_to_close(&mut client).await;
    assert!(
        !rest.contains("0\r\n\r\n"),
        "the cut-off body was ended: {rest:?}"
    );
    assert!(
        !rest.contains("HTTP/1.1"),
        "an answer after the streamed one: {rest:?}"
    );
}

/// A handler's own error answer is not replaced: the client is told the request failed, and
/// the handler's answer is the more specific one. The connection still closes.
#[tokio::test]
async fn an_error_answer_stands_when_the_body_fails() {
    let not_found = |_req: Request<Body>| async {
        let mut response = Response::new("no such upload\n".to_owned());
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        response
    };
    let first = format!("{CHUNKED_HEAD}zz\r\n");
    let mut client = connect(not_found, Config::default(), &first).await;
    let out = read_to_close(&mut client).await;
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out:?}");
    assert!(out.contains("\r\nconnection: close\r\n"), "{out:?}");
    assert!(out.ends_with("no such upload\n"), "{out:?}");
}
