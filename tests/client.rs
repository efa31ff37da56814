//! `pipelined::client` on one connection: order, every framing, the RFC's pipelining rules,
//! a server that leaves early, and callers that leave early. The server side is either this
//! project's server or a script over an in-memory stream that sees exactly the bytes the
//! client wrote.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use pipelined::client::{self, Builder, ErrorKind, Incoming, SendRequest};
use pipelined::{get, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tower::Service;

type Body = Full<Bytes>;

/// A connection over an in-memory stream: the client's sender, and the script's end.
fn scripted(builder: Builder) -> (SendRequest<Body>, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (send, connection) = builder.handshake(ours);
    tokio::spawn(connection);
    (send, theirs)
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(format!("http://test{path}"))
        .body(Full::default())
        .unwrap()
}

/// Calls without waiting for any answer: every request is queued before the first response.
async fn call_all(
    send: &mut SendRequest<Body>,
    requests: Vec<Request<Body>>,
) -> Vec<client::ResponseFuture> {
    let mut futures = Vec::new();
    for request in requests {
        send.ready().await.unwrap();
        futures.push(send.call(request));
    }
    futures
}

async fn text(response: http::Response<Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Reads from the script's end until `count` request heads (bodiless requests) are in.
async fn read_heads(io: &mut DuplexStream, count: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < count {
        let n = tokio::time::timeout(common::HANG, io.read(&mut buf))
            .await
            .expect("the client wrote its requests")
            .unwrap();
        assert!(n > 0, "the client closed early");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// Whether the client has written nothing beyond what was read, right now (one poll, no
/// waiting). Deterministic where it is used: the connection decides about every queued
/// request in the same poll that writes the one before it, and all of them go out in one write.
async fn nothing_more(io: &mut DuplexStream) -> bool {
    let mut buf = [0; 1];
    tokio::time::timeout(Duration::ZERO, io.read(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn a_hundred_pipelined_requests_each_get_their_own_answer_from_our_server() {
    let app = Router::new().route(
        "/{n}",
        get(|req: Request<pipelined::Body>| async move { req.uri().path().to_owned() }),
    );
    let server = common::serve(app).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut send, connection) = Builder::new().pipeline_depth(100).handshake(tcp);
    tokio::spawn(connection);
    let requests = (0..100).map(|i| get_req(&format!("/{i}"))).collect();
    let futures = call_all(&mut send, requests).await;
    for (i, future) in futures.into_iter().enumerate() {
        let response = future.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, format!("/{i}"));
    }
}

/// The second request is on the wire before the first is answered: the script answers the
/// first only after it has read both.
#[tokio::test]
async fn requests_are_written_before_earlier_ones_are_answered() {
    let (mut send, mut server) = scripted(Builder::new());
    let futures = call_all(&mut send, vec![get_req("/a"), get_req("/b")]).await;
    let heads = read_heads(&mut server, 2).await;
    assert!(heads.starts_with("GET /a HTTP/1.1\r\nhost: test\r\n\r\nGET /b HTTP/1.1\r\n"));
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\naHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb")
        .await
        .unwrap();
    let mut bodies = Vec::new();
    for future in futures {
        bodies.push(text(future.await.unwrap()).await);
    }
    assert_eq!(bodies, ["a", "b"]);
}

#[tokio::test]
async fn every_framing_reaches_its_own_request() {
    let (mut send, mut server) = scripted(Builder::new());
    let mut head = get_req("/head");
    *head.method_mut() = Method::HEAD;
    let requests = vec![
        get_req("/length"),
        head,
        get_req("/chunked"),
        get_req("/no-content"),
        get_req("/not-modified"),
        get_req("/until-close"),
    ];
    let futures = call_all(&mut send, requests).await;
    read_heads(&mut server, 6).await;
    server
        .write_all(
            b"HTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 103 Early Hints\r\nlink: </s>\r\n\r\n\
              HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
              HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n\
              HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n\
              HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n\
              HTTP/1.1 304 Not Modified\r\n\r\n\
              HTTP/1.1 200 OK\r\n\r\nuntil the end",
        )
        .await
        .unwrap();
    drop(server);
    let mut got = Vec::new();
    for future in futures {
        let response = future.await.unwrap();
        let status = response.status().as_u16();
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected
            .trailers()
            .map(|t| t["t"].to_str().unwrap().to_owned());
        got.push((status, collected.to_bytes(), trailers));
    }
    let expected = [
        (200, Bytes::from("hello"), None),
        (200, Bytes::new(), None),
        (200, Bytes::from("abcde"), Some("1".to_owned())),
        (204, Bytes::new(), None),
        (304, Bytes::new(), None),
        (200, Bytes::from("until the end"), None),
    ];
    assert_eq!(got, expected);
}

/// The server answers two of four and closes: the other two come back, unanswered and whole.
#[tokio::test]
async fn requests_left_unanswered_by_a_close_fail_as_not_answered_with_their_request() {
    let (mut send, mut server) = scripted(Builder::new());
    let requests = (0..4).map(|i| get_req(&format!("/{i}"))).collect();
    let futures = call_all(&mut send, requests).await;
    read_heads(&mut server, 4).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    drop(server);
    let mut outcomes = Vec::new();
    for future in futures {
        outcomes.push(future.await);
    }
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok());
    for (i, outcome) in outcomes.into_iter().enumerate().skip(2) {
        let error = outcome.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotAnswered);
        assert!(error.may_have_been_processed());
        assert!(error
            .to_string()
            .starts_with("not answered: may or may not have been processed"));
        let request = error.into_request::<Body>().unwrap();
        assert_eq!(request.uri().path(), format!("/{i}"));
    }
    assert!(send.is_closed());
    let later = send.send_request(get_req("/late")).await.unwrap_err();
    assert_eq!(later.kind(), ErrorKind::NotSent);
    assert!(!later.may_have_been_processed());
}

/// `Connection: close` in an answer: nothing after it is answered, and nothing queued behind
/// it is written.
#[tokio::test]
async fn a_close_announced_mid_pipeline_fails_the_rest_as_not_answered() {
    let (mut send, mut server) = scripted(Builder::new());
    let futures = call_all(&mut send, vec![get_req("/0"), get_req("/1")]).await;
    read_heads(&mut server, 2).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        .await
        .unwrap();
    let mut futures = futures.into_iter();
    assert_eq!(text(futures.next().unwrap().await.unwrap()).await, "ok");
    let second = futures.next().unwrap().await.unwrap_err();
    assert_eq!(second.kind(), ErrorKind::NotAnswered);
    assert!(second.has_request());
}

/// RFC 9112 §9.3.2: a POST waits until nothing is owed, and nothing goes behind it until its
/// status arrived.
#[tokio::test]
async fn nothing_is_written_behind_a_post_until_its_status_arrives() {
    let (mut send, mut server) = scripted(Builder::new());
    let post = Request::post("http://test/p")
        .body(Full::new(Bytes::from_static(b"xy")))
        .unwrap();
    let futures = call_all(&mut send, vec![get_req("/0"), post, get_req("/2")]).await;
    let first = read_heads(&mut server, 1).await;
    assert_eq!(first, "GET /0 HTTP/1.1\r\nhost: test\r\n\r\n");
    assert!(
        nothing_more(&mut server).await,
        "the POST went out behind an unanswered GET"
    );
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let post = read_heads(&mut server, 1).await;
    assert!(post.starts_with("POST /p HTTP/1.1\r\n"), "{post}");
    let mut rest = post.split("\r\n\r\n").nth(1).unwrap().to_owned();
    while rest.len() < 2 {
        let mut buf = [0; 16];
        let n = server.read(&mut buf).await.unwrap();
        rest.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert_eq!(rest, "xy");
    assert!(
        nothing_more(&mut server).await,
        "a GET went out behind an unanswered POST"
    );
    server
        .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    assert!(read_heads(&mut server, 1).await.starts_with("GET /2 "));
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for f in futures {
            v.push(f.await.unwrap().status().as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 201, 200]);
}

#[tokio::test]
async fn pipeline_unsafe_writes_a_post_behind_others() {
    let (mut send, mut server) = scripted(Builder::new().pipeline_unsafe(true));
    let post = Request::post("http://test/p")
        .body(Full::default())
        .unwrap();
    let _futures = call_all(&mut send, vec![get_req("/0"), post, get_req("/2")]).await;
    let heads = read_heads(&mut server, 3).await;
    assert!(heads.contains("POST /p") && heads.contains("GET /2"));
}

/// A caller that drops its response future, or its body halfway, does not shift the answers
/// of the requests behind it.
#[tokio::test]
async fn dropped_futures_and_bodies_do_not_desync_the_connection() {
    let (mut send, mut server) = scripted(Builder::new().max_body_buffer(4));
    let mut futures = call_all(
        &mut send,
        (0..3).map(|i| get_req(&format!("/{i}"))).collect(),
    )
    .await;
    read_heads(&mut server, 3).await;
    drop(futures.remove(0));
    server
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789\
                     HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
        )
        .await
        .unwrap();
    let mut second = futures.remove(0).await.unwrap().into_body();
    let frame = second.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "abc");
    drop(second);
    server
        .write_all(b"3\r\ndef\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nthird")
        .await
        .unwrap();
    assert_eq!(text(futures.remove(0).await.unwrap()).await, "third");
}

/// A dropped response whose rest is longer than max_discard closes the connection; the
/// requests behind it are told so.
#[tokio::test]
async fn a_dropped_body_past_the_discard_bound_closes_the_connection() {
    let (mut send, mut server) = scripted(Builder::new().max_discard(8));
    let mut futures = call_all(&mut send, vec![get_req("/0"), get_req("/1")]).await;
    read_heads(&mut server, 2).await;
    drop(futures.remove(0));
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let error = futures.remove(0).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnswered);
    assert!(error.to_string().contains("max_discard"), "{error}");
}

#[tokio::test]
async fn garbage_fails_the_front_as_a_protocol_error_and_the_rest_unanswered() {
    let (mut send, mut server) = scripted(Builder::new());
    let futures = call_all(&mut send, vec![get_req("/0"), get_req("/1")]).await;
    read_heads(&mut server, 2).await;
    server
        .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        .await
        .unwrap();
    let mut futures = futures.into_iter();
    let front = futures.next().unwrap().await.unwrap_err();
    assert_eq!(front.kind(), ErrorKind::Protocol, "{front}");
    let behind = futures.next().unwrap().await.unwrap_err();
    assert_eq!(behind.kind(), ErrorKind::NotAnswered);
}

#[tokio::test]
async fn a_head_over_the_limit_is_a_protocol_error() {
    let (mut send, mut server) = scripted(Builder::new().max_head_bytes(64));
    let futures = call_all(&mut send, vec![get_req("/0")]).await;
    read_heads(&mut server, 1).await;
    let long = format!("HTTP/1.1 200 OK\r\nx: {}\r\n", "a".repeat(100));
    server.write_all(long.as_bytes()).await.unwrap();
    let error = futures.into_iter().next().unwrap().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol);
    assert!(error.to_string().contains("max_head_bytes"), "{error}");
}

