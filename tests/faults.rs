//! Invariant 4: every slot yields a response. A handler that panics — while the service is
//! called, on its first (inline) poll, or later on its own task — and a service that returns
//! an error each become a `500` in that request's place; the responses around it are the normal
//! ones, in order, and the connection goes on. A response body that fails after its head was
//! sent cannot be turned into a `500` any more: the earlier responses arrive intact, the broken
//! one is cut short (no last chunk / fewer bytes than its Content-Length), and the connection
//! closes without answering the requests behind it. A body that *panics* midway must cost no
//! more than one that fails.

mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{get, quiet_expected_panics, serve, with_body, Client, EXPECTED, HANG};
use http::{Request, Response};
use http_body::Frame;
use pipelined::{Body, BoxError, PathParams, ResponseBody, Route, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// `GET /ok/{n}` answers `ok {n}`.
fn ok_route() -> pipelined::MethodRouter {
    pipelined::get(|req: Request<Body>| async move {
        let n = req.extensions().get::<PathParams>().unwrap().get("n");
        format!("ok {}\n", n.unwrap())
    })
}

/// Panics in the handler function itself, before it has returned a future.
fn panics_when_called(_req: Request<Body>) -> std::future::Ready<&'static str> {
    panic!("{EXPECTED} while being called")
}

/// Panics on its first poll: the engine is still polling it inline.
async fn panics_before_awaiting(_req: Request<Body>) -> &'static str {
    panic!("{EXPECTED} before the first await")
}

/// Pending on its first poll, so it moves to its own task, and panics there.
async fn panics_after_awaiting(_req: Request<Body>) -> &'static str {
    tokio::task::yield_now().await;
    panic!("{EXPECTED} after an await")
}

fn panicking_app() -> Router {
    Router::new()
        .route("/ok/{n}", ok_route())
        .route("/panic/call", pipelined::get(panics_when_called))
        .route("/panic/inline", pipelined::get(panics_before_awaiting))
        .route("/panic/spawned", pipelined::get(panics_after_awaiting))
        .route("/post", pipelined::post(|_req| async { "posted\n" }))
}

/// Each kind of panic takes only its own slot: 500 there, normal answers around it, in order,
/// and the connection still serves a request sent afterwards.
#[tokio::test]
async fn panics_become_in_order_500s_and_the_connection_goes_on() {
    quiet_expected_panics();
    let server = serve(panicking_app()).await;
    let mut client = Client::connect(server.addr).await;
    let paths = [
        "/ok/1",
        "/panic/call",
        "/ok/2",
        "/panic/inline",
        "/ok/3",
        "/panic/spawned",
        "/ok/4",
    ];
    let wire: String = paths.iter().map(|p| get(p)).collect();
    client.send(wire).await;
    let responses = client.responses(paths.len()).await;
    let got: Vec<(u16, String)> = responses.iter().map(|r| (r.status, r.text())).collect();
    let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 500, 200, 500, 200, 500, 200], "{got:?}");
    for (i, n) in [(0, 1), (2, 2), (4, 3), (6, 4)] {
        assert_eq!(got[i].1, format!("ok {n}\n"));
    }
    assert!(
        responses.iter().all(|r| !r.closes()),
        "a 500 closed the connection"
    );

    // Same connection, next round trip.
    client.send(get("/ok/5")).await;
    assert_eq!(client.response().await.text(), "ok 5\n");
    drop(client);
    server.shutdown().await;
}

/// A handler that panicked on its own task must still count as finished: a barrier behind it
/// starts (instead of waiting for ever), and so does the request after the barrier.
#[tokio::test]
async fn a_spawned_panic_releases_the_barrier_behind_it() {
    quiet_expected_panics();
    let server = serve(panicking_app()).await;
    let mut client = Client::connect(server.addr).await;
    let mut wire = get("/panic/spawned").into_bytes();
    wire.extend(with_body("POST", "/post", b"x"));
    wire.extend(get("/ok/1").into_bytes());
    client.send(wire).await;
    let got: Vec<(u16, String)> = client
        .responses(3)
        .await
        .iter()
        .map(|r| (r.status, r.text()))
        .collect();
    assert_eq!(got[0].0, 500);
    assert_eq!(got[1], (200, "posted\n".to_owned()));
    assert_eq!(got[2], (200, "ok 1\n".to_owned()));
    drop(client);
    server.shutdown().await;
}

