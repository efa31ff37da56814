//! Connection management on a pipelined connection: when it stays open, when it closes, and
//! what is (and is never) processed around that (docs/ARCHITECTURE.md invariants 5 and 7, and the RFC
//! table's HTTP/1.0, HEAD and `Expect` rows).
//!
//! Proves that:
//! - HTTP/1.0 without keep-alive is answered with `Content-Length` (never chunked) and closed,
//!   and a request pipelined behind it never runs; with `Connection: keep-alive` it stays open;
//! - `Connection: close` third in a pipeline of five: three answers in order, the third saying
//!   `connection: close`, then EOF — and the handlers' own log shows requests 4 and 5 never ran;
//! - `Connection: close` on a POST with a body, a GET behind it in the same write: one answer,
//!   then EOF, and the GET's handler never ran;
//! - a parse error after two valid requests: 200, 200, 400, EOF, and the request behind the bad
//!   one never ran;
//! - HEAD gets GET's headers (Content-Length included) and no body, and the pipelined GET behind
//!   it is parsed and answered correctly;
//! - `Expect: 100-continue`: `100 Continue` is written before the body is read, and in order —
//!   after the response of a slow GET pipelined in front of it; none is sent for a request
//!   without a body, for HTTP/1.0, or for a body refused up front (`413`); an unknown
//!   expectation is `417`;
//! - a client that half-closes after pipelining (one request slow, released only once the engine
//!   has read the FIN) still gets every response;
//! - responses carry `date` (an IMF-fixdate) and `server`;
//! - a streaming body of unknown length is chunked on HTTP/1.1 and close-delimited on HTTP/1.0;
//! - a response that ends the connection (the handler says `Connection: close`, or HTTP/1.0
//!   keep-alive meets a body of unknown length) is the last: an unsafe request pipelined behind
//!   it is never executed (RFC 9112 §9.6); `close` inside a list of options still closes;
//! - a dedicated HEAD handler's `Content-Length` (describing the GET body) is sent as is.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use common::reading_stopped::ReadingStopped;
use common::{eventually, get, serve, with_body, Client, RawResponse};
use http::{header, HeaderValue, Request, Response};
use http_body::Frame;
use pipelined::{post, Body, Router};
use tokio::sync::Notify;

/// What the handlers saw and the knobs the tests turn.
#[derive(Clone, Default)]
struct State {
    /// Paths of the GETs that reached the fallback handler, in order.
    paths: Arc<Mutex<Vec<String>>>,
    /// Times `POST /count` ran.
    posts: Arc<AtomicUsize>,
    /// `GET /slow` and `GET /slow-closing` wait for this.
    gate: Arc<Notify>,
}