#[tokio::test]
async fn a_body_cut_short_by_the_close_is_incomplete() {
    let (mut send, mut server) = scripted(Builder::new());
    let futures = call_all(&mut send, vec![get_req("/0")]).await;
    read_heads(&mut server, 1).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
        .await
        .unwrap();
    let response = futures.into_iter().next().unwrap().await.unwrap();
    drop(server);
    let error = response.into_body().collect().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Incomplete, "{error}");
}

/// Back pressure: with depth 2, a third call waits until a response has been read.
#[tokio::test]
async fn poll_ready_waits_for_a_place_in_the_pipeline() {
    let (mut send, mut server) = scripted(Builder::new().pipeline_depth(2));
    let mut futures = call_all(&mut send, vec![get_req("/0"), get_req("/1")]).await;
    assert_eq!(send.outstanding(), 2);
    let mut third = send.clone();
    let not_ready = tokio::time::timeout(Duration::ZERO, third.ready()).await;
    assert!(
        not_ready.is_err(),
        "a third request was admitted with two outstanding at depth 2"
    );
    read_heads(&mut server, 2).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na")
        .await
        .unwrap();
    assert_eq!(text(futures.remove(0).await.unwrap()).await, "a");
    third.ready().await.unwrap();
    let third = third.call(get_req("/2"));
    assert!(read_heads(&mut server, 1).await.starts_with("GET /2 "));
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nbHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nc")
        .await
        .unwrap();
    assert_eq!(text(futures.remove(0).await.unwrap()).await, "b");
    assert_eq!(text(third.await.unwrap()).await, "c");
}