/// A tower layer around every route that fails `/fail/now` at once and `/fail/later` after an
/// await (so that error travels the spawned path); everything else goes to the route.
fn failing_app() -> Router {
    let layer = tower::layer::layer_fn(|inner: Route| {
        tower::service_fn(move |req: Request<Body>| {
            let inner = inner.clone();
            async move {
                match req.uri().path() {
                    "/fail/now" => Err::<Response<ResponseBody>, BoxError>("refused now".into()),
                    "/fail/later" => {
                        tokio::task::yield_now().await;
                        Err("refused later".into())
                    }
                    _ => inner.oneshot(req).await,
                }
            }
        })
    });
    // The failing paths have real routes, so a 500 can only come from the layer's error.
    Router::new()
        .route("/ok/{n}", ok_route())
        .route(
            "/fail/{when}",
            pipelined::get(|_req| async { "not failed\n" }),
        )
        .layer(layer)
}

#[tokio::test]
async fn service_errors_become_in_order_500s_and_the_connection_goes_on() {
    let server = serve(failing_app()).await;
    let mut client = Client::connect(server.addr).await;
    let paths = ["/ok/1", "/fail/now", "/ok/2", "/fail/later", "/ok/3"];
    let wire: String = paths.iter().map(|p| get(p)).collect();
    client.send(wire).await;
    let responses = client.responses(paths.len()).await;
    let got: Vec<(u16, String)> = responses.iter().map(|r| (r.status, r.text())).collect();
    let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 500, 200, 500, 200], "{got:?}");
    assert_eq!(got[0].1, "ok 1\n");
    assert_eq!(got[2].1, "ok 2\n");
    assert_eq!(got[4].1, "ok 3\n");
    assert!(
        responses.iter().all(|r| !r.closes()),
        "a 500 closed the connection"
    );

    client.send(get("/ok/4")).await;
    assert_eq!(client.response().await.text(), "ok 4\n");
    drop(client);
    server.shutdown().await;
}

/// How a [`FailingBody`] fails after its first chunk.
#[derive(Clone, Copy)]
enum Failure {
    /// `poll_frame` returns an error.
    Error,
    /// `poll_frame` is pending once (so the writer flushes and waits on it), then errs.
    PendingThenError,
    /// `poll_frame` panics.
    Panic,
}

/// A response body that yields `partial`, then fails as its [`Failure`] says.
struct FailingBody {
    step: u8,
    failure: Failure,
}

impl FailingBody {
    fn new(failure: Failure) -> Self {
        FailingBody { step: 0, failure }
    }
}

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.step += 1;
        match (self.step, self.failure) {
            (1, _) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial"))))),
            (2, Failure::PendingThenError) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            (_, Failure::Panic) => panic!("{EXPECTED} in the response body"),
            _ => Poll::Ready(Some(Err(io::Error::other("the body failed midway")))),
        }
    }
}

fn broken_body_app() -> Router {
    let broken = |failure: Failure| {
        pipelined::get(move |_req| async move { Response::new(FailingBody::new(failure)) })
    };
    Router::new()
        .route("/ok/{n}", ok_route())
        .route("/broken/chunked", broken(Failure::Error))
        .route("/broken/pending", broken(Failure::PendingThenError))
        .route("/broken/panic", broken(Failure::Panic))
        .route(
            "/broken/length",
            pipelined::get(|_req| async {
                Response::builder()
                    .header("content-length", "100")
                    .body(FailingBody::new(Failure::Error))
                    .unwrap()
            }),
        )
}