impl State {
    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

/// A body of unknown length, sent in three frames.
struct Frames(VecDeque<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

const STREAMED: &str = "one,two,three";

fn closing() -> Response<pipelined::ResponseBody> {
    let mut res = Response::new(pipelined::ResponseBody::from("closing"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn app(state: &State) -> Router {
    let State { paths, posts, gate } = state.clone();
    let gate2 = Arc::clone(&gate);
    Router::new()
        .route(
            "/slow",
            pipelined::get(move |_req| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.notified().await;
                    "slow"
                }
            }),
        )
        .route("/fixed", pipelined::get(|_req| async { "fixed body\n" }))
        .route(
            "/stream",
            pipelined::get(|_req| async {
                Response::new(Frames(
                    STREAMED
                        .split_inclusive(',')
                        .map(|s| Bytes::from(s.to_owned()))
                        .collect(),
                ))
            }),
        )
        .route("/closing", pipelined::get(|_req| async { closing() }))
        .route(
            "/closing-list",
            pipelined::get(|_req| async {
                let mut res = closing();
                res.headers_mut().insert(
                    header::CONNECTION,
                    HeaderValue::from_static("x-custom, close"),
                );
                res
            }),
        )
        .route(
            "/big",
            pipelined::get(|_req| async { "b".repeat(1234) }).head(|_req| async {
                // A HEAD handler that describes the GET body without producing it.
                let mut res = Response::new(pipelined::ResponseBody::empty());
                res.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("1234"));
                res
            }),
        )
        .route(
            "/slow-closing",
            pipelined::get(move |_req| {
                let gate = Arc::clone(&gate2);
                async move {
                    gate.notified().await;
                    closing()
                }
            }),
        )
        .route(
            "/echo",
            post(|req: Request<Body>| async move { Response::new(req.into_body()) }),
        )
        .route(
            "/count",
            post(move |_req| {
                posts.fetch_add(1, Ordering::SeqCst);
                async { "counted" }
            }),
        )
        .fallback(move |req: Request<Body>| {
            let paths = Arc::clone(&paths);
            async move {
                let path = req.uri().path().to_owned();
                paths.lock().unwrap().push(path.clone());
                path
            }
        })
}

fn assert_ok(res: &RawResponse, body: &str) {
    assert_eq!(res.status, 200, "body {:?}", res.text());
    assert_eq!(res.text(), body);
}

fn http10(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.0\r\n{extra}\r\n")
}

#[tokio::test]
async fn http10_without_keep_alive_is_answered_with_content_length_then_closed() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", http10("/ten", ""), http10("/never", "")))
        .await;
    let r = client.response().await;
    assert_ok(&r, "/ten");
    assert_eq!(r.header("content-length"), Some("4"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert!(r.closes(), "headers {:?}", r.headers);
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(state.paths(), ["/ten"]);
}

#[tokio::test]
async fn http10_with_keep_alive_stays_open() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(http10("/ka-1", "Connection: keep-alive\r\n"))
        .await;
    let r = client.response().await;
    assert_ok(&r, "/ka-1");
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(!r.closes());
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // A second request on the same connection, after the first answer.
    client
        .send(http10("/ka-2", "Connection: Keep-Alive\r\n"))
        .await;
    let r = client.response().await;
    assert_ok(&r, "/ka-2");
    assert!(!r.closes());
    // Without keep-alive the connection ends after the third.
    client.send(http10("/ka-3", "")).await;
    let r = client.response().await;
    assert_ok(&r, "/ka-3");
    assert!(r.closes());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(state.paths(), ["/ka-1", "/ka-2", "/ka-3"]);
}

#[tokio::test]
async fn connection_close_mid_pipeline_stops_processing() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/c1");
    batch.push_str(&get("/c2"));
    batch.push_str("GET /c3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut batch = batch.into_bytes();
    batch.extend(with_body("POST", "/count", b"must not run"));
    batch.extend(get("/c5").as_bytes());
    client.send(&batch).await;
    let r = client.responses(3).await;
    assert_ok(&r[0], "/c1");
    assert_ok(&r[1], "/c2");
    assert_ok(&r[2], "/c3");
    assert!(!r[0].closes() && !r[1].closes());
    assert!(r[2].closes(), "the third says connection: close");
    assert!(client.is_closed().await, "EOF after the third");
    drop(client);
    // Every connection has finished once shutdown returns, so the log is final.
    server.shutdown().await;
    assert_eq!(state.paths(), ["/c1", "/c2", "/c3"]);
    assert_eq!(state.posts(), 0, "the POST behind the close ran");
}

/// `Connection: close` on a request with a body: the close takes effect once the body is read
/// to its end, so a GET in the same write behind it is never parsed as a request to run, and
/// the connection closes after the POST's answer.
#[tokio::test]
async fn connection_close_on_a_request_with_a_body_stops_processing_after_its_body() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch =
        b"POST /count HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody"
            .to_vec();
    batch.extend(get("/behind-close").as_bytes());
    client.send(&batch).await;
    let r = client.response().await;
    assert_ok(&r, "counted");
    assert!(r.closes(), "the POST's answer says connection: close");
    assert!(
        client.is_closed().await,
        "EOF right after the POST's answer"
    );
    drop(client);
    // Every connection has finished once shutdown returns, so the counts are final.
    server.shutdown().await;
    assert_eq!(state.posts(), 1);
    assert_eq!(
        state.paths(),
        Vec::<String>::new(),
        "the GET behind the closing POST ran"
    );
}

/// `Connection: close` on a request answered before its body has all arrived: the answer still
/// says `connection: close` (the request's close is not lost while its body is being read),
/// and the connection ends after it without waiting for the rest of the body.
#[tokio::test]
async fn connection_close_answered_before_its_body_ends_still_closes() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(b"POST /count HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 8\r\n\r\nhalf")
        .await;
    let r = client.response().await;
    assert_ok(&r, "counted");
    assert!(r.closes(), "the answer says connection: close");
    assert!(client.is_closed().await, "EOF after the answer");
    drop(client);
    server.shutdown().await;
    assert_eq!(state.posts(), 1);
}