#[tokio::test]
async fn a_response_nobody_asked_for_ends_the_connection() {
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    let (send, connection) = client::handshake::<_, Empty<Bytes>>(ours);
    let connection = tokio::spawn(connection);
    theirs
        .write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let error = connection.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol);
    assert!(send.is_closed());
}

#[tokio::test]
async fn the_connection_ends_when_every_sender_is_gone_and_nothing_is_owed() {
    let (ours, _theirs) = tokio::io::duplex(1 << 16);
    let (send, connection) = client::handshake::<_, Empty<Bytes>>(ours);
    let connection = tokio::spawn(connection);
    drop(send);
    tokio::time::timeout(common::HANG, connection)
        .await
        .expect("the connection ended")
        .unwrap()
        .unwrap();
}

/// Senders, futures, bodies and connections move to other tasks, and errors convert into
/// `Box<dyn Error + Send + Sync>` (`?` in an async main), whatever the request body type.
#[test]
fn the_public_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<client::Error>();
    send_sync::<Incoming>();
    send::<SendRequest<Body>>();
    send::<client::ResponseFuture>();
    send::<client::Connection<tokio::net::TcpStream, Body>>();
    send_sync::<client::Client<Body>>();
}

/// A body read to its end gives its slot back at once; dropping that body later, when the slot
/// already holds the next request, must not abandon the next request's answer (each use of a
/// slot has its own generation).
#[tokio::test]
async fn a_finished_body_dropped_late_does_not_touch_the_next_request_in_its_slot() {
    let (mut send, mut server) = scripted(Builder::new().pipeline_depth(1));
    let first = call_all(&mut send, vec![get_req("/0")]).await;
    read_heads(&mut server, 1).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n")
        .await
        .unwrap();
    let mut body = first.into_iter().next().unwrap().await.unwrap().into_body();
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }
    // The slot is free again: the second call takes it while the first body is still alive.
    let second = call_all(&mut send, vec![get_req("/1")]).await;
    drop(body);
    read_heads(&mut server, 1).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond")
        .await
        .unwrap();
    let second = second.into_iter().next().unwrap();
    let response = tokio::time::timeout(common::HANG, second).await;
    let response = response.expect("the second answer was not thrown away");
    assert_eq!(text(response.unwrap()).await, "second");
}