/// Sends `/ok/1`, `/ok/2`, `broken`, `/ok/3` in one write and reads until the server closes.
/// Returns the bodies of the two responses that must be complete, and every byte after them.
async fn broken_exchange(broken: &str) -> (Vec<String>, Vec<u8>) {
    let server = serve(broken_body_app()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let wire = [get("/ok/1"), get("/ok/2"), get(broken), get("/ok/3")].concat();
    stream.write_all(wire.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut all))
        .await
        .expect("the server neither finished nor closed")
        .expect("read failed (reset instead of a clean close?)");
    drop(stream);
    server.shutdown().await;

    let mut rest = &all[..];
    let mut bodies = Vec::new();
    for n in 1..=2 {
        let head = raw::parse(rest)
            .unwrap_or_else(|| panic!("response {n} incomplete; got {:?}", text(&all)));
        assert_eq!(head.status, 200);
        let len: usize = head.header("content-length").unwrap().parse().unwrap();
        rest = &rest[head.len..];
        bodies.push(String::from_utf8(rest[..len].to_vec()).unwrap());
        rest = &rest[len..];
    }
    (bodies, rest.to_vec())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The broken response's head, and the bytes after it.
fn broken_head(rest: &[u8]) -> (raw::Head, String) {
    let head = raw::parse(rest).expect("the broken response's head is incomplete");
    let tail = text(&rest[head.len..]);
    (head, tail)
}

/// The chunked body's one chunk arrives, its last chunk never does, and the connection closes:
/// the client can tell the response is incomplete. `/ok/3` is never answered.
#[tokio::test]
async fn a_failing_chunked_body_is_cut_short_and_closes() {
    let (before, rest) = broken_exchange("/broken/chunked").await;
    assert_eq!(before, ["ok 1\n", "ok 2\n"]);
    let (head, tail) = broken_head(&rest);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        tail, "7\r\npartial\r\n",
        "expected one chunk, no last chunk, then EOF"
    );
}

/// Same, when the body is pending between its data and its error: the writer flushes what it
/// has (earlier responses and the first chunk) while it waits, and still closes afterwards.
#[tokio::test]
async fn a_body_failing_after_pending_is_cut_short_and_closes() {
    let (before, rest) = broken_exchange("/broken/pending").await;
    assert_eq!(before, ["ok 1\n", "ok 2\n"]);
    let (head, tail) = broken_head(&rest);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(tail, "7\r\npartial\r\n");
}

/// With a declared Content-Length the client sees fewer bytes than promised, then EOF.
#[tokio::test]
async fn a_failing_body_with_a_length_is_truncated_and_closes() {
    let (before, rest) = broken_exchange("/broken/length").await;
    assert_eq!(before, ["ok 1\n", "ok 2\n"]);
    let (head, tail) = broken_head(&rest);
    assert_eq!(head.header("content-length"), Some("100"));
    assert_eq!(head.header("transfer-encoding"), None);
    assert_eq!(tail, "partial");
}

/// A body that panics midway must cost no more than a body that fails: the responses before it
/// were complete and must still arrive, in order, before the connection closes; `/ok/3` is
/// never answered. (What is written of the broken response itself is not asserted.)
#[tokio::test]
async fn a_panicking_body_does_not_lose_earlier_responses() {
    quiet_expected_panics();
    let (before, rest) = broken_exchange("/broken/panic").await;
    assert_eq!(before, ["ok 1\n", "ok 2\n"]);
    assert!(
        !text(&rest).contains("ok 3"),
        "answered after a broken body"
    );
}

/// Parsing of a response head from raw bytes (the shared client cannot hand back the bytes
/// after a truncated response).
mod raw {
    pub struct Head {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        /// Bytes taken by the head.
        pub len: usize,
    }

    impl Head {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Parses the complete response head at the start of `bytes`, if there is one.
    pub fn parse(bytes: &[u8]) -> Option<Head> {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut fields);
        let len = match res.parse(bytes).expect("malformed response head") {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => return None,
        };
        let headers = res
            .headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value).into_owned();
                (h.name.to_ascii_lowercase(), value)
            })
            .collect();
        Some(Head {
            status: res.code.unwrap(),
            headers,
            len,
        })
    }
}