#[tokio::test]
async fn parse_error_mid_pipeline_is_400_after_earlier_answers_then_eof() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/p1");
    batch.push_str(&get("/p2"));
    batch.push_str("GET /p3 HTTP/1.1\r\nHost: t\r\nBad-Header : x\r\n\r\n");
    let mut batch = batch.into_bytes();
    batch.extend(get("/p4").as_bytes());
    batch.extend(with_body("POST", "/count", b"must not run"));
    client.send(&batch).await;
    let r = client.responses(3).await;
    assert_ok(&r[0], "/p1");
    assert_ok(&r[1], "/p2");
    assert_eq!(r[2].status, 400, "body {:?}", r[2].text());
    assert!(r[2].closes());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(state.paths(), ["/p1", "/p2"]);
    assert_eq!(state.posts(), 0);
}

#[tokio::test]
async fn head_gets_the_headers_of_get_and_no_body() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let batch = [
        get("/fixed"),
        "HEAD /fixed HTTP/1.1\r\nHost: t\r\n\r\n".into(),
        get("/after-head"),
        "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n".into(),
        get("/after-streamed-head"),
    ]
    .concat();
    client.send(batch).await;
    let got = client.response().await;
    let head = client.head_response().await;
    let after = client.response().await;
    let head_stream = client.head_response().await;
    let after_stream = client.response().await;

    assert_ok(&got, "fixed body\n");
    assert_eq!(head.status, 200);
    let without_date = |r: &RawResponse| {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| n != "date" && n != "server-timing")
            .cloned()
            .collect();
        h.sort();
        h
    };
    assert_eq!(without_date(&head), without_date(&got));
    assert_eq!(head.header("content-length"), Some("11"));
    assert!(head.header("date").is_some());
    // Had HEAD sent a body, these would not parse as the next responses.
    assert_ok(&after, "/after-head");
    assert_eq!(head_stream.status, 200);
    assert_eq!(head_stream.header("content-length"), None);
    assert!(!head_stream.closes());
    assert_ok(&after_stream, "/after-streamed-head");
    drop(client);
    server.shutdown().await;
    assert_eq!(state.paths(), ["/after-head", "/after-streamed-head"]);
}

#[tokio::test]
async fn expect_100_continue_is_sent_before_the_body_is_read() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;

    // Content-Length body.
    client
        .send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = client.response().await;
    assert_eq!(interim.status, 100);
    client.send("hello").await;
    assert_ok(&client.response().await, "hello");

    // Chunked body, same connection.
    client
        .send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n")
        .await;
    assert_eq!(client.response().await.status, 100);
    client.send("3\r\nabc\r\n0\r\n\r\n").await;
    assert_ok(&client.response().await, "abc");
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue_in_a_pipeline_comes_after_the_slow_get_in_front() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/slow");
    batch.push_str(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    client.send(batch).await;
    // Released only once the GET is pending on a task of its own (a permit stored before its
    // first poll would let it finish inline, and nothing would wait in front of the 100). The
    // POST waits behind it at the barrier; a 100 written out of order would be read first.
    let stats = &server.stats;
    eventually("the slow GET runs on its own task", || {
        stats.running_handlers() == 1
    })
    .await;
    state.gate.notify_one();
    assert_ok(&client.response().await, "slow");
    assert_eq!(client.response().await.status, 100);
    client.send("hello").await;
    assert_ok(&client.response().await, "hello");
    client.send(get("/after-continue")).await;
    assert_ok(&client.response().await, "/after-continue");
    drop(client);
    server.shutdown().await;
}