/// A reason phrase of the server's own reaches the caller (`ReasonPhrase`); the standard one
/// is left to `StatusCode::canonical_reason`.
#[tokio::test]
async fn the_servers_own_reason_phrase_is_kept() {
    let (mut send, mut server) = scripted(Builder::new());
    let futures = call_all(&mut send, vec![get_req("/0"), get_req("/1")]).await;
    read_heads(&mut server, 2).await;
    server
        .write_all(
            b"HTTP/1.1 200 Fine Thanks\r\ncontent-length: 0\r\n\r\n\
              HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut futures = futures.into_iter();
    let own = futures.next().unwrap().await.unwrap();
    let phrase = own.extensions().get::<client::ReasonPhrase>().unwrap();
    assert_eq!(phrase.as_bytes(), b"Fine Thanks");
    let standard = futures.next().unwrap().await.unwrap();
    assert!(standard
        .extensions()
        .get::<client::ReasonPhrase>()
        .is_none());
}

/// A request body that fails partway fails its own request with `ErrorKind::Body` (some of it
/// may have reached the server) and closes the connection; the request behind it was never
/// answered.
#[tokio::test]
async fn a_failing_request_body_fails_its_request_and_ends_the_connection() {
    use http_body_util::combinators::BoxBody;

    type Boxed = BoxBody<Bytes, std::io::Error>;
    let (ours, mut server) = tokio::io::duplex(1 << 16);
    let (mut send, connection) = Builder::new()
        .pipeline_unsafe(true)
        .handshake::<_, Boxed>(ours);
    let connection = tokio::spawn(connection);
    let failing = BoxBody::new(FailsAfterOneFrame(false));
    let put = Request::put("http://test/upload").body(failing).unwrap();
    let get = Request::get("http://test/after")
        .body(BoxBody::default())
        .unwrap();
    send.ready().await.unwrap();
    let put = send.call(put);
    send.ready().await.unwrap();
    let get = send.call(get);
    let error = put.await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Body, "{error}");
    assert!(error.may_have_been_processed());
    let behind = get.await.unwrap_err();
    assert!(
        matches!(behind.kind(), ErrorKind::NotAnswered | ErrorKind::NotSent),
        "{behind}"
    );
    assert_eq!(
        connection.await.unwrap().unwrap_err().kind(),
        ErrorKind::Body
    );
    // The connection is closed (the server side reaches its end), whatever of the partial
    // request reached it.
    let mut written = Vec::new();
    tokio::time::timeout(common::HANG, server.read_to_end(&mut written))
        .await
        .expect("the connection was closed")
        .unwrap();
}

