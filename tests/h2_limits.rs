//! `Config`'s limits on HTTP/2 (prior knowledge) connections, which hyper serves: each answer
//! is the one the ordered engine gives the same request on HTTP/1.1 (issue 11's parity).

mod common;

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{serve_with, HANG};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use pipelined::{get, post, Body, BodyError, Config, Router};

const LIMIT: usize = 16 * 1024 * 1024;

/// - `POST /echo`: streams the body back;
/// - `POST /collect`: collects the body, answering its error if it fails;
/// - `GET /delay`: answers after [`HANG`] (only a request timeout ends it sooner);
/// - `GET /peer`: the connection info the server inserted, or `none`.
fn app() -> Router {
    Router::new()
        .route(
            "/echo",
            post(|req: Request<Body>| async move { Response::new(req.into_body()) }),
        )
        .route(
            "/collect",
            post(|req: Request<Body>| async move {
                let body = req.into_body().collect().await?;
                Ok::<_, BodyError>(body.to_bytes())
            }),
        )
        .route(
            "/delay",
            get(|_req| async {
                tokio::time::sleep(HANG).await;
                "late\n"
            }),
        )
        .route(
            "/peer",
            get(|req: Request<Body>| async move {
                match req.extensions().get::<SocketAddr>() {
                    Some(peer) => peer.to_string(),
                    None => "none".to_string(),
                }
            }),
        )
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// A request body that does not announce its length: its chunks, one frame each.
struct Unannounced(VecDeque<Bytes>);

impl http_body::Body for Unannounced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_413_and_one_under_it_is_echoed() {
    let server = serve_with(app(), Config::default()).await;
    let client = h2_client();
    let url = format!("http://{}/echo", server.addr);

    let res = client
        .post(&url)
        .body(vec![b'x'; LIMIT + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 413);

    let res = client
        .post(&url)
        .body(vec![b'y'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), vec![b'y'; 1024 * 1024]);
}

#[tokio::test]
async fn an_unannounced_body_that_grows_past_the_limit_fails_too_large() {
    let server = serve_with(app(), Config::default().max_body_bytes(1000)).await;
    let client = h2_client();
    let url = format!("http://{}/collect", server.addr);
    let chunks = |n: usize| Unannounced((0..n).map(|_| Bytes::from(vec![b'z'; 500])).collect());

    let res = client
        .post(&url)
        .body(reqwest::Body::wrap(chunks(3)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.text().await.unwrap(),
        format!("{}\n", BodyError::TooLarge)
    );

    let res = client
        .post(&url)
        .body(reqwest::Body::wrap(chunks(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 1000);
}

#[tokio::test]
async fn an_overdue_handler_is_answered_503() {
    let timeout = Duration::from_millis(200);
    let server = serve_with(app(), Config::default().request_timeout(Some(timeout))).await;
    let started = tokio::time::Instant::now();
    let res = h2_client()
        .get(format!("http://{}/delay", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let waited = started.elapsed();
    assert!(waited >= timeout, "answered before the timeout: {waited:?}");
    assert!(waited < HANG, "answered only when the handler finished");
}

#[tokio::test]
async fn more_header_fields_than_max_headers_are_refused_431() {
    let server = serve_with(app(), Config::default().max_headers(20)).await;
    let client = h2_client();
    let url = format!("http://{}/peer", server.addr);
    let with_headers = |n: usize| {
        (0..n).fold(client.get(&url), |req, i| {
            req.header(format!("x-h{i}"), "v")
        })
    };
    assert_eq!(with_headers(21).send().await.unwrap().status(), 431);
    assert_eq!(with_headers(5).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_expectation_other_than_100_continue_is_refused_417() {
    let server = serve_with(app(), Config::default()).await;
    let client = h2_client();
    let url = format!("http://{}/echo", server.addr);
    let res = client
        .post(&url)
        .header("expect", "foo")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 417);
    let res = client
        .post(&url)
        .header("expect", "100-continue")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hi");
}

#[tokio::test]
async fn connect_info_reaches_http2_handlers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = pipelined::serve(listener, app()).connect_info(|peer: SocketAddr| peer);
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.into_future());
    let res = h2_client()
        .get(format!("http://{addr}/peer"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let peer: SocketAddr = res.text().await.unwrap().parse().expect("a peer address");
    assert!(peer.ip().is_loopback());
    assert_ne!(
        peer.port(),
        addr.port(),
        "the client's address, not the server's"
    );
}