/// A body the engine refuses up front (`Content-Length` over the limit) gets its final status
/// instead of `100 Continue`, so the client never sends it.
#[tokio::test]
async fn expect_100_continue_with_a_body_over_the_limit_gets_413_not_100() {
    let state = State::default();
    let config = pipelined::Config::default().max_body_bytes(10);
    let server = common::serve_with(app(&state), config).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(
            "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
        )
        .await;
    let r = client.response().await;
    assert_eq!(r.status, 413, "body {:?}", r.text());
    assert!(r.closes());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(state.posts(), 0);
}

/// RFC 9110 §10.1.1: no 100 for a request without content, and HTTP/1.0 ignores the
/// expectation. Each is answered with its final response first.
#[tokio::test]
async fn no_100_continue_without_a_body_or_on_http10() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = "GET /no-body HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n".to_owned();
    batch.push_str("POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nten!");
    client.send(batch).await;
    assert_ok(&client.response().await, "/no-body");
    assert_ok(&client.response().await, "ten!");
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_expectation_is_417() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let unknown = "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: something-else\r\n\r\nhello";

    let mut client = Client::connect(server.addr).await;
    client.send(unknown).await;
    let r = client.response().await;
    assert_eq!(r.status, 417, "body {:?}", r.text());
    assert!(r.closes());
    assert!(client.is_closed().await);
    drop(client);

    let mut client = Client::connect(server.addr).await;
    client
        .send(format!(
            "{}{unknown}{}",
            get("/before-417"),
            get("/after-417")
        ))
        .await;
    assert_ok(&client.response().await, "/before-417");
    assert_eq!(client.response().await.status, 417);
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(state.posts(), 0);
    assert_eq!(state.paths(), ["/before-417"]);
}