/// A request body of unknown length that yields `part`, then fails.
struct FailsAfterOneFrame(bool);

impl http_body::Body for FailsAfterOneFrame {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let frame = if self.0 {
            Err(std::io::Error::other("the disk went away"))
        } else {
            Ok(http_body::Frame::data(Bytes::from_static(b"part")))
        };
        self.0 = true;
        std::task::Poll::Ready(Some(frame))
    }
}

/// A server that closes between responses, with nothing owed, ends the connection cleanly:
/// the connection future resolves `Ok`, and a later call fails unsent.
#[tokio::test]
async fn a_clean_close_between_responses_ends_the_connection_and_later_calls_are_not_sent() {
    let (ours, mut server) = tokio::io::duplex(1 << 16);
    let (mut send, connection) = Builder::new().handshake::<_, Body>(ours);
    let connection = tokio::spawn(connection);
    let answer = call_all(&mut send, vec![get_req("/0")]).await;
    read_heads(&mut server, 1).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    answer.into_iter().next().unwrap().await.unwrap();
    drop(server);
    tokio::time::timeout(common::HANG, connection)
        .await
        .expect("the connection ended when the server closed")
        .unwrap()
        .unwrap();
    assert!(send.is_closed());
    let later = send.send_request(get_req("/1")).await.unwrap_err();
    assert_eq!(later.kind(), ErrorKind::NotSent);
    assert_eq!(later.into_request::<Body>().unwrap().uri().path(), "/1");
}

/// A caller waiting in `poll_ready` is woken when a place frees up; a sender dropped with a
/// place reserved gives it back.
#[tokio::test]
async fn a_waiting_caller_is_woken_and_a_dropped_reservation_is_given_back() {
    let (mut send, mut server) = scripted(Builder::new().pipeline_depth(1));
    let first = call_all(&mut send, vec![get_req("/0")]).await;
    let mut waiting = send.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        waiting.ready().await.unwrap();
        // Dropped with its place reserved: the place must come back.
        drop(waiting);
        ready_tx.send(()).unwrap();
    });
    read_heads(&mut server, 1).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    first.into_iter().next().unwrap().await.unwrap();
    tokio::time::timeout(common::HANG, ready_rx)
        .await
        .expect("the waiting caller was woken when the place freed up")
        .unwrap();
    let ready = tokio::time::timeout(Duration::ZERO, send.ready()).await;
    assert!(ready.is_ok(), "the dropped reservation was not given back");
}

/// The connection ends once the last sender is dropped, also when it has already run and is
/// parked waiting for work.
#[tokio::test]
async fn dropping_the_last_sender_wakes_a_parked_connection_to_end() {
    let (ours, mut server) = tokio::io::duplex(1 << 16);
    let (mut send, connection) = Builder::new().handshake::<_, Body>(ours);
    let connection = tokio::spawn(connection);
    let answer = call_all(&mut send, vec![get_req("/0")]).await;
    read_heads(&mut server, 1).await;
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    answer.into_iter().next().unwrap().await.unwrap();
    drop(send);
    tokio::time::timeout(common::HANG, connection)
        .await
        .expect("the connection ended when its last sender was dropped")
        .unwrap()
        .unwrap();
}

/// A connection whose task is aborted fails the requests it owed (`NotAnswered`, handed back)
/// instead of leaving them waiting for ever, and its senders see it closed.
#[tokio::test]
async fn an_aborted_connection_task_fails_what_it_owed() {
    let (ours, mut server) = tokio::io::duplex(1 << 16);
    let (mut send, connection) = Builder::new().handshake::<_, Body>(ours);
    let connection = tokio::spawn(connection);
    let answer = call_all(&mut send, vec![get_req("/0")]).await;
    read_heads(&mut server, 1).await;
    connection.abort();
    let error = tokio::time::timeout(common::HANG, answer.into_iter().next().unwrap())
        .await
        .expect("the owed request was failed when its connection went")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnswered);
    assert_eq!(error.into_request::<Body>().unwrap().uri().path(), "/0");
    assert!(send.is_closed());
}

/// Requests still queued when the connection ends (here a POST held back behind an unanswered
/// GET, and a GET behind it) fail `NotSent`, handed back whole: nothing of them was written.
#[tokio::test]
async fn requests_still_queued_at_the_end_fail_not_sent() {
    let (mut send, mut server) = scripted(Builder::new());
    let post = Request::post("http://test/p")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    let futures = call_all(&mut send, vec![get_req("/0"), post, get_req("/2")]).await;
    assert_eq!(
        read_heads(&mut server, 1).await,
        "GET /0 HTTP/1.1\r\nhost: test\r\n\r\n"
    );
    drop(server);
    let mut outcomes = Vec::new();
    for future in futures {
        outcomes.push(future.await.unwrap_err());
    }
    let kinds: Vec<ErrorKind> = outcomes.iter().map(client::Error::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::NotAnswered,
            ErrorKind::NotSent,
            ErrorKind::NotSent
        ]
    );
    let post = outcomes.remove(1).into_request::<Body>().unwrap();
    assert_eq!((post.method(), post.uri().path()), (&Method::POST, "/p"));
    assert_eq!(post.into_body().collect().await.unwrap().to_bytes(), "x");
}

/// The discard bound is inclusive: a dropped response with exactly `max_discard` body bytes
/// left is read and thrown away, and the connection goes on to the next answer.
#[tokio::test]
async fn a_dropped_body_of_exactly_the_discard_bound_keeps_the_connection() {
    let (mut send, mut server) = scripted(Builder::new().max_discard(10));
    let mut futures = call_all(&mut send, vec![get_req("/0"), get_req("/1")]).await;
    read_heads(&mut server, 2).await;
    drop(futures.remove(0));
    server
        .write_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n\
              HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext",
        )
        .await
        .unwrap();
    assert_eq!(text(futures.remove(0).await.unwrap()).await, "next");
}

/// A request body that yields more than its exact size hint said (the Content-Length the head
/// announced) fails its request (`ErrorKind::Body`) instead of desyncing the server.
#[tokio::test]
async fn a_body_longer_than_its_size_hint_fails_its_request() {
    let (ours, _server) = tokio::io::duplex(1 << 16);
    let (mut send, connection) = Builder::new().handshake::<_, LiesAboutSize>(ours);
    tokio::spawn(connection);
    let put = Request::put("http://test/x")
        .body(LiesAboutSize(false))
        .unwrap();
    send.ready().await.unwrap();
    let error = send.call(put).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Body, "{error}");
    assert!(
        error.to_string().contains("longer than its size hint"),
        "{error}"
    );
}

/// Says it is 2 bytes long, then yields 3.
struct LiesAboutSize(bool);

impl http_body::Body for LiesAboutSize {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let done = std::mem::replace(&mut self.0, true);
        std::task::Poll::Ready(
            (!done).then(|| Ok(http_body::Frame::data(Bytes::from_static(b"abc")))),
        )
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(2)
    }
}

/// An empty request body that owns a sender on its own connection (a body type carrying a
/// handle for follow-up calls): dropping it takes the connection's lock, so the connection must
/// never drop a request while holding it.
struct OwnsSender {
    _send: Option<SendRequest<OwnsSender>>,
}