/// The handler is released only once the engine has read the FIN (its `reading stopped`
/// report), so its answer is written to a half-closed client. The POST goes first: a request
/// held at a barrier stops reading, and the FIN behind it would not be read before the release.
#[tokio::test]
async fn half_closed_client_still_gets_every_response() {
    let stopped = ReadingStopped::watch();
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = with_body("POST", "/echo", b"posted");
    batch.extend(get("/slow").as_bytes());
    batch.extend(get("/last").as_bytes());
    client.send(&batch).await;
    client.shutdown_write().await;
    eventually("the engine has read the FIN", || stopped.why().is_some()).await;
    state.gate.notify_one();
    let r = client.responses(3).await;
    assert_ok(&r[0], "posted");
    assert_ok(&r[1], "slow");
    assert_ok(&r[2], "/last");
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn responses_carry_date_and_server() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/fixed");
    batch.push_str("HEAD /fixed HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.push_str(&get("/stream"));
    batch.push_str("GET / HTTP/1.1\r\n\r\n"); // no Host: an engine-made 400
    client.send(batch).await;
    let responses = [
        client.response().await,
        client.head_response().await,
        client.response().await,
        client.response().await,
    ];
    assert_eq!(responses[3].status, 400);
    for r in &responses {
        let date = r.header("date").expect("a date header");
        httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("bad date {date:?}: {e}"));
        assert!(date.ends_with(" GMT"), "IMF-fixdate: {date:?}");
        assert_eq!(r.header("server"), Some("pipelined"));
    }
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn streaming_body_is_chunked_on_http11_and_close_delimited_on_http10() {
    let state = State::default();
    let server = serve(app(&state)).await;

    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/stream"), get("/after-stream")))
        .await;
    let r = client.response().await;
    assert_ok(&r, STREAMED);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert!(!r.closes());
    assert_ok(&client.response().await, "/after-stream");
    drop(client);

    for extra in ["", "Connection: keep-alive\r\n"] {
        let mut client = Client::connect(server.addr).await;
        client.send(http10("/stream", extra)).await;
        // No length and no chunking: the body runs to EOF, so the connection must close,
        // even when the client asked to keep it.
        let r = client.response().await;
        assert_ok(&r, STREAMED);
        assert_eq!(r.header("transfer-encoding"), None);
        assert_eq!(r.header("content-length"), None);
        assert!(r.closes(), "extra {extra:?}: {:?}", r.headers);
        drop(client);
    }
    server.shutdown().await;
    assert_eq!(state.paths(), ["/after-stream"]);
}

/// RFC 9112 §9.6: "A server that sends a "close" connection option MUST initiate closure of the
/// connection ... after it sends the response containing "close". The server MUST NOT process
/// any further requests received on that connection."
///
/// Three ways the *response* (not the request) ends the connection: the handler sets
/// `Connection: close` (answering at once, or after a while on its own task), or an HTTP/1.0
/// keep-alive request gets a body of unknown length, which only closing can delimit. Safe GETs
/// behind such a response may already be running (that is what concurrent pipelining is), but a
/// POST is a barrier: it starts only after the closing handler has finished, so the engine can
/// know, and must not execute it — its answer would be discarded, so the client cannot tell
/// whether it ran.
#[tokio::test]
async fn response_that_ends_the_connection_stops_unsafe_requests_behind_it() {
    let post10 = "POST /count HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nrun";
    let post11 = String::from_utf8(with_body("POST", "/count", b"run")).unwrap();
    let cases = [
        (
            "Connection: close, answered at once",
            get("/closing"),
            post11.clone(),
            false,
            "closing",
        ),
        (
            "Connection: close, answered later",
            get("/slow-closing"),
            post11,
            true,
            "closing",
        ),
        (
            "HTTP/1.0 keep-alive, body of unknown length",
            http10("/stream", "Connection: keep-alive\r\n"),
            post10.to_owned(),
            false,
            STREAMED,
        ),
    ];
    let mut failures = Vec::new();
    for (name, first, post, release, body) in cases {
        let state = State::default();
        let server = serve(app(&state)).await;
        let mut client = Client::connect(server.addr).await;
        client.send(format!("{first}{post}")).await;
        if release {
            // Released only once the handler is pending on a task of its own: a permit
            // stored before its first poll would let it finish inline, and the test would
            // not be about an answer that comes later.
            let stats = &server.stats;
            eventually("the closing handler runs on its own task", || {
                stats.running_handlers() == 1
            })
            .await;
            state.gate.notify_one();
        }
        let r = client.response().await;
        assert_ok(&r, body);
        assert!(r.closes(), "{name}: the answer says connection: close");
        assert!(
            client.is_closed().await,
            "{name}: EOF after the closing answer"
        );
        drop(client);
        server.shutdown().await;
        if state.posts() != 0 {
            failures.push(format!(
                "{name}: the POST behind it was executed ({} time), its answer discarded",
                state.posts()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RFC 9110 §8.6: a server "MUST NOT send Content-Length in [a response to HEAD] unless its
/// field value equals the decimal number of octets that would have been sent in the content of
/// a response if the same request had used the GET method". A dedicated HEAD handler (the
/// router's `head()`) says so with a `Content-Length` header and an empty body.
#[tokio::test]
async fn head_handler_content_length_is_kept() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!(
            "{}HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n{}",
            get("/big"),
            get("/after-head")
        ))
        .await;
    let got = client.response().await;
    let head = client.head_response().await;
    let after = client.response().await;
    drop(client);
    server.shutdown().await;
    assert_eq!(got.body.len(), 1234);
    assert_eq!(got.header("content-length"), Some("1234"));
    assert_ok(&after, "/after-head");
    assert_eq!(
        head.header("content-length"),
        Some("1234"),
        "HEAD must not announce a length other than GET's"
    );
}

/// `Connection` is a list of options (RFC 9110 §7.6.1): `close` among others still closes.
#[tokio::test]
async fn handler_connection_close_in_a_list_closes() {
    let state = State::default();
    let server = serve(app(&state)).await;
    let mut client = Client::connect(server.addr).await;
    client.send(get("/closing-list")).await;
    let r = client.response().await;
    assert_ok(&r, "closing");
    assert!(r.closes(), "headers {:?}", r.headers);
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
}