impl http_body::Body for OwnsSender {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

/// Runs `f` on a thread of its own; whether it finished within `HANG` (a deadlock never does).
fn finishes(f: impl FnOnce() + Send + 'static) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(common::HANG).is_ok()
}

fn on_a_runtime(f: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(f);
}

/// A request whose caller left before it was written, then the connection's end: its body is
/// dropped after the lock, not under it (found in review: a deadlock).
#[test]
fn a_cancelled_queued_request_is_dropped_outside_the_lock_at_the_end() {
    let done = finishes(|| {
        on_a_runtime(async {
            let (ours, _theirs) = tokio::io::duplex(1 << 16);
            let (mut send, connection) = client::handshake::<_, OwnsSender>(ours);
            send.ready().await.unwrap();
            let body = OwnsSender {
                _send: Some(send.clone()),
            };
            drop(send.call(Request::get("http://t/").body(body).unwrap()));
            drop(connection);
        })
    });
    assert!(done, "deadlock: the end dropped a request under the lock");
}

/// A kept request not handed back (its response began, then was cut) is dropped after the
/// lock (found in review: a deadlock).
#[test]
fn a_kept_request_not_handed_back_is_dropped_outside_the_lock() {
    let done = finishes(|| {
        on_a_runtime(async {
            let (ours, mut theirs) = tokio::io::duplex(1 << 16);
            let (mut send, connection) = client::handshake::<_, OwnsSender>(ours);
            let connection = tokio::spawn(connection);
            send.ready().await.unwrap();
            let body = OwnsSender {
                _send: Some(send.clone()),
            };
            let answer = send.call(Request::get("http://t/").body(body).unwrap());
            let mut buf = [0u8; 1024];
            let _ = theirs.read(&mut buf).await.unwrap();
            theirs
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-le")
                .await
                .unwrap();
            drop(theirs);
            assert_eq!(answer.await.unwrap_err().kind(), ErrorKind::Incomplete);
            let _ = connection.await;
        })
    });
    assert!(done, "deadlock: a request was dropped under the lock");
}

/// A request whose caller left before it was written is never written.
#[tokio::test]
async fn a_request_cancelled_before_it_was_written_is_never_written() {
    let (mut send, mut server) = scripted(Builder::new());
    let post = Request::post("http://test/p")
        .body(Full::default())
        .unwrap();
    let mut futures = call_all(&mut send, vec![get_req("/0"), post, get_req("/2")]).await;
    assert_eq!(
        read_heads(&mut server, 1).await,
        "GET /0 HTTP/1.1\r\nhost: test\r\n\r\n"
    );
    // The POST waits behind the unanswered GET; its caller leaves.
    drop(futures.remove(1));
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    assert!(read_heads(&mut server, 1).await.starts_with("GET /2 "));
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n2")
        .await
        .unwrap();
    futures.remove(0).await.unwrap();
    assert_eq!(text(futures.remove(0).await.unwrap()).await, "2");
}

/// A body says what it knows: an empty answer is at its end at once with an exact size of 0;
/// a body that came whole with its head has its exact size until read; a streamed one with a
/// Content-Length counts down, a chunked one knows no size.
#[tokio::test]
async fn bodies_report_their_size_and_end() {
    use http_body::Body as _;

    let (mut send, mut server) = scripted(Builder::new().max_body_buffer(1));
    let futures = call_all(
        &mut send,
        (0..4).map(|i| get_req(&format!("/{i}"))).collect(),
    )
    .await;
    read_heads(&mut server, 4).await;
    server
        .write_all(
            b"HTTP/1.1 204 No Content\r\n\r\n\
              HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nwhole\
              HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let mut futures = futures.into_iter();
    let empty = futures.next().unwrap().await.unwrap().into_body();
    assert!(empty.is_end_stream());
    assert_eq!(empty.size_hint().exact(), Some(0));
    let mut whole = futures.next().unwrap().await.unwrap().into_body();
    assert!(!whole.is_end_stream());
    assert_eq!(whole.size_hint().exact(), Some(5));
    whole.frame().await.unwrap().unwrap();
    assert!(whole.is_end_stream());
    let mut chunked = futures.next().unwrap().await.unwrap().into_body();
    assert_eq!(chunked.size_hint().exact(), None);
    assert!(!chunked.is_end_stream());
    server
        .write_all(b"2\r\nab\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        chunked.frame().await.unwrap().unwrap().into_data().unwrap(),
        "ab"
    );
    assert!(chunked.frame().await.is_none());
    assert!(chunked.is_end_stream());
    let mut counted = futures.next().unwrap().await.unwrap().into_body();
    assert_eq!(counted.size_hint().exact(), Some(6));
    server.write_all(b"abc").await.unwrap();
    assert_eq!(
        counted.frame().await.unwrap().unwrap().into_data().unwrap(),
        "abc"
    );
    assert_eq!(counted.size_hint().exact(), Some(3));
    server.write_all(b"def").await.unwrap();
    counted.frame().await.unwrap().unwrap();
    assert!(counted.frame().await.is_none());
}
